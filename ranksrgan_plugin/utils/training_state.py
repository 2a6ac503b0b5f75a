"""BasicSR's training state file (``<iter>.state``): what it may hold, reading it safely, writing it with its record.

A state is ``{'epoch', 'iter', 'optimizers', 'schedulers'}`` as basicsr 1.4.2's ``BaseModel.save_training_state``
writes it, plus, from the plugin's entry points, ``written_by``: the record of the run that wrote it
(:func:`~ranksrgan_plugin.utils.training_state_fit.training_state_record`), which a resume compares
(:mod:`ranksrgan_plugin.utils.training_state_fit`).
"""
import os.path as osp
import time
from typing import Any, Dict, Mapping

from ..checkpoints import read_checkpoint
from .atomic_files import save_torch_atomically
from .training_state_fit import RECORD_KEY, training_state_record


def training_state_globals() -> list:
    """What basicsr 1.4.2's ``BaseModel.save_training_state`` pickles besides tensors and plain Python data.

    Optimizer state_dicts hold tensors, numbers, tuples and None; BasicSR's schedulers (``MultiStepRestartLR``,
    ``CosineAnnealingRestartLR``) store their whole ``__dict__`` but the optimizer, i.e. numbers, lists and,
    for the milestones, a ``collections.Counter``.
    """
    import collections

    return [collections.Counter]


def read_training_state(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """A training state loaded with the safe loader and :func:`training_state_globals`.

    A file holding anything else (a pickled callable, a class) raises
    :class:`~ranksrgan_plugin.checkpoints.RefusedCheckpointError` naming the file and the refused
    type, and nothing of it runs.
    """
    return read_checkpoint(path, training_state_globals(), map_location=map_location)


def training_state(model: Any, epoch: int, current_iter: int) -> Dict[str, Any]:
    """What ``BaseModel.save_training_state`` (basicsr 1.4.2) saves, plus the record of what wrote it.

    ``{'epoch', 'iter', 'optimizers', 'schedulers'}`` as upstream, and ``written_by``: the options'
    ``model_type``, ``name`` and network types, which a later resume compares. Upstream's resume ignores
    the extra entry.
    """
    return {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in model.optimizers],
            'schedulers': [s.state_dict() for s in model.schedulers], RECORD_KEY: training_state_record(model.opt)}


def write_training_state(opt: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """``state`` written as ``path.training_states/<iter>.state`` with upstream's three tries (basicsr 1.4.2).

    Written atomically: upstream writes in place, so a job killed mid-write left a truncated newest state,
    which ``--auto_resume`` then picks."""
    from basicsr.utils import get_root_logger

    save_path = osp.join(opt['path']['training_states'], f"{state['iter']}.state")
    for remaining in (2, 1, 0):  # upstream: "avoid occasional writing errors"
        try:
            save_torch_atomically(state, save_path)
            return
        except Exception as error:
            get_root_logger().warning(f'Save training state error: {error}, remaining retry times: {remaining}')
            if remaining:
                time.sleep(1)
    get_root_logger().warning(f'Still cannot save {save_path}. Just ignore it.')
