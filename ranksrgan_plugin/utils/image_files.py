"""The image files of a folder keyed by stem, as inference names its outputs and evaluation pairs SR with HR.

A stem must name one image: ``x.png`` and ``x.jpg`` in one folder would write one ``x.png`` (inference)
or leave the pairing to the listing order (evaluation), so callers refuse them with
:func:`describe_shared_stems`.
"""
import os
import os.path as osp
from typing import Dict, List, Mapping, Sequence

from ..data.rank_dataset_format import IMAGE_EXTENSIONS


def files_by_stem(folder: str, suffix: str = '') -> Dict[str, List[str]]:
    """``{stem: [file names]}`` of the images of an existing ``folder``, in file-name order.

    ``suffix`` is removed from the end of each stem; images whose stem does not end with it are left out.
    """
    stems: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS or not stem.endswith(suffix):
            continue
        stems.setdefault(stem[:len(stem) - len(suffix)], []).append(name)
    return stems


def listing(names: Sequence[str], shown: int = 10, separator: str = ', ') -> str:
    """The first ``shown`` names joined, then ``(and N more)``."""
    names = list(names)
    more = f' (and {len(names) - shown} more)' if len(names) > shown else ''
    return separator.join(names[:shown]) + more


def describe_shared_stems(stems: Mapping[str, List[str]]) -> str:
    """``''`` when every stem names one file, else ``N stem(s) name more than one image: a.png and a.tif; ...``."""
    shared = [' and '.join(names) for names in stems.values() if len(names) > 1]
    if not shared:
        return ''
    return f'{len(shared)} stem(s) name more than one image: {listing(shared, separator="; ")}'
