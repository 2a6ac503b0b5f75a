"""SR levels (builtin, hr, folder, network with tiling) and patch selection (grid, sharpness filter)."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.utils.matlab_functions import imresize

from ranksrgan_plugin.data.patch_selection import crop, patch_grid, sharp_corners, sharpness
from ranksrgan_plugin.data.sr_levels import (
    BUILTIN_UPSCALERS,
    BuiltinLevel,
    FolderLevel,
    HRLevel,
    LevelError,
    NetworkLevel,
    build_level,
    matlab_bicubic,
)

SCALE = 4
NET_OPT = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': SCALE}


def random_image(height, width, seed=0, smooth=0.0):
    """A deterministic uint8 BGR texture (optionally Gaussian-smoothed, like a photo)."""
    img = np.random.default_rng(seed).uniform(0, 255, size=(height, width, 3)).astype(np.float32)
    if smooth:
        img = cv2.GaussianBlur(img, (0, 0), smooth)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# builtin, matlab_bicubic, hr, folder


@pytest.mark.parametrize('method', sorted(BUILTIN_UPSCALERS))
def test_builtin_levels_give_hr_size(method):
    lr = random_image(13, 17, smooth=1.0)
    hr = random_image(13 * SCALE, 17 * SCALE, seed=1)
    level = build_level({'name': f'lv_{method}', 'type': 'builtin', 'method': method}, SCALE)
    assert isinstance(level, BuiltinLevel)
    sr = level(lr, hr, 'img')
    assert sr.shape == hr.shape and sr.dtype == np.uint8
    assert level.describe() == {'name': f'lv_{method}', 'type': 'BuiltinLevel', 'method': method}


def test_builtin_method_defaults_to_name_and_known_values():
    lr = random_image(10, 12, smooth=1.0)
    hr = np.zeros((40, 48, 3), np.uint8)
    nearest = build_level({'name': 'nearest', 'type': 'builtin'}, SCALE)(lr, hr, 'img')
    np.testing.assert_array_equal(nearest, np.repeat(np.repeat(lr, SCALE, axis=0), SCALE, axis=1))
    bicubic = build_level({'name': 'bicubic', 'type': 'builtin'}, SCALE)(lr, hr, 'img')
    np.testing.assert_array_equal(bicubic, matlab_bicubic(lr, SCALE))
    sharpened = build_level({'name': 'sharpened', 'type': 'builtin'}, SCALE)(lr, hr, 'img')
    assert not np.array_equal(sharpened, bicubic)
    assert sharpness(sharpened, block=16) > sharpness(bicubic, block=16)


def test_level_errors():
    with pytest.raises(LevelError, match="unknown builtin method 'magic'"):
        build_level({'name': 'x', 'type': 'builtin', 'method': 'magic'}, SCALE)
    with pytest.raises(LevelError, match="unknown type 'gan'"):
        build_level({'name': 'x', 'type': 'gan'}, SCALE)
    with pytest.raises(LevelError, match='needs a `name`'):
        build_level({'type': 'hr'}, SCALE)
    # a level whose output does not have the HR size is refused, naming the level and the image
    level = BuiltinLevel('twice', 'bicubic', 2)
    with pytest.raises(LevelError, match=r"Level 'twice' gave a \(20, 24, 3\) image for 'img7'"):
        level(random_image(10, 12), np.zeros((40, 48, 3), np.uint8), 'img7')


def test_matlab_bicubic_down_then_up_shapes():
    hr = random_image(40, 36, smooth=1.5)
    lr = matlab_bicubic(hr, 1 / SCALE)
    assert lr.shape == (10, 9, 3) and lr.dtype == np.uint8
    up = matlab_bicubic(lr, SCALE)
    assert up.shape == hr.shape and up.dtype == np.uint8
    expected = np.clip(np.round(imresize(hr.astype(np.float32) / 255.0, 1 / SCALE) * 255.0), 0, 255)
    np.testing.assert_array_equal(lr, expected.astype(np.uint8))
    # a constant image stays constant; a smooth one comes back close
    flat = np.full((40, 36, 3), 77, np.uint8)
    np.testing.assert_array_equal(matlab_bicubic(matlab_bicubic(flat, 1 / SCALE), SCALE), flat)
    assert np.abs(up.astype(int) - hr.astype(int)).mean() < 20


def test_hr_level_returns_the_hr_image():
    hr = random_image(24, 20)
    level = build_level({'name': 'hr', 'type': 'hr'}, SCALE)
    assert isinstance(level, HRLevel)
    np.testing.assert_array_equal(level(random_image(6, 5), hr, 'img'), hr)


def test_folder_level_matches_by_stem_with_suffix(tmp_path):
    folder = tmp_path / 'sr'
    folder.mkdir()
    images = {stem: random_image(24, 20, seed=i) for i, stem in enumerate(['img1', 'img2'])}
    for stem, image in images.items():
        assert cv2.imwrite(str(folder / f'{stem}x4.png'), image)
    assert cv2.imwrite(str(folder / 'img1.png'), random_image(24, 20, seed=9))  # no suffix: not img1's
    (folder / 'notes.txt').write_text('not an image')
    level = build_level({'name': 'pre', 'type': 'folder', 'folder': str(folder), 'suffix': 'x4'}, SCALE)
    assert isinstance(level, FolderLevel)
    hr = np.zeros((24, 20, 3), np.uint8)
    lr = np.zeros((6, 5, 3), np.uint8)
    for stem, image in images.items():
        np.testing.assert_array_equal(level(lr, hr, stem), image)
    with pytest.raises(LevelError, match=r"Level 'pre': no SR image for 'img3'"):
        level(lr, hr, 'img3')
    with pytest.raises(LevelError, match='does not exist'):
        FolderLevel('pre', str(tmp_path / 'nowhere'))
    # without the suffix the plain file is used
    np.testing.assert_array_equal(FolderLevel('plain', str(folder))(lr, hr, 'img1'), random_image(24, 20, seed=9))


# ------------------------------------------------------------------------------------------------
# network levels


@pytest.fixture(scope='module')
def tiny_net(tmp_path_factory):
    torch.manual_seed(0)
    net = MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=SCALE).eval()
    path = str(tmp_path_factory.mktemp('weights') / 'msrresnet_tiny.pth')
    torch.save({'params': net.state_dict()}, path)
    return net, path


def run_net(net, lr):
    """The network run directly on a BGR uint8 image (RGB float input, rounded uint8 BGR output)."""
    x = torch.from_numpy(np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1))).float().div(255)[None]
    with torch.no_grad():
        out = net(x)[0].clamp(0, 1).mul(255).round().byte().numpy()
    return np.ascontiguousarray(out.transpose(1, 2, 0)[:, :, ::-1])


def test_network_level_equals_the_network(tiny_net):
    net, weights = tiny_net
    lr = random_image(21, 18, seed=3, smooth=1.0)
    hr = np.zeros((21 * SCALE, 18 * SCALE, 3), np.uint8)
    level = build_level({'name': 'srres', 'type': 'network', 'network': NET_OPT, 'weights': weights, 'tile': 0},
                        SCALE, device='cpu')
    assert isinstance(level, NetworkLevel)
    sr = level(lr, hr, 'img')
    assert sr.shape == hr.shape and sr.dtype == np.uint8
    np.testing.assert_array_equal(sr, run_net(net, lr))
    described = level.describe()
    assert described['network'] == NET_OPT and described['weights'] == osp.abspath(weights)


@pytest.mark.parametrize('size', [(37, 45), (16, 16), (5, 33)])
def test_network_level_tiling_matches_untiled(tiny_net, size):
    _, weights = tiny_net
    lr = random_image(*size, seed=4, smooth=1.0)
    hr = np.zeros((size[0] * SCALE, size[1] * SCALE, 3), np.uint8)
    whole = NetworkLevel('n', NET_OPT, weights, SCALE, tile=0, device='cpu')(lr, hr, 'img')
    tiled_level = NetworkLevel('n', NET_OPT, weights, SCALE, tile=16, tile_pad=8, batch_size=3, device='cpu')
    tiled = tiled_level(lr, hr, 'img')
    assert tiled.shape == whole.shape == hr.shape
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 2
    # the interior (more than tile_pad LR pixels from the border) is exact: tiles see all their context
    inner = 8 * SCALE
    if min(size) * SCALE > 2 * inner:
        np.testing.assert_array_equal(tiled[inner:-inner, inner:-inner], whole[inner:-inner, inner:-inner])
    # the batch size does not change the result
    one_by_one = NetworkLevel('n', NET_OPT, weights, SCALE, tile=16, tile_pad=8, batch_size=1, device='cpu')
    np.testing.assert_array_equal(one_by_one(lr, hr, 'img'), tiled)


def test_network_level_missing_weights_names_the_file():
    with pytest.raises(LevelError, match=r"Level 'srres': weights file '/nonexistent\.pth' not found"):
        build_level({'name': 'srres', 'type': 'network', 'network': NET_OPT, 'weights': '/nonexistent.pth'},
                    SCALE, device='cpu')


# ------------------------------------------------------------------------------------------------
# patch selection


def test_patch_grid_corners():
    # 7 x 9 image, 4-pixel patches every 3 pixels: tops 0, 3 (3 + 4 = 7 fits); lefts 0, 3 (6 + 4 > 9)
    assert patch_grid(7, 9, 4, 3) == [(0, 0), (0, 3), (3, 0), (3, 3)]
    # exact fit at the end, raster order (row by row)
    assert patch_grid(10, 4, 4, 3) == [(0, 0), (3, 0), (6, 0)]
    assert patch_grid(300, 300, 200, 100) == [(0, 0), (0, 100), (100, 0), (100, 100)]
    assert patch_grid(4, 4, 4, 100) == [(0, 0)]
    assert patch_grid(3, 10, 4, 1) == []  # no partial patches
    with pytest.raises(ValueError):
        patch_grid(10, 10, 0, 1)
    with pytest.raises(ValueError):
        patch_grid(10, 10, 4, 0)


def test_crop_takes_the_patch_at_the_corner():
    img = np.arange(8 * 9).reshape(8, 9)
    np.testing.assert_array_equal(crop(img, (2, 3), 4), img[2:6, 3:7])


def reference_sharpness(img, block):
    """The documented definition, computed naively: MATLAB rgb2gray, stdfilt (3x3, n-1, symmetric), block means."""
    img = img.astype(np.float64)
    gray = img @ np.array([0.1140, 0.5870, 0.2989]) if img.ndim == 3 else img  # BGR
    padded = np.pad(gray, 1, mode='symmetric')
    height, width = gray.shape
    std_map = np.empty_like(gray)
    for i in range(height):
        for j in range(width):
            std_map[i, j] = padded[i:i + 3, j:j + 3].std(ddof=1)
    block_h, block_w = min(block, height), min(block, width)
    total = 0.0
    for top in range(0, height - block_h + 1, block_h):
        for left in range(0, width - block_w + 1, block_w):
            total += std_map[top:top + block_h, left:left + block_w].mean()
    return total


def test_sharpness_of_flat_image_is_zero():
    for value in (0, 37, 128, 255):
        assert sharpness(np.full((48, 40, 3), value, np.uint8), block=16) == pytest.approx(0, abs=1e-4)
    assert sharpness(np.full((30, 30), 200, np.uint8), block=96) == pytest.approx(0, abs=1e-4)


def test_sharpness_grows_with_texture():
    base = random_image(64, 64, seed=5)
    values = [sharpness(cv2.GaussianBlur(base, (0, 0), sigma), block=32) for sigma in (4.0, 2.0, 1.0, 0.5)]
    values.append(sharpness(base, block=32))
    assert all(a < b for a, b in zip(values, values[1:])), values
    # stronger contrast, higher sharpness (local std is linear in the contrast)
    low = (base.astype(np.float64) * 0.25 + 96).astype(np.uint8)
    assert sharpness(low, block=32) < 0.3 * sharpness(base, block=32)


@pytest.mark.parametrize('shape,block', [((20, 26, 3), 8), ((17, 23, 3), 16), ((12, 10, 3), 96), ((18, 21), 6)])
def test_sharpness_equals_documented_definition(shape, block):
    img = np.random.default_rng(sum(shape) + block).integers(0, 256, size=shape).astype(np.uint8)
    assert sharpness(img, block=block) == pytest.approx(reference_sharpness(img, block), rel=1e-9, abs=1e-9)


def test_sharp_corners_filter():
    img = np.full((40, 80, 3), 120, np.uint8)
    img[:, 40:] = random_image(40, 40, seed=6)  # left half flat, right half textured
    corners = patch_grid(40, 80, 20, 20)
    assert len(corners) == 8
    assert sharp_corners(img, corners, 20, None, 10) == corners  # None keeps all, even flat patches
    kept = sharp_corners(img, corners, 20, 1.0, 10)
    assert kept == [c for c in corners if c[1] >= 40]
    assert sharp_corners(img, corners, 20, 1e9, 10) == []
