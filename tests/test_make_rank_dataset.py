"""tools/make_rank_dataset.py end to end on scikit-image's bundled photos (no download, no weights).

The CLI runs as a subprocess where its exit code, its messages or a kill matter, and in-process
(``main(argv)`` of the tool) where only the result matters, to keep the tests fast. Images are
200x400 crops, patches 200 pixels every 100 (3 grid locations per image), labelled with NIQE.
"""
import glob
import hashlib
import json
import logging
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import basicsr
import cv2
import lmdb
import numpy as np
import pytest
import torch
from tool_loader import load_tool
from torchrun_retry import run_torchrun

import ranksrgan_plugin
from ranksrgan_plugin.data.rank_dataset_format import level_path, read_labels
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset
from ranksrgan_plugin.demo_images import export_skimage_photos
from ranksrgan_plugin.iqa import niqe_batch
from ranksrgan_plugin.rank_dataset import RankDatasetBuilder, RankDatasetBuildError, load_config
from ranksrgan_plugin.rank_dataset.levels import BUILTIN_UPSCALERS, LevelError, matlab_bicubic
from ranksrgan_plugin.rank_dataset.patch_selection import patch_grid
from ranksrgan_plugin.rank_dataset.sources import assign_splits, key_stem

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'make_rank_dataset.py')
SCALE = 4
HEIGHT, WIDTH = 200, 400  # the main build's images: 3 grid locations each
PATCH, STRIDE = 200, 100
LEVELS = ['bicubic', 'sharpened', 'hr']
MAIN_STEMS = ('astronaut', 'chelsea', 'coffee', 'immunohistochemistry', 'motorcycle_left', 'rocket')
VAL_FRACTION, SEED = 0.3, 7
MAX_PATCHES = 2
CLI_TIMEOUT = 300
LOGGER = logging.getLogger('test_make_rank_dataset')  # propagates to the root logger: caplog sees it

tool = load_tool('make_rank_dataset')


# ------------------------------------------------------------------------------------------------
# helpers


def run_cli(args, check=True):
    """The tool as a subprocess (cwd: the repository root); ``check``: assert it succeeded."""
    result = subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            timeout=CLI_TIMEOUT)
    if check:
        assert result.returncode == 0, f'make_rank_dataset failed:\n{result.stdout}\n{result.stderr}'
    return result


def fit(img, height, width):
    """The largest centred crop of ``img`` with the aspect ratio ``width / height``, resized to it."""
    in_h, in_w = img.shape[:2]
    crop_h, crop_w = min(in_h, in_w * height // width), min(in_w, in_h * width // height)
    top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
    return cv2.resize(img[top:top + crop_h, left:left + crop_w], (width, height), interpolation=cv2.INTER_AREA)


def make_hr_folder(folder, photos, stems, size=(HEIGHT, WIDTH), flipped=()):
    """HR folder of the photos fitted to ``size`` (h, w); ``flipped``: extra mirrored copies."""
    os.makedirs(folder, exist_ok=True)
    for stem in stems:
        assert cv2.imwrite(osp.join(folder, f'{stem}.png'), fit(cv2.imread(photos[stem]), *size))
    for stem in flipped:
        assert cv2.imwrite(osp.join(folder, f'{stem}-flip.png'), fit(cv2.imread(photos[stem]), *size)[:, ::-1])
    return str(folder)


def tree_digest(root):
    """{relative path: sha256} of every file under ``root``."""
    digest = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                digest[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def lmdb_contents(path):
    """{key: PNG bytes} of a BasicSR LMDB, checking meta_info.txt and the database agree, no duplicates."""
    with open(osp.join(path, 'meta_info.txt'), encoding='utf-8') as f:
        meta_keys = [line.split()[0].rsplit('.', 1)[0] for line in f if line.strip()]
    assert len(meta_keys) == len(set(meta_keys)), f'duplicate keys in {path}/meta_info.txt'
    env = lmdb.open(path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            items = {key.decode(): bytes(value) for key, value in txn.cursor()}
        assert env.stat()['entries'] == len(items)
    finally:
        env.close()
    assert set(meta_keys) == set(items), f'{path}: meta_info.txt and the LMDB hold different keys'
    return items


def level_store(split_dir, level, storage):
    """{key: PNG bytes} of one level of a split, read without the package."""
    path = level_path(split_dir, level, storage)
    if storage == 'lmdb':
        return lmdb_contents(path)
    return {osp.splitext(name)[0]: read_bytes(osp.join(path, name)) for name in sorted(os.listdir(path))}


def decode(png):
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def load_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def key_source(key):
    """The source image part of a patch key (``<stem>_s<index>``) and the grid index."""
    stem, index = key.rsplit('_s', 1)
    return stem, int(index)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """{stem: path} of the bundled scikit-image photos, exported once."""
    paths = export_skimage_photos(str(tmp_path_factory.mktemp('photos')))
    return {osp.splitext(osp.basename(path))[0]: path for path in paths}


@pytest.fixture(scope='module')
def main_inputs(tmp_path_factory, photos):
    """The HR folder and the YAML options shared by the main builds and the shards."""
    root = tmp_path_factory.mktemp('main_inputs')
    hr = make_hr_folder(root / 'hr', photos, MAIN_STEMS)
    config = root / 'rank.yml'
    # the YAML sets lmdb storage; the folder build overrides it with --storage. These builds pin the
    # non-original options: every full patch (the original grid takes none from a one-patch-high
    # image), the first locations in raster order, the split by source image.
    config.write_text(f'patch_size: {PATCH}\nstride: {STRIDE}\nsharpness_threshold: null\nmin_gap: 0\n'
                      f'val_fraction: {VAL_FRACTION}\nstorage: lmdb\nscale: {SCALE}\ngrid: full\n'
                      'max_patches_choice: first\nval_split_by: image\n')
    return SimpleNamespace(hr=hr, config=str(config))


def main_args(inputs, output, storage, *extra):
    return ['-opt', inputs.config, '--hr', inputs.hr, '--output', output, '--levels', ','.join(LEVELS),
            '--seed', SEED, '--storage', storage, '--max-patches-per-image', MAX_PATCHES, '--device', 'cpu',
            '--no-progress', *extra]


@pytest.fixture(scope='module', params=['lmdb', 'folder'])
def main_build(request, tmp_path_factory, main_inputs):
    """One CLI build (subprocess) of the 6 main images per storage."""
    storage = request.param
    output = str(tmp_path_factory.mktemp(f'main_{storage}') / 'rank')
    args = main_args(main_inputs, output, storage)
    started = time.perf_counter()
    result = run_cli(args)
    return SimpleNamespace(root=output, storage=storage, args=args, result=result, inputs=main_inputs,
                           manifest=load_json(osp.join(output, 'manifest.json')),
                           seconds=time.perf_counter() - started)


def only_lmdb(main_build):
    """The single-run reference for shards and overwrite is the lmdb build."""
    return pytest.mark.parametrize('main_build', ['lmdb'], indirect=True)(main_build)


# ------------------------------------------------------------------------------------------------
# the CLI build


def test_cli_build_reads_back_with_rank_pair_dataset(main_build):
    assert main_build.result.returncode == 0
    assert not osp.exists(osp.join(main_build.root, '.work'))
    for split, num_images in (('train', 4), ('val', 2)):
        split_dir = osp.join(main_build.root, split)
        manifest = load_json(osp.join(split_dir, 'manifest.json'))
        num_keys = num_images * MAX_PATCHES
        assert manifest['format'] == 'ranksrgan_rank_dataset' and manifest['format_version'] == 1
        assert manifest['split'] == split
        assert manifest['metric'] == 'niqe' and manifest['higher_is_better'] is False
        assert manifest['levels'] == LEVELS and manifest['storage'] == main_build.storage
        assert manifest['patch_size'] == PATCH and manifest['num_keys'] == num_keys
        file_labels = read_labels(osp.join(split_dir, 'labels.txt'))
        assert len(file_labels) == num_keys * len(LEVELS)

        dataset = RankPairDataset({'dataroot': split_dir, 'phase': split})
        assert dataset.levels == LEVELS and dataset.higher_is_better is False
        assert dataset.storage == main_build.storage
        if split == 'train':
            assert len(dataset) == num_keys
            for index in range(len(dataset)):
                item = dataset[index]
                assert item['level_a'] != item['level_b'] and {item['level_a'], item['level_b']} <= set(LEVELS)
                assert item['img_a'].shape == item['img_b'].shape == (3, PATCH, PATCH)
                assert item['label_a'] == file_labels[(item['key'], item['level_a'])]
                assert item['label_b'] == file_labels[(item['key'], item['level_b'])]
        else:
            assert len(dataset) == num_keys * len(LEVELS)
            stores = {level: level_store(split_dir, level, main_build.storage) for level in LEVELS}
            seen = set()
            for index in range(len(dataset)):
                item = dataset[index]
                seen.add((item['key'], item['level']))
                assert item['label'] == file_labels[(item['key'], item['level'])]
                stored = decode(stores[item['level']][item['key']])  # BGR uint8
                img = item['img'].mul(255).round().byte().numpy().transpose(1, 2, 0)[:, :, ::-1]
                np.testing.assert_array_equal(img, stored)
            assert seen == set(file_labels)


def test_cli_build_patches_and_labels(main_build):
    """Each key is the right crop of each level; the labels are the NIQE of the patches (checked on val)."""
    hr_images = {stem: cv2.imread(osp.join(main_build.inputs.hr, f'{stem}.png')) for stem in MAIN_STEMS}
    corners = patch_grid(HEIGHT, WIDTH, PATCH, STRIDE, 'full')
    all_labels = {}
    for split in ('train', 'val'):
        split_dir = osp.join(main_build.root, split)
        labels = read_labels(osp.join(split_dir, 'labels.txt'))
        all_labels.update(labels)
        for level in LEVELS:
            store = level_store(split_dir, level, main_build.storage)
            keys = sorted(store)
            patches = []
            for key in keys:
                stem, index = key_source(key)
                hr = hr_images[stem]
                full = hr if level == 'hr' else BUILTIN_UPSCALERS[level](matlab_bicubic(hr, 1 / SCALE), SCALE)
                top, left = corners[index]
                patch = decode(store[key])
                np.testing.assert_array_equal(patch, full[top:top + PATCH, left:left + PATCH],
                                              err_msg=f'{split} {level} {key}')
                patches.append(patch)
            if split == 'val':  # NIQE is the costly part: recompute it for one split
                niqe = niqe_batch(np.stack(patches), crop_border=4, input_order='HWC', convert_to='y', device='cpu')
                np.testing.assert_allclose([labels[(key, level)] for key in keys], niqe, rtol=0, atol=1e-5)
    # the HR ground truth is the most natural level on average, bicubic the least
    mean = {level: np.mean([v for (_, lv), v in all_labels.items() if lv == level]) for level in LEVELS}
    assert mean['hr'] < mean['sharpened'] < mean['bicubic'], mean


def test_cli_build_top_level_manifest(main_build):
    manifest = main_build.manifest
    assert manifest['format'] == 'ranksrgan_rank_dataset_build' and manifest['format_version'] == 1
    assert manifest['inputs'] == {'hr': osp.abspath(main_build.inputs.hr), 'lr': None, 'scale': SCALE,
                                  'num_images': len(MAIN_STEMS)}
    options = manifest['options']
    # YAML options, overridden by flags
    assert options['patch_size'] == PATCH and options['stride'] == STRIDE
    assert options['sharpness_threshold'] is None and options['min_gap'] == 0
    assert options['val_fraction'] == VAL_FRACTION and options['seed'] == SEED
    assert options['storage'] == main_build.storage and options['max_patches_per_image'] == MAX_PATCHES
    assert options['grid'] == 'full' and options['max_patches_choice'] == 'first'
    assert options['val_split_by'] == 'image'
    assert [level['name'] for level in options['levels']] == LEVELS
    assert options['output'] == main_build.root and options['device'] == 'cpu'
    assert [level['name'] for level in manifest['levels']] == LEVELS
    assert manifest['metric'] == {'name': 'niqe', 'higher_is_better': False, 'crop_border': 4, 'convert_to': 'y'}
    assert manifest['versions']['ranksrgan_plugin'] == ranksrgan_plugin.__version__
    assert manifest['versions']['torch'] == torch.__version__
    assert manifest['versions']['basicsr'] == basicsr.__version__
    assert manifest['versions']['numpy'] == np.__version__
    assert manifest['counts'] == {'grid': 3 * len(MAIN_STEMS), 'sharp': 3 * len(MAIN_STEMS),
                                  'gap': 3 * len(MAIN_STEMS), 'kept': MAX_PATCHES * len(MAIN_STEMS),
                                  'images_ok': len(MAIN_STEMS), 'images_skipped': 0}
    assert manifest['skipped'] == {}
    assert manifest['splits'] == {'train': {'num_keys': 4 * MAX_PATCHES, 'num_images': 4},
                                  'val': {'num_keys': 2 * MAX_PATCHES, 'num_images': 2}}
    timings = manifest['timings_s']
    assert {'read', 'metric', 'write', 'sharpness', *(f'level_{level}' for level in LEVELS)} <= set(timings)
    assert all(value >= 0 for value in timings.values())
    assert 0 < timings['metric'] < main_build.seconds
    assert manifest['shard'] == {'num_shards': 1, 'shard_index': 0}
    assert f'train: {4 * MAX_PATCHES} keys from 4 images' in main_build.result.stdout
    assert f'val: {2 * MAX_PATCHES} keys from 2 images' in main_build.result.stdout


def test_cli_build_splits_by_source_image(main_build):
    split_manifests = {split: load_json(osp.join(main_build.root, split, 'manifest.json'))
                       for split in ('train', 'val')}
    sources = {split: set(m['source_images']) for split, m in split_manifests.items()}
    assert not sources['train'] & sources['val']
    assert sources['train'] | sources['val'] == set(MAIN_STEMS)
    expected = assign_splits(list(MAIN_STEMS), VAL_FRACTION, SEED)
    assert sources['val'] == {stem for stem, split in expected.items() if split == 'val'}
    assert len(sources['val']) == math.ceil(VAL_FRACTION * len(MAIN_STEMS))
    # the seed is honoured: seed 0 (the default) would have chosen other validation images
    default = assign_splits(list(MAIN_STEMS), VAL_FRACTION, 0)
    assert sources['val'] != {stem for stem, split in default.items() if split == 'val'}
    for split in ('train', 'val'):
        split_dir = osp.join(main_build.root, split)
        safe_sources = {key_stem(stem) for stem in sources[split]}
        for level in LEVELS:
            keys = set(level_store(split_dir, level, main_build.storage))
            assert {key_source(key)[0] for key in keys} == safe_sources
            # max_patches_per_image keeps the first locations in raster order (no filter removed any)
            assert keys == {f'{stem}_s{i:04d}' for stem in safe_sources for i in range(MAX_PATCHES)}


def test_assign_splits():
    stems = [f'img{i:03d}' for i in range(20)]
    first = assign_splits(stems, 0.3, 5)
    assert first == assign_splits(list(reversed(stems)), 0.3, 5)  # deterministic, order-independent
    assert set(first) == set(stems) and set(first.values()) == {'train', 'val'}
    val = {stem for stem, split in first.items() if split == 'val'}
    assert len(val) == math.ceil(0.3 * 20) == 6
    other = {stem for stem, split in assign_splits(stems, 0.3, 6).items() if split == 'val'}
    assert other != val and len(other) == 6
    for n, fraction in ((10, 0.1), (10, 0.15), (7, 0.5), (3, 0.01)):
        splits = assign_splits(stems[:n], fraction, 1)
        assert sum(split == 'val' for split in splits.values()) == math.ceil(fraction * n)
    assert set(assign_splits(stems[:5], 0.0, 1).values()) == {'train'}
    assert sum(split == 'val' for split in assign_splits(stems[:3], 0.99, 1).values()) == 2  # at most n - 1


@only_lmdb
def test_cli_logs_its_progress(main_build):
    """The builder's info messages (per-shard summary, 'written to') reach the CLI user.

    Fails while the ranksrgan_plugin logger is left at the root logger's WARNING level: BasicSR's
    get_root_logger only sets the INFO level when it is given a log file.
    """
    output = main_build.result.stdout + main_build.result.stderr
    assert f'Rank dataset written to {main_build.root}' in output, output


# ------------------------------------------------------------------------------------------------
# resume, overwrite, shards


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, photos):
    """With the default (original) options: MATLAB grid (2 locations per image here), split by patch."""
    stems = sorted(photos)
    hr = make_hr_folder(tmp_path / 'hr', photos, stems, size=(PATCH + 4, PATCH + STRIDE + 4), flipped=stems[:3])
    num_images = len(stems) + 3
    args = ['--hr', hr, '--levels', ','.join(LEVELS), '--patch-size', PATCH, '--stride', STRIDE,
            '--sharpness-threshold', 0, '--min-gap', 0, '--val-fraction', 0.25, '--device', 'cpu', '--no-progress']
    output = str(tmp_path / 'resumed')
    records_dir = osp.join(output, '.work', 'images')
    with open(tmp_path / 'killed.log', 'w') as log:
        proc = subprocess.Popen([sys.executable, TOOL, *map(str, args), '--output', output], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + CLI_TIMEOUT
            while proc.poll() is None and not glob.glob(osp.join(records_dir, '*.json')):
                assert time.monotonic() < deadline, 'no image record after the timeout'
                time.sleep(0.01)
            assert proc.poll() is None, f'the build ended before it could be killed:\n{read_bytes(log.name)}'
        finally:
            proc.kill()
            proc.wait()
    records = sorted(glob.glob(osp.join(records_dir, '*.json')))
    assert 1 <= len(records) < num_images
    assert not osp.exists(osp.join(output, 'manifest.json'))
    # mark one finished record: a resumed build must reuse it (timings are not part of the result)
    marked = load_json(records[0])
    marked['seconds']['read'] = marked['seconds'].get('read', 0) + 1000.0
    with open(records[0], 'w', encoding='utf-8') as f:
        json.dump(marked, f)
    before = tree_digest(osp.join(output, '.work'))

    # other options on the unfinished build: refused, nothing touched
    refused = run_cli([*args, '--output', output, '--seed', 1], check=False)
    assert refused.returncode != 0
    assert 'unfinished build with other options' in refused.stderr
    assert tree_digest(osp.join(output, '.work')) == before

    run_cli([*args, '--output', output])
    reference = str(tmp_path / 'reference')
    tool.main([*map(str, args), '--output', reference])

    assert not osp.exists(osp.join(output, '.work')) and not osp.exists(osp.join(reference, '.work'))
    resumed_manifest = load_json(osp.join(output, 'manifest.json'))
    reference_manifest = load_json(osp.join(reference, 'manifest.json'))
    assert resumed_manifest['timings_s']['read'] >= 1000 > reference_manifest['timings_s']['read']
    assert resumed_manifest['counts'] == reference_manifest['counts']
    assert resumed_manifest['counts']['images_ok'] == num_images
    assert resumed_manifest['counts']['kept'] == 2 * num_images
    assert resumed_manifest['splits'] == reference_manifest['splits']
    for split in ('train', 'val'):
        assert read_bytes(osp.join(output, split, 'labels.txt')) == read_bytes(osp.join(reference, split, 'labels.txt'))
        resumed_split = load_json(osp.join(output, split, 'manifest.json'))
        assert resumed_split == load_json(osp.join(reference, split, 'manifest.json'))
        label_keys = {key for key, _ in read_labels(osp.join(output, split, 'labels.txt'))}
        for level in LEVELS:
            resumed_store = level_store(osp.join(output, split), level, 'lmdb')
            reference_store = level_store(osp.join(reference, split), level, 'lmdb')
            assert set(resumed_store) == set(reference_store) == label_keys
            assert len(resumed_store) == resumed_split['num_keys']
            assert resumed_store == reference_store  # the same PNG bytes too
    # split by patch (the default): some source image has locations in both splits
    sources = [set(load_json(osp.join(output, split, 'manifest.json'))['source_images']) for split in ('train', 'val')]
    assert sources[0] & sources[1]


def test_finished_output_is_not_overwritten_without_flag(tmp_path, photos):
    hr = make_hr_folder(tmp_path / 'hr', photos, ['astronaut', 'coffee'], size=(PATCH + 4, PATCH + 4))
    output = str(tmp_path / 'rank')
    args = ['--hr', hr, '--output', output, '--levels', 'bicubic,hr', '--patch-size', PATCH, '--val-fraction', 0,
            '--sharpness-threshold', 0, '--device', 'cpu', '--no-progress']
    tool.main(list(map(str, args)))
    first_labels = read_bytes(osp.join(output, 'train', 'labels.txt'))
    with open(osp.join(output, 'sentinel.txt'), 'w') as f:
        f.write('left by the user')
    before = tree_digest(output)

    refused = run_cli(args, check=False)
    assert refused.returncode != 0
    assert 'holds a finished rank dataset' in refused.stderr and '--overwrite' in refused.stderr
    assert tree_digest(output) == before

    tool.main([*map(str, args), '--overwrite'])
    assert not osp.exists(osp.join(output, 'sentinel.txt'))
    assert not osp.exists(osp.join(output, '.work'))
    assert read_bytes(osp.join(output, 'train', 'labels.txt')) == first_labels
    assert load_json(osp.join(output, 'manifest.json'))['counts']['images_ok'] == 2


@only_lmdb
def test_shards_and_merge_equal_a_single_run(main_build, tmp_path):
    shards = [str(tmp_path / f'shard{i}') for i in range(2)]
    shard_stems = []
    for index, output in enumerate(shards):
        tool.main([*map(str, main_args(main_build.inputs, output, 'lmdb')), '--num-shards', '2',
                   '--shard-index', str(index)])
        manifest = load_json(osp.join(output, 'manifest.json'))
        assert manifest['shard'] == {'num_shards': 2, 'shard_index': index}
        shard_stems.append({s for split in manifest['splits']
                            for s in load_json(osp.join(output, split, 'manifest.json'))['source_images']})
    assert not shard_stems[0] & shard_stems[1] and shard_stems[0] | shard_stems[1] == set(MAIN_STEMS)

    merged = str(tmp_path / 'merged')
    tool.main(['merge', '--inputs', *shards, '--output', merged])
    single = main_build.root
    for split in ('train', 'val'):
        assert read_bytes(osp.join(merged, split, 'labels.txt')) == read_bytes(osp.join(single, split, 'labels.txt'))
        merged_split = load_json(osp.join(merged, split, 'manifest.json'))
        assert merged_split == load_json(osp.join(single, split, 'manifest.json'))
        for level in LEVELS:
            merged_store = level_store(osp.join(merged, split), level, 'lmdb')
            single_store = level_store(osp.join(single, split), level, 'lmdb')
            assert set(merged_store) == set(single_store)
            assert merged_store == single_store
        dataset = RankPairDataset({'dataroot': osp.join(merged, split), 'phase': 'val'})
        assert len(dataset) == merged_split['num_keys'] * len(LEVELS)
    merged_manifest = load_json(osp.join(merged, 'manifest.json'))
    for field in ('counts', 'splits', 'skipped', 'inputs', 'levels', 'metric'):
        assert merged_manifest[field] == main_build.manifest[field], field
    assert merged_manifest['shard'] == {'num_shards': 1, 'shard_index': 0}
    assert merged_manifest['merged_from'] == [osp.abspath(p) for p in shards]
    ignore = ('output',)
    assert ({k: v for k, v in merged_manifest['options'].items() if k not in ignore}
            == {k: v for k, v in main_build.manifest['options'].items() if k not in ignore})

    # an incomplete shard set is refused, and nothing is written
    incomplete = str(tmp_path / 'incomplete')
    result = run_cli(['merge', '--inputs', shards[0], '--output', incomplete], check=False)
    assert result.returncode != 0
    assert 'needs each of the 2 shards exactly once' in result.stderr
    assert not osp.exists(incomplete)


# ------------------------------------------------------------------------------------------------
# errors and skips (library API unless the exit code matters)


@pytest.fixture
def one_image(tmp_path, photos):
    """An HR folder with one 200x200 image (a single patch location)."""
    return make_hr_folder(tmp_path / 'hr', photos, ['astronaut'], size=(PATCH, PATCH))


def small_config(tmp_path, hr, **options):
    base = {'output': str(tmp_path / 'out'), 'hr': str(hr), 'levels': [{'name': 'bicubic', 'type': 'builtin'},
                                                                         {'name': 'hr', 'type': 'hr'}],
            'patch_size': PATCH, 'stride': STRIDE, 'grid': 'full', 'sharpness_threshold': None, 'min_gap': 0,
            'val_fraction': 0, 'device': 'cpu'}
    base.update(options)
    return load_config(base)


def build(tmp_path, hr, **options):
    return RankDatasetBuilder(small_config(tmp_path, hr, **options), logger=LOGGER, progress=False).run()


def test_empty_hr_folder_cli(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'readme.txt').write_text('no images here')
    result = run_cli(['--hr', empty, '--output', tmp_path / 'out', '--levels', 'bicubic,hr', '--device', 'cpu',
                      '--no-progress'], check=False)
    assert result.returncode != 0
    assert f'HR input {empty} has no images' in result.stderr
    assert not osp.exists(tmp_path / 'out' / 'manifest.json')


def test_failed_start_does_not_block_a_corrected_rerun(tmp_path, one_image):
    """A build that fails before any image is done (here: a wrong HR folder) must not hold the output folder.

    Fails while RankDatasetBuilder.run writes ``.work/state.json`` before it opens the inputs: the
    corrected command is then refused as 'an unfinished build with other options'.
    """
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(RankDatasetBuildError, match='has no images'):
        build(tmp_path, empty)
    manifest = build(tmp_path, one_image)
    assert manifest['counts']['images_ok'] == 1


def test_unreadable_image_is_an_error_naming_the_file(tmp_path, one_image):
    bad = osp.join(one_image, 'broken.png')
    with open(bad, 'wb') as f:
        f.write(b'this is not a PNG file' * 10)
    with pytest.raises(RankDatasetBuildError, match=f'Cannot read HR image {bad}'):
        build(tmp_path, one_image)
    assert not osp.exists(tmp_path / 'out' / 'manifest.json')


def test_unreadable_image_skipped_on_request(tmp_path, one_image, caplog):
    bad = osp.join(one_image, 'broken.png')
    with open(bad, 'wb') as f:
        f.write(b'\x89PNG garbage' * 10)
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        manifest = build(tmp_path, one_image, skip_unreadable=True)
    assert list(manifest['skipped']) == ['broken'] and bad in manifest['skipped']['broken']
    assert manifest['counts']['images_skipped'] == 1 and manifest['counts']['images_ok'] == 1
    assert manifest['options']['skip_unreadable'] is True
    assert any('broken' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    keys = set(read_labels(str(tmp_path / 'out' / 'train' / 'labels.txt')))
    assert {key_source(key)[0] for key, _ in keys} == {'astronaut'}


def test_hr_image_smaller_than_a_patch_is_skipped(tmp_path, one_image, photos, caplog):
    small = fit(cv2.imread(photos['coffee']), 150, 150)
    assert cv2.imwrite(osp.join(one_image, 'coffee.png'), small[:, :120])
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        manifest = build(tmp_path, one_image)
    assert manifest['counts']['images_skipped'] == 1 and manifest['counts']['images_ok'] == 1
    assert 'smaller than a 200-pixel patch' in manifest['skipped']['coffee']
    assert any('coffee' in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert load_json(str(tmp_path / 'out' / 'train' / 'manifest.json'))['source_images'] == ['astronaut']


def test_folder_level_with_wrong_size_names_level_and_image(tmp_path, one_image):
    folder = tmp_path / 'pre'
    folder.mkdir()
    assert cv2.imwrite(str(folder / 'astronaut.png'), np.zeros((PATCH, PATCH + 4, 3), np.uint8))
    levels = [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'pre', 'type': 'folder', 'folder': str(folder)}]
    with pytest.raises(LevelError, match=r"Level 'pre' gave a \(200, 204, 3\) image for 'astronaut'"):
        build(tmp_path, one_image, levels=levels)


def test_folder_level_missing_image(tmp_path, one_image):
    folder = tmp_path / 'pre'
    folder.mkdir()
    assert cv2.imwrite(str(folder / 'other.png'), np.zeros((PATCH, PATCH, 3), np.uint8))
    levels = [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'pre', 'type': 'folder', 'folder': str(folder)}]
    with pytest.raises(LevelError, match=f"Level 'pre': no SR image for 'astronaut' in {folder}"):
        build(tmp_path, one_image, levels=levels)


def test_network_level_missing_weights(tmp_path, one_image):
    levels = [{'name': 'srres', 'type': 'network',
               'network': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4},
               'weights': '/nonexistent.pth'},
              {'name': 'hr', 'type': 'hr'}]
    with pytest.raises(LevelError, match=r"'srres'.*/nonexistent\.pth"):
        build(tmp_path, one_image, levels=levels)


def test_unknown_option(tmp_path, one_image):
    with pytest.raises(RankDatasetBuildError, match=r"unknown option 'patch_szie' \(did you mean 'patch_size'\?\)"):
        small_config(tmp_path, one_image, patch_szie=100)


def test_gap_levels_unknown_level(tmp_path, one_image):
    with pytest.raises(RankDatasetBuildError, match="Level 'esrgan'"):
        small_config(tmp_path, one_image, gap_levels=['bicubic', 'esrgan'])
    with pytest.raises(RankDatasetBuildError, match="Level 'srgan'"):
        small_config(tmp_path, one_image, sharpness_level='srgan')


def test_cli_unknown_builtin_level():
    with pytest.raises(SystemExit, match="'esrgan' is not hr or a builtin upscaler"):
        tool.levels_from_names('bicubic,esrgan')
    assert tool.levels_from_names('bicubic, hr') == [{'name': 'bicubic', 'type': 'builtin', 'method': 'bicubic'},
                                                      {'name': 'hr', 'type': 'hr'}]


def test_lr_folder_with_wrong_size(tmp_path, one_image):
    lr = tmp_path / 'lr'
    lr.mkdir()
    assert cv2.imwrite(str(lr / 'astronautx4.png'), np.zeros((PATCH // SCALE, PATCH // SCALE + 3, 3), np.uint8))
    with pytest.raises(RankDatasetBuildError, match=r'LR image .*astronautx4\.png is 53x50'):
        build(tmp_path, one_image, lr=str(lr), lr_suffix='x4')


def test_lr_folder_used_when_sizes_match(tmp_path, one_image):
    lr_dir = tmp_path / 'lr'
    lr_dir.mkdir()
    hr = cv2.imread(osp.join(one_image, 'astronaut.png'))
    lr = cv2.resize(hr, (PATCH // SCALE, PATCH // SCALE), interpolation=cv2.INTER_AREA)  # not MATLAB bicubic
    assert cv2.imwrite(str(lr_dir / 'astronautx4.png'), lr)
    build(tmp_path, one_image, lr=str(lr_dir), lr_suffix='x4', storage='folder')
    stored = cv2.imread(str(tmp_path / 'out' / 'train' / 'bicubic' / 'astronaut_s0000.png'))
    np.testing.assert_array_equal(stored, matlab_bicubic(lr, SCALE))


@only_lmdb
def test_torchrun_processes_equal_a_single_run(main_build, tmp_path):
    """``torchrun --nproc_per_node=2`` (2 CPU processes, gloo) writes the same bytes as one process."""
    output = str(tmp_path / 'torchrun')
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', TOOL,
               *map(str, main_args(main_build.inputs, output, 'lmdb'))]
    result = run_torchrun(command, lambda: shutil.rmtree(output, ignore_errors=True), cwd=ROOT, timeout=CLI_TIMEOUT)
    assert result.returncode == 0, f'torchrun failed:\n{result.stdout}\n{result.stderr}'
    assert '2 processes' in result.stderr
    assert result.stdout.count('keys from') == 2  # one summary (rank 0's), train and val
    single = main_build.root
    for split in ('train', 'val'):
        assert read_bytes(osp.join(output, split, 'labels.txt')) == read_bytes(osp.join(single, split, 'labels.txt'))
        assert load_json(osp.join(output, split, 'manifest.json')) == load_json(osp.join(single, split,
                                                                                         'manifest.json'))
        for level in LEVELS:
            for name in ('data.mdb', 'meta_info.txt'):
                path = osp.join(level_path(osp.join(output, split), level, 'lmdb'), name)
                assert read_bytes(path) == read_bytes(osp.join(level_path(osp.join(single, split), level, 'lmdb'),
                                                               name)), path
    manifest = load_json(osp.join(output, 'manifest.json'))
    assert manifest['processes'] == 2 and main_build.manifest['processes'] == 1
    for field in ('counts', 'splits', 'skipped', 'inputs', 'levels', 'metric', 'shard'):
        assert manifest[field] == main_build.manifest[field], field
    assert not osp.exists(osp.join(output, '.work'))
