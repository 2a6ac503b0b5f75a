"""Validation curves of several runs on one PNG (the paper's NIQE / PSNR against iterations)."""
from typing import Any, Dict, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .figure_notes import fit_tick_labels, layout_with_note, save_figure  # noqa: E402
from .training_logs import Curves, select  # noqa: E402


def draw_curves(runs: Dict[str, Curves], metrics: Sequence[str], dataset: Optional[str] = None,
                title: Optional[str] = None, note: Optional[str] = None) -> Any:
    """The figure of :func:`plot_curves`, not saved (the caller closes it)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, curves in runs.items():
            points = select(curves, metric, dataset, label)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', markersize=3, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no 1.975 ticks around one point
        ax.set_xlabel('iteration')
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
        ax.legend()
    layout_with_note(fig, note, title)
    for ax in axes[0]:
        fit_tick_labels(fig, ax)
    return fig


def plot_curves(runs: Dict[str, Curves], metrics: Sequence[str], output: str, dataset: Optional[str] = None,
                title: Optional[str] = None, note: Optional[str] = None) -> str:
    """One panel per metric, one line per run; writes the PNG ``output`` and returns its path.

    ``note`` (a rehearsal's mark) is drawn above the title and kept in the PNG's metadata.
    """
    return save_figure(draw_curves(runs, metrics, dataset, title, note), output, note)
