"""The paper's Figure 3/4: histograms of metric labels and Ranker scores per level of a rank set."""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np


def per_level(values: Sequence[float], levels: Sequence[str]) -> Dict[str, np.ndarray]:
    """Values grouped by level, in first-seen level order."""
    grouped: Dict[str, list] = {}
    for value, level in zip(values, levels):
        grouped.setdefault(level, []).append(value)
    return {level: np.asarray(vals, dtype=np.float64) for level, vals in grouped.items()}


def plot_ranker_histograms(results: Mapping[str, Mapping[str, Any]], output: str, metric: str = 'label',
                           higher_is_better: bool = False, bins: int = 30, title: Optional[str] = None) -> None:
    """One panel of label histograms per level, then one panel of score histograms per Ranker.

    ``results`` maps a Ranker's name (e.g. 'Ranker', 'regression Ranker') to the output of
    :func:`ranksrgan_plugin.metrics.ranker_evaluation.evaluate_ranker` on the same split. Labels are
    shown as the metric's own values (un-negated for a higher-is-better metric).
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    first = next(iter(results.values()))
    sign = -1.0 if higher_is_better else 1.0
    panels = [(f'(a) {metric} label', per_level([sign * v for v in first['labels']], first['levels']))]
    for index, (name, result) in enumerate(results.items()):
        caption = f"({chr(ord('b') + index)}) {name} score (SROCC {result['srocc']:.3f}, pair acc " \
                  f"{result['pair_accuracy']:.3f})"
        panels.append((caption, per_level(result['scores'], result['levels'])))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    for ax, (caption, groups) in zip(np.atleast_1d(axes), panels):
        edges = np.histogram_bin_edges(np.concatenate(list(groups.values())), bins=bins)
        for level, values in groups.items():
            ax.hist(values, bins=edges, alpha=0.5, label=level)
        ax.set_title(caption, fontsize=9)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
