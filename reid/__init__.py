"""reid: declarative person re-identification experiments.

The package is organised by job:

- :mod:`reid.spec` — the TOML experiment schema (validated with pydantic);
- :mod:`reid.model` — the backbone as data (block specs), its builder, heads, pretrained weights;
- :mod:`reid.data` — dataset formats, the synthetic pedestrian renderer, samplers, batched transforms;
- :mod:`reid.losses` and :mod:`reid.metrics` — training losses and re-ID evaluation (CMC, mAP, mINP);
- :mod:`reid.evaluation` — the one evaluator (protocol, CMC / mAP / mINP) and ranked lists;
- :mod:`reid.engine` — a plain training loop with hooks (checkpointing, evaluation, logging);
- :mod:`reid.api` — :func:`reid.load`: a trained model that embeds, evaluates and searches;
- :mod:`reid.report` — Markdown answers and figures from run directories;
- :mod:`reid.cli` — the ``reid`` command line.
"""

__version__ = "0.2.0"


def load(path, device: str = "auto", precision: str | None = None, which: str = "best"):
    """Load a trained model from a run directory or checkpoint (see :func:`reid.api.load`).

    Example::

        import reid
        model = reid.load("runs/quickstart")
        feats = model.embed(["a.jpg", "b.jpg"])   # N×D tensor
    """
    from reid.api import load as _load  # imported on use: `import reid` stays light for the CLI

    return _load(path, device=device, precision=precision, which=which)
