"""Where the paper road reads and writes: the data layout of docs/reproduce.md, the external files, the outputs.

The paper's option files name their inputs relative to the repository (``datasets/...``,
``experiments/pretrained_models/...``); :meth:`RoadLayout.relocate` moves those prefixes to the
road's ``data`` and ``pretrained`` folders, so the option files run as they are wherever the data lie.
"""
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml

from .variants import Variant

DATA_PREFIX = 'datasets/'
PRETRAINED_PREFIX = 'experiments/pretrained_models/'
# name -> (HR folder, LR folder) under the data root; PIRM test is the original's validation set
TEST_SETS: Dict[str, Tuple[str, str]] = {
    'PIRM_test': ('PIRM/test/HR', 'PIRM/test/LR'),
    'Set14': ('Set14/GTmod12', 'Set14/LRbicx4'),
    'BSDS100': ('BSDS100/GTmod12', 'BSDS100/LRbicx4'),
}
REQUIRED_TEST_SET = 'PIRM_test'
SRRESNET_INIT = 'SRResNet_bicx4_in3nf64nb16.pth'
TOOLBOXES = ('basicsr', 'mmagic')
# the trained stages whose original batch is a total kept over --gpus processes: stage -> name in messages
BATCHED_STAGES = {'ranker': 'Ranker', 'ranksrgan': 'RankSRGAN'}
VGG19_FILE = 'vgg19-dcbb9e9d.pth'


@dataclass
class RoadLayout:
    """The folders of one road.

    Args:
        repo: the repository root (its ``options/`` and ``tools/``).
        variant: which road (:data:`~.variants.VARIANTS`).
        data: the datasets root (``datasets/`` of the option files).
        pretrained: the external weights (``experiments/pretrained_models/`` of the option files).
        output: the road's own files: options as run, logs, state, converted weights, SR images, report.
        root: BasicSR's ``root_path``: ``experiments/<name>`` and ``tb_logger/<name>`` go under it.
        gpus: processes per stage (torchrun when > 1); the per-GPU batch keeps the original's total batch.
        ma_model: Ma et al.'s ``model.mat`` (the -M / -PI variants), else the usual lookup.
        test_sets: test sets asked for by name (they must exist); the others are tested when present.
        toolbox: which toolbox trains RankSRGAN (``basicsr`` or ``mmagic``); ``output`` should be the
            variant's folder for BasicSR and ``<variant>_mmagic`` for MMagic (:func:`road_folder`), so that
            the two roads' states never mix.
    """

    repo: str
    variant: Variant
    data: str
    pretrained: str
    output: str
    root: str
    gpus: int = 1
    ma_model: Optional[str] = None
    test_sets: Tuple[str, ...] = field(default_factory=tuple)
    toolbox: str = 'basicsr'

    def data_path(self, relative: str) -> str:
        return osp.join(self.data, relative)

    @property
    def div2k_hr(self) -> str:
        return self.data_path('DIV2K/DIV2K_train_HR')

    @property
    def div2k_lr(self) -> str:
        return self.data_path('DIV2K/DIV2K_train_LR_bicubic/X4')

    @property
    def flickr2k_hr(self) -> str:
        return self.data_path('Flickr2K/Flickr2K_HR')

    @property
    def state_file(self) -> str:
        return osp.join(self.output, 'state.json')

    def log_file(self, stage: str) -> str:
        return osp.join(self.output, 'logs', f'{stage}.log')

    def options_as_run(self, stage: str) -> str:
        return osp.join(self.output, 'options', f'{stage}.yml')

    def options_file(self, stage: str) -> str:
        """The repository's options file of ``stage`` (``rank_dataset``, ``ranker``, ``ranksrgan``)."""
        return osp.join(self.repo, 'options', getattr(self.variant, stage))

    def read_options(self, stage: str) -> Dict[str, Any]:
        """The options of ``stage`` as the repository's file holds them, relocated to this layout."""
        with open(self.options_file(stage), encoding='utf-8') as f:
            return self.relocate(yaml.safe_load(f))

    def relocate(self, value: Any) -> Any:
        """``value`` with every ``datasets/...`` and ``experiments/pretrained_models/...`` string moved here."""
        if isinstance(value, dict):
            return {key: self.relocate(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.relocate(item) for item in value]
        if isinstance(value, str) and value.startswith(PRETRAINED_PREFIX):
            return osp.join(self.pretrained, value[len(PRETRAINED_PREFIX):])
        if isinstance(value, str) and value.startswith(DATA_PREFIX):
            return osp.join(self.data, value[len(DATA_PREFIX):])
        return value

    def test_set_folders(self, name: str) -> Tuple[str, str]:
        """(HR folder, LR folder) of a test set."""
        hr, lr = TEST_SETS[name]
        return self.data_path(hr), self.data_path(lr)

    def total_batches(self) -> Dict[str, Tuple[int, str]]:
        """The original's total batch of each trained stage and the options file that sets it
        (``datasets.train.batch_size_per_gpu``, which the road divides over ``gpus`` processes)."""
        return {what: (int(self.read_options(stage)['datasets']['train']['batch_size_per_gpu']),
                       getattr(self.variant, stage)) for stage, what in BATCHED_STAGES.items()}

    def gpus_problem(self) -> Optional[str]:
        """Why ``gpus`` cannot run this road, saying what would be valid; None when it can."""
        totals = self.total_batches()
        named = ' and '.join(f"the {what}'s total batch {total} ({options} datasets.train.batch_size_per_gpu)"
                             for what, (total, options) in totals.items())
        valid = valid_process_counts(total for total, _ in totals.values())
        hint = f'use one of {", ".join(map(str, valid))}, the divisors of {named}'
        if self.gpus < 1:
            return f'{self.gpus} is not a number of processes; {hint}.'
        undivided = [f"the {what}'s total batch {total}" for what, (total, _) in totals.items() if total % self.gpus]
        if undivided:
            return (f'{self.gpus} does not divide {" nor ".join(undivided)}, and the road keeps the original\'s '
                    f'total batch over the processes; {hint}.')
        return None

    def batchnorm_group_notes(self) -> List[str]:
        """What ``gpus`` changes in the original's BatchNorm statistics: one note per trained stage whose per-process
        batch is not a whole number of its ``train.batchnorm_group`` (docs/fidelity.md S4, R6); none otherwise."""
        notes = []
        for stage, what in BATCHED_STAGES.items():
            options = self.read_options(stage)
            group = (options.get('train') or {}).get('batchnorm_group')
            per_process = int(options['datasets']['train']['batch_size_per_gpu']) // max(self.gpus, 1)
            if group and per_process % group:
                notes.append(f"--gpus {self.gpus}: each {what} process holds {per_process} images, so its BatchNorm "
                             f"statistics are over {min(per_process, per_process % group or group)}, not the "
                             f"original's {group} (its 2 GPUs; docs/fidelity.md S4, R6); 1 or 2 GPUs keep them.")
        return notes

    def per_gpu_batch(self, total: int, what: str) -> int:
        """The per-process batch that keeps the original's ``total`` batch over ``gpus`` processes."""
        if self.gpus < 1:
            raise ValueError(f'--gpus {self.gpus} is not a number of processes; use 1 or more.')
        if total % self.gpus:
            raise ValueError(f'--gpus {self.gpus} does not divide the {what} total batch {total}: the original\'s '
                             'total batch cannot be kept; use a divisor of it.')
        return total // self.gpus


def valid_process_counts(totals: Iterable[int]) -> List[int]:
    """The process counts that divide every one of ``totals`` (the divisors of their greatest common divisor)."""
    common = math.gcd(*totals)
    return [n for n in range(1, common + 1) if common % n == 0]


def road_folder(output: str, variant: str, toolbox: str = 'basicsr', fast: bool = False) -> str:
    """The road's own folder under ``--output``: ``<output>/<variant>``, ``<output>/<variant>_mmagic`` for MMagic,
    ``..._fast`` with ``--fast``."""
    return osp.join(output, (variant if toolbox == 'basicsr' else f'{variant}_{toolbox}') + ('_fast' if fast else ''))
