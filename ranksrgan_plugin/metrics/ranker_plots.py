"""The paper's Figure 3/4: histograms of metric labels and Ranker scores per level of a rank set."""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np


def per_level(values: Sequence[float], levels: Sequence[str]) -> Dict[str, np.ndarray]:
    """Values grouped by level, in first-seen level order."""
    grouped: Dict[str, list] = {}
    for value, level in zip(values, levels):
        grouped.setdefault(level, []).append(value)
    return {level: np.asarray(vals, dtype=np.float64) for level, vals in grouped.items()}


def score_caption(index: int, name: str, result: Mapping[str, Any]) -> str:
    """A score panel's caption: SROCC and pair accuracy, each with the sample it was measured on."""
    pairs = result.get('pairs_measured')
    accuracy = f"pair acc {result['pair_accuracy']:.3f}" + (f' over {pairs} pairs' if pairs is not None else '')
    return (f"({chr(ord('b') + index)}) {name} score\nSROCC {result['srocc']:.3f} over "
            f"{len(result['scores'])} patches, {accuracy}")


def draw_ranker_histograms(results: Mapping[str, Mapping[str, Any]], metric: str = 'label',
                           higher_is_better: bool = False, bins: int = 30, title: Optional[str] = None,
                           note: Optional[str] = None) -> Any:
    """The figure of :func:`plot_ranker_histograms`, not saved (the caller closes it)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..utils.figure_notes import fit_tick_labels, layout_with_note

    first = next(iter(results.values()))
    sign = -1.0 if higher_is_better else 1.0
    panels = [(f'(a) {metric} label', per_level([sign * v for v in first['labels']], first['levels']))]
    panels += [(score_caption(index, name, result), per_level(result['scores'], result['levels']))
               for index, (name, result) in enumerate(results.items())]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    axes = np.atleast_1d(axes)
    for ax, (caption, groups) in zip(axes, panels):
        edges = np.histogram_bin_edges(np.concatenate(list(groups.values())), bins=bins)
        for level, values in groups.items():
            ax.hist(values, bins=edges, alpha=0.5, label=level)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
        ax.set_title(caption, fontsize=9)
        ax.legend(fontsize=8)
    layout_with_note(fig, note, title)
    for ax in axes:
        fit_tick_labels(fig, ax)
    return fig


def plot_ranker_histograms(results: Mapping[str, Mapping[str, Any]], output: str, metric: str = 'label',
                           higher_is_better: bool = False, bins: int = 30, title: Optional[str] = None,
                           note: Optional[str] = None) -> str:
    """One panel of label histograms per level, then one panel of score histograms per Ranker; returns ``output``.

    ``results`` maps a Ranker's name (e.g. 'Ranker', 'regression Ranker') to the output of
    :func:`ranksrgan_plugin.metrics.ranker_evaluation.evaluate_ranker` on the same split. Labels are
    shown as the metric's own values (un-negated for a higher-is-better metric). ``note`` (a rehearsal's
    mark) is drawn above the title and kept in the PNG's metadata.
    """
    from ..utils.figure_notes import save_figure

    return save_figure(draw_ranker_histograms(results, metric, higher_is_better, bins, title, note), output, note)
