"""Where a report's figures go: :class:`Figures` saves each one and returns its Markdown link."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from reid.report.figures import save
from reid.report.markdown import image

FIGURES_DIR = "figures"


@dataclass
class Figures:
    """Figures of one report folder.

    Attributes:
        out: the report folder; figures go to ``out/figures``.
        written: figure files written so far (relative to ``out``).

    Example::

        figures = Figures(Path("reports"))
        link = figures.add(fig, "quickstart_accuracy", "accuracy per epoch")   # "![…](figures/quickstart_accuracy.png)"
    """

    out: Path
    written: list[str] = field(default_factory=list)

    def add(self, fig: Figure, name: str, alt: str) -> str:
        """Save ``fig`` as ``figures/<name>.png`` and return the Markdown image link."""
        rel = f"{FIGURES_DIR}/{name}.png"
        save(fig, self.out / rel)
        self.written.append(rel)
        return image(alt, rel)
