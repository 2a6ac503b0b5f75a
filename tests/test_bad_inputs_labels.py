"""Bad labels, directions, option keys and patch sizes of rank datasets: refused by name before any work.

Labels (non-finite, all equal, tied), the split's direction against ``higher_is_better``, typos in the
rank-pair dataset's keys (BasicSR options, MMagic keywords) and the builder's, and patch sizes too
small for the label metric; the Ranker measures never report a perfect score over pairs without order.
"""
import hashlib
import json
import logging
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data import build_dataset
from rank_set_factory import DEFAULT_KEYS, DEFAULT_LEVELS, default_labels, make_rank_set
from test_train_ranker import _tiny_ranker_options
from tool_loader import load_tool

from ranksrgan_plugin.data.rank_dataset_format import RankDatasetError, rank_set_record
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset
from ranksrgan_plugin.iqa import niqe_batch
from ranksrgan_plugin.iqa.ma_features import ma_features_batch
from ranksrgan_plugin.metrics.rank_metrics import (
    batch_pair_accuracy,
    calculate_pair_accuracy,
    calculate_srocc,
    pair_accuracy_counts,
)
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker
from ranksrgan_plugin.rank_dataset import PATCH_METRIC_REGISTRY, RankDatasetBuilder, RankDatasetBuildError, load_config
from ranksrgan_plugin.rank_dataset.image_processor import drop_undefined_labels
from ranksrgan_plugin.train import train

BUILD_LEVELS = [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'hr', 'type': 'hr'}]


def options(root, phase='train', **extra):
    return {'name': 'rank_test', 'type': 'RankPairDataset', 'dataroot': str(root), 'phase': phase, **extra}


def refused(opt, *fragments):
    """RankPairDataset(opt) raises a RankDatasetError whose message holds every fragment."""
    with pytest.raises(RankDatasetError) as info:
        RankPairDataset(opt)
    for fragment in fragments:
        assert fragment in str(info.value), f'{fragment!r} not in {info.value}'
    return str(info.value)


def set_label(root, key, level, text):
    """Rewrite one label of ``root``'s labels.txt as ``text``; returns (path, line number)."""
    path = osp.join(root, 'labels.txt')
    with open(path, encoding='utf-8') as f:
        lines = f.readlines()
    line_no = next(i for i, line in enumerate(lines, 1) if line.split()[:2] == [key, level])
    lines[line_no - 1] = f'{key} {level} {text}\n'
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(lines)
    return path, line_no


# ---------------------------------------------------------------------------------------------- labels

@pytest.mark.parametrize('text', ['nan', 'NaN', 'inf', '-inf'])
def test_non_finite_label_is_refused_naming_file_line_key_and_level(tmp_path, text):
    root = make_rank_set(tmp_path / 'val', storage='folder')
    path, line_no = set_label(root, 'k002', 'srgan', text)
    for phase in ('train', 'val'):
        refused(options(root, phase), f'{path}:{line_no}', 'k002', 'srgan', 'not a finite number')


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_split_without_order_is_refused(tmp_path, phase):
    all_equal = {(key, level): 4.0 for key in DEFAULT_KEYS for level in DEFAULT_LEVELS}
    root = make_rank_set(tmp_path / 'train', storage='folder', labels=all_equal)
    refused(options(root, phase), osp.join(root, 'labels.txt'), 'equal labels', 'no order')
    # equal within every key but different across keys: still no pair to order
    per_key = {(key, level): float(i) for i, key in enumerate(DEFAULT_KEYS) for level in DEFAULT_LEVELS}
    other = make_rank_set(tmp_path / 'per_key', storage='folder', labels=per_key)
    refused(options(other, phase), 'no order')


def test_tied_pairs_are_counted_and_logged(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger('basicsr'), 'handlers', [caplog.handler])  # BasicSR's logger
    labels = default_labels(DEFAULT_KEYS, DEFAULT_LEVELS)
    labels[('k001', 'srgan')] = labels[('k001', 'esrgan')]  # one of 4 keys x 3 pairs tied
    root = make_rank_set(tmp_path / 'train', storage='folder', labels=labels)
    dataset = RankPairDataset(options(root))
    assert (dataset.num_ordered_pairs, dataset.num_tied_pairs) == (11, 1)
    assert '1 of 12 level pairs' in caplog.text and 'equal labels' in caplog.text


# ---------------------------------------------------------------------------------------------- direction

def test_rank_set_record_states_metric_direction_manifest_and_digest(tmp_path):
    root = make_rank_set(tmp_path / 'ma', storage='folder', higher_is_better=True, metric='ma')
    record = rank_set_record(root)
    manifest = osp.join(root, 'manifest.json')
    with open(manifest, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert record == {'metric': 'ma', 'higher_is_better': True, 'manifest': manifest, 'digest': digest}
    os.remove(manifest)
    assert rank_set_record(root) is None


@pytest.mark.parametrize('metric, manifest_direction', [('niqe', False), ('ma', True)])
def test_option_contradicting_the_manifest_is_refused_naming_both(tmp_path, metric, manifest_direction):
    root = make_rank_set(tmp_path / 'train', storage='folder', metric=metric, higher_is_better=manifest_direction)
    message = refused(options(root, higher_is_better=not manifest_direction), '`higher_is_better',
                      osp.join(root, 'manifest.json'), metric, 'contradicts')
    assert message.startswith("Dataset 'rank_test' (datasets.train)")
    assert RankPairDataset(options(root, higher_is_better=manifest_direction)).higher_is_better is manifest_direction
    # a hand-made split (no manifest) takes the option as given
    os.remove(osp.join(root, 'manifest.json'))
    hand_made = RankPairDataset(options(root, io_backend={'type': 'disk'}, levels=list(DEFAULT_LEVELS),
                                        higher_is_better=not manifest_direction))
    assert hand_made.higher_is_better is not manifest_direction


def test_mmagic_dataset_refuses_a_contradicting_direction_and_unknown_keywords(tmp_path):
    from mmagic.registry import DATASETS

    import ranksrgan_plugin.mmagic  # noqa: F401  (registers the MMagic classes)

    root = make_rank_set(tmp_path / 'train', storage='lmdb')  # NIQE: lower is better
    with pytest.raises(RankDatasetError, match=r'train_dataloader\.dataset.*contradicts.*manifest\.json.*niqe'):
        DATASETS.build(dict(type='RankPairDataset', data_root=root, higher_is_better=True))
    with pytest.raises(RankDatasetError, match=r"val_dataloader\.dataset.*'higher_is_beter' \(did you mean "
                                               r"'higher_is_better'\?\)"):
        DATASETS.build(dict(type='RankPairDataset', data_root=root, test_mode=True, higher_is_beter=True))
    with pytest.raises(RankDatasetError, match=r"'gt_szie' \(did you mean 'gt_size'\?\)"):
        DATASETS.build(dict(type='RankPairDataset', data_root=root, gt_szie=32))
    with pytest.raises(RankDatasetError, match=r"'data_rot' \(did you mean 'data_root'\?\)"):
        DATASETS.build(dict(type='RankPairDataset', data_rot=root))


# ---------------------------------------------------------------------------------------------- option keys

def test_basicsr_dataset_refuses_unknown_keys_and_takes_basicsr_own(tmp_path):
    root = make_rank_set(tmp_path / 'train', storage='folder')
    message = refused(options(root, higher_is_beter=True), "(datasets.train)",
                      "'higher_is_beter' (did you mean 'higher_is_better'?)")
    assert 'pair_order' in message  # lists what it takes
    refused(options(root, use_flip=True), "'use_flip' (did you mean 'use_hflip'?)")
    basicsr_keys = {'scale': 4, 'use_shuffle': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                    'dataset_enlarge_ratio': 1, 'prefetch_mode': None, 'pin_memory': False,
                    'persistent_workers': False, 'num_prefetch_queue': 1}
    assert len(build_dataset(options(root, **basicsr_keys))) == len(DEFAULT_KEYS)


def test_basicsr_dataset_refuses_missing_dataroot_bad_direction_type_and_oversized_crop(tmp_path):
    root = make_rank_set(tmp_path / 'train', storage='folder', size=40)
    opt = options(root)
    del opt['dataroot']
    refused(opt, '`dataroot`', 'required')
    refused(options(root, higher_is_better='yes'), '`higher_is_better`', "'yes'")
    refused(options(root, gt_size=48), '`gt_size` 48', '40')


# ---------------------------------------------------------------------------------------------- measures

def test_measures_over_labels_without_order_are_nan_not_perfect():
    with pytest.warns(UserWarning, match='labels are all equal'):
        assert np.isnan(calculate_srocc([0.1, 0.5, 0.9], [2.0, 2.0, 2.0]))
    with pytest.warns(UserWarning, match='undefined'):
        assert np.isnan(calculate_pair_accuracy([0.1, 0.5, 0.9, 0.3], [2.0, 2.0, 1.0, 1.0], ['a', 'a', 'b', 'b']))
    tied = torch.tensor([3.0, 3.0])
    assert torch.isnan(batch_pair_accuracy(torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.0]), tied, tied))
    # tied pairs are left out and counted: k0 ordered and right, k1 tied
    assert pair_accuracy_counts([0.9, 0.1, 0.2, 0.3], [2.0, 1.0, 5.0, 5.0], ['k0', 'k0', 'k1', 'k1']) == (1, 1, 1)


def test_evaluate_ranker_reports_pairs_measured_and_tied(tmp_path):
    labels = default_labels(DEFAULT_KEYS, DEFAULT_LEVELS)
    labels[('k003', 'srres')] = labels[('k003', 'srgan')]
    root = make_rank_set(tmp_path / 'val', storage='folder', labels=labels)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1))
    result = evaluate_ranker(net, root, device='cpu')
    assert (result['pairs_measured'], result['pairs_tied']) == (11, 1)
    with pytest.raises(RankDatasetError, match=r"'level' \(did you mean 'levels'\?\)"):
        evaluate_ranker(net, root, device='cpu', level=['srres', 'srgan'])


# ---------------------------------------------------------------------------------------------- BasicSR pipeline

@pytest.mark.parametrize('case', ['nan_val_label', 'all_equal_train_labels'])
def test_basicsr_train_refuses_bad_labels_before_training(tmp_path, monkeypatch, case):
    """``ranksrgan-train -opt <file>`` (BasicSR's train_pipeline), in-process."""
    train_labels = None
    if case == 'all_equal_train_labels':
        train_labels = {(key, level): 5.0 for key in DEFAULT_KEYS for level in DEFAULT_LEVELS}
    train_root = make_rank_set(tmp_path / 'rank' / 'train', storage='lmdb', labels=train_labels)
    val_root = make_rank_set(tmp_path / 'rank' / 'val', storage='folder', keys=['v000', 'v001'], seed=1)
    labels_file = osp.join(train_root if train_labels else val_root, 'labels.txt')
    expected = 'no order' if train_labels else f'{set_label(val_root, "v001", "esrgan", "nan")[1]}: label'
    opt_file = tmp_path / 'tiny.yml'
    opt_file.write_text(yaml.safe_dump(_tiny_ranker_options(train_root, val_root, total_iter=2)))
    monkeypatch.setattr(sys, 'argv', ['ranksrgan-train', '-opt', str(opt_file)])
    with pytest.raises(RankDatasetError) as info:
        train(str(tmp_path))
    assert labels_file in str(info.value) and expected in str(info.value)
    assert not list((tmp_path / 'experiments').glob('*/models/*.pth'))  # refused before any training


# ---------------------------------------------------------------------------------------------- builder options

def build_config(tmp_path, **extra):
    return {'output': str(tmp_path / 'out'), 'hr': str(tmp_path / 'hr'), 'levels': BUILD_LEVELS, 'device': 'cpu',
            **extra}


def test_builder_refuses_unknown_keys_with_the_closest_name(tmp_path):
    with pytest.raises(RankDatasetBuildError, match=r"unknown option 'patch_szie' \(did you mean 'patch_size'\?\)"):
        load_config(build_config(tmp_path, patch_szie=296))
    levels = [{'name': 'bicubic', 'type': 'builtin', 'methd': 'bicubic'}, {'name': 'hr', 'type': 'hr'}]
    with pytest.raises(RankDatasetBuildError, match=r"levels\[0\] \('bicubic'\).*'methd' \(did you mean 'method'"):
        load_config(build_config(tmp_path, levels=levels))
    with pytest.raises(RankDatasetBuildError, match=r"levels\[1\].*unknown level type 'hrr' \(did you mean 'hr'"):
        load_config(build_config(tmp_path, levels=[BUILD_LEVELS[0], {'name': 'hr', 'type': 'hrr'}]))
    with pytest.raises(RankDatasetBuildError, match=r"metric: unknown option 'crop_boder' \(did you mean "
                                                    r"'crop_border'\?\)"):
        load_config(build_config(tmp_path, metric={'type': 'niqe', 'crop_boder': 0}))
    with pytest.raises(RankDatasetBuildError, match=r"gap_metric: unknown metric type 'nqie' \(did you mean 'niqe'"):
        load_config(build_config(tmp_path, gap_metric={'type': 'nqie'}))


@pytest.mark.parametrize('key, value', [('min_gap', '0.1'), ('val_fraction', '0.1'), ('sharpness_threshold', 'off'),
                                        ('patch_size', '296'), ('stride', 14.8)])
def test_builder_refuses_values_of_the_wrong_type_by_name(tmp_path, key, value):
    with pytest.raises(RankDatasetBuildError, match=rf'`{key}` must be a (number|positive integer).*{value!r}'):
        load_config(build_config(tmp_path, **{key: value}))


@pytest.mark.parametrize('metric, crop_border, smallest', [
    ('niqe', 4, 200), ('niqe', 0, 192), ('ma', 4, 56), ('ma', 0, 48), ('pi', 4, 200)])
def test_patch_size_below_the_metric_minimum_is_refused_naming_option_and_minimum(tmp_path, metric, crop_border,
                                                                                 smallest):
    metric_opt = {'type': metric, 'crop_border': crop_border}
    with pytest.raises(RankDatasetBuildError, match=rf'`patch_size` \(--patch-size\) {smallest - 1} is too small for '
                                                    rf'the metric {metric}.*smallest patch_size that works is '
                                                    rf'{smallest}\.'):
        load_config(build_config(tmp_path, patch_size=smallest - 1, metric=metric_opt, min_gap=0))
    assert load_config(build_config(tmp_path, patch_size=smallest, metric=metric_opt, min_gap=0))['patch_size'] == \
        smallest
    # the minimum is measured on the real metric code: at it the metric is defined, one pixel less it is not
    # (NIQE: fewer than two 96-pixel blocks per side; Ma: its features need 48 pixels after the shave)
    assert PATCH_METRIC_REGISTRY.get(metric).min_patch_size(metric_opt) == smallest
    rng = np.random.default_rng(0)
    patch = cv2.GaussianBlur(rng.uniform(0, 255, (1, smallest, smallest, 3)).astype(np.float32)[0], (0, 0), 1)
    inner = smallest - 2 * crop_border
    if metric == 'ma':
        assert all(np.isfinite(v).all() for v in ma_features_batch(patch[None, :inner, :inner, 0], 'cpu').values())
        with pytest.raises(ValueError, match='too small'):
            ma_features_batch(patch[None, :inner - 1, :inner - 1, 0], 'cpu')
    else:
        assert np.isfinite(niqe_batch(patch[None], crop_border=crop_border, device='cpu')).all()
        assert inner // 96 == 2 and (inner - 1) // 96 == 1


def test_gap_metric_patch_size_is_checked_when_the_gap_filter_runs(tmp_path):
    ma = {'type': 'ma', 'crop_border': 4}
    with pytest.raises(RankDatasetBuildError, match=r'too small for the gap_metric niqe \(crop_border 0\).*is 192'):
        load_config(build_config(tmp_path, patch_size=120, metric=ma))
    assert load_config(build_config(tmp_path, patch_size=120, metric=ma, min_gap=0))['patch_size'] == 120


def test_cli_patch_size_too_small_exits_2_before_the_build(tmp_path, capsys):
    hr = tmp_path / 'hr'
    hr.mkdir()
    cv2.imwrite(str(hr / 'img.png'), np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        load_tool('make_rank_dataset').main(['--hr', str(hr), '--output', str(tmp_path / 'out'), '--levels',
                                             'bicubic,hr', '--patch-size', '150', '--device', 'cpu', '--no-progress'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert '`patch_size` (--patch-size) 150 is too small for the metric niqe' in err
    assert 'smallest patch_size that works is 200' in err
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------------------------------------- builder labels

def test_undefined_labels_are_dropped_and_counted(tmp_path, monkeypatch):
    corners = [(0, 0), (0, 50), (50, 0)]
    labels = {'bicubic': np.array([1.0, np.nan, 3.0]), 'hr': np.array([0.5, 0.7, np.inf])}
    kept, kept_labels, dropped = drop_undefined_labels(corners, labels)
    assert kept == [(0, 0)] and dropped == 2 and kept_labels['hr'].tolist() == [0.5]

    class NanOnFlat:  # NaN on a flat patch, as NIQE is
        name, higher_is_better = 'flat_nan', False

        def __init__(self, device=None):
            pass

        def __call__(self, patches):
            return np.array([np.nan if p.std() < 1 else float(p.mean()) for p in patches])

        def describe(self):
            return {'name': self.name, 'higher_is_better': False}

    monkeypatch.setitem(PATCH_METRIC_REGISTRY._obj_map, 'test_flat_nan', NanOnFlat)
    hr = tmp_path / 'hr'
    hr.mkdir()
    image = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    image[:100] = 128  # the top row of patches is flat at every level
    cv2.imwrite(str(hr / 'img.png'), image)
    cfg = load_config(build_config(tmp_path, patch_size=100, stride=100, grid='full', sharpness_threshold=None,
                                   min_gap=0, val_fraction=0, metric={'type': 'test_flat_nan'}, storage='folder'))
    manifest = RankDatasetBuilder(cfg, progress=False).run()
    assert manifest['counts']['undefined_label'] == 2 and manifest['splits']['train']['num_keys'] == 2
    with open(tmp_path / 'out' / 'train' / 'labels.txt', encoding='utf-8') as f:
        assert 'nan' not in f.read()
    assert json.loads((tmp_path / 'out' / 'train' / 'manifest.json').read_text())['higher_is_better'] is False
