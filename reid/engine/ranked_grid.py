"""The ranked-list grid — each query beside its top-k gallery images, framed green (same identity) or red —
drawn once (matplotlib on an Agg canvas, no pyplot state) for the report pages, ``reid search`` and TensorBoard.

It sits in the engine so that the TensorBoard hook can draw it without reaching up into :mod:`reid.report`;
:mod:`reid.report.figures` builds its other figures on the same :func:`new_figure` and :data:`DPI`.

Example::

    lists = ranked_lists(spec.eval, query.features, gallery.features, 10, queries=choose_queries(query.pids, 8), ...)
    pixels = figure_pixels(retrieval_figure(lists, query, gallery, query_images, gallery_images, "top-10"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reid.engine.evaluation import Features
from reid.evaluation import RankedList

DPI = 110
CORRECT, WRONG, QUERY, UNKNOWN = (0, 160, 60), (220, 30, 30), (40, 90, 220), (150, 150, 150)
#: the legend of a ranked grid whose identities are known
MATCH_LEGEND = [(QUERY, "query"), (CORRECT, "same identity (correct)"), (WRONG, "other identity (wrong)")]
CELL_W, CAPTION = 1.05, 0.32  # inches: a tile's width, the caption above it


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (independent of pyplot and of the current backend)."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_pixels(fig: Figure) -> np.ndarray:
    """``fig`` rendered: uint8 H×W×3 (``int(inches × DPI)`` pixels each way)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def choose_queries(pids: torch.Tensor, n: int) -> list[int]:
    """Indices of the first image of ``n`` identities spread evenly over the sorted identities.

    Example:
        >>> choose_queries(torch.tensor([5, 5, 7, 7, 9, 9]), 2)
        [0, 4]
    """
    ids = sorted(set(pids.tolist()))
    n = min(n, len(ids))
    picked = [ids[round(i * (len(ids) - 1) / max(n - 1, 1))] for i in range(n)]
    first = {}
    for i, pid in enumerate(pids.tolist()):
        first.setdefault(pid, i)
    return [first[pid] for pid in picked]


def _bordered(image: torch.Tensor, colour: tuple[int, int, int]) -> np.ndarray:
    """uint8 3×H×W → H×W×3 with a coloured frame."""
    img = image.permute(1, 2, 0).numpy()
    width = max(2, img.shape[0] // 20)
    out = np.empty((img.shape[0] + 2 * width, img.shape[1] + 2 * width, 3), dtype=np.uint8)
    out[:] = colour
    out[width:-width, width:-width] = img
    return out


@dataclass(frozen=True)
class Tile:
    """One image of a ranked grid: uint8 3×H×W pixels, a caption above it and a frame colour."""

    image: torch.Tensor
    caption: str
    colour: tuple[int, int, int]


def grid_inches(rows: int, columns: int, height: int, width: int) -> tuple[float, float]:
    """The size (width, height) in inches of a :func:`ranked_grid` of ``rows`` × ``columns`` tiles of
    ``height`` × ``width`` pixels.

    Example:
        >>> [round(inches, 2) for inches in grid_inches(2, 3, 128, 64)]
        [3.35, 5.89]
    """
    cell_h = CELL_W * height / width + CAPTION
    return CELL_W * columns + 0.2, rows * cell_h + 1.05


def ranked_grid(rows: list[list[Tile]], title: str, legend: list[tuple[tuple[int, int, int], str]],
                columns: int | None = None) -> Figure:
    """One row per query: its tiles left to right (the query first), framed and captioned; ``legend`` below.

    The grid has ``columns`` columns (default: the longest row); shorter rows leave blank cells; its size is
    :func:`grid_inches`.
    """
    columns = columns or max(len(r) for r in rows)
    h, w = rows[0][0].image.shape[1:]
    cell_h = CELL_W * h / w + CAPTION
    fig = new_figure(*grid_inches(len(rows), columns, h, w))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    # fixed margins instead of tight_layout: the same layout every time, and fast for many small axes
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.7 / fig.get_figheight(), bottom=0.35 / fig.get_figheight(),
                        wspace=0.08, hspace=CAPTION / (cell_h - CAPTION) * 1.1)
    for ax_row, tiles in zip(axes, rows):
        for ax, tile in zip(ax_row, tiles):
            ax.imshow(_bordered(tile.image, tile.colour))
            ax.text(0.5, 1.02, tile.caption, transform=ax.transAxes, ha="center", va="bottom", fontsize=6)
        for ax in ax_row:
            ax.axis("off")
    handles = [Patch(color=np.array(c) / 255, label=t) for c, t in legend]
    fig.legend(handles=handles, loc="lower center", ncol=len(legend), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    return fig


def retrieval_figure(lists: list[RankedList], query: Features, gallery: Features,
                     query_images: torch.Tensor | Mapping[int, torch.Tensor],
                     gallery_images: torch.Tensor | Mapping[int, torch.Tensor], title: str,
                     columns: int | None = None) -> Figure:
    """One row per ranked list: the query (blue frame), then its ranked gallery (green: same identity, red: not).

    ``query_images`` / ``gallery_images`` give the uint8 3×H×W image of an index of ``query`` / ``gallery``: an
    N×3×H×W tensor, or a mapping holding the indices ``lists`` names. ``columns`` as :func:`ranked_grid`.
    """
    rows = []
    for ranked in lists:
        q = ranked.query
        row = [Tile(query_images[q], f"query\nid {int(query.pids[q])} · cam {int(query.camids[q])}", QUERY)]
        row += [Tile(gallery_images[g], f"#{i + 1} id {int(gallery.pids[g])}\nd={ranked.distances[i]:.3g}",
                     CORRECT if ranked.correct[i] else WRONG) for i, g in enumerate(ranked.gallery)]
        rows.append(row)
    return ranked_grid(rows, title, MATCH_LEGEND, columns=columns)
