"""Workarounds for upstream defects, in one place.

Each function names the defect it works around and the versions it applies to. They are applied
once, when ``ranksrgan_plugin`` is imported (before the first ``import basicsr``), and each is a
no-op where the upstream code is already fixed.
"""
import importlib
import os.path as osp
import sys
from typing import Any, Dict, Optional

import torch


def alias_torchvision_functional_tensor() -> None:
    """basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (basicsr/data/degradations.py).

    torchvision 0.17 renamed it ``_functional_tensor``; without the alias ``import basicsr`` fails.
    Fixed on BasicSR master after 1.4.2, never released.
    """
    old_name = 'torchvision.transforms.functional_tensor'
    if old_name in sys.modules:
        return
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


def load_resume_state_any_device(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Replacement for ``basicsr.train.load_resume_state`` (basicsr 1.4.2).

    Upstream calls ``torch.cuda.current_device()`` unconditionally, so ``--auto_resume`` and
    ``path.resume_state`` crash on a CPU-only machine; it also looks for ``experiments/<name>``
    relative to the working directory instead of the experiment's own ``training_states`` folder.
    Same behaviour otherwise: the newest ``<iter>.state`` wins and ``check_resume`` rewrites the
    ``pretrain_network_*`` paths.
    """
    from basicsr.utils import check_resume, scandir

    resume_state_path = opt['path'].get('resume_state')
    if opt.get('auto_resume'):
        state_dir = opt['path']['training_states']
        if osp.isdir(state_dir):
            iters = [int(name.split('.state')[0]) for name in scandir(state_dir, suffix='state', recursive=False)]
            if iters:
                resume_state_path = osp.join(state_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = resume_state_path
    if not resume_state_path:
        return None
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    resume_state = torch.load(resume_state_path, map_location=device, weights_only=False)
    check_resume(opt, resume_state['iter'])
    return resume_state


def patch_basicsr_train() -> None:
    """Install the fixes that concern ``basicsr.train.train_pipeline`` (see the functions above)."""
    import basicsr.train

    basicsr.train.load_resume_state = load_resume_state_any_device


def apply() -> None:
    """Apply the import-time workarounds (called by ``ranksrgan_plugin/__init__.py``)."""
    alias_torchvision_functional_tensor()
