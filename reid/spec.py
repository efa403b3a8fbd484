"""The experiment spec: a TOML file validated by pydantic before anything runs.

A spec has one table per concern. Every key has a default, so the smallest spec is
``name = "demo"``; unknown keys, wrong types and out-of-range values are errors that
name the file, the key, what was found and what is allowed.

Example:
    >>> spec = load_spec_text('name = "demo"\\n[model]\\nlast_stride = 2', source="demo.toml")
    >>> spec.model.last_stride, spec.data.dataset
    (2, 'synthetic')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reid.errors import ReidError


class _Section(BaseModel):
    """Base of every spec table: strict about unknown keys, validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Section):
    """Where images come from and how identities are split into train / query / gallery."""

    dataset: Literal["synthetic", "market1501", "dukemtmc", "cuhk03", "msmt17", "folder"] = "synthetic"
    root: str | None = Field(None, description="dataset folder on disk (ignored by 'synthetic')")
    # synthetic renderer (dataset = "synthetic")
    identities: int = Field(279, ge=2, le=100_000, description="synthetic: number of identities")
    images_per_identity: int = Field(10, ge=2, le=1000)
    cameras: int = Field(2, ge=1, le=64)
    synth_seed: int = Field(0, ge=0, description="synthetic: renderer seed (same seed, same pixels)")
    # folder-per-identity layout
    camera_regex: str | None = Field(None, description="folder: regex with one group capturing the camera id")
    # cuhk03
    cuhk03_variant: Literal["detected", "labeled"] = "detected"
    # identity-level split for datasets without a fixed one (synthetic, folder)
    train_ids: int | None = Field(230, ge=1, description="identities used for training (None: use train_fraction)")
    train_fraction: float | None = Field(None, gt=0, lt=1)
    split_seed: int = Field(0, ge=0)
    query_rule: Literal["per_camera", "leave_one_out"] = Field(
        "per_camera", description="validation: one query per identity per camera, or every image queries the rest"
    )
    height: int = Field(128, ge=16, le=1024)
    width: int = Field(128, ge=16, le=1024)
    cache: Literal["auto", "memory", "stream"] = Field("auto", description="decode once into RAM, or stream from disk")
    workers: int = Field(0, ge=0, le=64, description="DataLoader workers when streaming")
    limit_ids: int | None = Field(None, ge=2, description="use only the first N training identities (quick tests)")


class AugmentSpec(_Section):
    """Training augmentations, applied to whole uint8 batches."""

    flip: float = Field(0.5, ge=0, le=1, description="horizontal flip probability")
    pad: int = Field(10, ge=0, le=64, description="pad then random-crop back to size (0: off)")
    erase: float = Field(0.5, ge=0, le=1, description="random erasing probability")
    color_jitter: float = Field(0.0, ge=0, le=1, description="brightness/contrast jitter strength")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ModelSpec(_Section):
    """The backbone (a block-spec ResNet, or any timm CNN as ``timm:<name>``) and the embedding it produces."""

    arch: str = Field("resnet18", description='resnet18/34/50/101/152 (block spec) or "timm:<name>" (any timm model)')
    layers: tuple[int, int, int, int] | None = Field(None, description="blocks per stage; overrides arch (block-spec ResNets)")
    last_stride: int = Field(1, ge=1, le=2)
    pooling: Literal["avg", "max", "gem"] = "avg"
    pretrained: str = Field("none", description='"none", "imagenet" (downloaded once into the torch hub cache), '
                            'a run directory (fine-tune from its best checkpoint) or a weights file')

    @model_validator(mode="after")
    def _known_arch(self) -> ModelSpec:
        resnets = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # reid.model.blocks.LAYOUTS
        timm = self.arch.startswith("timm:")
        if self.arch not in resnets and not (timm and len(self.arch) > len("timm:")):
            raise ValueError(f"arch {self.arch!r} is unknown: use one of {', '.join(resnets)}, "
                             "or \"timm:<name>\" for a timm model (e.g. \"timm:resnet50d\")")
        if timm and self.layers is not None:
            raise ValueError("layers applies to the block-spec ResNets, not to a timm arch: remove it")
        return self


class HeadSpec(_Section):
    """What sits on the embedding: nothing, dropout + FC classifier, or BN neck + FC (strong baseline)."""

    type: Literal["none", "classifier", "bnneck"] = "classifier"
    dropout: float = Field(0.5, ge=0, lt=1)
    bias: bool = True


class LossSpec(_Section):
    """ID (cross-entropy) and / or triplet loss; a weight of 0 switches a term off."""

    id_weight: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    triplet_weight: float = Field(0.0, ge=0)
    margin: float = Field(0.3, ge=0)
    mining: Literal["hard", "all", "soft"] = Field("hard", description="batch-hard, batch-all, or soft-margin batch-hard")
    triplet_distance: Literal["euclidean", "cosine"] = "euclidean"

    @model_validator(mode="after")
    def _some_loss(self) -> LossSpec:
        if self.id_weight == 0 and self.triplet_weight == 0:
            raise ValueError("id_weight and triplet_weight are both 0: nothing to train")
        return self


class SamplerSpec(_Section):
    """How batches are drawn: uniformly at random, or P identities × K images."""

    type: Literal["random", "pk"] = "random"
    batch_size: int = Field(32, ge=1, le=4096, description="random sampler batch size (pk uses p*k)")
    p: int = Field(8, ge=2, le=1024)
    k: int = Field(4, ge=1, le=256)


class OptimSpec(_Section):
    """Optimiser, built by timm's ``create_optimizer_v2``."""

    name: Literal["adam", "adamw", "sgd", "momentum"] = "adam"
    lr: float = Field(3.5e-4, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    momentum: float = Field(0.9, ge=0, lt=1)


class ScheduleSpec(_Section):
    """Epochs and the learning-rate schedule, built by timm's ``create_scheduler_v2``."""

    epochs: int = Field(10, ge=1, le=10_000)
    name: Literal["constant", "cosine", "step", "multistep"] = "cosine"
    warmup_epochs: float = Field(0, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    decay_epochs: float = Field(30, gt=0, description="step: epochs between decays")
    milestones: list[int] = Field(default_factory=lambda: [40, 70], description="multistep: decay epochs")
    decay_rate: float = Field(0.1, gt=0, le=1)
    per_iteration: bool = Field(True, description="update the lr every iteration, not only at epoch ends")
    max_iters_per_epoch: int | None = Field(None, ge=1, description="cap iterations per epoch (quick runs)")


class EvalSpec(_Section):
    """Re-ID evaluation on the validation (query / gallery) set.

    ``rerank`` turns on k-reciprocal re-ranking (Zhong et al., CVPR 2017) with ``k1``, ``k2`` and
    ``lambda`` (TOML key ``lambda``; in Python ``spec.eval.lambda_``, as ``lambda`` is a keyword).
    """

    model_config = ConfigDict(populate_by_name=True)  # merged with _Section's: lambda_ or its alias lambda
    every: int = Field(1, ge=1, description="evaluate every N epochs (and after the last)")
    distance: Literal["cosine", "euclidean"] = "euclidean"
    normalize: bool = Field(False, description="L2-normalise features before euclidean distances")
    flip: bool = Field(False, description="average features of the image and its mirror")
    protocol: Literal["auto", "market", "all"] = Field(
        "auto", description="market: drop same-pid same-camera gallery; all: leave-one-out; auto: by query_rule"
    )
    ranks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    max_rank: int = Field(50, ge=1)
    batch_size: int = Field(128, ge=1, le=8192)
    rerank: bool = Field(False, description="k-reciprocal re-ranking of the query-gallery distances")
    k1: int = Field(20, ge=1, description="re-ranking: size of the k-reciprocal neighbourhoods")
    k2: int = Field(6, ge=1, description="re-ranking: neighbours averaged by local query expansion (1: off)")
    lambda_: float = Field(0.3, ge=0, le=1, alias="lambda", description="re-ranking: weight of the original distance")


class RuntimeSpec(_Section):
    """Device, precision, reproducibility and logging."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: bf16 where supported")
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = Field(False, description="torch.compile the model")
    deterministic: bool = False
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: all cores)")
    log_every: int = Field(10, ge=1, description="iterations between logged training losses")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    sync_bn: bool = Field(False, description="SyncBatchNorm under torchrun")


class Spec(_Section):
    """A whole experiment."""

    name: str = Field("experiment", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0)
    data: DataSpec = Field(default_factory=DataSpec)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    head: HeadSpec = Field(default_factory=HeadSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.loss.triplet_weight > 0 and self.sampler.type != "pk":
            raise ValueError("triplet loss needs identity-balanced batches: set sampler.type = \"pk\"")
        if self.loss.id_weight > 0 and self.head.type == "none":
            raise ValueError("ID loss needs a classifier: set head.type = \"classifier\" or \"bnneck\"")
        if self.schedule.warmup_epochs >= self.schedule.epochs:
            raise ValueError("schedule.warmup_epochs must be smaller than schedule.epochs")
        if self.data.dataset != "synthetic" and not self.data.root:
            raise ValueError(f"data.root is required for dataset {self.data.dataset!r}")
        return self

    def to_toml(self) -> str:
        """The resolved spec as TOML text (every key, defaults included)."""
        return _to_toml(self.model_dump(mode="json", by_alias=True))


def _format_error(err: dict[str, Any], source: str) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    found = err.get("input")
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(err["loc"][:-1]))
        return f"{source}: unknown key '{loc}'. Fix: remove it or check its spelling; allowed here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(found, dict):
        return f"{source}: {loc}: {msg}"
    return f"{source}: key '{loc}' = {found!r}: {msg}"


def _allowed_keys(table_path: tuple) -> list[str]:
    model: type[BaseModel] = Spec
    for part in table_path:
        model = model.model_fields[part].annotation
    return [field.alias or name for name, field in model.model_fields.items()]


def validate_spec(data: dict[str, Any], source: str = "<spec>") -> Spec:
    """Validate a parsed spec table; raise :class:`ReidError` naming file, key, value and rule."""
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise ReidError(_format_error(first, source) + more) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, else taken as strings).

    Example:
        >>> apply_overrides({}, ["schedule.epochs=3", "name=x", "eval.ranks=[1,5]"])
        {'schedule': {'epochs': 3}, 'name': 'x', 'eval': {'ranks': [1, 5]}}
    """
    for item in overrides:
        if "=" not in item:
            raise ReidError(f"override {item!r} has no '='", where="--set", fix="write --set section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ReidError(f"'{part}' is a value, not a table", where=f"--set {item}")
            node = child
        node[parts[-1]] = value
    return data


def load_spec_text(text: str, source: str = "<spec>", overrides: list[str] | None = None) -> Spec:
    """Parse TOML text, apply overrides and validate."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ReidError(f"not valid TOML ({e})", where=source, fix="check quotes, brackets and '=' signs") from None
    return validate_spec(apply_overrides(data, overrides or []), source)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, override and validate a spec file.

    Raises:
        ReidError: the file is missing, is not TOML, or breaks a rule of the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ReidError("spec file not found", where=str(path), fix="give the path of a .toml spec, e.g. specs/quickstart.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReidError(f"cannot read spec ({e})", where=str(path)) from None
    return load_spec_text(text, source=str(path), overrides=overrides)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _to_toml(data: dict[str, Any]) -> str:
    # tomllib reads only; writing a flat two-level table by hand is shorter than a dependency.
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = "\n".join(top) + "\n"
    for section, table in data.items():
        if isinstance(table, dict):
            out += f"\n[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items() if v is not None)
    return out
