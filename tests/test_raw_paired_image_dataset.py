"""RawPairedImageDataset: BasicSR's PairedImageDataset from images decoded once, the same items for the same seed."""
import os
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.data.paired_image_dataset import PairedImageDataset

from ranksrgan_plugin.data import RawPairedImageDataset


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    for kind, size in (('gt', (100, 120)), ('lq', (25, 30))):
        (tmp_path / kind).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / kind / f'{i:04d}.png'), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return tmp_path


def options(root, phase, **extra):
    return {'name': 'DIV2K', 'type': 'PairedImageDataset', 'dataroot_gt': str(root / 'gt'),
            'dataroot_lq': str(root / 'lq'), 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'phase': phase,
            'scale': 4, 'gt_size': 48, 'use_hflip': True, 'use_rot': True, **extra}


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_items_equal_upstreams_for_the_same_seed(pairs, phase):
    upstream = PairedImageDataset(options(pairs, phase))
    raw = RawPairedImageDataset(options(pairs, phase, raw_cache=str(pairs / 'cache')))
    assert len(os.listdir(pairs / 'cache')) == 6  # HR and LR of 3 images
    for index in range(len(upstream)):
        for seed in range(4):  # crops and flips / rotations
            random.seed(seed)
            expected = upstream[index]
            random.seed(seed)
            item = raw[index]
            assert torch.equal(item['gt'], expected['gt']) and torch.equal(item['lq'], expected['lq'])
            assert item['gt_path'] == expected['gt_path']


def test_cache_is_made_once_and_redone_for_a_changed_image(pairs):
    RawPairedImageDataset(options(pairs, 'train', raw_cache=str(pairs / 'cache')))
    first = {name: os.path.getmtime(pairs / 'cache' / name) for name in os.listdir(pairs / 'cache')}
    RawPairedImageDataset(options(pairs, 'train', raw_cache=str(pairs / 'cache')))
    assert {name: os.path.getmtime(pairs / 'cache' / name) for name in os.listdir(pairs / 'cache')} == first
    cv2.imwrite(str(pairs / 'gt' / '0001.png'), np.zeros((100, 120, 3), np.uint8))
    os.utime(pairs / 'gt' / '0001.png', ns=(1, 1))
    dataset = RawPairedImageDataset(options(pairs, 'val', raw_cache=str(pairs / 'cache')))
    assert len(os.listdir(pairs / 'cache')) == 6  # the changed image's old entry pruned
    index = next(i for i, item in enumerate(dataset.paths) if item['gt_path'].endswith('0001.png'))
    assert dataset[index]['gt'].abs().sum() == 0  # the new content, not the old copy
