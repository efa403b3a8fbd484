"""The assignment's answers (Q1–Q11) as one report, built from the general report parts.

- :mod:`~reid.report.assignment.roles` — which run answers Q8 / Q11 (declared in the spec);
- :mod:`~reid.report.assignment.model_questions` — Q1–Q5, Q7 (the network, measured);
- :mod:`~reid.report.assignment.documented_network` — the documented layer table, the fixed-kernel pooling view, pooling as a convolution;
- :mod:`~reid.report.assignment.data_questions` — Q6, Q10 (the dataset's counts);
- :mod:`~reid.report.assignment.run_questions` — Q8, Q11 (curves, final numbers, comparison);
- :mod:`~reid.report.assignment.visual_questions` — Q9 (ranked lists, embedding PCA);
- :mod:`~reid.report.assignment.section` — what each question builder receives and returns;
- :mod:`~reid.report.assignment.writer` — :func:`write_assignment_report`: the files and the README index.
"""

from reid.report.assignment.writer import write_assignment_report

__all__ = ["write_assignment_report"]
