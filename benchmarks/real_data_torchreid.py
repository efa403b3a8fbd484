"""The peer engine on the real-data benchmark's split: torchreid (``pip install torchreid``) trains a ResNet-18 as its
README does (softmax with label smoothing, Adam 3e-4, random flip, batch 32) and writes what it measured.

Run by :mod:`benchmarks.real_data` in a Python environment of its own (torchreid is not a dependency of reid, and
reid is not imported here), so only torch, torchvision and torchreid are needed:

    python benchmarks/real_data_torchreid.py SPLITS.json OUT.pt --epochs 10 --seed 0
    python benchmarks/real_data_torchreid.py --score OUT.pt    # torchreid's own Rank-1 / mAP of the saved features

``SPLITS.json`` holds the benchmark's lists of ``[path, pid, camid]`` (``train``: identities relabelled 0…N-1;
``test`` and ``cross``: query and gallery, original identities), written by :mod:`benchmarks.real_data` from reid's
own split so that both engines see the same images. ``OUT.pt`` receives the query and gallery features of ``test``
and ``cross`` (scored by reid's evaluation, so every engine is scored by one piece of code), torchreid's own Rank-1
and mAP of each (a cross-check of that scoring) and the training time and image count.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

SPLITS_ENV = "REAL_DATA_SPLITS"


def dataset_class(key: str):
    """A torchreid ``ImageDataset`` reading list ``key`` of the splits file named by ``$REAL_DATA_SPLITS``."""
    from torchreid.reid.data import ImageDataset

    class Listed(ImageDataset):
        def __init__(self, root="", **kwargs):
            with open(os.environ[SPLITS_ENV], encoding="utf-8") as f:
                splits = json.load(f)
            part = splits[key]
            as_tuples = [tuple(x) for x in part.get("train", splits["train"])]
            super().__init__(as_tuples, [tuple(x) for x in part["query"]], [tuple(x) for x in part["gallery"]], **kwargs)

    return Listed


@torch.no_grad()
def features(engine, loader) -> dict[str, torch.Tensor]:
    """Features, identities and cameras of every image ``loader`` yields, with torchreid's own extraction."""
    engine.set_model_mode("eval")
    feats, pids, camids = [], [], []
    for data in loader:
        imgs, p, c = engine.parse_data_for_eval(data)
        feats.append(engine.extract_features(imgs).float().cpu())
        pids.append(torch.as_tensor(p))
        camids.append(torch.as_tensor(c))
    return {"features": torch.cat(feats), "pids": torch.cat(pids), "camids": torch.cat(camids)}


def own_scores(path: str) -> dict[str, dict[str, float]]:
    """torchreid's own ``evaluate_rank`` (Market protocol, Euclidean) of the features a training run saved: the
    independent check of reid's scoring of the same features."""
    from torchreid.reid.metrics import compute_distance_matrix, evaluate_rank

    saved = torch.load(path, weights_only=True)
    out = {}
    for key in ("test", "cross"):
        q, g = saved[key]["query"], saved[key]["gallery"]
        dist = compute_distance_matrix(q["features"], g["features"], "euclidean").numpy()
        cmc, mAP = evaluate_rank(dist, q["pids"].numpy(), g["pids"].numpy(), q["camids"].numpy(), g["camids"].numpy(),
                                 use_metric_cuhk03=False)
        out[key] = {"rank1": float(cmc[0]), "mAP": float(mAP)}
    return out


def main() -> None:
    """Train with torchreid on the split, then save the features and torchreid's own figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("splits", nargs="?")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--score", metavar="OUT.pt", help="print torchreid's own scores of saved features (JSON)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.score:
        print(json.dumps(own_scores(args.score)))
        return
    if not (args.splits and args.out):
        parser.error("give SPLITS.json and OUT.pt (or --score OUT.pt)")
    os.environ[SPLITS_ENV] = os.path.abspath(args.splits)

    import torchreid

    torchreid.reid.utils.set_random_seed(args.seed)
    for key in ("test", "cross"):
        torchreid.data.register_image_dataset(f"real_{key}", dataset_class(key))
    manager = torchreid.data.ImageDataManager(
        root="", sources="real_test", targets=["real_test", "real_cross"], height=128, width=64,
        transforms=["random_flip"], batch_size_train=32, batch_size_test=100, workers=args.workers, use_gpu=False)
    model = torchreid.models.build_model("resnet18", num_classes=manager.num_train_pids, loss="softmax",
                                         pretrained=False, use_gpu=False)
    optimizer = torchreid.optim.build_optimizer(model, optim="adam", lr=0.0003)
    scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler="single_step", stepsize=20)
    engine = torchreid.engine.ImageSoftmaxEngine(manager, model, optimizer=optimizer, scheduler=scheduler,
                                                 label_smooth=True, use_gpu=False)
    start = time.perf_counter()
    for engine.epoch in range(args.epochs):
        engine.train(print_freq=10 ** 9)
    train_seconds = time.perf_counter() - start
    images = args.epochs * len(manager.train_loader) * manager.train_loader.batch_size
    result = {"train_seconds": train_seconds, "images": images, "torchreid": torchreid.__version__}
    engine.set_model_mode("eval")  # as torchreid's own test() does before evaluating
    for key in ("test", "cross"):
        loaders = manager.test_loader[f"real_{key}"]
        rank1, mAP = engine._evaluate(dataset_name=f"real_{key}", query_loader=loaders["query"],
                                      gallery_loader=loaders["gallery"], dist_metric="euclidean",
                                      normalize_feature=False, visrank=False, visrank_topk=10, save_dir="",
                                      use_metric_cuhk03=False, ranks=[1, 5, 10], rerank=False)
        result[key] = {"query": features(engine, loaders["query"]), "gallery": features(engine, loaders["gallery"]),
                       "own_rank1": float(rank1), "own_mAP": float(mAP)}
    torch.save(result, args.out)


if __name__ == "__main__":
    main()
