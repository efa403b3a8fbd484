"""From a spec to a finished run directory: build everything, train with hooks, summarise.

Example::

    from reid.spec import load_spec
    from reid.engine.experiment import run_experiment
    summary = run_experiment(load_spec("specs/quickstart.toml"), Path("runs/quickstart"))
    print(summary.final.result.rank(1), summary.final.result.mAP)
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import torch
from rich.console import Console

from reid.data.describe import DatasetInfo
from reid.data.imageset import Progress, no_progress
from reid.engine.build import RunBuilder
from reid.engine.checkpoint import load_resumable, restore_training
from reid.engine.distributed import DistContext, barrier, broadcast_flag, cleanup, collective_failures, init_distributed
from reid.engine.elastic import Restart, after_restart, record_job, session_runtime
from reid.engine.run_status import record_outcome
from reid.engine.rundir import RunDir, RunDirRefused, environment
from reid.engine.runtime import resolve_runtime, set_threads
from reid.engine.selection import best_record
from reid.engine.summary import DeviceInfo, EvalSettings, EvaluatedEpoch, RunSummary, Versions
from reid.engine.trainer import Trainer, TrainingInterrupted, TrainState
from reid.errors import ReidError
from reid.evaluation import resolve_protocol
from reid.spec import Spec, load_spec_text


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
                   progress_of_decoding: Progress = no_progress,
                   builder: type[RunBuilder] = RunBuilder) -> RunSummary | None:
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
        builder: what builds the run's parts: :class:`~reid.engine.build.RunBuilder` or a subclass that
            overrides some of its steps.
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
                           progress_of_decoding=progress_of_decoding, builder=builder)


def _train_into(run: RunDir, spec: Spec | None, ctx: DistContext, *, resume: bool, force: bool, plain: bool,
                console: Console, progress_of_decoding: Progress, builder: type[RunBuilder]) -> RunSummary | None:
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
    runtime = resolve_runtime(spec.runtime, local_rank=ctx.local_rank)
    started = time.time()
    parts = builder(spec, ctx, runtime, progress_of_decoding)
    parts.build()
    data, model = parts.data, parts.model
    hooks = parts.build_hooks(run, console, plain, best={})

    state = TrainState()
    def report(line: str) -> None:
        if ctx.is_main:
            console.print(line, markup=False, soft_wrap=True)  # one line, whatever the terminal's width

    ckpt = load_resumable(run.last_checkpoint, report=report) if resume else None
    if ckpt is not None:
        position, best = restore_training(ckpt, model, parts.optimizer, parts.schedule, runtime, rank=ctx.rank,
                                          criterion=parts.criterion, evaluated=parts.evaluated_model)
        if parts.checkpoints is not None:
            parts.checkpoints.best = best
        state = TrainState(*position)
        if ctx.is_main:
            run.truncate_metrics(state.global_step)
            console.print(f"resuming {out} at epoch {state.epoch + 1}, iteration {state.iter_in_epoch} "
                          f"(step {state.global_step})")
    elif resume and ctx.is_main:
        run.truncate_metrics(0)
    barrier(ctx)

    trainer = Trainer(wrap_for_training(model, spec, ctx, runtime), parts.criterion, parts.optimizer, parts.schedule,
                      parts.loader, runtime, spec.schedule.epochs, hooks=hooks,
                      iters_per_epoch=spec.schedule.max_iters_per_epoch, state=state, sync_every=spec.runtime.log_every,
                      agree=(lambda flag: broadcast_flag(flag, ctx)) if ctx.enabled else None,
                      accumulate=spec.optim.accumulate)
    rule, selected_on, progress = parts.selection_rule, parts.selected_on, parts.progress
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
    settings = EvalSettings.of_spec(spec.eval, protocol)
    return RunSummary(
        name=spec.name, run_dir=str(run.path), epochs=len(epochs),
        final=EvaluatedEpoch.from_json(evaluated[-1], settings) if evaluated else None,
        best=EvaluatedEpoch.from_json(best, settings) if best is not None else None, selection=selected_on,
        wall_seconds=round(sum(r["train_seconds"] + r.get("eval_seconds", 0.0) for r in epochs), 2),
        last_session_seconds=round(session_seconds, 2),
        mean_images_per_second=round(sum(r["images_per_second"] for r in epochs) / max(len(epochs), 1), 2),
        device=DeviceInfo.from_json(device), dataset=dataset,
        evaluation=settings,
        parameters=sum(p.numel() for p in model.parameters()),
        environment=Versions.from_json(environment()),
    )
