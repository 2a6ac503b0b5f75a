"""What a figure says about itself: a note drawn on it (a rehearsal's mark) and tick labels that do not overlap.

The note is drawn as a red line above the figure's title and a faint diagonal watermark, and kept in the
PNG's ``Warning`` text chunk (:func:`png_note` reads it back), so a figure copied out of its report
still says what it is.
"""
from typing import Any, Dict, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

NOTE_KEY = 'Warning'  # a PNG text keyword of the standard's list
_NOTE_HEIGHT_IN = 0.35  # inches of the figure kept above the panels for the note


def layout_with_note(fig: Figure, note: Optional[str], title: Optional[str]) -> None:
    """Draws ``note`` (when given) and ``title`` at the top of ``fig`` and lays the panels out below them."""
    height = fig.get_figheight()
    top = 1.0
    if note:
        _draw_note(fig, note)
        top -= _NOTE_HEIGHT_IN / height
    if title:
        fig.suptitle(title, y=top - 0.04 / height, va='top')  # tight_layout keeps the panels below it
    fig.tight_layout(rect=(0, 0, 1, top))


def _draw_note(fig: Figure, note: str) -> None:
    # the note's first word, when in capitals (REHEARSAL), is also a watermark across the panels
    fig.text(0.5, 1 - 0.04 / fig.get_figheight(), note, color='red', fontsize=11, weight='bold', ha='center',
             va='top')
    word = note.split(' ')[0]
    if word.isupper():
        fig.text(0.5, 0.45, word, color='red', alpha=0.12, fontsize=72, weight='bold', rotation=15, ha='center',
                 va='center', zorder=10)


def tick_labels_overlap(fig: Figure, ax: Any) -> bool:
    """Whether two x tick labels of ``ax`` overlap once drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = sorted((label.get_window_extent(renderer) for label in ax.get_xticklabels()
                    if label.get_visible() and label.get_text()), key=lambda box: box.x0)
    return any(left.x1 > right.x0 for left, right in zip(boxes, boxes[1:]))


def fit_tick_labels(fig: Figure, ax: Any, most: int = 6) -> None:
    """Fewer x ticks until their labels do not overlap (a narrow range of long values, e.g. 0.02085)."""
    for bins in range(most, 1, -1):
        if not tick_labels_overlap(fig, ax):
            return
        locator = ax.xaxis.get_major_locator()
        if isinstance(locator, MaxNLocator):  # AutoLocator too; keeps integer=True of an iteration axis
            locator.set_params(nbins=bins)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=bins))
    if tick_labels_overlap(fig, ax):
        for label in ax.get_xticklabels():
            label.set(rotation=30, ha='right')


def save_figure(fig: Figure, output: str, note: Optional[str], dpi: int = 120) -> str:
    """Writes ``fig`` as the PNG ``output`` with ``note`` in its metadata, closes it and returns ``output``."""
    fig.savefig(output, dpi=dpi, metadata=png_metadata(note))
    plt.close(fig)
    return output


def png_metadata(note: Optional[str]) -> Dict[str, str]:
    """The PNG text chunks that carry ``note``."""
    return {NOTE_KEY: note} if note else {}


def png_note(path: str) -> Optional[str]:
    """The note a PNG written by :func:`save_figure` or :func:`stamp_png` carries, if any."""
    from PIL import Image

    with Image.open(path) as img:
        return img.info.get(NOTE_KEY)


def stamp_png(path: str, note: str, dpi: int = 120) -> None:
    """Redraws the PNG ``path`` with ``note`` above it (and in its metadata): for a figure drawn without it."""
    image = plt.imread(path)
    height, width = image.shape[:2]
    band = int(_NOTE_HEIGHT_IN * dpi)
    fig = plt.figure(figsize=(width / dpi, (height + band) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, height / (height + band)))
    ax.imshow(image)
    ax.axis('off')
    _draw_note(fig, note)
    save_figure(fig, path, note, dpi=dpi)
