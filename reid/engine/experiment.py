"""From a spec to a finished run directory: build everything, train with hooks, summarise.

Example::

    from reid.spec import load_spec
    from reid.engine.experiment import run_experiment
    summary = run_experiment(load_spec("specs/quickstart.toml"), Path("runs/quickstart"))
    print(summary.final.rank(1), summary.final.mAP)
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import torch
from rich.console import Console

from reid.data import build_data
from reid.data.describe import DatasetInfo
from reid.data.imageset import Progress, no_progress
from reid.data.loaders import TrainLoader
from reid.engine.checkpoint import load_resumable, model_description, restore_training
from reid.engine.distributed import (DistContext, barrier, broadcast_buffers, broadcast_flag, cleanup,
                                     collective_failures, init_distributed, mining_gather)
from reid.engine.elastic import Restart, after_restart, record_job, session_runtime
from reid.engine.evaluation import Evaluation, evaluate_model, evaluate_with_features
from reid.engine.hooks import BackboneFreeze, CheckpointHook, EvalHook, MetricsHook, ProgressHook, RngStateHook
from reid.engine.optim import LRSchedule, build_optimizer
from reid.engine.run_status import RunStatusHook, record_outcome
from reid.engine.rundir import RunDir, RunDirRefused, environment
from reid.engine.runtime import resolve_runtime, seed_everything, set_threads
from reid.engine.selection import SELECT_KEY, ValidationHook, best_record, resolve_selection, selection_text
from reid.engine.summary import DeviceInfo, EpochMetrics, EvalSettings, RunSummary, Versions
from reid.engine.tracking import tracking_hooks
from reid.engine.trainer import Trainer, TrainingInterrupted, TrainState
from reid.errors import ReidError
from reid.evaluation import resolve_protocol
from reid.losses import build_loss
from reid.model import build_model
from reid.spec import SamplerSpec, Spec, load_spec_text


def changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested spec dicts of the same schema.

    Example:
        >>> changed_keys({"seed": 0, "model": {"last_stride": 1}}, {"seed": 0, "model": {"last_stride": 2}})
        ['model.last_stride']
    """
    out: list[str] = []
    for key, value in a.items():
        if isinstance(value, dict):
            out += changed_keys(value, b[key], f"{prefix}{key}.")
        elif value != b[key]:
            out.append(prefix + key)
    return out


def resume_spec(run: RunDir, given: Spec | None) -> Spec:
    """The spec saved in ``run``; if ``given`` differs from it, a :class:`ReidError` naming the keys."""
    saved = load_spec_text(run.spec_text(), source=str(run.path / "spec.toml"))
    if given is not None and given != saved:
        diff = changed_keys(saved.model_dump(), given.model_dump())
        raise RunDirRefused(f"the spec differs from the one this run was started with ({', '.join(diff)})",
                            where=str(run.path), fix="resume without a spec, or start a new run with --out")
    return saved


def run_experiment(spec: Spec | None, out: Path, *, resume: bool = False, force: bool = False,
                   plain: bool = False, console: Console | None = None,
                   progress_of_decoding: Progress = no_progress) -> RunSummary | None:
    """Train and evaluate ``spec`` into run directory ``out`` and return its :class:`RunSummary` (``None`` on
    ranks other than 0 under torchrun: rank 0 alone writes the run directory).

    Args:
        spec: the experiment (with ``resume``, may be ``None`` to use the run's saved spec).
        out: run directory; must be new (or empty) unless ``resume`` or ``force``.
        resume: continue from ``out/checkpoints/last.pt`` (a ``torchrun`` restart of the job that was training
            ``out`` does so by itself: :mod:`reid.engine.elastic`).
        force: overwrite an existing run in ``out``.
        plain: one line per epoch instead of a live progress bar.
        progress_of_decoding: told how decoding the dataset advances (e.g. a progress bar; see
            :data:`reid.data.imageset.Progress`).
    """
    console = console or Console()
    run = RunDir(out)
    settings = session_runtime(spec, run)
    ctx = init_distributed(settings.device, settings.collective_timeout_s)
    with collective_failures(ctx):
        restart = after_restart(run, ctx, console)  # torchrun restarted this job: continue its run
    if restart is Restart.finished:
        cleanup(ctx)
        return run.read_summary() if ctx.is_main else None
    resume = resume or restart is Restart.resume
    with (run.lock(create=not resume) if ctx.is_main else nullcontext(), record_outcome(run, enabled=ctx.is_main),
          collective_failures(ctx)):  # a rank that hangs or dies: one error line naming it
        return _train_into(run, spec, ctx, resume=resume, force=force, plain=plain, console=console,
                           progress_of_decoding=progress_of_decoding)


def _train_into(run: RunDir, spec: Spec | None, ctx: DistContext, *, resume: bool, force: bool, plain: bool,
                console: Console, progress_of_decoding: Progress) -> RunSummary | None:
    """:func:`run_experiment` once the run directory is held: everything from creating or resuming it on."""
    out = run.path
    if resume:
        if run.is_finished():
            raise RunDirRefused("this run is already finished", where=str(out), fix="start a new run with another --out")
        spec = resume_spec(run, spec)
    elif ctx.is_main:
        run.create(spec.to_toml(), force=force)
    if ctx.is_main:
        record_job(run)  # which torchrun job trains the run (reid.engine.elastic: its restarts continue it)
    barrier(ctx)
    set_threads(spec.runtime.threads)
    seed_everything(spec.seed, spec.runtime.deterministic)
    runtime = resolve_runtime(spec.runtime, local_rank=ctx.local_rank)
    started = time.time()

    carve = (spec.eval.val_ids, spec.eval.val_fraction) if spec.eval.select_on == "val" else None
    data = build_data(spec.data, progress=progress_of_decoding, val=carve)
    rule = resolve_selection(spec.eval.select_on, data.splits.own_split, data.name)
    selected_on = selection_text(rule, data.val.identities if data.val is not None else None)
    model = build_model(spec.model, spec.head, num_classes=data.num_classes,
                        input_size=(3, spec.data.height, spec.data.width))
    # triplet and center terms see the global batch under torchrun; logits only where a term reads them
    criterion = build_loss(spec.loss, data.num_classes, model.embedding_dim, gather=mining_gather(ctx)).to(runtime.device)
    if not criterion.needs_logits:
        model.train_without_classifier()
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = TrainLoader(data.train, per_rank_sampler(spec.sampler, ctx), spec.augment, seed=spec.seed,
                         rank=ctx.rank, world_size=ctx.world_size, device=runtime.device)
    optimizer = build_optimizer(model, spec.optim, criterion)
    iters = min(len(loader), spec.schedule.max_iters_per_epoch or len(loader))
    schedule = LRSchedule(optimizer, spec.schedule, iters_per_epoch=iters)
    if ctx.enabled:  # every rank built the same weights (DDP checks); from here on each draws its own stream
        seed_everything(spec.seed + ctx.rank, spec.runtime.deterministic)

    state, best = TrainState(), {}
    def report(line: str) -> None:
        if ctx.is_main:
            console.print(line, markup=False, soft_wrap=True)  # one line, whatever the terminal's width

    ckpt = load_resumable(run.last_checkpoint, report=report) if resume else None
    if ckpt is not None:
        position, best = restore_training(ckpt, model, optimizer, schedule, runtime, rank=ctx.rank,
                                          criterion=criterion)
        state = TrainState(*position)
        if ctx.is_main:
            run.truncate_metrics(state.global_step)
            console.print(f"resuming {out} at epoch {state.epoch + 1}, iteration {state.iter_in_epoch} "
                          f"(step {state.global_step})")
    elif resume and ctx.is_main:
        run.truncate_metrics(0)
    barrier(ctx)

    train_model = wrap_for_training(model, spec, ctx, runtime)

    def evaluate() -> Evaluation:
        broadcast_buffers(model, ctx)  # rank 0's BatchNorm statistics: features equal the saved checkpoint's
        return evaluate_with_features(model, data, runtime, spec.eval, spec.augment, margin=spec.loss.margin, ctx=ctx)

    eval_images = len(data.query) + (0 if data.same_set else len(data.gallery))
    progress = ProgressHook(console, plain=plain, eval_every=spec.eval.every,
                            eval_forwards=eval_images * (2 if spec.eval.flip else 1) // ctx.world_size)
    rng = RngStateHook(ctx, runtime.device)  # every rank: each resumes with its own CUDA RNG state
    hooks = [EvalHook(evaluate, spec.eval.every), rng]
    if spec.optim.freeze_backbone_epochs:
        hooks.insert(0, BackboneFreeze(model.backbone, optimizer, spec.optim.freeze_backbone_epochs))
    if data.val is not None:  # the validation split that picks best.pt, evaluated as the test split is
        hooks.insert(1, ValidationHook(lambda: evaluate_model(model, data.val, runtime, spec.eval, spec.augment, ctx=ctx),
                                       spec.eval.every))
    if ctx.is_main:
        hooks += [RunStatusHook(run), MetricsHook(run, spec.runtime.log_every),
                  CheckpointHook(run, spec.runtime.checkpoint_every, model_description(spec, model), best, rng,
                                 select_key=SELECT_KEY[rule], selected_on=selected_on),
                  progress, *tracking_hooks(run, spec, console)]
    trainer = Trainer(train_model, criterion, optimizer, schedule, loader, runtime, spec.schedule.epochs,
                      hooks=hooks, iters_per_epoch=spec.schedule.max_iters_per_epoch, state=state,
                      sync_every=spec.runtime.log_every,
                      agree=(lambda flag: broadcast_flag(flag, ctx)) if ctx.enabled else None)
    protocol = resolve_protocol(spec.eval.protocol, data.same_set, torch.cat([data.query.camids, data.gallery.camids]))
    if ctx.is_main:
        console.print(f"run [bold]{spec.name}[/] → {out} · {runtime.describe()['device_name']} · {runtime.precision}"
                      f"{' · channels_last' if runtime.channels_last else ''}"
                      f"{f' · {ctx.world_size} processes' if ctx.enabled else ''} · "
                      f"{data.num_classes} training identities · {trainer.steps_per_epoch} iterations/epoch · evaluation: "
                      f"protocol {protocol} "
                      + (f"(leave-one-out over {len(data.query)} images)" if data.same_set
                         else f"({len(data.query)} queries, {len(data.gallery)} gallery)")
                      + f" · model selection: {selected_on}")
    try:
        trainer.train()
    except TrainingInterrupted as e:
        raise type(e)(e.what, where=str(out), fix=f"continue with `reid run --resume {out}`") from None
    finally:
        progress.close()
    barrier(ctx)
    if not ctx.is_main:
        cleanup(ctx)
        return None
    summary = summarise(run, spec, runtime.describe(), data.describe(), model, protocol, rule, selected_on,
                        session_seconds=time.time() - started)
    run.write_summary(summary)
    cleanup(ctx)
    return summary


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


def wrap_for_training(model: torch.nn.Module, spec: Spec, ctx: DistContext, runtime) -> torch.nn.Module:
    """The module the loop trains: optionally SyncBatchNorm + DistributedDataParallel, optionally compiled."""
    train_model = model
    if ctx.enabled:
        if spec.runtime.sync_bn:
            if runtime.device.type != "cuda":
                raise ReidError("SyncBatchNorm runs on GPUs only (PyTorch has no CPU implementation)",
                                where="runtime.sync_bn", fix="set runtime.sync_bn = false for CPU processes")
            train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        train_model = torch.nn.parallel.DistributedDataParallel(train_model, device_ids=device_ids)
    return torch.compile(train_model, mode=spec.runtime.compile_mode) if spec.runtime.compile else train_model


def summarise(run: RunDir, spec: Spec, device: dict, dataset: DatasetInfo, model: torch.nn.Module, protocol: str,
              rule: str, selected_on: str, session_seconds: float) -> RunSummary:
    """Final metrics (the headline), the epoch the selection ``rule`` picked (:mod:`reid.engine.selection`),
    wall time, device, dataset, model size and library versions."""
    epochs = [r for r in run.read_metrics() if r["kind"] == "epoch"]
    evaluated = [r for r in epochs if "rank1" in r]
    best = best_record(evaluated, rule)
    return RunSummary(
        name=spec.name, run_dir=str(run.path), epochs=len(epochs),
        final=EpochMetrics.from_json(evaluated[-1]) if evaluated else None,
        best=EpochMetrics.from_json(best) if best is not None else None, selection=selected_on,
        wall_seconds=round(sum(r["train_seconds"] + r.get("eval_seconds", 0.0) for r in epochs), 2),
        last_session_seconds=round(session_seconds, 2),
        mean_images_per_second=round(sum(r["images_per_second"] for r in epochs) / max(len(epochs), 1), 2),
        device=DeviceInfo.from_json(device), dataset=dataset,
        evaluation=EvalSettings(protocol=protocol, distance=spec.eval.distance, normalize=spec.eval.normalize,
                                flip=spec.eval.flip, max_rank=spec.eval.max_rank),
        parameters=sum(p.numel() for p in model.parameters()),
        environment=Versions.from_json(environment()),
    )
