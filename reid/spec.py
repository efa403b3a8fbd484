"""The experiment spec: a TOML file validated by pydantic before anything runs.

A spec has one table per concern. Every key has a default, so the smallest spec is
``name = "demo"``; unknown keys, wrong types and out-of-range values are errors that
name the file, the key, what was found and what is allowed.

The keys that choose a component (``data.dataset``, ``model.pooling``, ``head.type``,
``loss.mining``, ``loss.terms``, ``sampler.type``) accept any name registered in the
matching :mod:`reid.registry` registry, built-in or registered from your own code; an
unknown name is an error that lists the registered ones.

Example:
    >>> spec = load_spec_text('name = "demo"\\n[model]\\nlast_stride = 2', source="demo.toml")
    >>> spec.model.last_stride, spec.data.dataset
    (2, 'synthetic')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reid.errors import ReidError
from reid.registry import (ARCHS, CLASSIFIERS, DATASETS, HEADS, LOSSES, POOLINGS, RENDERERS, SAMPLERS, TRIPLET_MINING,
                           Registry)


def registered(registry: Registry, name: str) -> str:
    """``name`` if ``registry`` holds it; else a ``ValueError`` (a spec error) listing the registered names.

    Example:
        >>> registered(HEADS, "bnneck")
        'bnneck'
        >>> registered(HEADS, "mlp")
        Traceback (most recent call last):
        ValueError: unknown head 'mlp': registered heads are bnneck, classifier, none (register your own with @reid.registry.HEADS.register)
    """
    if name not in registry:
        raise ValueError(registry.unknown(name))
    return name


def registered_name(registry: Registry) -> Any:
    """The type of a spec field whose value is a name registered in ``registry``: a ``str`` checked by
    :func:`registered`, with the registry in its metadata (where :mod:`reid.spec_keys` reads the allowed names).

    Example:
        >>> from typing import get_args
        >>> get_args(registered_name(HEADS))[2] is HEADS
        True
    """
    return Annotated[str, AfterValidator(lambda name: registered(registry, name)), registry]


class _Section(BaseModel):
    """Base of every spec table: strict about unknown keys, validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: ``data.synth_preset``: synthetic sets shaped like a public benchmark. Keys a spec (or ``--set``) gives itself win
#: over the preset's; a spec that chooses its own split (``train_ids`` or ``train_fraction``) keeps it.
SYNTH_PRESETS: dict[str, dict[str, Any]] = {
    # Market-1501: 1,501 identities, 751 for training (12,936 images there, ~17 each), 6 cameras, one query per
    # test identity and camera (the market protocol then drops same-camera matches)
    "market1501": {"identities": 1501, "images_per_identity": 17, "cameras": 6, "train_ids": 751,
                   "query_rule": "per_camera"},
}


class DataSpec(_Section):
    """Where images come from and how identities are split into train / query / gallery."""

    dataset: registered_name(DATASETS) = Field("synthetic", description="a registered dataset format (reid.registry.DATASETS): synthetic, "
                         "market1501, dukemtmc, cuhk03, msmt17, folder, or your own")
    root: str | None = Field(None, description="dataset folder on disk (ignored by 'synthetic')")
    # synthetic renderer (dataset = "synthetic")
    identities: int = Field(279, ge=2, le=100_000, description="synthetic: number of identities")
    images_per_identity: int = Field(10, ge=2, le=1000)
    cameras: int = Field(2, ge=1, le=64)
    synth_seed: int = Field(0, ge=0, description="synthetic: renderer seed (same seed, same pixels)")
    synth_version: Annotated[int, AfterValidator(lambda v: int(registered(RENDERERS, str(v)))), RENDERERS] = Field(
        3, description="synthetic: renderer version (3, the default: as hard as a small real re-ID set — outfits shared across identities, front/back cameras, lighting, blur, crowds, misaligned crops; 2: its heavier-degraded draft; 1: the first, easy set)")
    synth_preset: Literal["market1501"] | None = Field(
        None, description="synthetic: a set shaped like a public benchmark. market1501: 1501 identities × 17 images, "
        "6 cameras, 751 training identities, one query per test identity and camera; keys the spec sets itself win "
        "(the image size stays data.height × data.width: the Market recipes use 256 × 128)")
    # folder-per-identity layout
    camera_regex: str | None = Field(None, description="folder: regex with one group capturing the camera id")
    # cuhk03
    cuhk03_variant: Literal["detected", "labeled"] = "detected"
    # identity-level split for datasets without a fixed one (synthetic, folder)
    train_ids: int | None = Field(None, ge=1, description="identities used for training (wins over train_fraction)")
    train_fraction: float = Field(0.8, gt=0, lt=1, description="share of identities used for training (when train_ids "
                                  "is not set)")
    split_seed: int = Field(0, ge=0)
    split_order: Literal["random", "sorted"] = Field(
        "random", description="folder: which identities train. random: drawn with split_seed; sorted: the first "
        "train_ids identity folders in sorted order (a published split by identity number, e.g. CUHK03's "
        "0000-0742 train, 0743-0842 test)")
    query_rule: Literal["auto", "per_camera", "leave_one_out", "leave_one_out_merged"] = Field(
        "auto", description="validation query / gallery. auto: the dataset's own split where it has one (market1501 "
        "…), else per_camera; per_camera: one query per identity per camera, the rest gallery; leave_one_out: "
        "every validation image queries all others (datasets without their own split; others keep theirs); "
        "leave_one_out_merged: leave_one_out that also merges a dataset's own query and gallery"
    )
    height: int = Field(128, ge=16, le=1024)
    width: int = Field(128, ge=16, le=1024)
    cache: Literal["auto", "memory", "stream"] = Field("auto", description="decode once into RAM, or stream from disk")
    cache_key: Literal["stat", "content"] = Field(
        "stat", description="how the decoded-image cache knows a file is unchanged. stat: path, size, mtime, inode, "
        "device and ctime (a rewrite that restores the mtime, as cp -p / rsync -a / tar x do, still counts as a "
        "change); content: a SHA-256 of every file's bytes, read on every build (survives copying the dataset)")
    workers: int = Field(0, ge=0, le=64, description="DataLoader workers when streaming")
    limit_ids: int | None = Field(None, ge=2, description="use only the first N training identities (quick tests)")

    @model_validator(mode="before")
    @classmethod
    def _apply_synth_preset(cls, data: Any) -> Any:
        """The keys of ``synth_preset`` the table does not set itself (a split it chooses replaces the preset's).
        Applied when a table is validated (TOML, ``--set``, ``DataSpec(...)``), not on assignment to a built one."""
        if not isinstance(data, dict) or data.get("synth_preset") not in SYNTH_PRESETS:
            return data
        preset = dict(SYNTH_PRESETS[data["synth_preset"]])
        if "train_ids" in data or "train_fraction" in data:
            preset.pop("train_ids", None)
        return {**preset, **data}

    @model_validator(mode="after")
    def _preset_is_synthetic(self) -> DataSpec:
        if self.synth_preset is not None and self.dataset != "synthetic":
            raise ValueError(f"synth_preset = {self.synth_preset!r} shapes the synthetic set, but dataset = "
                             f"{self.dataset!r}: set dataset = \"synthetic\" or remove synth_preset")
        return self


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

    arch: Annotated[str, ARCHS] = Field("resnet18", description='resnet18/34/50/101/152 (block spec) or "timm:<name>" (any timm model)')
    layers: tuple[int, int, int, int] | None = Field(None, description="blocks per stage; overrides arch (block-spec ResNets)")
    last_stride: int = Field(1, ge=1, le=2)
    pooling: registered_name(POOLINGS) = Field("avg", description="a registered pooling (reid.registry.POOLINGS): avg, max, gem, or your own")
    pretrained: str = Field("none", description='"none", "imagenet" (downloaded once into the torch hub cache), '
                            'a run directory (fine-tune from its best checkpoint) or a weights file')

    @model_validator(mode="after")
    def _known_arch(self) -> ModelSpec:
        timm = self.arch.startswith("timm:")
        if not timm and self.arch not in ARCHS:
            raise ValueError(f"{ARCHS.unknown(self.arch)}; or \"timm:<name>\" for a timm model (e.g. \"timm:resnet50d\")")
        if timm and len(self.arch) == len("timm:"):
            raise ValueError("arch \"timm:\" names no model: write \"timm:<name>\", e.g. \"timm:resnet50d\"")
        if timm and self.layers is not None:
            raise ValueError("layers applies to the block-spec ResNets, not to a timm arch: remove it")
        return self


class HeadSpec(_Section):
    """What sits on the embedding: nothing, dropout + classifier, or BN neck + classifier (strong baseline); the
    classifier layer is a plain linear one or a margin classifier (CosFace, ArcFace, circle)."""

    type: registered_name(HEADS) = Field("classifier", description="a registered head (reid.registry.HEADS): none, classifier, bnneck, "
                      "or your own")
    classifier: registered_name(CLASSIFIERS) = Field("linear", description="a registered classifier layer (reid.registry.CLASSIFIERS): "
                            "linear, cosface, arcface, circle, or your own")
    scale: float = Field(64.0, gt=0, le=1024, description="cosface / arcface / circle: the scale s of the cosine "
                         "logits (circle: gamma)")
    margin: float = Field(0.35, ge=0, le=1.5, description="cosface: cosine margin; arcface: angular margin in "
                          "radians; circle: relaxation m")
    dropout: float = Field(0.5, ge=0, lt=1, description="classifier head: dropout before the classifier")
    bias: bool = Field(True, description="classifier head with the linear classifier: a bias term")
    neck_feature: Literal["after", "before"] = Field(
        "after", description="bnneck head: retrieval embeds with the features after the BN neck (the strong "
        "baseline's choice) or before it (Bag of Tricks' TEST.NECK_FEAT = 'before')")


class LossSpec(_Section):
    """ID (cross-entropy), triplet and center loss, and registered terms; a weight of 0 switches a term off."""

    id_weight: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    triplet_weight: float = Field(0.0, ge=0)
    margin: float = Field(0.3, ge=0)
    mining: registered_name(TRIPLET_MINING) = Field("hard", description="a registered triplet mining rule (reid.registry.TRIPLET_MINING): "
                        "hard (batch-hard), all (batch-all), soft (soft-margin batch-hard), or your own")
    triplet_distance: Literal["euclidean", "cosine"] = "euclidean"
    center_weight: float = Field(0.0, ge=0, le=1, description="center loss (Wen et al. 2016) on the pre-neck "
                                 "features, as the Bag-of-Tricks baseline uses it (weight 0.0005); 0: off")
    center_lr: float = Field(0.5, gt=0, le=100, description="center loss: learning rate of the centres' own plain "
                             "SGD (their gradient taken without center_weight, no weight decay, not scheduled)")
    terms: dict[str, float] = Field(default_factory=dict, description="more loss terms registered in "
                                    "reid.registry.LOSSES and their weights, e.g. {my_term = 0.1}")

    @field_validator("terms")
    @classmethod
    def _registered_terms(cls, terms: dict[str, float]) -> dict[str, float]:
        for name, weight in terms.items():
            if name in ("id", "triplet", "center"):
                raise ValueError(f"the {name} term is weighted by loss.{name}_weight: remove it from loss.terms")
            registered(LOSSES, name)
            if weight < 0:
                raise ValueError(f"loss.terms.{name} = {weight}: weights must be >= 0")
        return terms

    @model_validator(mode="after")
    def _some_loss(self) -> LossSpec:
        if self.id_weight == 0 and self.triplet_weight == 0 and self.center_weight == 0 and not any(self.terms.values()):
            raise ValueError("id_weight, triplet_weight and center_weight are all 0: nothing to train")
        return self


class SamplerSpec(_Section):
    """How batches are drawn: uniformly at random, or P identities × K images."""

    type: registered_name(SAMPLERS) = Field("random", description="a registered sampler (reid.registry.SAMPLERS): random, pk, or your own")
    batch_size: int = Field(32, ge=1, le=4096, description="random sampler batch size (pk uses p*k)")
    p: int = Field(8, ge=2, le=1024)
    k: int = Field(4, ge=1, le=256)


class OptimSpec(_Section):
    """Optimiser (built by timm's ``create_optimizer_v2``) and its parameter groups (:mod:`reid.engine.optim`)."""

    name: Literal["adam", "adamw", "sgd", "momentum"] = "adam"
    lr: float = Field(3.5e-4, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1, description="weight decay of weights (convolutions, linear layers, "
                                "GeM's p, loss terms' parameters)")
    weight_decay_norm: float = Field(0.0, ge=0, le=1, description="weight decay of normalisation layers' scale and "
                                     "shift (BoT / fast-reid: 0.0005)")
    weight_decay_bias: float = Field(0.0, ge=0, le=1, description="weight decay of the other biases (BoT / fast-reid: "
                                     "0.0005)")
    momentum: float = Field(0.9, ge=0, lt=1)
    head_lr_mult: float = Field(1.0, gt=0, le=1000, description="learning-rate multiplier of the head (neck and "
                                "classifier) and of loss terms' parameters")
    freeze_backbone_epochs: int = Field(0, ge=0, le=10_000, description="train only the head for the first N epochs "
                                        "(the backbone's weights are not stepped and its BatchNorm statistics kept)")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="evaluate and save an exponential moving average of the "
                             "weights, updated after every optimiser step with this decay (e.g. 0.9998; 0: off)")
    clip_grad_norm: float = Field(0.0, ge=0, le=1e6, description="clip the gradients' global L2 norm to this value "
                                  "before each optimiser step (0: off)")
    accumulate: int = Field(1, ge=1, le=1024, description="batches whose gradients add up to one optimiser step "
                            "(the loss of each divided by this): an N-times larger batch in the memory of one")


class ScheduleSpec(_Section):
    """Epochs and the learning-rate schedule, built by timm's ``create_scheduler_v2``."""

    epochs: int = Field(10, ge=1, le=10_000)
    name: Literal["constant", "cosine", "step", "multistep"] = "cosine"
    warmup_epochs: float = Field(0, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    cosine_delay_epochs: float = Field(0, ge=0, description="cosine: epochs from the start (warmup included) "
                                       "before the decay begins, the lr held at optim.lr after warmup (fast-reid's "
                                       "DELAY_EPOCHS); the cosine then spans the remaining epochs")
    decay_epochs: float = Field(30, gt=0, description="step: epochs between decays")
    milestones: list[int] = Field(default_factory=lambda: [40, 70], description="multistep: decay epochs")
    decay_rate: float = Field(0.1, gt=0, le=1)
    per_iteration: bool = Field(True, description="update the lr every iteration, not only at epoch ends")
    max_iters_per_epoch: int | None = Field(None, ge=1, description="cap iterations per epoch (quick runs)")


class EvalSpec(_Section):
    """Re-ID evaluation on the validation (query / gallery) set.

    ``rerank`` turns on k-reciprocal re-ranking (Zhong et al., CVPR 2017) with ``k1``, ``k2`` and
    ``lambda`` (TOML key ``lambda``; in Python ``spec.eval.lambda_``, as ``lambda`` is a keyword).

    ``select_on`` says which split picks ``best.pt`` and ``summary.best`` (:mod:`reid.engine.selection`):
    never the query / gallery split of a dataset that has its own (Market-1501, DukeMTMC-reID, CUHK03,
    MSMT17: that split is their test set, and the best epoch on it is an optimistic number).
    """

    model_config = ConfigDict(populate_by_name=True)  # merged with _Section's: lambda_ or its alias lambda
    every: int = Field(1, ge=1, description="evaluate every N epochs (and after the last)")
    distance: Literal["cosine", "euclidean"] = "euclidean"
    normalize: bool = Field(False, description="L2-normalise features before euclidean distances")
    flip: bool = Field(False, description="average features of the image and its mirror")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="autocast precision of the embedding forwards (pooling and the BN neck always run in "
        "fp32). fp32: the default, the same numbers on any hardware (bf16 features agree with fp32 on only ~97.6 % "
        "of nearest neighbours); auto: the run's runtime.precision; bf16 / fp16: faster, reported numbers drift")
    protocol: Literal["auto", "market", "all"] = Field(
        "auto", description="market: drop same-pid same-camera gallery; all: leave-one-out; auto: all for a "
        "leave-one-out set or single-camera data, market otherwise"
    )
    ranks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    max_rank: int = Field(50, ge=1)
    batch_size: int = Field(128, ge=1, le=8192)
    rerank: bool = Field(False, description="k-reciprocal re-ranking of the query-gallery distances")
    k1: int = Field(20, ge=1, description="re-ranking: size of the k-reciprocal neighbourhoods")
    k2: int = Field(6, ge=1, description="re-ranking: neighbours averaged by local query expansion (1: off)")
    lambda_: float = Field(0.3, ge=0, le=1, alias="lambda", description="re-ranking: weight of the original distance")
    select_on: Literal["auto", "val", "eval", "none"] = Field(
        "auto", description="what picks best.pt and summary.best. none: nothing (the final epoch's last.pt is the "
        "model); val: best Rank-1 on a validation split carved from the training identities (val_ids / "
        "val_fraction; the query / gallery split is still evaluated and the final epoch's numbers are the "
        "headline); eval: best Rank-1 on the evaluated split, allowed only where it is a validation set (synthetic, "
        "folder: held-out identities, no separate test set); auto: eval for datasets without their own split, "
        "none for those with one")
    val_ids: int | None = Field(None, ge=1, le=100_000, description="select_on = \"val\": identities taken from "
                                "training for validation (wins over val_fraction)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="select_on = \"val\": share of the training "
                                "identities taken for validation (when val_ids is not set)")


class RuntimeSpec(_Section):
    """Device, precision, reproducibility and logging."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: bf16 where supported")
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = Field(False, description="torch.compile the model")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode; reduce-overhead replays CUDA graphs (fewer kernel launches on a GPU)")
    deterministic: bool = False
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: all cores)")
    log_every: int = Field(10, ge=1, description="iterations between logged training losses")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    tensorboard: bool = Field(True, description="write TensorBoard event files under RUN/tb/ (rank 0)")
    tracking: Literal["none", "mlflow"] = Field(
        "none", description="mlflow: log parameters, per-epoch metrics and artifacts to MLflow (extra reid-lab[mlflow])")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)")
    sync_bn: bool = Field(False, description="SyncBatchNorm under torchrun")
    collective_timeout_s: float | None = Field(
        None, ge=2, le=86_400, description="under torchrun: seconds a collective operation waits for every rank "
        "before the job fails with an error naming the rank that hangs, was stopped or died (None: "
        "$REID_DIST_TIMEOUT, else 120)")


class Spec(_Section):
    """A whole experiment."""

    name: str = Field("experiment", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0)
    role: str | None = Field(
        None, min_length=1, description="the part this run plays in a report: `reid report` writes the assignment's "
        "answers for the roles the assignment defines, q8 and q11")
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

    @model_validator(mode="before")
    @classmethod
    def _assignment_is_role(cls, data: Any) -> Any:
        """An older top-level ``assignment = "q8"`` is ``role = "q8"``."""
        # specs and run directories written before `role` replaced `assignment` must still load
        if not isinstance(data, dict) or "assignment" not in data:
            return data
        data = dict(data)
        old = data.pop("assignment")
        data.setdefault("role", old)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.loss.triplet_weight > 0 and self.sampler.type == "random":
            raise ValueError("triplet loss needs identity-balanced batches: set sampler.type = \"pk\"")
        if self.loss.id_weight > 0 and self.head.type == "none":
            raise ValueError("ID loss needs a classifier: set head.type = \"classifier\" or \"bnneck\"")
        if self.schedule.warmup_epochs >= self.schedule.epochs:
            raise ValueError("schedule.warmup_epochs must be smaller than schedule.epochs")
        if self.schedule.cosine_delay_epochs and not (
                self.schedule.warmup_epochs <= self.schedule.cosine_delay_epochs < self.schedule.epochs):
            raise ValueError("schedule.cosine_delay_epochs must lie between schedule.warmup_epochs and "
                             "schedule.epochs (it counts from the start, warmup included)")
        if self.schedule.cosine_delay_epochs and self.schedule.name != "cosine":
            raise ValueError(f"schedule.cosine_delay_epochs delays a cosine decay, but schedule.name = "
                             f"{self.schedule.name!r}: set name = \"cosine\" or remove cosine_delay_epochs")
        if self.optim.freeze_backbone_epochs >= self.schedule.epochs:
            raise ValueError("optim.freeze_backbone_epochs must be smaller than schedule.epochs (the backbone would "
                             "never train)")
        if self.data.dataset != "synthetic" and not self.data.root:
            raise ValueError(f"data.root is required for dataset {self.data.dataset!r}")
        return self

    def to_toml(self) -> str:
        """The resolved spec as TOML text (every key, defaults included; unset optional keys left out).

        Written by ``tomli_w``, so any string (quotes, backslashes, newlines) reads back as itself.

        Example:
            >>> spec = Spec(name="demo", description='two\\nlines, "quoted"')
            >>> load_spec_text(spec.to_toml()) == spec
            True
        """
        return tomli_w.dumps(_without_none(self.model_dump(mode="json", by_alias=True)))


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` without its ``None`` values, recursively (TOML has no null: an absent key reads back as ``None``)."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in table.items() if v is not None}


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

