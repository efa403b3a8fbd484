"""What every question builder receives (:class:`ReportContext`) and returns (:class:`Section`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from reid.report.figures import save
from reid.report.markdown import image
from reid.report.runs import Run

FIGURES_DIR = "figures"


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
    """The runs a report is built from, and where its files go.

    Attributes:
        runs: every run given, in order.
        assigned: ``{"q8": Run | None, "q11": Run | None}`` (see :func:`reid.report.runs.assign_runs`).
        out: the report folder.
        written: figure files written so far (relative to ``out``).
    """

    runs: list[Run]
    assigned: dict[str, Run | None]
    out: Path
    written: list[str] = field(default_factory=list)

    def figure(self, fig: Figure, name: str, alt: str) -> str:
        """Save ``fig`` as ``figures/<name>.png`` and return the Markdown image link."""
        rel = f"{FIGURES_DIR}/{name}.png"
        save(fig, self.out / rel)
        self.written.append(rel)
        return image(alt, rel)
