"""Numerical kernels shared across reid: :mod:`reid.ops.distance`, the one distance and ranking kernel."""
