"""The one checkpoint reader: a ``.pth`` file loaded with the safe loader, and the types each toolbox may pickle.

:func:`read_checkpoint` loads with ``weights_only=True`` and an optional allowlist; :func:`load_state_dict`
gives the bare state_dict, whatever wrapped it (:func:`~.layout.unwrap_state_dict`). A file that is not
a whole torch checkpoint (empty, cut short, text, a web page, another zip) raises
:class:`~.errors.UnreadableCheckpointError` saying which (:func:`~.describe.describe_file`); one holding
a type outside the allowlist, :class:`~.errors.RefusedCheckpointError`. mmengine's Runner checkpoints
hold more than tensors: :func:`read_mmengine_checkpoint` allows :func:`mmengine_checkpoint_globals`
(BasicSR's training states: :mod:`ranksrgan_plugin.utils.training_state`).
"""
import os
import pickle
import re
import zipfile
from typing import Any, Iterable, Mapping, Optional, Sequence

import torch

from .describe import TORCH_CHECKPOINT, describe_file
from .errors import RefusedCheckpointError, UnreadableCheckpointError
from .layout import WRAPPER_KEYS, StateDict, unwrap_state_dict

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL = b'\x80'


def unreadable_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a torch checkpoint (empty, an archive cut short, not a torch file), or None
    when it looks whole or is not a file (then a loading error has another cause)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    size = os.path.getsize(path)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(16)
    if head.startswith(_ZIP_MAGIC):
        if zipfile.is_zipfile(path):
            kind = describe_file(path)
            return None if kind.startswith(TORCH_CHECKPOINT) else f'it is {kind}'
        return (f'a torch archive cut short ({size} bytes, its end is missing): an interrupted save or copy; '
                'save or copy it again')
    if head.startswith(_PICKLE_PROTOCOL):
        kind = describe_file(path)  # torch's legacy format, whole or not: its own error says more
        return None if kind.startswith(TORCH_CHECKPOINT) else f'it is {kind}'
    return f'not a torch checkpoint (it starts with {head!r}): it is {describe_file(path)}'


def _global_name(item: Any) -> str:
    return f'{getattr(item, "__module__", "?")}.{getattr(item, "__qualname__", getattr(item, "__name__", item))}'


def read_checkpoint(path: str, safe_globals: Optional[Iterable[Any]] = None, map_location: Any = 'cpu') -> Any:
    """The object saved in ``path``, loaded with the safe loader (``weights_only=True``) onto ``map_location``.

    ``safe_globals``: the non-tensor types the file may also hold (e.g. mmengine's training log),
    allowed for this load only. Anything else that needs unpickling (a class, a callable) raises
    :class:`RefusedCheckpointError` naming ``path`` and the refused type; nothing of it runs.
    """
    allowed = list(safe_globals or ())
    try:
        if not allowed:
            return torch.load(path, map_location=map_location, weights_only=True)
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        match = re.search(r'GLOBAL ([\w.]+)', str(error))
        problem = None if match else unreadable_reason(path)
        if problem is not None:
            raise UnreadableCheckpointError(str(path), problem) from error
        raise RefusedCheckpointError(str(path), match.group(1) if match else None,
                                     [_global_name(item) for item in allowed]) from error
    except Exception as error:  # the unpickler's errors on a text file range from IndexError to KeyError
        problem = unreadable_reason(path)
        if problem is None:
            raise
        raise UnreadableCheckpointError(str(path), problem) from error


def load_state_dict(path: str, param_key: Optional[str] = None, wrappers: Sequence[str] = WRAPPER_KEYS) -> StateDict:
    """The bare state_dict of the checkpoint file ``path`` (see :func:`~.layout.unwrap_state_dict`)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'Checkpoint {path} is not a state_dict (it is a {type(checkpoint).__name__}).')
    return unwrap_state_dict(checkpoint, param_key, f'Checkpoint {path}', wrappers)


def mmengine_checkpoint_globals() -> list:
    """What mmengine (0.10.x) pickles besides tensors: the message hub's HistoryBuffers (with bound
    methods, hence ``getattr``), numeric numpy scalars and arrays, schedulers' ``Counter``s and ``_codecs.encode``."""
    import codecs
    import collections

    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = np.core.multiarray
    numeric_dtypes = [type(np.dtype(code)) for code in np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?']
    return [HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes, multiarray.scalar, multiarray._reconstruct,
            collections.Counter, codecs.encode, getattr]


def read_mmengine_checkpoint(path: str, option: Optional[str] = None, map_location: Any = 'cpu') -> Any:
    """:func:`read_checkpoint` of a file an mmengine Runner may have written (:func:`mmengine_checkpoint_globals`
    allowed); a missing file raises ``FileNotFoundError`` naming ``option`` (the option that named it)."""
    if option and not os.path.isfile(path):
        raise FileNotFoundError(f'{path} (named by {option}) does not exist.')
    return read_checkpoint(path, mmengine_checkpoint_globals(), map_location)

