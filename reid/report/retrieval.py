"""Q9's measurements: a run's checkpoint re-embedded on its validation set, ranked lists, and a 2-D PCA.

Everything is recomputed from the run directory: the spec rebuilds the dataset
(``build_data``) and the model, ``checkpoints/best.pt`` (else ``last.pt``) supplies the
weights, and features come from the same extraction the run's evaluation used.

Example::

    val = embed_validation(load_run("runs/q8"))
    lists = ranked_lists(val, choose_queries(val.query.pids, 6), top=10)
    points, explained = pca_2d(val.query.features)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from reid.data import build_data
from reid.engine.checkpoint import load_checkpoint
from reid.engine.evaluation import Features, extract_features, score
from reid.engine.runtime import resolve_runtime
from reid.model import build_model
from reid.metrics import compute_distance
from reid.report.runs import Run
from reid.spec import RuntimeSpec


@dataclass
class Validation:
    """A checkpoint's embeddings of a run's validation set.

    Attributes:
        query, gallery: features, pids, camids (``gallery is query`` for a leave-one-out set).
        query_images, gallery_images: uint8 N×3×H×W.
        same_set: leave-one-out validation.
        protocol: ``market`` or ``all``.
        checkpoint: the checkpoint file used (relative to the run).
        checkpoint_epoch: the epoch it was saved at (best.pt), or None.
        metrics: :func:`reid.engine.evaluation.score` of these features (what the run logged for that epoch).
    """

    query: Features
    gallery: Features
    query_images: torch.Tensor
    gallery_images: torch.Tensor
    same_set: bool
    protocol: str
    checkpoint: str
    checkpoint_epoch: int | None
    metrics: dict


@dataclass
class RankedList:
    """The top gallery entries of one query (junk and the query itself removed)."""

    query: int
    gallery: list[int]
    distances: list[float]
    correct: list[bool]


def embed_validation(run: Run) -> Validation:
    """Rebuild ``run``'s data and model, load its best (else last) checkpoint and embed the validation set."""
    spec = run.spec
    data = build_data(spec.data)
    rundir = run.rundir
    path = rundir.best_checkpoint if rundir.best_checkpoint.is_file() else rundir.last_checkpoint
    ckpt = load_checkpoint(path)
    model = build_model(spec.model.model_copy(update={"pretrained": "none"}), spec.head, data.num_classes,
                        input_size=(3, spec.data.height, spec.data.width))
    model.load_state_dict(ckpt["model"])
    runtime = resolve_runtime(RuntimeSpec(device="auto", precision="fp32", channels_last="off"))
    model.to(runtime.device)
    query = extract_features(model, data.query, runtime, spec.eval, spec.augment)
    gallery = query if data.same_set else extract_features(model, data.gallery, runtime, spec.eval, spec.augment)
    protocol = run.summary["evaluation"]["protocol"]
    with warnings.catch_warnings():  # a small gallery lowers max_rank with a warning; the run saw the same
        warnings.simplefilter("ignore", UserWarning)
        metrics = score(query, gallery, spec.eval, data.same_set, margin=spec.loss.margin, protocol=protocol)
    epoch = (ckpt.get("best") or {}).get("epoch") if path == rundir.best_checkpoint else ckpt.get("epoch")
    return Validation(
        query=query, gallery=gallery, query_images=data.query.all_images(),
        gallery_images=data.query.all_images() if data.same_set else data.gallery.all_images(),
        same_set=data.same_set, protocol=protocol,
        checkpoint=str(path.relative_to(rundir.path)), checkpoint_epoch=epoch,
        metrics=metrics,
    )


def choose_queries(pids: torch.Tensor, n: int) -> list[int]:
    """Indices of the first image of ``n`` identities spread evenly over the sorted identities.

    Example:
        >>> choose_queries(torch.tensor([5, 5, 7, 7, 9, 9]), 2)
        [0, 4]
    """
    ids = sorted(set(pids.tolist()))
    n = min(n, len(ids))
    picked = [ids[round(i * (len(ids) - 1) / max(n - 1, 1))] for i in range(n)]
    first = {}
    for i, pid in enumerate(pids.tolist()):
        first.setdefault(pid, i)
    return [first[pid] for pid in picked]


def ranked_lists(val: Validation, queries: list[int], top: int, distance: str, normalize: bool) -> list[RankedList]:
    """The ``top`` nearest gallery entries of each query, under the run's distance and junk rule."""
    out = []
    for q in queries:
        d = compute_distance(val.query.features[q : q + 1], val.gallery.features, metric=distance, normalize=normalize)[0]
        keep = torch.ones_like(d, dtype=torch.bool)
        if val.same_set:
            keep[q] = False
        if val.protocol == "market":
            keep &= ~((val.gallery.pids == val.query.pids[q]) & (val.gallery.camids == val.query.camids[q]))
        candidates = torch.nonzero(keep).flatten()
        order = candidates[torch.sort(d[candidates], stable=True).indices][:top].tolist()
        out.append(RankedList(query=q, gallery=order, distances=[float(d[g]) for g in order],
                              correct=[bool(val.gallery.pids[g] == val.query.pids[q]) for g in order]))
    return out


def pca_2d(features: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """Project ``features`` (N×D) on their first two principal components (SVD of the centred matrix).

    Signs are fixed (largest loading positive) so the picture is the same every time.
    Returns the N×2 points and the share of variance each component explains.
    """
    x = features.double() - features.double().mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:2]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * signs
    var = s.square()
    total = float(var.sum()) or 1.0
    explained = (float(var[0]) / total, float(var[1]) / total if len(var) > 1 else 0.0)
    return (x @ comps.T).float(), explained
