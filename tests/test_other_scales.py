"""x2 and x3 end to end: a rank dataset at that scale, a Ranker and a RankSRGAN trained on it, and level networks of
another scale refused by name."""
import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from test_make_rank_dataset import photos  # noqa: F401  (fixture)
from test_ranksrgan_model import RANKER_OPT, _build, tiny_options

from ranksrgan_plugin.archs import RankerVGG, RankSRGANGenerator
from ranksrgan_plugin.checkpoints import CheckpointMismatchError
from ranksrgan_plugin.data import RankPairDataset
from ranksrgan_plugin.rank_dataset import RankDatasetBuilder, load_config
from ranksrgan_plugin.rank_dataset.levels import LevelError, NetworkLevel, matlab_bicubic


def test_level_network_of_another_scale_is_refused(tmp_path):
    weights = tmp_path / 'srgan_x4.pth'
    torch.save({'params': RankSRGANGenerator(num_feat=8, num_block=1, upscale=4).state_dict()}, weights)
    network = {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 1, 'upscale': 4}
    with pytest.raises(LevelError, match=r"Level 'srgan': the network RankSRGANGenerator .*upscales x4, the rank "
                                         r"dataset's `scale` is 2"):
        NetworkLevel('srgan', network, str(weights), scale=2, device='cpu')
    assert NetworkLevel('srgan', network, str(weights), scale=4, device='cpu').scale == 4


def write_pairs(root, scale, count=4, size=96):
    rng = np.random.default_rng(scale)
    (root / 'gt').mkdir(parents=True)
    (root / 'lq').mkdir()
    for i in range(count):
        gt = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(root / 'gt' / f'img{i}.png'), gt)
        cv2.imwrite(str(root / 'lq' / f'img{i}.png'), matlab_bicubic(gt, 1 / scale))


@pytest.mark.parametrize('scale', [2, 3])
def test_rank_dataset_ranker_and_ranksrgan_at_scale(tmp_path, photos, scale):  # noqa: F811
    hr = tmp_path / 'hr'
    hr.mkdir()
    for name in ('astronaut', 'coffee', 'chelsea'):
        cv2.imwrite(str(hr / f'{name}.png'), cv2.imread(photos[name]))
    cfg = load_config({
        'output': str(tmp_path / 'rank'), 'hr': str(hr), 'scale': scale, 'device': 'cpu', 'storage': 'folder',
        'levels': [{'name': 'bicubic', 'type': 'builtin', 'method': 'bicubic'},
                   {'name': 'sharpened', 'type': 'builtin', 'method': 'sharpened'}, {'name': 'hr', 'type': 'hr'}],
        'patch_size': 204, 'stride': 102, 'grid': 'full', 'sharpness_threshold': None, 'min_gap': 0,
        'val_fraction': 0.34, 'val_split_by': 'image'})
    manifest = RankDatasetBuilder(cfg, progress=False).run()
    assert manifest['inputs']['scale'] == scale and manifest['splits']['train']['num_keys'] >= 2
    ranker = build_model({
        'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1,
        'datasets': {}, 'network_r': dict(RANKER_OPT), 'path': {'pretrain_network_r': None},
        'train': {'rank_opt': {'type': 'RankLoss', 'margin': 0.5}, 'optim_r': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}}})
    pairs = RankPairDataset({'name': 'train', 'dataroot': str(tmp_path / 'rank' / 'train'), 'phase': 'train'})
    batch = torch.utils.data.default_collate([pairs[0], pairs[1 % len(pairs)]])
    for step in (1, 2):
        ranker.feed_data(batch)
        ranker.optimize_parameters(step)
    assert np.isfinite(ranker.log_dict['l_rank'])
    torch.save({'params': ranker.net_r.state_dict()}, tmp_path / 'ranker.pth')
    write_pairs(tmp_path / 'data', scale)
    options = tiny_options(tmp_path, perceptual=False)
    options['scale'] = scale
    options['network_g'] = {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 1, 'upscale': scale}
    options['network_d']['input_size'] = 48
    options['datasets']['train']['gt_size'] = 48
    model = _build(copy.deepcopy(options))
    lq = torch.rand(2, 3, 48 // scale, 48 // scale)
    for step in (1, 2):
        model.feed_data({'lq': lq, 'gt': torch.rand(2, 3, 48, 48)})
        model.optimize_parameters(step)
    assert model.output.shape[-1] == 48 and np.isfinite(model.log_dict['l_g_rank'])


def _flat(options, prefix=''):
    flat = {}
    for key, value in options.items():
        flat.update(_flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
    return flat


@pytest.mark.parametrize('scale', [2, 3])
def test_option_files_at_scale_change_only_the_scale(scale):
    options = Path(__file__).resolve().parents[1] / 'options'
    x4, other = (_flat(yaml.safe_load((options / f'train_RankSRGAN_NIQE{suffix}.yml').read_text()))
                 for suffix in ('', f'_x{scale}'))
    gt = other['datasets.train.gt_size']
    assert other['scale'] == other['network_g.upscale'] == scale and gt % scale == 0
    assert other['network_d.input_size'] == gt and other['datasets.train.filename_tmpl'] == f'{{}}x{scale}'
    assert other['datasets.train.dataroot_lq'].endswith(f'X{scale}') and other['datasets.val.dataroot_lq'].endswith(
        f'LRbicx{scale}')
    assert all(other[f'val.metrics.{name}.crop_border'] == scale for name in ('psnr', 'psnr_y', 'niqe'))
    changed = {key for key in x4 if x4[key] != other.get(key)}
    assert changed <= {'name', 'scale', 'network_g.upscale', 'network_d.input_size', 'datasets.train.gt_size',
                       'datasets.train.dataroot_lq', 'datasets.train.filename_tmpl', 'datasets.val.name',
                       'datasets.val.dataroot_gt', 'datasets.val.dataroot_lq', 'path.pretrain_network_g',
                       'path.pretrain_network_r', 'val.metrics.psnr.crop_border', 'val.metrics.psnr_y.crop_border',
                       'val.metrics.niqe.crop_border'}
    rank = load_config(yaml.safe_load((options / f'rank_dataset_DF2K_NIQE_x{scale}.yml').read_text()))
    assert rank['scale'] == scale and rank['patch_size'] % scale == 0 and rank['stride'] % scale == 0
    assert all(level['network'].get('upscale', level['network'].get('scale')) == scale for level in rank['levels'])


def test_x4_generator_file_is_refused_by_an_x2_model(tmp_path):
    write_pairs(tmp_path / 'data', 4)
    torch.save({'params': RankSRGANGenerator(num_feat=8, num_block=1, upscale=4).state_dict()}, tmp_path / 'g_x4.pth')
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               tmp_path / 'ranker.pth')
    options = tiny_options(tmp_path, perceptual=False)
    options['scale'] = 2
    options['network_g'] = {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    options['path']['pretrain_network_g'] = str(tmp_path / 'g_x4.pth')
    with pytest.raises(CheckpointMismatchError, match=r'g_x4\.pth \(named by path\.pretrain_network_g\) does not fit '
                                                      r'RankSRGANGenerator: the file holds 2 weights the network does '
                                                      r'not have \(upconv2'):
        _build(options)
