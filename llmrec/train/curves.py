"""Learning curves: metrics to TensorBoard (through accelerate's trackers) and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def finish_trackers(acc: object) -> None:
    """Flush and close the accelerator's metric trackers.

    (Not ``Accelerator.end_training``: it also tears down the process group, which breaks
    whatever the caller does next in a distributed run.)"""
    for tracker in getattr(acc, "trackers", []):
        tracker.finish()


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl file (missing file: no rows)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def plot_learning_curves(rows: Sequence[dict], path: str | Path, *, x: str,
                         panels: Sequence[tuple[str, Sequence[str]]], title: str = "") -> Path:
    """Draw one panel per ``(label, keys)``: each key of ``rows`` against ``x``; write a PNG.

    Uses matplotlib's object API (no pyplot): a notebook's backend is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, (label, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key in keys:
            pts = [(r[x], r[key]) for r in rows if r.get(key) is not None and x in r]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o" if len(pts) < 40 else None, markersize=3, label=key)
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(out)
    return out
