"""RankPairDataset on LMDB and folder splits written by the factory (the format of docs/rank_dataset.md)."""
import json
import os
import os.path as osp
import random
import shutil

import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from rank_set_factory import DEFAULT_KEYS, DEFAULT_LEVELS, default_labels, make_rank_set, synthetic_image

from ranksrgan_plugin.data.rank_dataset_format import RankDatasetError, level_path
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset

OFFSET_SIZE = (36, 44)
OFFSET_STEP = 40 / 255  # the factory's 'offset' mode: 80 // (3 - 1) grey levels between neighbouring levels


@pytest.fixture(autouse=True)
def seeded():
    random.seed(0)
    np.random.seed(0)


def options(root, phase='train', **extra):
    return {'name': 'rank_test', 'type': 'RankPairDataset', 'dataroot': root, 'phase': phase, **extra}


def file_labels(root):
    """labels.txt parsed independently of the package: {(key, level): label}."""
    table = {}
    with open(osp.join(root, 'labels.txt'), encoding='utf-8') as f:
        for line in f:
            if line.strip() and not line.startswith('#'):
                key, level, value = line.split()
                table[(key, level)] = float(value)
    return table


def expected_rgb(key, level, size=40, mode='blur', levels=DEFAULT_LEVELS):
    """The stored image as the dataset must give it: RGB HWC float32 in [0, 1]."""
    return np.ascontiguousarray(synthetic_image(key, level, levels, size, 0, mode)[..., ::-1]).astype(np.float32) / 255


def hwc(tensor):
    return tensor.permute(1, 2, 0).numpy()


def dihedral(image):
    """The 8 flips/rotations of an HWC image."""
    return [np.rot90(base, k) for base in (image, image.transpose(1, 0, 2)) for k in range(4)]


def level_index(level):
    return DEFAULT_LEVELS.index(level)


def assert_constant_difference(item):
    """img_a - img_b is the constant brightness offset of the two levels: same crop, same transform."""
    diff = (item['img_a'] - item['img_b']).numpy()
    expected = (level_index(item['level_a']) - level_index(item['level_b'])) * OFFSET_STEP
    np.testing.assert_allclose(diff, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------- train phase

def test_train_item_structure(rank_set):
    dataset = RankPairDataset(options(rank_set))
    labels = file_labels(rank_set)
    assert len(dataset) == len(DEFAULT_KEYS)
    assert dataset.keys == list(DEFAULT_KEYS)
    for index, key in enumerate(DEFAULT_KEYS):
        item = dataset[index]
        assert set(item) == {'img_a', 'img_b', 'label_a', 'label_b', 'key', 'level_a', 'level_b'}
        assert item['key'] == key
        for name in ('img_a', 'img_b'):
            img = item[name]
            assert isinstance(img, torch.Tensor) and img.dtype == torch.float32 and img.shape == (3, 40, 40)
            assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        assert item['level_a'] != item['level_b']
        assert {item['level_a'], item['level_b']} <= set(DEFAULT_LEVELS)
        assert isinstance(item['label_a'], float) and isinstance(item['label_b'], float)
        assert item['label_a'] == pytest.approx(labels[(key, item['level_a'])])
        assert item['label_b'] == pytest.approx(labels[(key, item['level_b'])])
        # pixels: the stored PNG of that key and level, BGR -> RGB, / 255
        np.testing.assert_array_equal(hwc(item['img_a']), expected_rgb(key, item['level_a']))
        np.testing.assert_array_equal(hwc(item['img_b']), expected_rgb(key, item['level_b']))
        assert not torch.equal(item['img_a'], item['img_b'])


def test_train_pairs_cover_every_level_pair_in_both_orders(rank_set):
    dataset = RankPairDataset(options(rank_set, pair_order='random'))
    items = [dataset[i % len(dataset)] for i in range(80)]
    ordered = {(item['level_a'], item['level_b']) for item in items}
    assert all(a != b for a, b in ordered)
    assert ordered == {(a, b) for a in DEFAULT_LEVELS for b in DEFAULT_LEVELS if a != b}


def test_default_labels_order_levels_consistently(rank_set):
    labels = file_labels(rank_set)
    for key in DEFAULT_KEYS:  # srres worst (highest NIQE-like label), esrgan best
        assert labels[(key, 'srres')] > labels[(key, 'srgan')] > labels[(key, 'esrgan')]


def test_factory_levels_differ_in_sharpness():
    # the default 'blur' images get sharper level by level, so a Ranker has something to learn
    for key in DEFAULT_KEYS:
        sharpness = [np.abs(np.diff(synthetic_image(key, level, DEFAULT_LEVELS).astype(float), axis=1)).mean()
                     for level in DEFAULT_LEVELS]
        assert sharpness[0] < sharpness[1] < sharpness[2]


def test_gt_size_crops_both_images_at_the_same_location(offset_rank_set):
    dataset = RankPairDataset(options(offset_rank_set, gt_size=24))
    corners = set()
    for draw in range(24):
        item = dataset[draw % len(dataset)]
        assert item['img_a'].shape == item['img_b'].shape == (3, 24, 24)
        assert_constant_difference(item)
        full = expected_rgb(item['key'], item['level_a'], OFFSET_SIZE, 'offset')
        crop = hwc(item['img_a'])
        matches = [(top, left) for top in range(OFFSET_SIZE[0] - 23) for left in range(OFFSET_SIZE[1] - 23)
                   if np.array_equal(full[top:top + 24, left:left + 24], crop)]
        assert len(matches) == 1, 'img_a must be a 24x24 window of its stored image'
        top, left = matches[0]
        full_b = expected_rgb(item['key'], item['level_b'], OFFSET_SIZE, 'offset')
        np.testing.assert_array_equal(hwc(item['img_b']), full_b[top:top + 24, left:left + 24])
        corners.add(matches[0])
    assert len(corners) > 1, 'the crop location must be random'


def test_flips_and_rotations_are_applied_identically(offset_rank_set):
    dataset = RankPairDataset(options(offset_rank_set, use_hflip=True, use_rot=True))
    transforms_seen = set()
    for draw in range(40):
        item = dataset[draw % len(dataset)]
        assert_constant_difference(item)
        out_a, out_b = hwc(item['img_a']), hwc(item['img_b'])
        candidates_a = dihedral(expected_rgb(item['key'], item['level_a'], OFFSET_SIZE, 'offset'))
        candidates_b = dihedral(expected_rgb(item['key'], item['level_b'], OFFSET_SIZE, 'offset'))
        index_a = [i for i, c in enumerate(candidates_a) if c.shape == out_a.shape and np.array_equal(c, out_a)]
        index_b = [i for i, c in enumerate(candidates_b) if c.shape == out_b.shape and np.array_equal(c, out_b)]
        assert len(index_a) == 1 and index_a == index_b, 'both images must get the same flip/rotation'
        transforms_seen.add(index_a[0])
    assert len(transforms_seen) >= 4, 'flips and rotations must actually be applied'


def test_no_augmentation_by_default(offset_rank_set):
    dataset = RankPairDataset(options(offset_rank_set))
    for draw in range(8):
        item = dataset[draw % len(dataset)]
        assert item['img_a'].shape == (3, *OFFSET_SIZE)
        np.testing.assert_array_equal(hwc(item['img_a']),
                                      expected_rgb(item['key'], item['level_a'], OFFSET_SIZE, 'offset'))


def test_crop_and_augmentation_together(offset_rank_set):
    dataset = RankPairDataset(options(offset_rank_set, gt_size=20, use_hflip=True, use_rot=True))
    for draw in range(16):
        item = dataset[draw % len(dataset)]
        assert item['img_a'].shape == (3, 20, 20)
        assert_constant_difference(item)


# ---------------------------------------------------------------------------------------------- labels sign

def test_higher_is_better_from_manifest_negates_labels(tmp_path, storage):
    root = make_rank_set(str(tmp_path / 'ma'), storage=storage, higher_is_better=True, metric='ma')
    raw = file_labels(root)
    assert raw[('k000', 'esrgan')] > raw[('k000', 'srres')]  # Ma-like: the best level has the highest value
    dataset = RankPairDataset(options(root))
    assert dataset.higher_is_better is True
    for index in range(len(dataset)):
        item = dataset[index]
        assert item['label_a'] == pytest.approx(-raw[(item['key'], item['level_a'])])
        assert item['label_b'] == pytest.approx(-raw[(item['key'], item['level_b'])])
    val = RankPairDataset(options(root, phase='val'))
    for index in range(len(val)):
        item = val[index]
        assert item['label'] == pytest.approx(-raw[(item['key'], item['level'])])
        # after negation the sign convention holds: the better level has the lower label
    assert val.labels[('k000', 'esrgan')] < val.labels[('k000', 'srres')]
    # an option that contradicts the manifest is refused (tests/test_bad_inputs_labels.py); one that agrees is fine
    assert RankPairDataset(options(root, phase='val', higher_is_better=True)).labels == val.labels


def test_higher_is_better_from_option_negates_labels(rank_set):
    raw = file_labels(rank_set)
    assert RankPairDataset(options(rank_set)).higher_is_better is False
    # a hand-made manifest without a direction: the option decides
    manifest_path = osp.join(rank_set, 'manifest.json')
    with open(manifest_path, encoding='utf-8') as f:
        manifest = json.load(f)
    del manifest['higher_is_better']
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f)
    dataset = RankPairDataset(options(rank_set, higher_is_better=True))
    assert dataset.labels == pytest.approx({k: -v for k, v in raw.items()})
    item = dataset[0]
    assert item['label_a'] == pytest.approx(-raw[(item['key'], item['level_a'])])


# ---------------------------------------------------------------------------------------------- val phase

@pytest.mark.parametrize('phase', ['val', 'test'])
def test_val_phase_yields_every_item_once(rank_set, phase):
    dataset = RankPairDataset(options(rank_set, phase=phase, gt_size=16, use_hflip=True, use_rot=True))
    labels = file_labels(rank_set)
    assert len(dataset) == len(DEFAULT_KEYS) * len(DEFAULT_LEVELS)
    seen = []
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {'img', 'label', 'key', 'level'}
        seen.append((item['key'], item['level']))
        assert item['label'] == pytest.approx(labels[(item['key'], item['level'])])
        assert item['img'].dtype == torch.float32
        # whole patch, no augmentation outside training
        np.testing.assert_array_equal(hwc(item['img']), expected_rgb(item['key'], item['level']))
    assert sorted(seen) == sorted(labels)
    assert len(set(seen)) == len(seen)


# ---------------------------------------------------------------------------------------------- BasicSR builders

def test_build_dataset_and_dataloader_train(rank_set, storage):
    opt = options(rank_set, gt_size=32, use_hflip=True, use_rot=True, batch_size_per_gpu=2, num_worker_per_gpu=0,
                  io_backend={'type': {'lmdb': 'lmdb', 'folder': 'disk'}[storage]})
    dataset = build_dataset(opt)
    assert isinstance(dataset, RankPairDataset)
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)
    labels = file_labels(rank_set)
    batches = list(loader)
    assert len(batches) == 2
    keys = []
    for batch in batches:
        assert batch['img_a'].shape == batch['img_b'].shape == (2, 3, 32, 32)
        assert batch['img_a'].dtype == torch.float32
        assert batch['label_a'].shape == batch['label_b'].shape == (2,)
        for i in range(2):
            key, level_a, level_b = batch['key'][i], batch['level_a'][i], batch['level_b'][i]
            assert level_a != level_b
            assert float(batch['label_a'][i]) == pytest.approx(labels[(key, level_a)])
            assert float(batch['label_b'][i]) == pytest.approx(labels[(key, level_b)])
        keys += batch['key']
    assert sorted(keys) == list(DEFAULT_KEYS)


def test_build_dataloader_val(rank_set):
    opt = options(rank_set, phase='val')
    loader = build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False)
    items = [(batch['key'][0], batch['level'][0]) for batch in loader]
    assert len(items) == 12 and len(set(items)) == 12


# ---------------------------------------------------------------------------------------------- options

def test_levels_subset(rank_set, storage):
    labels = file_labels(rank_set)
    shutil.rmtree(level_path(rank_set, 'srgan', storage))  # an unused level need not exist
    dataset = RankPairDataset(options(rank_set, levels=['esrgan', 'srres']))
    assert dataset.levels == ['esrgan', 'srres']
    for draw in range(12):
        item = dataset[draw % len(dataset)]
        assert {item['level_a'], item['level_b']} == {'esrgan', 'srres'}
    val = RankPairDataset(options(rank_set, phase='val', levels=['esrgan', 'srres']))
    items = [val[i] for i in range(len(val))]
    assert len(items) == 8
    assert {(item['key'], item['level']) for item in items} == {(k, lv) for k in DEFAULT_KEYS
                                                               for lv in ('esrgan', 'srres')}
    assert all(item['label'] == pytest.approx(labels[(item['key'], item['level'])]) for item in items)
    with pytest.raises(RankDatasetError):
        RankPairDataset(options(rank_set))  # all three manifest levels: srgan is gone


def test_explicit_options_without_manifest(rank_set, storage):
    os.remove(osp.join(rank_set, 'manifest.json'))
    backend = {'lmdb': 'lmdb', 'folder': 'disk'}[storage]
    dataset = RankPairDataset(options(rank_set, io_backend={'type': backend}, levels=list(DEFAULT_LEVELS)))
    assert len(dataset) == 4 and dataset.higher_is_better is False
    assert dataset[0]['img_a'].shape == (3, 40, 40)


def test_labels_file_option(rank_set, tmp_path):
    other = tmp_path / 'other_labels.txt'
    labels = {k: v + 100.0 for k, v in file_labels(rank_set).items()}
    other.write_text(''.join(f'{k} {lv} {v}\n' for (k, lv), v in labels.items()), encoding='utf-8')
    dataset = RankPairDataset(options(rank_set, phase='val', labels_file=str(other)))
    assert dataset.labels == pytest.approx(labels)


# ---------------------------------------------------------------------------------------------- errors

def raises_naming(opt, *fragments):
    with pytest.raises(RankDatasetError) as info:
        RankPairDataset(opt)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f'{fragment!r} not in {message!r}'
    return message


def append_line(root, line):
    path = osp.join(root, 'labels.txt')
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line + '\n')
    with open(path, encoding='utf-8') as f:
        return path, sum(1 for _ in f)


def test_error_missing_level_store(rank_set, storage):
    path = level_path(rank_set, 'srgan', storage)
    shutil.rmtree(path)
    raises_naming(options(rank_set), 'srgan', path)


def test_error_key_missing_in_one_level(tmp_path, storage):
    root = make_rank_set(str(tmp_path / 's'), storage=storage, skip={('k002', 'srgan')})
    raises_naming(options(root), 'k002', 'srgan')


def test_error_key_without_label(tmp_path, storage):
    labels = default_labels(DEFAULT_KEYS, DEFAULT_LEVELS)
    del labels[('k001', 'esrgan')]
    root = make_rank_set(str(tmp_path / 's'), storage=storage, labels=labels)
    raises_naming(options(root), 'k001', 'esrgan', osp.join(root, 'labels.txt'))


def test_error_label_for_unknown_key(rank_set):
    path, _ = append_line(rank_set, 'k999 srgan 4.2')
    raises_naming(options(rank_set), 'k999', path)


def test_error_size_mismatch_across_levels(tmp_path, storage):
    root = make_rank_set(str(tmp_path / 's'), storage=storage, shape_overrides={('k003', 'esrgan'): (40, 32)})
    raises_naming(options(root), 'k003')


@pytest.mark.parametrize('line', ['k000 srres', 'k000 srres 1.0 extra', 'k000 srres abc'])
def test_error_malformed_labels_line(rank_set, line):
    path, line_no = append_line(rank_set, line)
    raises_naming(options(rank_set), f'{path}:{line_no}')


def test_error_duplicate_label(rank_set):
    path, line_no = append_line(rank_set, 'k000 srgan 1.0')
    raises_naming(options(rank_set), f'{path}:{line_no}', 'duplicate', 'k000', 'srgan')


def test_error_missing_labels_file(rank_set):
    os.remove(osp.join(rank_set, 'labels.txt'))
    raises_naming(options(rank_set), osp.join(rank_set, 'labels.txt'))


def test_error_empty_labels_file(rank_set):
    with open(osp.join(rank_set, 'labels.txt'), 'w', encoding='utf-8') as f:
        f.write('# key level label\n')
    raises_naming(options(rank_set), osp.join(rank_set, 'labels.txt'))


@pytest.mark.parametrize('backend', ['zip', 'memcached', 'folder'])
def test_error_bad_io_backend_type(rank_set, backend):
    raises_naming(options(rank_set, io_backend={'type': backend}), repr(backend), rank_set)


@pytest.mark.parametrize('levels', [['srres'], ['srres', 'srres']])
def test_error_fewer_than_two_levels_option(rank_set, levels):
    raises_naming(options(rank_set, levels=levels), 'levels')


def test_error_fewer_than_two_levels_in_manifest(tmp_path, storage):
    root = make_rank_set(str(tmp_path / 's'), storage=storage, levels=('srres',))
    raises_naming(options(root), 'levels', osp.join(root, 'manifest.json'))


def test_error_missing_manifest_without_options(rank_set, storage):
    os.remove(osp.join(rank_set, 'manifest.json'))
    raises_naming(options(rank_set), 'manifest.json', 'io_backend')
    backend = {'lmdb': 'lmdb', 'folder': 'disk'}[storage]
    raises_naming(options(rank_set, io_backend={'type': backend}), 'levels', 'manifest.json')


def test_error_foreign_manifest(rank_set):
    path = osp.join(rank_set, 'manifest.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'format': 'something_else', 'levels': list(DEFAULT_LEVELS), 'storage': 'lmdb'}, f)
    raises_naming(options(rank_set), path)


def test_error_manifest_not_json(rank_set):
    path = osp.join(rank_set, 'manifest.json')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{not json')
    raises_naming(options(rank_set), path)


def test_error_unknown_storage_in_manifest(tmp_path):
    rank_set = make_rank_set(str(tmp_path / 's'), storage='folder')
    path = osp.join(rank_set, 'manifest.json')
    with open(path, encoding='utf-8') as f:
        manifest = json.load(f)
    manifest['storage'] = 'zip'
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f)
    raises_naming(options(rank_set), 'zip')


def test_error_lmdb_without_meta_info(tmp_path):
    root = make_rank_set(str(tmp_path / 's'), storage='lmdb')
    meta = osp.join(level_path(root, 'srres', 'lmdb'), 'meta_info.txt')
    os.remove(meta)
    raises_naming(options(root), meta)


def test_error_all_levels_empty(tmp_path):
    root = make_rank_set(str(tmp_path / 's'), storage='folder',
                         skip={(k, lv) for k in DEFAULT_KEYS for lv in DEFAULT_LEVELS})
    raises_naming(options(root), root)


def test_every_error_is_a_value_error():
    assert issubclass(RankDatasetError, ValueError)


def test_pair_order_better_first_is_the_originals_and_random_draws_both(rank_set):
    """better_first (default): each unordered level pair about equally often, the later-listed (better) level
    as side A, as the original's Rank_IMIM_Pair_dataset.py; random: both orders."""
    better_first = RankPairDataset(options(rank_set))
    random.seed(0)
    drawn = [(item['level_a'], item['level_b']) for item in (better_first[i % len(better_first)] for i in range(600))]
    assert all(level_index(a) > level_index(b) for a, b in drawn)
    counts = {pair: drawn.count(pair) for pair in set(drawn)}
    assert len(counts) == 3 and min(counts.values()) > 150  # 200 expected each
    random.seed(0)
    either = RankPairDataset(options(rank_set, pair_order='random'))
    orders = {level_index(item['level_a']) > level_index(item['level_b']) for item in (either[0] for _ in range(50))}
    assert orders == {True, False}
    with pytest.raises(RankDatasetError, match="pair_order must be one of"):
        RankPairDataset(options(rank_set, pair_order='worse_first'))
