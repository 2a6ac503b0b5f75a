"""One Ranker checkpoint rule (issue 33 item 3): every option file and config that trains RankSRGAN against a Ranker
the user trained takes that Ranker's last checkpoint (net_r_latest.pth), as tools/reproduce.py does; none takes the
best-SROCC one, chosen on a val split whose patches overlap the training ones (docs/fidelity.md R11)."""
import re
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
TRAINED_RANKER = re.compile(r'experiments/Ranker_[^/]+/models/(net_r_\w+)\.pth')


def ranker_paths_of_option_file(path: Path) -> list:
    options = yaml.safe_load(path.read_text(encoding='utf-8'))
    paths = [options.get('path', {}).get('pretrain_network_r')]
    paths += [item.get('path') for item in options.get('rankers') or []]
    return [p for p in paths if p]


def ranker_paths_of_config(path: Path) -> list:
    model = Config.fromfile(str(path)).model
    paths = [model.get('ranker_checkpoint')]
    paths += [item.get('path') or item.get('ranker_checkpoint') for item in model.get('rankers') or []]
    return [p for p in paths if p]


RANKSRGAN_FILES = sorted((REPO / 'options').glob('train_Rank*GAN*.yml'))
MMAGIC_CONFIGS = sorted(p for p in (REPO / 'options' / 'mmagic').glob('rank*gan*.py') if 'test' not in p.name)


@pytest.mark.parametrize('path', RANKSRGAN_FILES + MMAGIC_CONFIGS, ids=lambda p: p.name)
def test_a_trained_ranker_is_taken_at_its_last_checkpoint(path):
    paths = ranker_paths_of_option_file(path) if path.suffix == '.yml' else ranker_paths_of_config(path)
    assert paths, path
    checkpoints = [match.group(1) for match in map(TRAINED_RANKER.search, paths) if match]
    assert all(name == 'net_r_latest' for name in checkpoints), paths


def test_the_hr_files_of_both_toolboxes_take_the_same_ranker():
    basicsr = ranker_paths_of_option_file(REPO / 'options' / 'train_RankSRGAN_HR.yml')
    mmagic = ranker_paths_of_config(REPO / 'options' / 'mmagic' / 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-hr.py')
    assert basicsr == mmagic == ['experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth']
