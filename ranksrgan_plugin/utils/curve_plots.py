"""Validation curves of several runs on one PNG (the paper's NIQE / PSNR against iterations)."""
from typing import Dict, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from .training_logs import Curves, select  # noqa: E402


def plot_curves(runs: Dict[str, Curves], metrics: Sequence[str], output: str, dataset: Optional[str] = None,
                title: Optional[str] = None) -> str:
    """One panel per metric, one line per run; writes the PNG ``output`` and returns its path."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, curves in runs.items():
            points = select(curves, metric, dataset, label)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', markersize=3, label=label)
        ax.set_xlabel('iteration')
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
