"""A training run's parts, built from its spec by named steps that a user can override or add to.

:class:`RunBuilder` builds, in this order: :meth:`~RunBuilder.build_data`, :meth:`~RunBuilder.build_model`,
:meth:`~RunBuilder.build_criterion`, :meth:`~RunBuilder.build_parameter_groups`,
:meth:`~RunBuilder.build_optimizer`, :meth:`~RunBuilder.build_loader`, :meth:`~RunBuilder.build_schedule`,
then seeds each rank (:meth:`~RunBuilder.seed_rank`); once a resumed run's state is known,
:meth:`~RunBuilder.build_hooks` adds evaluation, logging, checkpoints and every hook registered in
:data:`reid.registry.TRAINING_HOOKS` (the backbone freeze, gradient clipping, the EMA of weights:
:mod:`reid.engine.training_hooks`). Each step reads the spec and the parts built before it from ``self``.

Two ways to change a run without editing the library (detectron2's ``DefaultTrainer`` idea, one class deep):

- override a step in a subclass and give it to :func:`reid.engine.experiment.run_experiment`
  (``run_experiment(spec, out, builder=MyBuilder)``), e.g. a parameter-group rule::

      class HeadOnlyDecay(RunBuilder):
          def build_parameter_groups(self):
              groups = super().build_parameter_groups()
              for g in groups:
                  g["weight_decay"] = 0.0 if g["name"].startswith("backbone.") else g["weight_decay"]
              return groups

- register a hook factory ``(builder) -> Hook | None`` in :data:`~reid.registry.TRAINING_HOOKS`; every run then
  calls it, and adds the hook it returns (``None``: not wanted by this spec).
"""

from __future__ import annotations

import torch
from rich.console import Console

from reid.data import build_data
from reid.data.build import ReidData
from reid.data.imageset import Progress, no_progress
from reid.data.loaders import TrainLoader
from reid.engine.checkpoint import model_description, unwrap
from reid.engine.distributed import DistContext, broadcast_buffers, mining_gather
from reid.engine.evaluation import Evaluation, evaluate_model, evaluate_with_features
from reid.engine.hooks import CheckpointHook, EvalHook, MetricsHook, ProgressHook, RngStateHook
from reid.engine.optim import LRSchedule, build_optimizer_of_groups, parameter_groups
from reid.engine.run_status import RunStatusHook
from reid.engine.rundir import RunDir
from reid.engine.runtime import Runtime, seed_everything
from reid.engine.selection import SELECT_KEY, ValidationHook, resolve_selection, selection_text
from reid.engine.tracking import tracking_hooks
from reid.engine.trainer import Hook
from reid.errors import ReidError
from reid.losses import Criterion, build_loss
from reid.model import build_model
from reid.registry import TRAINING_HOOKS
from reid.spec import SamplerSpec, Spec


class RunBuilder:
    """Builds the parts of a run of ``spec`` in process ``ctx`` on ``runtime``, one overridable step per part.

    Attributes (set by :meth:`build`, in this order): ``data``, ``model``, ``criterion``, ``parameter_groups``,
    ``optimizer``, ``loader``, ``schedule``; by :meth:`build_hooks`: ``hooks`` (and ``checkpoints``, the hook that
    saves them). ``selection_rule`` / ``selected_on``: what picks ``best.pt`` (:mod:`reid.engine.selection`).
    """

    def __init__(self, spec: Spec, ctx: DistContext, runtime: Runtime, progress_of_decoding: Progress = no_progress):
        self.spec, self.ctx, self.runtime = spec, ctx, runtime
        self.progress_of_decoding = progress_of_decoding
        self.hooks: list[Hook] = []

    def build(self) -> None:
        """Every part up to the schedule, then each rank's own random stream."""
        seed_everything(self.spec.seed, self.spec.runtime.deterministic)
        self.data = self.build_data()
        self.selection_rule = resolve_selection(self.spec.eval.select_on, self.data.splits.own_split, self.data.name)
        self.selected_on = selection_text(self.selection_rule,
                                          self.data.val.identities if self.data.val is not None else None)
        self.model = self.build_model()
        self.criterion = self.build_criterion()
        if not self.criterion.needs_logits:  # logits only where a loss term reads them
            self.model.train_without_classifier()
        self.model = self.model.to(self.runtime.device)
        if self.runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.parameter_groups = self.build_parameter_groups()
        self.optimizer = self.build_optimizer()
        self.loader = self.build_loader()
        self.schedule = self.build_schedule()
        self.seed_rank()

    def build_data(self) -> ReidData:
        """The dataset: training identities, the evaluated split and (``eval.select_on = "val"``) a validation split."""
        ev = self.spec.eval
        carve = (ev.val_ids, ev.val_fraction) if ev.select_on == "val" else None
        return build_data(self.spec.data, progress=self.progress_of_decoding, val=carve)

    def build_model(self) -> torch.nn.Module:
        """The network (:func:`reid.model.build_model`), still on the CPU."""
        s = self.spec
        return build_model(s.model, s.head, num_classes=self.data.num_classes, input_size=(3, s.data.height, s.data.width))

    def build_criterion(self) -> Criterion:
        """The loss (an ``nn.Module`` on the run's device); triplet and center terms see the global batch under
        torchrun (:func:`reid.engine.distributed.mining_gather`)."""
        criterion = build_loss(self.spec.loss, self.data.num_classes, self.model.embedding_dim,
                               gather=mining_gather(self.ctx))
        return criterion.to(self.runtime.device)

    def build_parameter_groups(self) -> list[dict]:
        """The optimiser's named parameter groups (:func:`reid.engine.optim.parameter_groups`)."""
        return parameter_groups(self.model, self.spec.optim, self.criterion)

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser over :attr:`parameter_groups`."""
        return build_optimizer_of_groups(self.parameter_groups, self.spec.optim)

    def build_loader(self) -> TrainLoader:
        """This rank's training batches (its share of the spec's global batch: :func:`per_rank_sampler`)."""
        s, ctx = self.spec, self.ctx
        return TrainLoader(self.data.train, per_rank_sampler(s.sampler, ctx), s.augment, seed=s.seed, rank=ctx.rank,
                           world_size=ctx.world_size, device=self.runtime.device)

    def build_schedule(self) -> LRSchedule:
        """The learning-rate schedule, in optimiser steps of the (possibly capped) epoch."""
        iters = min(len(self.loader), self.spec.schedule.max_iters_per_epoch or len(self.loader))
        return LRSchedule(self.optimizer, self.spec.schedule, iters_per_epoch=iters)

    def seed_rank(self) -> None:
        """Under torchrun, give each rank its own random stream (seed + rank) once every rank built the same weights."""
        if self.ctx.enabled:
            seed_everything(self.spec.seed + self.ctx.rank, self.spec.runtime.deterministic)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights evaluated and saved: those of the last hook that offers ``evaluated_model`` (the EMA of
        weights), else the trained model itself."""
        offered = [h.evaluated_model for h in self.hooks if getattr(h, "evaluated_model", None) is not None]
        return offered[-1] if offered else unwrap(self.model)

    def evaluate(self) -> Evaluation:
        """Evaluate :attr:`evaluated_model` on the evaluated split (every rank; see
        :func:`reid.engine.evaluation.evaluate_with_features`)."""
        model = self.evaluated_model
        broadcast_buffers(model, self.ctx)  # rank 0's BatchNorm statistics: features equal the saved checkpoint's
        return evaluate_with_features(model, self.data, self.runtime, self.spec.eval, self.spec.augment,
                                      margin=self.spec.loss.margin, ctx=self.ctx)

    def build_hooks(self, run: RunDir, console: Console, plain: bool, best: dict) -> list[Hook]:
        """The hooks, in the order they must run: registered ones (freeze, clipping, EMA …) first, then evaluation,
        RNG states and, on the main rank, run status, metrics, checkpoints (``best``: the best metrics so far),
        progress and trackers. Sets :attr:`hooks` and :attr:`checkpoints` (``None`` off the main rank)."""
        s, ctx, data = self.spec, self.ctx, self.data
        self.hooks = [hook for _, factory in TRAINING_HOOKS.entries() if (hook := factory(self)) is not None]
        eval_images = len(data.query) + (0 if data.same_set else len(data.gallery))
        self.progress = ProgressHook(console, plain=plain, eval_every=s.eval.every,
                                     eval_forwards=eval_images * (2 if s.eval.flip else 1) // ctx.world_size)
        rng = RngStateHook(ctx, self.runtime.device)  # every rank: each resumes with its own CUDA RNG state
        self.hooks.append(EvalHook(self.evaluate, s.eval.every))
        if data.val is not None:  # the validation split that picks best.pt, evaluated as the test split is
            self.hooks.append(ValidationHook(
                lambda: evaluate_model(self.evaluated_model, data.val, self.runtime, s.eval, s.augment, ctx=ctx),
                s.eval.every))
        self.hooks.append(rng)
        self.checkpoints = None
        if ctx.is_main:
            self.checkpoints = CheckpointHook(run, s.runtime.checkpoint_every, model_description(s, self.model), best,
                                              rng, select_key=SELECT_KEY[self.selection_rule],
                                              selected_on=self.selected_on, evaluated=lambda: self.evaluated_model)
            self.hooks += [RunStatusHook(run), MetricsHook(run, s.runtime.log_every), self.checkpoints,
                           self.progress, *tracking_hooks(run, s, console)]
        return self.hooks


def per_rank_sampler(spec: SamplerSpec, ctx: DistContext) -> SamplerSpec:
    """The sampler each rank uses so that the *global* batch is the spec's.

    Under torchrun with ``W`` processes, each rank draws ``batch_size / W`` images (random
    sampler) or ``P / W`` identities × K images (PK sampler); gradients are averaged by DDP, so
    the optimiser sees the spec's global batch and the spec's learning rate needs no rescaling.
    The triplet loss mines over the gathered global batch (:func:`reid.engine.distributed.mining_gather`),
    but a PK split must still leave every rank at least 2 identities (with one, each rank's batch
    is a single identity and its BatchNorm statistics describe one person).
    """
    if not ctx.enabled:
        return spec
    total, field = (spec.p, "p") if spec.type == "pk" else (spec.batch_size, "batch_size")
    if total % ctx.world_size:
        raise ReidError(f"sampler.{field} = {total} does not split evenly over {ctx.world_size} processes",
                        where=f"sampler.{field}", fix=f"use a multiple of {ctx.world_size}")
    if spec.type == "pk" and total // ctx.world_size < 2:
        raise ReidError(f"sampler.p = {total} leaves {total // ctx.world_size} identity per process with "
                        f"{ctx.world_size} processes (at least 2 are needed)", where="sampler.p",
                        fix=f"use p = {2 * ctx.world_size} or more, or fewer processes")
    return spec.model_copy(update={field: total // ctx.world_size})
