"""The one checkpoint reader: a ``.pth`` file to a bare state_dict, whatever wrapped it.

Wrappers, tried in this order when no ``param_key`` is given (:data:`WRAPPER_KEYS`): BasicSR's
``params_ema`` and ``params``, mmengine's ``state_dict``, ``model_state_dict``; a mapping with none
of them is the state_dict itself. DataParallel's ``module.`` prefix is stripped from every key.
A file that is not a whole torch checkpoint (empty, cut short, text, a web page, another zip) raises
:class:`UnreadableCheckpointError` saying which (:func:`~.file_kind.describe_file`).
"""
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import torch

from .file_kind import TORCH_CHECKPOINT, describe_file

StateDict = Dict[str, torch.Tensor]
WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model_state_dict')
_MODULE_PREFIX = 'module.'


class CheckpointKeyError(KeyError):
    """A checkpoint lacks the entry asked for (the message names the file and the entries it has)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RefusedCheckpointError(pickle.UnpicklingError):
    """The safe loader refused a checkpoint: it holds a type outside the allowlist (the message names both).

    ``refused`` is that type's dotted name as pickled (e.g. ``posix.system``), or None when torch did not say.
    """

    def __init__(self, path: str, refused: Optional[str], allowed: Sequence[str]) -> None:
        self.path, self.refused = path, refused
        what = f'the type {refused}' if refused else 'an object'
        allowed_text = f' (allowed besides tensors and plain Python data: {", ".join(allowed)})' if allowed else ''
        super().__init__(
            f'Refusing to load {path}: it holds {what}, which the safe loader (weights_only=True) does not '
            f'allow{allowed_text}. Unpickling it could run code; load only files from a trusted source.')


class UnreadableCheckpointError(RuntimeError):
    """A file that is not a whole torch checkpoint: empty, cut short, or not one at all (the message says which).

    A RuntimeError, as torch's own error for a corrupt archive, so that callers catching that still do.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f'Cannot read {path} as a checkpoint: {problem}.')


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


def strip_module_prefix(state_dict: Mapping[str, Any]) -> StateDict:
    """``state_dict`` without DataParallel's ``module.`` key prefix, in the same order."""
    return OrderedDict((k[len(_MODULE_PREFIX):] if k.startswith(_MODULE_PREFIX) else k, v)
                       for k, v in state_dict.items())


def unwrap_state_dict(mapping: Mapping[str, Any], param_key: Optional[str] = None, source: str = 'checkpoint',
                      wrappers: Sequence[str] = WRAPPER_KEYS) -> StateDict:
    """The bare state_dict of an in-memory checkpoint, ``module.`` stripped.

    Args:
        mapping: a loaded checkpoint (a wrapper or a state_dict).
        param_key: the entry that holds the weights; when given it must exist
            (:class:`CheckpointKeyError`, naming ``source`` and the entries it has).
        source: what the error messages call the checkpoint (e.g. its path).
        wrappers: without ``param_key``, the entries tried in order (the first that holds a mapping).
    """
    if param_key:
        if param_key not in mapping:
            raise CheckpointKeyError(f'{source} has no {param_key!r} entry (has {list(mapping)[:5]}).')
        return strip_module_prefix(mapping[param_key])
    for key in wrappers:
        if isinstance(mapping.get(key), Mapping):
            return strip_module_prefix(mapping[key])
    return strip_module_prefix(mapping)


def load_state_dict(path: str, param_key: Optional[str] = None, wrappers: Sequence[str] = WRAPPER_KEYS) -> StateDict:
    """The bare state_dict of the checkpoint file ``path`` (see :func:`unwrap_state_dict`)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'Checkpoint {path} is not a state_dict (it is a {type(checkpoint).__name__}).')
    return unwrap_state_dict(checkpoint, param_key, f'Checkpoint {path}', wrappers)
