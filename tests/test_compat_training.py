"""BasicSR training defects worked around through the plugin's entry points: a training set smaller than one
batch is refused (upstream trains 0 iterations and exits 0), and the ETA is never negative."""
import os.path as osp
import subprocess
import sys
from unittest import mock

import cv2
import numpy as np
import yaml

from ranksrgan_plugin.compat.basicsr import resume_aware_message_logger


def write_pairs(folder, count):
    rng = np.random.default_rng(0)
    for kind, size in (('gt', 64), ('lq', 16)):
        (folder / kind).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(folder / kind / f'{i}.png'), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def sr_options(folder, batch):
    return {
        'name': 'too_small', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'three_photos', 'type': 'PairedImageDataset', 'dataroot_gt': str(folder / 'gt'),
            'dataroot_lq': str(folder / 'lq'), 'io_backend': {'type': 'disk'}, 'gt_size': 64, 'use_hflip': False,
            'use_rot': False, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': 1,
            'prefetch_mode': None}},
        'network_g': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10],
                                                                          'gamma': 0.5},
                  'total_iter': 2, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def train(tmp_path, batch):
    write_pairs(tmp_path / 'data', 3)
    options = tmp_path / 'options.yml'
    options.write_text(yaml.safe_dump(sr_options(tmp_path / 'data', batch)))
    return subprocess.run([sys.executable, '-m', 'ranksrgan_plugin.train', '-opt', str(options)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_training_set_smaller_than_a_batch_is_refused(tmp_path):
    run = train(tmp_path, batch=8)
    assert run.returncode != 0
    assert 'TrainingSetTooSmallError' in run.stderr
    assert "'three_photos'" in run.stderr and 'holds 3 items' in run.stderr
    assert 'batch_size_per_gpu 8' in run.stderr
    assert not osp.exists(tmp_path / 'experiments' / 'too_small' / 'models' / 'net_g_latest.pth')


def test_training_set_of_one_batch_trains(tmp_path):
    run = train(tmp_path, batch=3)
    assert run.returncode == 0, run.stderr[-2000:]
    assert osp.isfile(tmp_path / 'experiments' / 'too_small' / 'models' / 'net_g_latest.pth')


def eta_line(start_iter, current_iter, total_iter, elapsed):
    opt = {'name': 'eta', 'logger': {'print_freq': 1, 'use_tb_logger': False}, 'train': {'total_iter': total_iter}}
    logger = resume_aware_message_logger()(opt, start_iter)
    logger.logger = mock.Mock()
    logger.start_time -= elapsed
    logger({'epoch': 0, 'iter': current_iter, 'lrs': [1e-4], 'time': 1.0, 'data_time': 0.1})
    return logger.logger.info.call_args[0][0]


def test_eta_after_resume_is_not_negative():
    # resumed at 2 of 3 (upstream: eta -1 day, 23:59:..); one iteration ran in 60 s, none is left
    assert '[eta: 0:00:00,' in eta_line(start_iter=2, current_iter=3, total_iter=3, elapsed=60)


def test_eta_counts_this_runs_iterations():
    # resumed at 100, at 110 after 100 s: 10 s per iteration, 90 left
    assert '[eta: 0:15:00,' in eta_line(start_iter=100, current_iter=110, total_iter=200, elapsed=100)
