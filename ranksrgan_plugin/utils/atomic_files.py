"""Files written so that a killed writer leaves the old file or the new one, never half of one.

A training job is killed at any moment (a scheduler's time limit, ``kill -9``, a lost node). A file
written in place and cut mid-write keeps its final name: a later ``--auto_resume`` picks the truncated
``<iter>.state`` and stops, and a stage output looks done. Each writer here stages the file beside ``path``,
flushes it to disk and renames it over ``path`` (``os.replace`` is atomic on one filesystem).
"""
import contextlib
import os
from typing import Any, Iterator

import torch


def partial_path(path: str, writers: str = 'one') -> str:
    """Where ``path`` is staged; no scan of ``*.pth`` or ``*.state`` matches it.

    ``writers='one'`` (checkpoints and states: rank 0 writes them): ``<path>.partial``, so the file a killed
    writer left is overwritten by the next save of that name (a resumed run saves the same iterations again).
    ``writers='many'`` (files several build processes may write at once): ``<path>.partial<pid>``.
    """
    return f'{path}.partial' + (str(os.getpid()) if writers == 'many' else '')


def publish(staged: str, path: str) -> None:
    """``staged`` flushed to disk and renamed to ``path``."""
    with open(staged, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(staged, path)


@contextlib.contextmanager
def staged_file(path: str, writers: str = 'one') -> Iterator[str]:
    """The path to write ``path``'s new content to; published over ``path`` when the block ends without an
    error, removed otherwise."""
    staged = partial_path(path, writers)
    try:
        yield staged
        publish(staged, path)
    finally:
        if os.path.exists(staged):
            os.remove(staged)


def save_torch_atomically(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, atomic: ``path`` is the old file or the whole new one, whenever the writer dies."""
    with staged_file(path) as staged:
        torch.save(obj, staged)


def write_text_atomically(path: str, text: str) -> None:
    """A text file written atomically (UTF-8); several processes may write it at once."""
    with staged_file(path, writers='many') as staged, open(staged, 'w', encoding='utf-8') as f:
        f.write(text)
