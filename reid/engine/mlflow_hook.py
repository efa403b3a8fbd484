"""MLflow tracking (``[runtime] tracking = "mlflow"``, extra ``reid-lab[mlflow]``): one MLflow run per run directory.

Logged: the flattened spec as parameters, every epoch's numbers as metrics (:func:`reid.engine.tracking.epoch_scalars`,
at the global step), and at the end the best checkpoint (``best.pt``, else ``last.pt``), ``spec.toml`` and
``metrics.jsonl`` as artifacts; ``reid run`` then adds ``summary.json`` and the run's report page
(:mod:`reid.report.mlflow_publish`). The MLflow run is named after the spec, in the experiment
``$MLFLOW_EXPERIMENT_NAME`` (default ``reid``); a resumed run continues its MLflow run.

Where: ``runtime.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a local store in ``runs/``
(``sqlite:///…/runs/mlflow.db``, artifacts in ``runs/mlartifacts``).

Tracking never stops training: the first MLflow call that fails (the server went down, the disk is full)
prints one warning, and the run goes on without MLflow; its own files (``metrics.jsonl``, checkpoints,
``tb/``) hold everything. ``RUN/mlflow.json`` records the MLflow run id, the URI and such a failure.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from reid.engine.checkpoint import atomic_write_text
from reid.engine.run_status import error_line
from reid.engine.rundir import METRICS_FILE, SPEC_FILE, RunDir
from reid.engine.tracking import epoch_scalars, flatten_spec
from reid.engine.trainer import Hook, Trainer
from reid.errors import ReidError
from reid.spec import Spec

STATE_FILE = "mlflow.json"
LOCAL_STORE = Path("runs")
DEFAULT_EXPERIMENT = "reid"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # fail in seconds, not minutes, when a server is down


@dataclass(frozen=True)
class MlflowState:
    """``RUN/mlflow.json``: the MLflow run this run directory logs to, and the failure that stopped it (if any)."""

    run_id: str
    tracking_uri: str
    failed: str = ""

    @classmethod
    def read(cls, run: RunDir) -> MlflowState | None:
        """The run directory's state (None when it never logged to MLflow)."""
        try:
            return cls(**json.loads((run.path / STATE_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, run: RunDir) -> None:
        """Write ``RUN/mlflow.json`` atomically."""
        atomic_write_text(run.path / STATE_FILE, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


def unpublished(run: RunDir) -> MlflowState | None:
    """The MLflow run that a finished run directory is still to add its summary and report page to; None when it
    never logged to MLflow, its tracking failed (its one warning was printed then) or it has not finished."""
    state = MlflowState.read(run)
    return state if state is not None and not state.failed and run.is_finished() else None


def tracking_uri(spec_uri: str | None) -> str:
    """The MLflow tracking URI: the spec's, else ``$MLFLOW_TRACKING_URI``, else the local store in ``runs/``.

    Example:
        >>> tracking_uri("http://127.0.0.1:5000")
        'http://127.0.0.1:5000'
    """
    uri = spec_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    LOCAL_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(LOCAL_STORE / 'mlflow.db').resolve()}"


def mlflow_client(uri: str):
    """An ``mlflow.MlflowClient`` for ``uri`` (short HTTP retries unless the environment sets them).

    Raises:
        ReidError: mlflow is not installed.
    """
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ReidError("MLflow is not installed", where="runtime.tracking = \"mlflow\"",
                        fix="pip install 'reid-lab[mlflow]' (or -e '.[mlflow]'), or set runtime.tracking = \"none\"") from None
    return MlflowClient(tracking_uri=uri)


class WarnOnce:
    """Runs MLflow calls; the first that raises prints one warning and turns every later call into a no-op."""

    def __init__(self, warn: Callable[[str], None], where: str):
        self.warn, self.where = warn, where
        self.failed = ""

    def __call__(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, or None once a call has failed."""
        if self.failed:
            return None
        try:
            return fn()
        except Exception as e:  # any MLflow, network or disk error: tracking stops, training does not
            self.failed = error_line(e)
            self.warn(f"MLflow tracking stopped ({self.failed}); training goes on and {self.where} keeps everything")
            return None


class MLflowHook(Hook):
    """Logs the run to MLflow from rank 0 (see the module docstring).

    Args:
        run: the run directory.
        spec: the resolved spec (parameters; ``runtime.tracking_uri``; the MLflow run's name).
        warn: prints the one warning when MLflow fails.
    """

    def __init__(self, run: RunDir, spec: Spec, warn: Callable[[str], None]):
        self.run, self.spec = run, spec
        self.guard = WarnOnce(warn, str(run.path))
        self.client = None
        self.run_id: str | None = None
        self.uri = ""

    def before_train(self, trainer: Trainer) -> None:
        """Start (or, when resuming, continue) the MLflow run and log the spec as parameters."""
        self.uri = tracking_uri(self.spec.runtime.tracking_uri)
        self.client = mlflow_client(self.uri)
        previous = MlflowState.read(self.run)
        if previous is not None and previous.tracking_uri == self.uri and not previous.failed and trainer.state.global_step:
            self.run_id = previous.run_id
            self.guard(lambda: self.client.update_run(self.run_id, status="RUNNING"))
        else:
            self.run_id = self.guard(self._start)
        self._save_state()

    def _start(self) -> str:
        from mlflow.entities import Param

        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        elif self.uri.startswith("sqlite:///") and self.spec.runtime.tracking_uri is None \
                and not os.environ.get("MLFLOW_TRACKING_URI"):  # the local store keeps its artifacts in runs/ too
            experiment_id = self.client.create_experiment(name, artifact_location=(LOCAL_STORE / "mlartifacts").resolve().as_uri())
        else:
            experiment_id = self.client.create_experiment(name)
        created = self.client.create_run(experiment_id, run_name=self.spec.name,
                                         tags={"reid.run_dir": str(self.run.path.resolve())})
        params = [Param(k, v[:6000]) for k, v in flatten_spec(self.spec.model_dump(mode="json", by_alias=True)).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(created.info.run_id, params=params[i:i + 100])
        return created.info.run_id

    def _save_state(self) -> None:
        if self.run_id is not None:
            MlflowState(self.run_id, self.uri, self.guard.failed).write(self.run)

    def after_epoch(self, trainer: Trainer) -> None:
        """Log the epoch's numbers as metrics at the global step."""
        if self.run_id is None or self.guard.failed:
            return
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), trainer.state.global_step
        metrics = [Metric(k, float(v), now, step) for k, v in epoch_scalars(trainer.epoch_record).items()]
        self.guard(lambda: self.client.log_batch(self.run_id, metrics=metrics))
        if self.guard.failed:
            self._save_state()

    def after_train(self, trainer: Trainer) -> None:
        """Log the checkpoint, spec and metrics log as artifacts and mark the MLflow run finished."""
        self._end("FINISHED", artifacts=True)

    def on_interrupt(self, trainer: Trainer) -> None:
        """Mark the MLflow run killed (``reid run --resume`` continues it)."""
        self._end("KILLED", artifacts=False)

    def _end(self, status: str, artifacts: bool) -> None:
        if self.run_id is None or self.guard.failed:
            return
        if artifacts:
            checkpoint = self.run.best_checkpoint if self.run.best_checkpoint.is_file() else self.run.last_checkpoint
            if checkpoint.is_file():
                self.guard(lambda: self.client.log_artifact(self.run_id, str(checkpoint), "checkpoints"))
            for name in (SPEC_FILE, METRICS_FILE):
                self.guard(lambda: self.client.log_artifact(self.run_id, str(self.run.path / name)))
        self.guard(lambda: self.client.set_terminated(self.run_id, status))
        self._save_state()
