"""Reports from run directories: a page per run, a comparison across runs, and the assignment's Q1–Q11.

- :mod:`~reid.report.runs` — read run directories (typed summary); provenance lines;
- :mod:`~reid.report.run_parts` — tables and curves of one run (final / best metrics, cost, per epoch);
- :mod:`~reid.report.run_page` — one run's page (spec diff, metrics, curves, retrieval grid, embeddings, per camera);
- :mod:`~reid.report.comparison` — runs side by side, overlaid curves, mean ± std over seeds;
- :mod:`~reid.report.seed_groups` — runs that differ only in ``seed``, and their statistics;
- :mod:`~reid.report.retrieval` — a checkpoint re-embedded on its validation set, ranked lists, PCA, Rank-1 per camera;
- :mod:`~reid.report.figures` / :mod:`~reid.report.pages` — matplotlib figures, deterministic PNGs, where they go;
- :mod:`~reid.report.markdown` — tables and fixed number formats;
- :mod:`~reid.report.assignment` — the assignment's answers Q1–Q11, built from the parts above;
- :mod:`~reid.report.writer` — :func:`write_report`: which report, the files and the README index.

Example::

    from reid.report import write_report
    write_report(["runs/quickstart"], Path("report"))
"""

from reid.report.writer import write_report

__all__ = ["write_report"]
