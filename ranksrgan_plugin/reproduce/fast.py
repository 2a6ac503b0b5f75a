"""The road's fast settings (``tools/reproduce.py --fast``): the speed options in every training stage.

The paper's road trains in fp32 with the paper's loader. ``--fast`` adds, in the Ranker and RankSRGAN stages,
the options of docs/fidelity.md T1-T6: bf16 autocast (``train.precision``), channels-last memory format,
``torch.compile`` (on CUDA only: on the CPU it would spend minutes compiling the rehearsal's two iterations),
fused Adam (foreach off CUDA) and, for BasicSR's RankSRGAN, the raw-image cache (``RawPairedImageDataset``,
the same crops for the same seed). MMagic's RankSRGAN gets bf16 (``AnyDeviceAmpOptimWrapper``, no gradient
scaler) only: its loader and model take none of the others. The experiments get their own names
(``<name>_fast``) so that a fast road never resumes an fp32 run of the same options, and the road its own
folder (``<variant>_fast``); the report says which settings ran and that they are not the paper's fp32.
"""
import os.path as osp
from typing import Any, Dict, List

from .layout import RoadLayout
from .road import RoadPlan

PAPER, FAST = 'paper', 'fast'
SUFFIX = '_fast'


def basicsr_fast_values(cuda: bool) -> Dict[str, Any]:
    """The ``train:`` speed options of a BasicSR training stage under ``--fast``."""
    return {'train.precision': 'bf16', 'train.channels_last': True, 'train.compile': cuda,
            'train.fused_optimizers': True}


def mmagic_fast_values() -> Dict[str, Any]:
    """bf16 for both optimisers of MMagic's RankSRGAN (mmengine's autocast; no scaler: compat.mmagic)."""
    values: Dict[str, Any] = {}
    for name in ('generator', 'discriminator'):
        values.update({f'optim_wrapper.{name}.type': 'AnyDeviceAmpOptimWrapper',
                       f'optim_wrapper.{name}.dtype': 'bfloat16'})
    return values


def raw_cache_folder(layout: RoadLayout) -> str:
    """Where the RankSRGAN stage's decoded DIV2K copies go (about 7.1 GB for DIV2K train HR + X4 LR)."""
    return osp.join(layout.root, 'raw_cache', 'DIV2K_train')


def fast_settings(toolbox: str, cuda: bool) -> List[str]:
    """What ``--fast`` turns on, per stage, as the report's header says it."""
    compiled = 'torch.compile' if cuda else 'no torch.compile (CUDA only)'
    basicsr = f'bf16 autocast, channels_last, {compiled}, fused Adam' + ('' if cuda else ' (foreach off CUDA)')
    ranksrgan = (f'{basicsr}, raw-image cache' if toolbox == 'basicsr' else
                 'bf16 autocast (MMagic: AnyDeviceAmpOptimWrapper, no gradient scaler; nothing else)')
    return [f'Ranker: {basicsr}', f'RankSRGAN: {ranksrgan}']


def experiment_names(layout: RoadLayout) -> Dict[str, Dict[str, Any]]:
    """Per training stage, the fast run's own experiment (BasicSR ``name``, MMagic ``experiment_name``)."""
    names = {'ranker': {'name': layout.read_options('ranker')['name'] + SUFFIX}}
    if layout.toolbox == 'basicsr':
        names['ranksrgan'] = {'name': layout.read_options('ranksrgan')['name'] + SUFFIX}
    else:
        from .mmagic_stages import config_file, read_config

        config = config_file(layout)
        base = read_config(config).get('experiment_name') or osp.splitext(osp.basename(config))[0]
        names['ranksrgan'] = {'experiment_name': base + SUFFIX}
    return names


def fast_plan(plan: RoadPlan, layout: RoadLayout, cuda: bool) -> RoadPlan:
    """``plan`` with the fast settings under its own overrides (a rehearsal's iteration counts win)."""
    names = experiment_names(layout)
    ranksrgan = mmagic_fast_values() if layout.toolbox == 'mmagic' else {
        **basicsr_fast_values(cuda), 'datasets.train.type': 'RawPairedImageDataset',
        'datasets.train.raw_cache': raw_cache_folder(layout)}
    fast = {'ranker': {**basicsr_fast_values(cuda), **names['ranker']},
            'ranksrgan': {**ranksrgan, **names['ranksrgan']}}
    overrides = {stage: {**fast.get(stage, {}), **plan.overrides.get(stage, {})}
                 for stage in {*fast, *plan.overrides}}
    return RoadPlan(overrides=overrides, kill_after=dict(plan.kill_after), rehearsal=plan.rehearsal,
                    notes=[*plan.notes, 'FAST: ' + '; '.join(fast_settings(layout.toolbox, cuda))
                           + ". Not the paper's fp32: these numbers are not the paper road's (docs/fidelity.md "
                           'T1-T6).'], settings=FAST)
