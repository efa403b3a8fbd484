"""What every question builder receives (:class:`ReportContext`) and returns (:class:`Section`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from matplotlib.figure import Figure

from reid.report.pages import Figures
from reid.report.runs import Run
from reid.report.seed_groups import SeedGroup


@dataclass
class Section:
    """One question's answer.

    Attributes:
        number: the question number (file ``qNN.md``).
        title: a short title (heading and README index).
        answers: one line for the README index: what the file answers.
        body: Markdown below the heading.
        runs: paths of the runs the numbers came from (README index).
    """

    number: int
    title: str
    answers: str
    body: str
    runs: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        """``q01.md`` … ``q11.md``."""
        return f"q{self.number:02d}.md"

    def markdown(self) -> str:
        """The whole file: heading, body, trailing newline."""
        return f"# Q{self.number} — {self.title}\n\n{self.body.strip()}\n"


@dataclass
class ReportContext:
    """The runs the assignment report is built from, and where its figures go.

    Attributes:
        runs: every run given, in order.
        assigned: ``{"q8": Run | None, "q11": Run | None}`` (see :func:`reid.report.assignment.roles.assign_groups`).
        figures: the report folder's figures.
        groups: each question's seed group (the run repeated with other seeds; one run when not repeated),
            ``{"q8": SeedGroup | None, ...}``; a question missing here has no group.
    """

    runs: list[Run]
    assigned: dict[str, Run | None]
    figures: Figures
    groups: dict[str, SeedGroup | None] = field(default_factory=dict)

    def repeats(self, question: str) -> SeedGroup | None:
        """The seed group of ``question``'s run when it has more than one run, else None."""
        group = self.groups.get(question)
        return group if group is not None and len(group.runs) > 1 else None

    def figure(self, fig: Figure, name: str, alt: str) -> str:
        """Save ``fig`` as ``figures/<name>.png`` and return the Markdown image link."""
        return self.figures.add(fig, name, alt)
