"""RankSRGANModel: frozen Ranker, rank-content loss, basicsr/train.py runs, resume, CPU DDP."""
import copy
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from torchrun_retry import run_torchrun

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.utils.training_logs import ranker_monitor_log
from ranksrgan_plugin.utils.training_state import read_training_state

REPO_ROOT = Path(__file__).resolve().parents[1]
RANKER_OPT = {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 16, 16], 'num_hidden': 8}


def _write_paired_images(root: Path, count: int = 4, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    (root / 'gt').mkdir(parents=True)
    (root / 'lq').mkdir()
    for i in range(count):
        gt = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(root / 'gt' / f'img{i}.png'), gt)
        cv2.imwrite(str(root / 'lq' / f'img{i}.png'), cv2.resize(gt, (size // 4, size // 4), cv2.INTER_AREA))


@pytest.fixture
def workspace(tmp_path):
    """A tiny paired dataset, a saved Ranker checkpoint and a copy of basicsr/train.py under tmp_path."""
    _write_paired_images(tmp_path / 'data')
    torch.manual_seed(0)
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               tmp_path / 'ranker.pth')
    (tmp_path / 'basicsr').mkdir()
    shutil.copy(REPO_ROOT / 'basicsr' / 'train.py', tmp_path / 'basicsr' / 'train.py')
    return tmp_path


def tiny_options(root: Path, total_iter: int = 4, perceptual: bool = True) -> dict:
    dataset = {'type': 'PairedImageDataset', 'dataroot_gt': str(root / 'data' / 'gt'),
               'dataroot_lq': str(root / 'data' / 'lq'), 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}}
    return {
        'name': 'tiny_ranksrgan', 'model_type': 'RankSRGANModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1,
        'datasets': {
            'train': {**dataset, 'name': 'tiny', 'gt_size': 32, 'use_hflip': True, 'use_rot': True,
                      'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
            'val': {**dataset, 'name': 'tiny_val'},
        },
        'network_g': {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 1, 'upscale': 4},
        'network_d': {'type': 'VGGStyleDiscriminatorAnySize', 'num_feat': 8, 'input_size': 32},
        'network_r': dict(RANKER_OPT),
        'path': {'pretrain_network_g': None, 'pretrain_network_r': str(root / 'ranker.pth'), 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': total_iter,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'perceptual_opt': ({'type': 'VGGPerceptualLoss', 'vgg_weights': None, 'layer_weights': {'conv2_2': 1.0}}
                               if perceptual else None),
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 5e-3},
            'rank_opt': {'type': 'RankContentLoss', 'loss_weight': 0.03},
        },
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def _build(options: dict):
    opt = copy.deepcopy(options)
    for phase, dataset_opt in opt['datasets'].items():
        dataset_opt['phase'] = phase.split('_')[0]
    return build_model(opt)


def _tiny_batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(2, 3, 8, 8, generator=generator), 'gt': torch.rand(2, 3, 32, 32, generator=generator)}


@pytest.mark.parametrize('batchnorm', ['batch', 'running'])
def test_ranker_is_frozen_and_unchanged_by_training(workspace, batchnorm):
    options = tiny_options(workspace, perceptual=False)
    options['train']['ranker_batchnorm'] = batchnorm
    model = _build(options)
    ranker_state = copy.deepcopy(model.net_r.state_dict())
    bns = [m for m in model.net_r.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.training == (batchnorm == 'batch') for bn in bns)
    assert not any(p.requires_grad for p in model.net_r.parameters())
    for step in range(1, 4):
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
    for key, value in model.net_r.state_dict().items():
        assert torch.equal(value, ranker_state[key]), key  # weights and BN running statistics
    assert all(p.grad is None for p in model.net_r.parameters())
    assert all(bn.training == (batchnorm == 'batch') for bn in bns)
    assert {'l_g_rank', 'out_r', 'l_g_gan', 'l_g_pix', 'l_d_real', 'l_d_fake'} <= set(model.log_dict)
    assert model.log_dict['l_g_rank'] > 0


def test_rank_loss_gradient_reaches_generator_not_ranker(workspace):
    options = tiny_options(workspace, perceptual=False)
    options['train']['pixel_opt'] = None
    options['train']['gan_opt']['loss_weight'] = 0.0  # only the rank-content loss drives the generator
    model = _build(options)
    model.feed_data(_tiny_batch())
    model.output = model.net_g(model.lq)
    model.net_d.requires_grad_(False)
    model.generator_losses({}).backward()
    generator_grads = [p.grad for p in model.net_g.parameters()]
    assert all(g is not None for g in generator_grads)
    assert sum(g.abs().sum().item() for g in generator_grads) > 0
    assert all(p.grad is None for p in model.net_r.parameters())


def test_rank_content_loss_value_in_model(workspace):
    model = _build(tiny_options(workspace, perceptual=False))
    model.feed_data(_tiny_batch())
    model.output = model.net_g(model.lq)
    losses = {}
    model.generator_losses(losses)
    with torch.no_grad():
        expected = 0.03 * torch.sigmoid(model.net_r(model.output)).sum()  # the default: the original sum
    assert torch.allclose(losses['l_g_rank'], expected)


def test_missing_ranker_path_is_a_clear_error(workspace):
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_r'] = None
    with pytest.raises(ValueError, match='pretrain_network_r'):
        _build(options)
    options['path']['pretrain_network_r'] = str(workspace / 'absent.pth')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        _build(options)


def test_rrdbnet_generator_by_options_alone(workspace):
    options = tiny_options(workspace, perceptual=False)
    options['network_g'] = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                            'num_grow_ch': 4}
    model = _build(options)
    model.feed_data(_tiny_batch())
    model.optimize_parameters(1)
    assert model.output.shape == (2, 3, 32, 32)
    assert model.log_dict['l_g_rank'] > 0


def _run(root: Path, options: dict, *args: str, launcher: tuple = ()) -> str:
    opt_file = root / 'tiny_ranksrgan.yml'
    clean = {k: v for k, v in options.items() if k not in ('is_train', 'dist', 'rank', 'world_size')}
    opt_file.write_text(yaml.safe_dump(clean))
    command = [*launcher, str(root / 'basicsr' / 'train.py'), '-opt', str(opt_file), *args]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = run_torchrun(command, cwd=root, timeout=600, env=env)  # one retry on gloo's teardown abort only
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _log(root: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted((root / 'experiments' / 'tiny_ranksrgan').glob('train_*.log')))


def test_train_then_auto_resume_through_basicsr_train(workspace):
    _run(workspace, tiny_options(workspace, total_iter=4), launcher=(sys.executable,))
    models = workspace / 'experiments' / 'tiny_ranksrgan' / 'models'
    states = workspace / 'experiments' / 'tiny_ranksrgan' / 'training_states'
    assert {p.name for p in models.iterdir()} >= {'net_g_2.pth', 'net_g_4.pth', 'net_d_4.pth', 'net_g_latest.pth'}
    assert not any(p.name.startswith('net_r') for p in models.iterdir())  # the frozen Ranker is never saved
    assert (states / '4.state').is_file()
    log = _log(workspace)
    assert 'l_g_rank' in log and 'out_r' in log and re.search(r'# psnr: [\d.]+', log)
    assert re.search(r'gt_r: \S+ out_beats_gt: \S+', log)  # the Ranker-exploitation monitor, on logged steps
    monitor = ranker_monitor_log(str(workspace / 'experiments' / 'tiny_ranksrgan'))
    assert [point['iter'] for point in monitor['points']] == [1, 2, 3, 4]
    assert all(0 <= point['out_beats_gt'] <= 1 for point in monitor['points'])

    _run(workspace, tiny_options(workspace, total_iter=6), '--auto_resume', launcher=(sys.executable,))
    log = _log(workspace)
    assert re.search(r'Resuming training from epoch: \d+, iter: 4\.', log)
    # the Ranker still comes from path.pretrain_network_r, not from a net_r_4.pth BasicSR never wrote
    assert log.count(f"Frozen Ranker RankerVGG loaded from {workspace / 'ranker.pth'}") == 2
    assert (models / 'net_g_6.pth').is_file()


def test_resume_restores_optimizer_state(workspace):
    _run(workspace, tiny_options(workspace, total_iter=4, perceptual=False), launcher=(sys.executable,))
    # the safe loader with BasicSR's training-state allowlist reads what BasicSR saved
    state = read_training_state(str(workspace / 'experiments' / 'tiny_ranksrgan' / 'training_states' / '4.state'))
    assert state['iter'] == 4
    model = _build(tiny_options(workspace, perceptual=False))
    model.resume_training(state)
    for saved, optimizer in zip(state['optimizers'], model.optimizers):
        restored = optimizer.state_dict()
        assert restored['param_groups'] == saved['param_groups']
        for index, param_state in saved['state'].items():
            for name, value in param_state.items():
                assert torch.equal(torch.as_tensor(restored['state'][index][name]), torch.as_tensor(value))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_process_cpu_ddp_through_torchrun(workspace):
    options = tiny_options(workspace, total_iter=3, perceptual=False)
    options['val']['val_freq'] = 3
    options['logger']['save_checkpoint_freq'] = 3
    torchrun = (sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                f'--master_port={_free_port()}')
    output = _run(workspace, options, '--launcher', 'pytorch', launcher=torchrun)
    log = _log(workspace)
    assert 'World size (gpu number): 2' in log, output[-2000:]
    assert (workspace / 'experiments' / 'tiny_ranksrgan' / 'models' / 'net_g_3.pth').is_file()
