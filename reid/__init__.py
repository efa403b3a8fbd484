"""reid: declarative person re-identification experiments.

The package is organised by job:

- :mod:`reid.spec` — the TOML experiment schema (validated with pydantic);
- :mod:`reid.model` — the backbone as data (block specs), its builder, heads, pretrained weights;
- :mod:`reid.data` — dataset formats, the synthetic pedestrian renderer, samplers, batched transforms;
- :mod:`reid.losses` and :mod:`reid.metrics` — training losses and re-ID evaluation (CMC, mAP, mINP);
- :mod:`reid.engine` — a plain training loop with hooks (checkpointing, evaluation, logging);
- :mod:`reid.report` — Markdown answers and figures from run directories;
- :mod:`reid.cli` — the ``reid`` command line.
"""

__version__ = "0.1.0"
