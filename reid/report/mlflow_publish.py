"""After a run that logs to MLflow has finished: add ``summary.json`` and its report page to its MLflow run.

:class:`reid.engine.mlflow_hook.MLflowHook` logs parameters, metrics and the checkpoint while training; the
summary is written after the last hook ran, and the report page is built by this (report) layer, so
``reid run`` calls :func:`publish_run` once the run directory is complete. A run whose MLflow tracking
failed during training is left alone (its one warning was printed then).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from reid.engine.mlflow_hook import MlflowState, WarnOnce, mlflow_client
from reid.engine.rundir import RunDir
from reid.report.writer import write_report

REPORT_ARTIFACTS = "report"


def publish_run(run: RunDir, state: MlflowState, warn: Callable[[str], None]) -> bool:
    """Log ``summary.json`` and the run's report page (``report/``, with its figures) to its MLflow run ``state``
    (:func:`reid.engine.mlflow_hook.unpublished` says whether a run has one to publish to).

    Returns whether they were logged (False: this upload failed — then ``warn`` got one line and the run
    directory still has everything).
    """
    guard = WarnOnce(warn, str(run.path))
    client = mlflow_client(state.tracking_uri)
    guard(lambda: client.log_artifact(state.run_id, str(run.summary_path)))
    with tempfile.TemporaryDirectory() as tmp:
        write_report([run.path], Path(tmp), command=f"reid report {run.path}")
        guard(lambda: client.log_artifacts(state.run_id, tmp, REPORT_ARTIFACTS))
    return not guard.failed
