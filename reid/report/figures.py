"""The report's figures (matplotlib, Agg canvas, no pyplot state), saved as deterministic PNGs; the ranked-list
grid is :func:`reid.engine.ranked_grid.retrieval_figure`, shared with TensorBoard.

Every figure has a title, labelled axes with units and a legend; :func:`save` strips the
"Software" metadata and uses a fixed DPI, so the same data gives the same bytes.

Example::

    fig = accuracy_figure(run.evaluated, ["rank1", "rank5", "rank10"], "Q8: validation accuracy")
    save(fig, Path("reports/figures/q08_accuracy.png"))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reid.engine.ranked_grid import DPI, new_figure
from reid.report.markdown import metric_label


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG without time- or version-dependent metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def accuracy_figure(evaluated: list[dict], rank_keys: list[str], title: str) -> Figure:
    """Rank-k, mAP and mINP (in %) per evaluated epoch."""
    fig = new_figure(7, 4.2)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in evaluated]
    for key, style in zip(rank_keys + ["mAP", "mINP"], ["o-", "s-", "^-", "D-", "v-", "x-", "+-", "*-"]):
        ax.plot(epochs, [100 * r[key] for r in evaluated], style, label=metric_label(key), markersize=4)
    ax.set_ylabel("score on validation set (%)")
    ax.set_ylim(-2, 102)  # room for markers at 0 % and 100 %
    _epoch_axis(ax)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def loss_figure(iters: list[dict], epochs: list[dict], title: str, train_label: str, val_label: str,
                unit: str) -> Figure:
    """Three panels: training loss per iteration (and its parts), per epoch (mean), validation loss per epoch.

    ``unit`` labels the training-loss axes (e.g. ``nats`` for cross-entropy); the validation loss is a
    triplet loss, in embedding-distance units.
    """
    fig = new_figure(13, 3.8)
    a, b, c = fig.subplots(1, 3)
    steps = [r["step"] for r in iters]
    a.plot(steps, [r["loss"] for r in iters], "-", lw=1, label=f"{train_label} (total)")
    parts = sorted({k for r in iters for k in r if k.startswith("loss_")})
    if len(parts) > 1:
        for part in parts:
            a.plot(steps, [r.get(part, np.nan) for r in iters], "-", lw=0.8, alpha=0.7, label=part.removeprefix("loss_") + " part")
    a.plot([r["step"] for r in epochs], [r["train_loss"] for r in epochs], "ko", markersize=3, label="epoch mean")
    a.set_xlabel("iteration (global step)")
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_ylabel(f"training loss ({unit})")
    a.set_title("training loss per iteration")
    a.grid(True, alpha=0.3)
    a.legend(fontsize=7)
    b.plot([r["epoch"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label=train_label)
    b.set_ylabel(a.get_ylabel())
    b.set_title("training loss per epoch (mean)")
    _epoch_axis(b)
    b.legend(fontsize=7)
    evaluated = [r for r in epochs if "val_loss" in r]
    c.plot([r["epoch"] for r in evaluated], [r["val_loss"] for r in evaluated], "o-", color="tab:red", label=val_label)
    c.set_ylabel("validation loss (embedding distance)")
    c.set_title("validation loss per epoch")
    _epoch_axis(c)
    c.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def comparison_figure(series: list[tuple[str, list[dict]]], keys: list[str], title: str) -> Figure:
    """One panel per metric in ``keys`` (in %), one line per run."""
    fig = new_figure(5 * len(keys), 4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        for label, evaluated in series:
            ax.plot([r["epoch"] for r in evaluated], [100 * r[key] for r in evaluated], "o-", markersize=4, label=label)
        ax.set_ylabel(f"{metric_label(key)} (%)")
        ax.set_ylim(-2, 102)  # room for markers at 0 % and 100 %
        ax.set_title(f"{metric_label(key)} per epoch")
        _epoch_axis(ax)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def embedding_figure(points: torch.Tensor, pids: torch.Tensor, explained: tuple[float, float], title: str) -> Figure:
    """PCA scatter of embeddings, one colour per identity (legend up to 12 identities, else labelled centroids)."""
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot()
    ids = sorted(set(pids.tolist()))
    colours = colormaps["tab10"](np.arange(len(ids))) if len(ids) <= 10 else colormaps["turbo"](np.linspace(0, 1, len(ids)))
    pts = points.numpy()
    for colour, pid in zip(colours, ids):
        mask = (pids == pid).numpy()
        ax.scatter(pts[mask, 0], pts[mask, 1], s=14, color=colour, label=f"id {pid}", alpha=0.85, edgecolors="none")
        if len(ids) > 12:
            cx, cy = pts[mask].mean(0)
            ax.annotate(str(pid), (cx, cy), fontsize=6, ha="center", va="center")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f} % of variance)")
    ax.grid(True, alpha=0.3)
    if len(ids) <= 12:
        ax.legend(fontsize=7, title="identity", title_fontsize=7)
    else:
        ax.text(0.01, 0.99, f"{len(ids)} identities; numbers mark each identity's centroid", transform=ax.transAxes,
                fontsize=7, va="top")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
