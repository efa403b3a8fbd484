"""Checkpoints: crash-safe writes, and self-describing contents saved and restored side by side.

Writes go to a temporary file, are fsynced, then renamed into place (:mod:`reid.fileio`, whose
``atomic_write_bytes`` / ``atomic_write_text`` are importable from here too): a reader sees either the
previous complete checkpoint or the new complete one — never a torn file — whether the writer is
stopped by Ctrl-C, an exception or ``kill -9``. A write that cannot happen (full disk, read-only
folder, no permission) is one :class:`ReidError` naming the file, the space needed and free, and
saying that the previous checkpoint is intact.

Torn writes (a disk or network file system that loses the tail of a file, a bit flip, a copy cut short)
are caught too. Every write is read back and its size and SHA-256 are recorded in
``checkpoints/manifest.json`` before the file is renamed into place, and a resumable checkpoint
(``last.pt``) keeps its predecessor as ``last.prev.pt``. :func:`load_resumable` checks ``last.pt``
against the manifest; a damaged one is reported in one line and ``last.prev.pt`` is used instead;
when neither is intact it is an error (a run never starts over silently).

Contents (format ``reid-checkpoint`` version 1, all loadable with ``torch.load(weights_only=True)``):

- every checkpoint describes its model — ``spec`` (the resolved spec as TOML text), ``num_classes``,
  ``embedding_dim``, ``preprocess`` (height, width, mean, std, channel order), ``reid_version`` — so
  :func:`read_model_checkpoint` rebuilds the model without any dataset, and holds ``model`` (the
  weights) and ``best`` (the best metrics so far, with their epoch);
- ``best.pt`` adds nothing more; ``last.pt`` adds the training state (optimiser, schedule, scaler, RNG,
  position), written by :func:`training_checkpoint` and restored by :func:`restore_training`.

Checkpoints written before the format existed (``{"model", "best", ...}`` only) still load from
their run directory: the spec comes from ``spec.toml`` beside ``checkpoints/`` and the number of
classes from the classifier's weight.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from reid.data.preprocess import Preprocess
from reid.errors import ReidError
from reid.fileio import atomic_write_bytes, atomic_write_text
from reid.spec import Spec, load_spec_text

CHECKPOINT_FORMAT = "reid-checkpoint"
CHECKPOINT_VERSION = 1


def _megabytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


MANIFEST_FILE = "manifest.json"
#: entries kept per checkpoint name: the file in place, its predecessor, and one written but not yet renamed
_MANIFEST_DEPTH = 3


def previous_path(path: Path) -> Path:
    """Where the predecessor of a resumable checkpoint is kept (``last.pt`` → ``last.prev.pt``).

    Example:
        >>> previous_path(Path("run/checkpoints/last.pt")).as_posix()
        'run/checkpoints/last.prev.pt'
    """
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _sha256_of_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _read_manifest(folder: Path) -> list[dict] | None:
    """The manifest's entries; ``None`` when there is none (checkpoints older than it) or it is unreadable."""
    try:
        entries = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["entries"]
        return [e for e in entries if isinstance(e, dict) and {"file", "size", "sha256"} <= e.keys()]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_in_manifest(path: Path, size: int, sha256: str, state: dict) -> None:
    """Add a verified write of ``path`` to its folder's manifest (keeping a few entries per file name)."""
    entries = [e for e in _read_manifest(path.parent) or [] if e["sha256"] != sha256]
    entries.append({"file": path.name, "size": size, "sha256": sha256, "epoch": state.get("epoch"),
                    "global_step": state.get("global_step")})
    kept, per_name = [], {}
    for entry in reversed(entries):  # newest first
        per_name[entry["file"]] = per_name.get(entry["file"], 0) + 1
        if per_name[entry["file"]] <= _MANIFEST_DEPTH:
            kept.append(entry)
    atomic_write_text(path.parent / MANIFEST_FILE, json.dumps({"version": 1, "entries": kept[::-1]}, indent=1) + "\n")


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with the checkpoint file ``path`` according to its folder's manifest, or ``None``.

    ``None`` also when the manifest knows no write of that name (a run written before it: only loading can
    tell). A file is intact when its size and SHA-256 match an entry that a verified write recorded
    (``last.prev.pt`` was recorded as ``last.pt``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "last.pt"
        >>> save_checkpoint({"global_step": 1, "optimizer": {}}, path)
        >>> checkpoint_problem(path) is None
        True
        >>> _ = path.write_bytes(path.read_bytes()[:100])
        >>> checkpoint_problem(path)  # doctest: +ELLIPSIS
        'truncated: 100 of ... bytes'
    """
    name = path.name.replace(".prev.", ".")
    entries = _read_manifest(path.parent)
    expected = [e["size"] for e in entries or [] if e["file"] == name]
    if not expected:
        return None
    if not path.is_file():
        return "missing"
    size, sha256 = _sha256_of_file(path)
    if any(e["sha256"] == sha256 and e["size"] == size for e in entries):
        return None
    if size < expected[-1]:
        return f"truncated: {size:,} of {expected[-1]:,} bytes"
    return f"checksum mismatch ({size:,} bytes, written by no verified save)"


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically save a checkpoint dictionary (tensors, numbers, strings, nested dicts/lists).

    The state is serialised in memory first, so its size is known and checked against the free space.
    The written file is read back and compared (size, SHA-256) before it replaces anything; the
    manifest records it. A resumable state (one holding ``optimizer``) keeps the file it replaces as
    :func:`previous_path`, so a later torn or corrupted ``last.pt`` still leaves a complete one.

    Raises:
        ReidError: the file cannot be written (no space, read-only folder, permission) or does not read
            back as written; the previous file at ``path`` is left intact.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    sha256 = hashlib.sha256(data).hexdigest()
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    fix = (f"the previous {path.name} is intact; free some space or fix the folder's permissions, then continue "
           f"with `reid run --resume {run}`")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
    except OSError as e:
        raise ReidError(f"cannot write the checkpoint ({e.strerror})", where=str(path), fix=fix) from None
    if free < len(data):
        raise ReidError(f"cannot write the checkpoint: it needs {_megabytes(len(data))} and only {_megabytes(free)} "
                        "are free", where=str(path), fix=fix)

    def verified_write(tmp: Path) -> None:
        if _sha256_of_file(tmp) != (len(data), sha256):
            raise ReidError("the checkpoint did not read back as written (size or checksum differ)", where=str(path),
                            fix=f"check the disk; {fix}")
        _record_in_manifest(path, len(data), sha256, state)
        if "optimizer" in state and path.is_file():
            os.replace(path, previous_path(path))

    try:
        atomic_write_bytes(path, lambda f: f.write(data), before_rename=verified_write)
    except OSError as e:
        raise ReidError(f"cannot write the checkpoint ({e.strerror or e}; it needs {_megabytes(len(data))}, "
                        f"{_megabytes(shutil.disk_usage(path.parent).free)} are free)", where=str(path), fix=fix) from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs on load), after checking it
    against its folder's manifest (:func:`checkpoint_problem`).

    Raises:
        ReidError: the file is missing, damaged or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ReidError("checkpoint not found", where=str(path), fix="pass the run directory that holds checkpoints/last.pt")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ReidError(f"checkpoint is unreadable: damaged ({problem})", where=str(path),
                        fix="use the run's other checkpoint, or resume the run (`reid run --resume` falls back to "
                            f"last.prev.pt); if you replaced the file on purpose, delete {path.parent / MANIFEST_FILE}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise ReidError(f"checkpoint is unreadable ({type(e).__name__}: {e})".splitlines()[0], where=str(path),
                        fix="delete it to fall back to an earlier one, or start a new run") from None


def load_resumable(path: Path, report: Callable[[str], None]) -> dict | None:
    """The newest intact resumable checkpoint: ``path`` (``last.pt``), else its predecessor ``last.prev.pt``.

    A damaged or missing ``path`` whose predecessor is intact is reported with one line through ``report``
    (what was wrong, which file and position are used instead). Returns ``None`` when neither file exists
    (the run never saved a resumable state).

    Raises:
        ReidError: checkpoints exist but none is intact (the run is not restarted from scratch).
    """
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            if candidate == path and previous_path(path).is_file():
                problems.append(f"{candidate.name} is missing")
            continue
        try:
            ckpt = load_checkpoint(candidate)
        except ReidError as e:
            problems.append(f"{candidate.name} is {e.what.removeprefix('checkpoint is ')}")
            continue
        if problems:
            report(f"warning: {'; '.join(problems)} ({candidate.parent}); resuming from {candidate.name} "
                   f"(epoch {ckpt.get('epoch', 0) + 1}, iteration {ckpt.get('iter_in_epoch', 0)})")
        return ckpt
    if problems:
        raise ReidError(f"no intact checkpoint to resume from ({'; '.join(problems)})", where=str(path.parent),
                        fix=f"restore {path.name} from a backup, or start the run again with --force")
    return None


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside ``torch.compile`` and ``DistributedDataParallel`` wrappers (its state-dict
    keys carry no ``_orig_mod.`` / ``module.`` prefix)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else None)
        if inner is None:
            return model
        model = inner


def model_description(spec: Spec, model: torch.nn.Module) -> dict[str, Any]:
    """What every checkpoint of ``model`` carries to describe it (format, spec, classes, embedding, preprocessing)."""
    import reid

    plain = unwrap(model)
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "reid_version": reid.__version__,
            "spec": spec.to_toml(), "num_classes": plain.num_classes, "embedding_dim": plain.embedding_dim,
            "preprocess": Preprocess.from_spec(spec).to_json()}


def model_checkpoint(description: dict[str, Any], model: torch.nn.Module, best: dict) -> dict[str, Any]:
    """A weights-only checkpoint (``best.pt``): the description, the weights and the best metrics."""
    return {**description, "model": unwrap(model).state_dict(), "best": best}


def training_checkpoint(description: dict[str, Any], trainer, best: dict, rank_rng: list | None = None,
                        evaluated: torch.nn.Module | None = None) -> dict[str, Any]:
    """Everything needed to continue a run exactly (``last.pt``): the model checkpoint plus the criterion's
    parameters (e.g. center loss's centres), optimiser, schedule, scaler, RNG states and position.

    ``evaluated``: the weights the run evaluates when they are not the trained model's (an average of weights:
    :class:`reid.engine.training_hooks.WeightAverage`). They are then the checkpoint's ``model`` (what
    ``reid.load`` and export use) and the trained weights are kept as ``training_model``, to resume.

    ``rank_rng`` holds, per rank, ``{"cpu": …, "cuda": … or None}``: that rank's CPU RNG state and the
    CUDA RNG state of its GPU (see :class:`reid.engine.hooks.RngStateHook`); each rank restores its own.
    """
    averaged = evaluated is not None and evaluated is not unwrap(trainer.model)
    state = model_checkpoint(description, evaluated if averaged else trainer.model, best)
    if averaged:
        state["training_model"] = unwrap(trainer.model).state_dict()
    state.update(optimizer=trainer.optimizer.state_dict(), schedule=trainer.schedule.state_dict(),
                 epoch=trainer.state.epoch, iter_in_epoch=trainer.state.iter_in_epoch,
                 global_step=trainer.state.global_step, rng_cpu=torch.get_rng_state())
    criterion = getattr(trainer, "criterion", None)
    criterion_state = criterion.state_dict() if isinstance(criterion, torch.nn.Module) else {}
    if criterion_state:
        state["criterion"] = criterion_state
    if rank_rng is not None:
        state["rng_ranks"] = rank_rng
    if trainer.runtime.scaler is not None:
        state["scaler"] = trainer.runtime.scaler.state_dict()
    return state


def restore_training(ckpt: dict[str, Any], model: torch.nn.Module, optimizer, schedule, runtime,
                     rank: int = 0, criterion: torch.nn.Module | None = None,
                     evaluated: torch.nn.Module | None = None) -> tuple[tuple[int, int, int], dict]:
    """Load :func:`training_checkpoint`'s state into freshly built objects; returns the position
    ``(epoch, iter_in_epoch, global_step)`` and the best metrics. Rank ``rank`` restores its own CPU RNG
    state and its own CUDA RNG state onto its own device (``runtime.device``). A checkpoint with
    ``training_model`` restores those weights into ``model`` and its ``model`` into ``evaluated`` (the average).

    Load ``ckpt`` with ``map_location="cpu"``: RNG states must stay CPU byte tensors, and
    ``load_state_dict`` moves weights and optimiser state to their parameters' device.
    """
    unwrap(model).load_state_dict(ckpt.get("training_model", ckpt["model"]))
    if evaluated is not None and "training_model" in ckpt:
        evaluated.load_state_dict(ckpt["model"])
    if criterion is not None and "criterion" in ckpt:
        criterion.load_state_dict(ckpt["criterion"])
    optimizer.load_state_dict(ckpt["optimizer"])
    schedule.load_state_dict(ckpt["schedule"])
    per_rank = ckpt.get("rng_ranks") or []
    own = per_rank[rank] if rank < len(per_rank) else {"cpu": ckpt["rng_cpu"], "cuda": None}
    torch.set_rng_state(own["cpu"].cpu())
    cuda = own["cuda"] if own["cuda"] is not None else _legacy_cuda_rng(ckpt, rank)
    if runtime.device.type == "cuda" and cuda is not None:
        torch.cuda.set_rng_state(cuda.cpu(), device=runtime.device)
    elif "rng_cuda" in ckpt and torch.cuda.is_available():  # reid 0.1: rank 0's states of every visible GPU
        torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng_cuda"]])
    if "scaler" in ckpt and runtime.scaler is not None:
        runtime.scaler.load_state_dict(ckpt["scaler"])
    return (ckpt["epoch"], ckpt["iter_in_epoch"], ckpt["global_step"]), ckpt["best"]


def _legacy_cuda_rng(ckpt: dict[str, Any], rank: int) -> torch.Tensor | None:
    """Rank ``rank``'s CUDA RNG state in a checkpoint written before per-rank CPU states (``rng_cuda_ranks``)."""
    states = ckpt.get("rng_cuda_ranks") or []
    return states[rank] if rank < len(states) else None


@dataclass
class ModelCheckpoint:
    """A checkpoint read back: enough to rebuild and use the model without any dataset.

    Attributes:
        path: the file read.
        spec: the run's resolved spec.
        num_classes: classifier outputs (``None`` without a classifier).
        embedding_dim: the embedding's dimension.
        preprocess: how images become the model's input.
        state_dict: the weights.
        epoch: the epoch the weights are from (``None`` when unknown).
        best: the best metrics recorded when it was written.
        reid_version: the reid that wrote it (``None`` for checkpoints older than the format).
    """

    path: Path
    spec: Spec
    num_classes: int | None
    embedding_dim: int
    preprocess: Preprocess
    state_dict: dict[str, torch.Tensor]
    epoch: int | None
    best: dict
    reid_version: str | None

    def build_model(self) -> torch.nn.Module:
        """The :class:`~reid.model.ReidModel` with these weights, in eval mode, on the CPU (no pretrained download)."""
        from reid.model import build_model

        spec = self.spec
        model = build_model(spec.model.model_copy(update={"pretrained": "none"}), spec.head, self.num_classes,
                            input_size=(3, self.preprocess.height, self.preprocess.width))
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as e:
            raise ReidError(f"the weights do not fit the model its spec describes ({str(e).splitlines()[0]})",
                            where=str(self.path), fix="was the checkpoint or spec.toml replaced by another run's?") from None
        return model.eval()


def _legacy_spec_text(path: Path, spec_text: str | None) -> str:
    if spec_text is not None:
        return spec_text
    spec_file = path.parent.parent / "spec.toml" if path.parent.name == "checkpoints" else path.parent / "spec.toml"
    if not spec_file.is_file():
        raise ReidError("this checkpoint was written before checkpoints described themselves, and no spec.toml is "
                        "beside it", where=str(path),
                        fix="load it from its run directory (RUN/checkpoints/…, with RUN/spec.toml), or put the run's "
                            "spec.toml next to it")
    return spec_file.read_text(encoding="utf-8")


def read_model_checkpoint(path: Path, spec_text: str | None = None) -> ModelCheckpoint:
    """Read a checkpoint for inference (any reid checkpoint: ``best.pt``, ``last.pt``, old or new format).

    Args:
        path: the checkpoint file.
        spec_text: the run's spec, for checkpoints older than the self-describing format (default:
            ``spec.toml`` of the run the file sits in).

    Raises:
        ReidError: missing, unreadable, not a reid checkpoint, or written by a newer format.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ReidError("not a reid checkpoint (no model weights in it)", where=str(path),
                        fix="pass a run directory or a checkpoints/best.pt / last.pt written by `reid run`")
    best = ckpt.get("best") or {}
    epoch = best.get("epoch") if "optimizer" not in ckpt else ckpt.get("epoch")
    if ckpt.get("format") == CHECKPOINT_FORMAT:
        if ckpt.get("format_version", 0) > CHECKPOINT_VERSION:
            raise ReidError(f"checkpoint format version {ckpt['format_version']} is newer than this reid reads "
                            f"({CHECKPOINT_VERSION})", where=str(path), fix="upgrade reid")
        spec = load_spec_text(ckpt["spec"], source=f"{path} (embedded spec)")
        return ModelCheckpoint(path, spec, ckpt["num_classes"], ckpt["embedding_dim"],
                               Preprocess.from_json(ckpt["preprocess"]), ckpt["model"], epoch, best, ckpt["reid_version"])
    spec = load_spec_text(_legacy_spec_text(path, spec_text), source=f"spec of {path}")
    classifier = ckpt["model"].get("head.classifier.weight")
    legacy = ModelCheckpoint(path, spec, int(classifier.shape[0]) if classifier is not None else None, 0,
                             Preprocess.from_spec(spec), ckpt["model"], epoch, best, None)
    legacy.embedding_dim = legacy.build_model().embedding_dim
    return legacy
