"""Patch selection as the original MATLAB scripts do it (generate_rankdataset.m, compute_sharpness.m).

Expected values are computed here from the description of the MATLAB code with plain NumPy/SciPy
(``scipy.ndimage.correlate`` with mode='nearest' for imfilter's 'replicate', an explicit rounding
rgb2gray, an explicit zero-padding of the sigma map for blkproc), not with the code under test.
Builder tests use cheap stand-in metrics, so they run in a second or two.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
from basicsr.metrics.niqe import calculate_niqe
from scipy import ndimage

from ranksrgan_plugin.data.rank_dataset_format import read_labels, read_manifest
from ranksrgan_plugin.iqa import niqe_batch
from ranksrgan_plugin.rank_dataset import (
    DEFAULT_CONFIG,
    RankDatasetBuilder,
    RankDatasetBuildError,
    load_config,
    merge_rank_datasets,
)
from ranksrgan_plugin.rank_dataset.levels import matlab_bicubic
from ranksrgan_plugin.rank_dataset.patch_metrics import PATCH_METRIC_REGISTRY, PatchMetric, build_patch_metric
from ranksrgan_plugin.rank_dataset.patch_selection import (
    choose_patches,
    gaussian_sharpness,
    patch_grid,
    patch_sharpness,
    sharp_corners,
    sharpness,
)
from ranksrgan_plugin.rank_dataset.sources import assign_splits, patch_split

PATCH, STRIDE, BLOCK = 296, 148, 96
MATLAB_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)  # R, G, B
LEVELS = [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'hr', 'type': 'hr'}]


# ------------------------------------------------------------------------------------------------
# independent references


def matlab_tops(height, patch, stride):
    """0-based tops of MATLAB's ``for h = 1:stride:height-patch``."""
    tops, h = [], 1
    while h <= height - patch:
        tops.append(h - 1)
        h += stride
    return tops


def matlab_rgb2gray(bgr):
    """rgb2gray of a uint8 image: MATLAB weights in double, rounded half away from zero to uint8."""
    bgr = bgr.astype(np.float64)
    gray = MATLAB_GRAY[0] * bgr[..., 2] + MATLAB_GRAY[1] * bgr[..., 1] + MATLAB_GRAY[2] * bgr[..., 0]
    rounded = np.sign(gray) * np.floor(np.abs(gray) + 0.5)
    return np.clip(rounded, 0, 255).astype(np.uint8)


def reference_sigma(bgr):
    """compute_sharpness.m's sigma map of the rounded gray patch."""
    im = matlab_rgb2gray(bgr).astype(np.float64)
    offsets = np.arange(-3, 4, dtype=np.float64)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    mu = ndimage.correlate(im, window, mode='nearest')
    return np.sqrt(ndimage.correlate((im - mu) * (im - mu), window, mode='nearest'))


def reference_sharpness(bgr, block=BLOCK):
    """sum(blkproc(sigma, [block block], [0 0], @mean2)): blkproc zero-pads to whole blocks."""
    sigma = reference_sigma(bgr)
    rows, cols = int(np.ceil(sigma.shape[0] / block)), int(np.ceil(sigma.shape[1] / block))
    padded = np.zeros((rows * block, cols * block))
    padded[:sigma.shape[0], :sigma.shape[1]] = sigma
    means = [padded[r * block:(r + 1) * block, c * block:(c + 1) * block].sum() / (block * block)
             for r in range(rows) for c in range(cols)]
    return float(sum(means)), len(means)


def textured(height, width, seed=0, contrast=1.0, smooth=0.8):
    """A deterministic BGR uint8 texture: smoothed noise plus a ramp, scaled around mid-gray."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), smooth)
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    img = 128 + contrast * (noise + ramp - 158)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# grid


@pytest.mark.parametrize('height,width', [(296, 296), (296 + 148, 296 + 150), (296 + 150, 296 + 148),
                                          (296 + 296, 296 + 1), (1000, 620), (295, 500)])
def test_original_grid_is_the_matlab_loop(height, width):
    expected = [(top, left) for top in matlab_tops(height, PATCH, STRIDE) for left in matlab_tops(width, PATCH, STRIDE)]
    assert patch_grid(height, width, PATCH, STRIDE, 'original') == expected


def test_original_grid_drops_the_patch_ending_at_the_border():
    # H - 296 a multiple of the stride: MATLAB stops before the last top; 'full' takes it
    assert patch_grid(296 + 148, 296, PATCH, STRIDE, 'original') == []
    assert patch_grid(296 + 148, 296 + 148, PATCH, STRIDE, 'original') == [(0, 0)]
    assert patch_grid(296 + 148, 296 + 148, PATCH, STRIDE, 'full') == [(0, 0), (0, 148), (148, 0), (148, 148)]
    # H - 296 = 150: tops 0 and 148 in both rules
    assert patch_grid(296 + 150, 296 + 150, PATCH, STRIDE, 'original') == [(0, 0), (0, 148), (148, 0), (148, 148)]
    with pytest.raises(ValueError, match='grid'):
        patch_grid(500, 500, PATCH, STRIDE, 'matlab')


# ------------------------------------------------------------------------------------------------
# sharpness


@pytest.mark.parametrize('kind', ['random', 'structured', 'low_contrast'])
def test_original_sharpness_equals_compute_sharpness(kind):
    if kind == 'random':
        patch = np.random.default_rng(3).integers(0, 256, (PATCH, PATCH, 3), dtype=np.uint8)
    else:
        patch = textured(PATCH, PATCH, seed=4, contrast=1.0 if kind == 'structured' else 0.08)
    expected, num_blocks = reference_sharpness(patch)
    assert num_blocks == 16  # 296 = 3 * 96 + 8: 4 x 4 zero-padded blocks
    value = gaussian_sharpness(patch, BLOCK)
    assert value == pytest.approx(expected, rel=1e-10)
    assert patch_sharpness(patch, BLOCK, 'original') == value
    # the zero-padded edge blocks count (means over 96 * 96 values): only full blocks would differ
    sigma = reference_sigma(patch)
    full_only = sum(sigma[r:r + BLOCK, c:c + BLOCK].mean() for r in (0, 96, 192) for c in (0, 96, 192))
    assert abs(value - full_only) > 1e-3 * value
    # the measure before this option existed is another number
    assert abs(sharpness(patch, BLOCK) - value) > 1e-3 * value


def test_original_sharpness_rounds_the_gray_image():
    """rgb2gray of uint8 gives uint8: the unrounded gray has another sharpness."""
    patch = textured(PATCH, PATCH, seed=8, contrast=0.05)
    expected, _ = reference_sharpness(patch)
    assert gaussian_sharpness(patch, BLOCK) == pytest.approx(expected, rel=1e-10)
    unrounded = patch.astype(np.float64) @ np.array(MATLAB_GRAY[::-1])
    assert gaussian_sharpness(unrounded, BLOCK) != pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('height,width', [(296 + 148, 296 + 150), (296 + 150, 296 + 148)])
def test_original_filter_on_an_image(height, width):
    """Grid and sharpness together on a small image whose halves (along its longer side) differ in contrast."""
    img = textured(height, width, seed=5)
    low = (slice(None), slice(0, width // 2)) if width > height else (slice(0, height // 2), slice(None))
    img[low] = textured(height, width, seed=6, contrast=0.06)[low]
    corners = patch_grid(height, width, PATCH, STRIDE, 'original')
    values = {c: reference_sharpness(img[c[0]:c[0] + PATCH, c[1]:c[1] + PATCH])[0] for c in corners}
    kept = sharp_corners(img, corners, PATCH, 40.0, BLOCK, 'original')
    assert kept == [c for c in corners if values[c] >= 40]
    assert 0 < len(kept) < len(corners), values


@pytest.mark.parametrize('measure', ['original', 'stdfilt3'])
def test_sharpness_at_exactly_the_threshold_is_kept(measure):
    img = textured(PATCH, PATCH, seed=9, contrast=0.3)
    value = patch_sharpness(img, BLOCK, measure)
    assert sharp_corners(img, [(0, 0)], PATCH, value, BLOCK, measure) == [(0, 0)]  # >=, as the original
    assert sharp_corners(img, [(0, 0)], PATCH, float(np.nextafter(value, np.inf)), BLOCK, measure) == []


def test_rgb2gray_of_the_gap_metric_is_matlab_not_opencv():
    patches = np.stack([textured(PATCH, PATCH, seed=s) for s in (11, 12)])
    metric = build_patch_metric(DEFAULT_CONFIG['gap_metric'], device='cpu')
    gray = np.stack([matlab_rgb2gray(p) for p in patches])
    expected = niqe_batch(gray, crop_border=0, input_order='HW', device='cpu')
    np.testing.assert_array_equal(metric(patches), expected)
    # and that is BasicSR's NIQE of the rounded MATLAB gray image, no shave
    assert metric(patches[:1])[0] == pytest.approx(calculate_niqe(gray[0], 0, input_order='HW'), abs=1e-6)
    for other in ({'convert_to': 'gray', 'crop_border': 0}, {'convert_to': 'y', 'crop_border': 4}):
        assert not np.allclose(build_patch_metric({'type': 'niqe', **other}, 'cpu')(patches), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# the per-image cap


def test_random_choice_of_200():
    indices = list(range(10, 310))
    chosen = choose_patches(indices, 200, 'random', seed=123)
    assert len(chosen) == 200 == len(set(chosen)) and set(chosen) <= set(indices)
    assert chosen == sorted(chosen) and chosen != indices[:200]
    assert choose_patches(indices, 200, 'random', seed=123) == chosen  # deterministic
    assert choose_patches(indices, 200, 'random', seed=124) != chosen
    assert choose_patches(indices, 200, 'first') == indices[:200]
    assert choose_patches(indices[:150], 200, 'random', seed=1) == indices[:150]  # fewer: all of them
    assert choose_patches(indices[:200], 200, 'random', seed=1) == indices[:200]


# ------------------------------------------------------------------------------------------------
# the builder


class FunctionMetric(PatchMetric):
    """A cheap stand-in metric that records how many patches it scored."""

    def __init__(self, fn, name, log, device=None):
        self.fn, self.name, self.log = fn, name, log

    def __call__(self, patches):
        self.log.append((self.name, len(patches)))
        return np.array([self.fn(patch) for patch in patches], dtype=np.float64)


@pytest.fixture
def metric_log(monkeypatch):
    """Registers the stand-in metrics ``zero``, ``mean`` and ``std``; returns their call log."""
    log = []
    functions = {'zero': lambda p: 0.0, 'mean': lambda p: float(p.mean()), 'std': lambda p: float(p.std())}
    for name, fn in functions.items():
        monkeypatch.setitem(PATCH_METRIC_REGISTRY._obj_map, f'test_{name}',
                            lambda device=None, fn=fn, name=name: FunctionMetric(fn, name, log, device))
    return log


def write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, img in images.items():
        assert cv2.imwrite(str(folder / f'{stem}.png'), img)
    return str(folder)


def build(tmp_path, name, images, **options):
    """A build with the defaults, cheap labels (``test_mean``) and ``options``; returns (manifest, output).

    ``images``: {stem: BGR image} (written to ``<name>_hr``) or an HR folder.
    """
    hr = images if isinstance(images, str) else write_images(tmp_path / f'{name}_hr', images)
    cfg = {'hr': hr, 'output': str(tmp_path / name), 'levels': LEVELS, 'metric': {'type': 'test_mean'},
           'device': 'cpu', **options}
    return RankDatasetBuilder(load_config(cfg), progress=False).run(), str(tmp_path / name)


def split_keys(output):
    """{split: [keys]} of a finished build."""
    return {split: sorted({key for key, _ in read_labels(osp.join(output, split, 'labels.txt'))})
            for split in ('train', 'val') if osp.isdir(osp.join(output, split))}


def test_defaults_are_the_original():
    assert DEFAULT_CONFIG['grid'] == 'original' and DEFAULT_CONFIG['sharpness_measure'] == 'original'
    assert DEFAULT_CONFIG['sharpness_threshold'] == 40 and DEFAULT_CONFIG['sharpness_block'] == 96
    assert DEFAULT_CONFIG['gap_metric'] == {'type': 'niqe', 'crop_border': 0, 'convert_to': 'gray_uint8'}
    assert DEFAULT_CONFIG['min_gap'] == 0.1 and DEFAULT_CONFIG['max_patches_per_image'] == 200
    assert DEFAULT_CONFIG['max_patches_choice'] == 'random' and DEFAULT_CONFIG['val_split_by'] == 'patch'
    assert DEFAULT_CONFIG['metric'] == {'type': 'niqe', 'crop_border': 4, 'convert_to': 'y'}


@pytest.mark.parametrize('option,value', [('grid', 'matlab'), ('sharpness_measure', 'stdfilt'),
                                          ('max_patches_choice', 'last'), ('val_split_by', 'key'),
                                          ('gap_metric', 'niqe')])
def test_bad_choices_are_refused(tmp_path, option, value):
    with pytest.raises(RankDatasetBuildError, match=option):
        load_config({'hr': str(tmp_path), 'output': str(tmp_path / 'out'), 'levels': LEVELS, option: value})


def test_builder_default_grid_and_sharpness(tmp_path, metric_log):
    """444 x 592 (H - 296 = W - 296 - 148 = 148): the original grid has 1 x 2 locations; sharpness as the original."""
    img = textured(444, 592, seed=13)
    img[:, 148:] = textured(444, 444, seed=14, contrast=0.06)
    manifest, _ = build(tmp_path, 'grid', {'img': img}, min_gap=0, val_fraction=0)
    corners = [(0, 0), (0, 148)]
    sharp = [c for c in corners if reference_sharpness(img[c[0]:c[0] + PATCH, c[1]:c[1] + PATCH])[0] >= 40]
    assert manifest['counts']['grid'] == 2
    assert manifest['counts']['sharp'] == len(sharp) == 1


def test_builder_gap_filter_asks_the_gap_metric(tmp_path, metric_log):
    """The gap filter scores the gap levels with ``gap_metric``; labels are computed for kept locations only.

    The labels (``test_zero``) never differ, so a filter on the labels would keep nothing.
    """
    img = textured(400, 400, seed=15)
    img[:, :200] = textured(400, 200, seed=16, contrast=0.02)
    options = {'patch_size': 100, 'stride': 50, 'sharpness_threshold': None, 'val_fraction': 0,
               'metric': {'type': 'test_zero'}, 'gap_metric': {'type': 'test_std'}, 'min_gap': 1.0}
    manifest, output = build(tmp_path, 'gap', {'img': img}, **options)
    hr = cv2.imread(osp.join(tmp_path, 'gap_hr', 'img.png'))
    bicubic = matlab_bicubic(matlab_bicubic(hr, 1 / 4), 4)
    corners = patch_grid(400, 400, 100, 50, 'original')
    passed = [i for i, (t, lf) in enumerate(corners)
              if abs(bicubic[t:t + 100, lf:lf + 100].std() - hr[t:t + 100, lf:lf + 100].std()) > 1.0]
    assert 0 < len(passed) < len(corners)
    assert split_keys(output)['train'] == [f'img_s{i:04d}' for i in passed]
    assert manifest['counts']['gap'] == manifest['counts']['kept'] == len(passed)
    # one call per image and metric, over both levels' patches
    assert metric_log == [('std', 2 * len(corners)), ('zero', 2 * len(passed))]
    # gap_metric None: the labels decide (the previous behaviour), here nothing passes
    with pytest.raises(RankDatasetBuildError, match='No patch'):
        build(tmp_path, 'gap_labels', {'img': img}, **{**options, 'gap_metric': None})


def test_builder_default_gap_metric_is_gray_niqe(tmp_path, metric_log):
    """The default gap metric: NIQE of MATLAB's rounded rgb2gray, no shave, on the two gap levels."""
    img = textured(444, 592, seed=17, smooth=2.5)
    manifest, output = build(tmp_path, 'niqe_gap', {'img': img}, sharpness_threshold=None, val_fraction=0,
                             metric={'type': 'test_zero'})
    hr = cv2.imread(osp.join(tmp_path, 'niqe_gap_hr', 'img.png'))
    bicubic = matlab_bicubic(matlab_bicubic(hr, 1 / 4), 4)
    corners = [(0, 0), (0, 148)]
    patches = [np.stack([level[t:t + PATCH, lf:lf + PATCH] for t, lf in corners]) for level in (bicubic, hr)]
    niqe = [niqe_batch(np.stack([matlab_rgb2gray(p) for p in level]), crop_border=0, input_order='HW', device='cpu')
            for level in patches]
    passed = [i for i in range(len(corners)) if abs(niqe[0][i] - niqe[1][i]) > 0.1]
    assert manifest['counts']['gap'] == len(passed)
    keys = [key for keys in split_keys(output).values() for key in keys]
    assert keys == [f'img_s{i:04d}' for i in passed]
    # here the labels (NIQE, Y channel, 4-pixel shave) decide otherwise: gap_metric None follows them
    labels = [niqe_batch(level, crop_border=4, input_order='HWC', convert_to='y', device='cpu') for level in patches]
    passed_labels = [i for i in range(len(corners)) if abs(labels[0][i] - labels[1][i]) > 0.1]
    assert passed_labels != passed
    manifest, _ = build(tmp_path, 'label_gap', {'img': img}, sharpness_threshold=None, val_fraction=0,
                        metric=DEFAULT_CONFIG['metric'], gap_metric=None)
    assert manifest['counts']['gap'] == len(passed_labels)


def test_builder_random_choice_is_seeded_by_seed_and_stem(tmp_path, metric_log):
    img = textured(400, 400, seed=18)
    options = {'patch_size': 100, 'stride': 50, 'sharpness_threshold': None, 'min_gap': 0, 'val_fraction': 0,
               'max_patches_per_image': 5}
    _, first = build(tmp_path, 'choice_a', {'a': img, 'b': img}, **options)
    _, again = build(tmp_path, 'choice_b', {'a': img, 'b': img}, **options)
    _, reseeded = build(tmp_path, 'choice_c', {'a': img, 'b': img}, seed=1, **options)
    _, in_order = build(tmp_path, 'choice_d', {'a': img, 'b': img}, max_patches_choice='first', **options)
    keys = split_keys(first)['train']
    indices = {stem: [int(k.rsplit('_s', 1)[1]) for k in keys if k.startswith(f'{stem}_')] for stem in 'ab'}
    assert all(len(v) == 5 and max(v) < 36 for v in indices.values())  # 6 x 6 original grid locations
    assert indices['a'] != list(range(5)) and indices['a'] != indices['b']  # random, per image
    assert split_keys(again) == split_keys(first) and split_keys(reseeded) != split_keys(first)
    assert split_keys(in_order)['train'] == [f'{s}_s{i:04d}' for s in 'ab' for i in range(5)]


def test_val_split_by_patch_and_by_image(tmp_path, metric_log):
    images = {f'img{i}': textured(300, 300, seed=20 + i) for i in range(4)}
    options = {'patch_size': 100, 'stride': 50, 'sharpness_threshold': None, 'min_gap': 0, 'val_fraction': 0.3,
               'seed': 3}
    manifest, output = build(tmp_path, 'by_patch', images, **options)
    keys = split_keys(output)
    assert sum(map(len, keys.values())) == 4 * 16 and 0.15 < len(keys['val']) / 64 < 0.45
    assert all(patch_split(key, 0.3, 3) == split for split, split_list in keys.items() for key in split_list)
    sources = {split: set(read_manifest(osp.join(output, split))['source_images']) for split in keys}
    assert sources['train'] == sources['val'] == set(images)  # every image straddles the splits here
    assert manifest['splits']['val']['num_keys'] == len(keys['val'])
    # the split of a key depends on nothing but the seed and the key: one image alone splits it the same
    _, alone = build(tmp_path, 'alone', {'img0': images['img0']}, **options)
    assert {s: [k for k in v if k.startswith('img0_')] for s, v in keys.items()} == split_keys(alone)

    _, by_image = build(tmp_path, 'by_image', images, val_split_by='image', **options)
    image_keys = split_keys(by_image)
    expected = assign_splits(sorted(images), 0.3, 3)
    for split, split_list in image_keys.items():
        assert {key.rsplit('_s', 1)[0] for key in split_list} == {s for s, v in expected.items() if v == split}


def test_shards_merge_equal_a_single_build_with_the_defaults(tmp_path, metric_log):
    images = write_images(tmp_path / 'hr', {f'img{i}': textured(300, 300, seed=30 + i) for i in range(3)})
    options = {'patch_size': 100, 'stride': 50, 'sharpness_threshold': None, 'min_gap': 0, 'val_fraction': 0.3,
               'max_patches_per_image': 10}
    _, single = build(tmp_path, 'single', images, **options)
    shards = [build(tmp_path, f'shard{i}', images, num_shards=2, shard_index=i, **options)[1] for i in range(2)]
    merged = str(tmp_path / 'merged')
    merge_rank_datasets(shards, merged)
    assert split_keys(merged) == split_keys(single)
    for split in split_keys(single):
        with open(osp.join(merged, split, 'labels.txt'), 'rb') as a, open(osp.join(single, split, 'labels.txt'),
                                                                           'rb') as b:
            assert a.read() == b.read()
        assert read_manifest(osp.join(merged, split)) == read_manifest(osp.join(single, split))
