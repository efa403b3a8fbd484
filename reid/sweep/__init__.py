"""Repeated and swept experiments: one spec, many run directories.

- :mod:`~reid.sweep.grid` — ``--grid key=v1,v2`` axes, their product, readable run-directory names, ``--seeds``;
- :mod:`~reid.sweep.plan` — the runs a sweep needs, where they live, and whether each is pending, started or finished;
- :mod:`~reid.sweep.local` — run the plan on this machine, one at a time or N at a time with the cores split;
- :mod:`~reid.sweep.slurm` — run the plan on Slurm through submitit, one job per run, requeued on preemption.

A sweep's directory::

    OUT/
      optim.lr=0.001,loss.margin=0.2/seed-0/   a normal run directory (reid run --resume works on it)
      optim.lr=0.001,loss.margin=0.2/seed-1/
      ...
      logs/                                     one log per run (local launcher)
      sweep.md, sweep.json                      the table (reid.report.sweep_table)

``reid run SPEC --seeds 3`` is the same plan with no grid: ``OUT/seed-0``, ``OUT/seed-1``, ``OUT/seed-2``.

Example:
    >>> from reid.sweep.grid import expand, parse_axis
    >>> [p.name for p in expand([parse_axis("optim.lr=1e-3,3.5e-4"), parse_axis("loss.margin=0.3")])]
    ['optim.lr=0.001,loss.margin=0.3', 'optim.lr=0.00035,loss.margin=0.3']
"""
