"""A trained model ready to use: ``reid.load(run)`` → embed images, evaluate on any dataset, search a gallery.

torchreid's ``FeatureExtractor`` idea as one object. Everything it needs comes from the checkpoint
(the spec, the number of classes, the preprocessing), so no dataset is rebuilt to load it.

Example (``run`` is a run directory written by ``reid run``)::

    import reid
    model = reid.load("runs/quickstart")          # best.pt, else last.pt
    feats = model.embed(["a.jpg", "b.jpg"])       # 2×D tensor
    result = model.evaluate()                     # the run's own validation set → EvalResult
    hits = model.search("query.jpg", "gallery/", top_k=10)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from reid.api.feature_set import WEIGHTS_KEY, FeatureSet, weights_digest
from reid.api.inputs import collect_images, image_batches
from reid.data.build import EvalData, build_eval_data
from reid.data.formats import detect_format, market_name_labels
from reid.data.imageset import Progress, no_progress
from reid.engine.checkpoint import ModelCheckpoint, read_model_checkpoint
from reid.engine.evaluation import embed_batch, evaluate_model
from reid.engine.runtime import resolve_runtime
from reid.errors import ReidError
from reid.evaluation import EvalResult, RankedList, ranked_lists, resolve_protocol
from reid.model.pretrained import resolve_weights_file
from reid.spec import DataSpec, EvalSpec, apply_overrides, load_spec, validate_spec

Advance = Callable[[int], None]  # told how many images a batch embedded


def checkpoint_of(path: str | Path, which: str = "best") -> Path:
    """The checkpoint file ``path`` names: itself for a file; for a run directory ``checkpoints/best.pt``
    (else ``last.pt``) — or ``last.pt`` first with ``which="last"``.

    Raises:
        ReidError: no such path, or a directory without checkpoints.
    """
    path = Path(path)
    if not path.exists():
        raise ReidError("no such run directory or checkpoint file", where=str(path),
                        fix="pass a run directory written by `reid run` (e.g. runs/quickstart) or a .pt checkpoint")
    return resolve_weights_file(path, which)


@dataclass(frozen=True)
class EvaluationTarget:
    """A dataset and evaluation settings to evaluate a loaded model with (see :meth:`LoadedModel.evaluation_target`)."""

    data: DataSpec
    eval: EvalSpec
    whole_dataset: bool


@dataclass
class SearchResult:
    """One query's nearest gallery images.

    Attributes:
        query: the query image's name (its path for files).
        gallery: the gallery images' names, nearest first.
        ranked: indices into the gallery, distances and (when identities are known) correctness.
    """

    query: str
    gallery: list[str]
    ranked: RankedList


class LoadedModel:
    """A trained re-ID model with its preprocessing and evaluation settings.

    Attributes:
        model: the :class:`~reid.model.ReidModel` (eval mode, on :attr:`device`).
        spec: the run's resolved spec.
        preprocess: how images become the model's input (:class:`reid.data.preprocess.Preprocess`).
        checkpoint: the checkpoint file the weights came from.
        weights_sha256: :func:`~reid.api.feature_set.weights_digest` of the weights, recorded in every
            :class:`FeatureSet` it embeds and checked against feature files it searches.
        epoch: the epoch of the weights (``None`` when unknown).
        num_classes, embedding_dim: the classifier's outputs (``None`` without one) and D.
        normalize: features are L2-normalised before ranking (``eval.normalize`` or cosine distance).
        runtime: device, precision and memory layout of the embedding forwards: the run's ``[runtime]``
            device and layout, at the run's ``eval.precision`` (fp32 unless the spec says otherwise) or the
            ``precision`` asked for.

    Args:
        checkpoint: a read checkpoint.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 where supported), ``bf16``, ``fp16`` or ``fp32``; default: the run's
            ``eval.precision`` (``auto`` there: its ``runtime.precision``).
    """

    def __init__(self, checkpoint: ModelCheckpoint, device: str = "auto", precision: str | None = None):
        self.spec, self.preprocess = checkpoint.spec, checkpoint.preprocess
        self.checkpoint, self.epoch = checkpoint.path, checkpoint.epoch
        self.weights_sha256 = weights_digest(checkpoint.state_dict)
        self.num_classes, self.embedding_dim = checkpoint.num_classes, checkpoint.embedding_dim
        eval_precision = self.spec.eval.precision
        precision = precision or (self.spec.runtime.precision if eval_precision == "auto" else eval_precision)
        runtime_spec = self.spec.runtime.model_copy(update={"device": device, "precision": precision})
        self.runtime = resolve_runtime(runtime_spec, scope_tf32=True)  # the caller's TF32 settings stay as they are
        self.model = checkpoint.build_model().to(self.runtime.device)
        if self.runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.normalize = self.spec.eval.normalize or self.spec.eval.distance == "cosine"

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.runtime.device

    def __repr__(self) -> str:
        return (f"LoadedModel({self.spec.name!r}, {self.checkpoint}, epoch {self.epoch}, {self.embedding_dim}-d, "
                f"{self.preprocess.height}×{self.preprocess.width}, {self.device}, {self.runtime.precision})")

    def embed(self, images: Any, batch_size: int | None = None, progress: Advance | None = None) -> torch.Tensor:
        """Features (N×D float32, CPU) of ``images``: paths, folders, PIL images, uint8 arrays or tensors.

        Batched on :attr:`device`; flip-averaged and L2-normalised as the run's ``[eval]`` says (the
        features the run ranks with). ``progress(n)`` is called after each batch of ``n`` images.
        """
        return self.embed_set(images, batch_size, progress).features

    def embed_set(self, images: Any, batch_size: int | None = None, progress: Advance | None = None) -> FeatureSet:
        """:meth:`embed` with the images' names, and identities / cameras read from Market-style file names."""
        items = collect_images(images)
        chunks = []
        for batch, _ in image_batches(items, self.preprocess.height, self.preprocess.width,
                                      batch_size or self.spec.eval.batch_size):
            chunks.append(self.embed_preprocessed(self.preprocess.apply(batch)))
            if progress is not None:
                progress(len(batch))
        names = [item.name for item in items]
        labels = [market_name_labels(Path(n).name) if isinstance(item.source, Path) else None
                  for n, item in zip(names, items)]
        pids = torch.tensor([lab[0] if lab else -1 for lab in labels], dtype=torch.long)
        camids = torch.tensor([lab[1] if lab else -1 for lab in labels], dtype=torch.long)
        meta = {"reid_version": self._reid_version(), "checkpoint": str(self.checkpoint), "spec_name": self.spec.name,
                WEIGHTS_KEY: self.weights_sha256}
        return FeatureSet(torch.cat(chunks), names, pids, camids, normalized=self.normalize, meta=meta)

    def embed_preprocessed(self, images: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """Features (float32, CPU) of one batch of already preprocessed float images (``N×3×H×W``, after
        :attr:`preprocess`): the step :meth:`embed` takes per batch — flip averaging as the run's
        ``eval.flip`` says, L2-normalised when ``normalize`` (default: as the run ranks).

        Example (``model`` loaded with ``reid.load``)::

            x = model.preprocess.apply(uint8_batch)
            torch.equal(model.embed_preprocessed(x), model.embed(uint8_batch))  # True
        """
        self.model.eval()
        feats = embed_batch(self.model, images, self.runtime, self.spec.eval.flip)
        normalize = self.normalize if normalize is None else normalize
        return (F.normalize(feats, dim=1) if normalize else feats).cpu()

    @staticmethod
    def _reid_version() -> str:
        import reid

        return reid.__version__

    def eval_data(self, data: DataSpec | None = None, whole_dataset: bool = False,
                  progress: Progress = no_progress) -> EvalData:
        """The query / gallery images of ``data`` (default: the run's own validation split), decoded at the
        model's input size (``progress`` is told how decoding advances)."""
        data = data or self.spec.data
        data = data.model_copy(update={"height": self.preprocess.height, "width": self.preprocess.width})
        return build_eval_data(data, whole_dataset=whole_dataset, progress=progress)

    def evaluation_target(self, data: str | Path | None = None, overrides: list[str] | None = None) -> EvaluationTarget:
        """What to evaluate on: the run's spec with ``data`` and ``overrides`` applied.

        Args:
            data: ``None`` (the run's own dataset), a ``.toml`` spec (its ``[data]`` table replaces the run's)
                or a dataset folder (its format detected; a folder-per-identity set reads its cameras with the
                run's ``data.camera_regex``, which ``--set data.camera_regex=…`` changes).
            overrides: ``section.key=value`` strings applied last (e.g. ``data.root=…``, ``eval.flip=true``).

        A dataset other than the run's (another dataset or root) is evaluated on *all* its identities when it
        is a folder-per-identity set: none of them was trained on. The run's own dataset keeps its split.
        """
        table = tomllib.loads(self.spec.to_toml())
        if data is not None:
            path = Path(data).expanduser()
            if path.suffix == ".toml":
                table["data"] = tomllib.loads(load_spec(path).to_toml())["data"]
            elif path.is_dir():
                table["data"] = {"dataset": detect_format(path), "root": str(path)}
                if table["data"]["dataset"] == "folder" and self.spec.data.camera_regex is not None:
                    table["data"]["camera_regex"] = self.spec.data.camera_regex  # cameras named as in training
            else:
                raise ReidError("no such spec file or dataset folder", where=str(path),
                                fix="give a .toml spec or a dataset folder to --data")
        spec = validate_spec(apply_overrides(table, overrides or []), f"{self.spec.name} with --data/--set")
        other = (spec.data.dataset, spec.data.root) != (self.spec.data.dataset, self.spec.data.root)
        return EvaluationTarget(spec.data, spec.eval, whole_dataset=other and spec.data.dataset == "folder")

    def evaluate(self, data: DataSpec | EvalData | str | Path | None = None, eval: EvalSpec | None = None,
                 whole_dataset: bool = False) -> EvalResult:
        """Rank-k, mAP and mINP on ``data`` (default: the run's validation set) — the same evaluation
        (and the same :class:`~reid.evaluation.EvalResult`) as training's.

        Args:
            data: a ``[data]`` table (any dataset the specs know), a ``.toml`` spec or dataset folder
                (see :meth:`evaluation_target`), or already built :class:`EvalData`.
            eval: evaluation settings (default: the run's ``[eval]``).
            whole_dataset: evaluate a folder-per-identity dataset on all its identities (cross-domain).
        """
        if isinstance(data, (str, Path)):
            target = self.evaluation_target(data)
            data, eval, whole_dataset = target.data, eval or target.eval, target.whole_dataset
        built = data if isinstance(data, EvalData) else self.eval_data(data, whole_dataset)
        eval = (eval or self.spec.eval).model_copy(update={"precision": "auto"})  # self.runtime holds the precision
        return evaluate_model(self.model, built, self.runtime, eval, self.preprocess.normalization())

    def search(self, query: Any, gallery: Any, top_k: int = 10,
               allow_other_checkpoint: bool = False) -> list[SearchResult]:
        """The ``top_k`` nearest gallery images of each query image.

        Args:
            query: images in any form :meth:`embed` takes, or a :class:`FeatureSet`.
            gallery: the same, or a ``.safetensors`` file written by ``reid embed`` (embedded once, reused).
            top_k: neighbours per query.
            allow_other_checkpoint: rank features embedded by other weights (with a warning) instead of raising.

        Features given as a :class:`FeatureSet` or a file must come from this model's weights
        (:meth:`FeatureSet.check_weights`): another checkpoint's embedding of the same dimension is a
        :class:`~reid.errors.ReidError` unless ``allow_other_checkpoint``.

        Identities and cameras are read from Market-style file names; when every query and gallery image has
        them, correct matches are marked and the run's protocol applies (``market``: gallery images of the
        query's identity taken by the query's camera are left out). With the run's ``eval.rerank`` the
        distances are k-reciprocal re-ranked first, as its evaluation did.
        """
        q = self.gallery_features(query, allow_other_checkpoint, "query features", load_files=False)
        g = self.gallery_features(gallery, allow_other_checkpoint)
        labelled = q.labelled and g.labelled
        protocol = resolve_protocol(self.spec.eval.protocol, False, torch.cat([q.camids, g.camids])) if labelled else "all"
        labels = dict(q_pids=q.pids, g_pids=g.pids, q_camids=q.camids, g_camids=g.camids) if labelled else {}
        lists = ranked_lists(self.spec.eval, q.features, g.features, top_k, protocol=protocol, **labels)
        return [SearchResult(q.names[r.query], [g.names[i] for i in r.gallery], r) for r in lists]

    def gallery_features(self, gallery: Any, allow_other_checkpoint: bool = False, where: str = "gallery features",
                         load_files: bool = True) -> FeatureSet:
        """``gallery`` as features: a :class:`FeatureSet` as is, a ``.safetensors`` file loaded (with ``load_files``),
        anything else embedded. Given features must be of this model's dimension and weights
        (:meth:`FeatureSet.check_weights`; ``allow_other_checkpoint`` turns a mismatch of weights into a warning)."""
        if isinstance(gallery, FeatureSet):
            features = gallery
        elif load_files and isinstance(gallery, (str, Path)) and str(gallery).endswith(".safetensors"):
            features, where = FeatureSet.load(gallery, dim=self.embedding_dim), str(gallery)
        else:
            return self.embed_set(gallery)
        features.check_weights(self.weights_sha256, str(self.checkpoint), where, allow_other=allow_other_checkpoint)
        return features


def load(path: str | Path, device: str = "auto", precision: str | None = None, which: str = "best") -> LoadedModel:
    """Load a trained model from a run directory (``best.pt``, else ``last.pt``) or a checkpoint file.

    Args:
        path: a run directory or a ``.pt`` checkpoint written by ``reid run``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: autocast precision of the embedding forwards; default: the run's ``eval.precision`` (fp32
            unless the spec says otherwise; its ``auto`` means the run's ``runtime.precision``).
        which: for a run directory, ``best`` (best Rank-1 weights) or ``last`` (the final weights).

    Raises:
        ReidError: not a run or checkpoint, a corrupt file, or a checkpoint whose model cannot be rebuilt.
    """
    if which not in ("best", "last"):
        raise ReidError(f"unknown checkpoint choice {which!r}", fix="use 'best' or 'last'")
    return LoadedModel(read_model_checkpoint(checkpoint_of(path, which)), device=device, precision=precision)
