"""Markdown answers with figures, regenerated from the model code and run directories.

- :mod:`~reid.report.runs` — read run directories; which run answers Q8 / Q11; provenance lines;
- :mod:`~reid.report.model_questions` — Q1–Q5, Q7 (the network, measured);
- :mod:`~reid.report.data_questions` — Q6, Q10 (the dataset's counts);
- :mod:`~reid.report.run_questions` — Q8, Q11 (curves, final numbers, comparison);
- :mod:`~reid.report.visual_questions` + :mod:`~reid.report.retrieval` — Q9 (ranked lists, embedding PCA);
- :mod:`~reid.report.figures` — matplotlib figures, deterministic PNGs;
- :mod:`~reid.report.markdown` — tables and fixed number formats;
- :mod:`~reid.report.writer` — :func:`write_report`: the files and the README index.

Example::

    from reid.report import write_report
    write_report(["runs/q8", "runs/q11"], Path("reports"))
"""

from reid.report.writer import write_report

__all__ = ["write_report"]
