"""The training engine: a plain loop (:mod:`reid.engine.trainer`) with hooks for the
cross-cutting concerns — checkpoints, evaluation, metrics logging, progress.

:func:`reid.engine.experiment.run_experiment` wires a spec into data, model, loss,
optimiser and hooks and leaves a run directory behind.
"""
