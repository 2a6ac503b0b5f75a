"""SR levels (builtin, hr, folder, network with tiling) and patch selection (grid, sharpness filter)."""
import os.path as osp
from copy import deepcopy

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.utils.matlab_functions import imresize
from test_convert_official_weights import MmsrRRDBNet, OldESRGAN, OldSRResNet

from ranksrgan_plugin.archs import RankSRGANGenerator
from ranksrgan_plugin.rank_dataset.levels import (
    BUILTIN_UPSCALERS,
    BuiltinLevel,
    FolderLevel,
    HRLevel,
    LevelError,
    NetworkLevel,
    build_level,
    matlab_bicubic,
)
from ranksrgan_plugin.rank_dataset.patch_selection import crop, patch_grid, sharp_corners, sharpness
from ranksrgan_plugin.utils.receptive_field import (
    ReceptiveField,
    UnboundedReceptiveField,
    receptive_field,
    receptive_field_radius,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
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
    whole = in_float64(NetworkLevel('n', NET_OPT, weights, SCALE, device='cpu'))(lr, hr, 'img')
    tiled_level = in_float64(NetworkLevel('n', NET_OPT, weights, SCALE, tile=16, tile_pad=8, batch_size=3,
                                          device='cpu'))
    tiled = tiled_level(lr, hr, 'img')
    assert tiled.shape == whole.shape == hr.shape
    np.testing.assert_array_equal(tiled, whole)  # 8 >= the receptive-field radius (7)
    # the batch size does not change the result
    one_by_one = in_float64(NetworkLevel('n', NET_OPT, weights, SCALE, tile=16, tile_pad=8, batch_size=1,
                                         device='cpu'))
    np.testing.assert_array_equal(one_by_one(lr, hr, 'img'), tiled)


# ------------------------------------------------------------------------------------------------
# receptive field and exact tiling, for each network level type


def in_float64(level):
    """The level with its network in float64. Float32 kernels (oneDNN, cuDNN, the vectorised bilinear
    upsampling) round the last bit differently for different input shapes, so a tile and the whole image
    can differ by one grey level on a rare pixel (see test_tiled_level_close_in_float32); in float64 that
    rounding is far below a grey level's half, and the comparison tests the tiling alone."""
    level.net.double()
    return level


def randomize(net, seed):
    """He-scaled random weights and small random biases: varied, moderate activations in any depth."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.named_parameters():
            if name.endswith('weight'):
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    return net.eval()


# (network options, LR size, receptive-field radius): LR sizes leave tiles smaller than the image
TILING_CASES = {
    'MSRResNet': ({'type': 'MSRResNet', 'num_feat': 8, 'num_block': 2, 'upscale': 4}, (23, 31), 9),
    'RankSRGANGenerator': ({'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 2, 'upscale': 4}, (23, 31), 10),
    'RRDBNet': ({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 8, 'num_block': 1,
                 'num_grow_ch': 4}, (53, 61), 21),
    'RRDBNet_x2': ({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 2, 'num_feat': 8, 'num_block': 1,
                    'num_grow_ch': 4}, (86, 94), 38),
}


@pytest.fixture(scope='module')
def level_weights(tmp_path_factory):
    """name -> (network with random weights, BasicSR checkpoint path) for each case of TILING_CASES."""
    folder = tmp_path_factory.mktemp('level_weights')
    nets = {}
    for seed, (name, (opt, _, _)) in enumerate(TILING_CASES.items()):
        net = randomize(build_network(dict(opt)), seed)
        torch.save({'params': net.state_dict()}, folder / f'{name}.pth')
        nets[name] = (net, str(folder / f'{name}.pth'))
    return nets


@pytest.mark.parametrize('case', sorted(TILING_CASES))
def test_tiled_level_equals_untiled_exactly(level_weights, case):
    opt, size, radius = TILING_CASES[case]
    scale = opt.get('upscale', opt.get('scale'))
    net, weights = level_weights[case]
    lr = random_image(*size, seed=7, smooth=1.0)
    hr = np.zeros((size[0] * scale, size[1] * scale, 3), np.uint8)
    whole_level = NetworkLevel(case, opt, weights, scale, device='cpu')
    assert whole_level.tile == 0  # untiled by default
    np.testing.assert_array_equal(whole_level(lr, hr, case), run_net(net, lr))
    tiled_level = build_level({'name': case, 'type': 'network', 'network': opt, 'weights': weights, 'tile': 8,
                               'tile_pad': 'auto', 'batch_size': 3}, scale, device='cpu')
    assert tiled_level.tile_pad == tiled_level.receptive_radius == radius
    assert tiled_level.describe()['tile_pad'] == radius
    assert 8 + 2 * radius < max(size)  # some tiles are real crops of the image
    whole = in_float64(whole_level)(lr, hr, case)
    tiled = in_float64(tiled_level)(lr, hr, case)
    assert whole.std() > 5  # a varied image, not one clipped to a constant
    assert torch.equal(torch.from_numpy(tiled), torch.from_numpy(whole))


@pytest.mark.parametrize('case', sorted(TILING_CASES))
def test_tiled_level_close_in_float32(level_weights, case):
    """In float32 the outputs of tiles and whole image differ in the kernels' last bits only (no seams);
    a far too short pad (what an explicit pad below the radius would do) shows seams."""
    opt, size, radius = TILING_CASES[case]
    scale = opt.get('upscale', opt.get('scale'))
    level = NetworkLevel(case, opt, level_weights[case][1], scale, tile=8, device='cpu')
    lr = random_image(*size, seed=8, smooth=1.0)
    x = torch.from_numpy(np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1))).float().div(255)[None]
    with torch.no_grad():
        whole = level.net(x)
        assert (level._run_tiled(x) - whole).abs().max() < 1e-5
        level.tile_pad = 2  # what a too-small explicit pad would do (refused by the level)
        assert (level._run_tiled(x) - whole).abs().max() > 1e-3


@pytest.mark.parametrize('case', sorted(TILING_CASES))
def test_receptive_radius_bounds_the_true_reach(level_weights, case):
    """Perturbing one LR pixel changes the (float64) output only within radius LR pixels of it."""
    opt, _, radius = TILING_CASES[case]
    scale = opt.get('upscale', opt.get('scale'))
    net = deepcopy(level_weights[case][0]).double()
    assert receptive_field_radius(net) == radius
    side = 2 * (radius + 4) + 2  # room to see a reach of up to radius + 4 on every side
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    centre = side // 2
    moved = x.clone()
    moved[0, :, centre, centre] += 0.5
    with torch.no_grad():
        changed = (net(x) != net(moved)).any(dim=1)[0]
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = int(max((rows // scale - centre).abs().max(), (cols // scale - centre).abs().max()))
    assert radius // 2 <= reach <= radius, (reach, radius)


def test_receptive_radius_of_the_paper_networks():
    """x4 SRResNet-type networks and ESRGAN's RRDBNet at their usual sizes (64 features)."""
    assert receptive_field_radius(MSRResNet(num_feat=64, num_block=16, upscale=4)) == 37
    assert receptive_field_radius(RankSRGANGenerator(num_feat=64, num_block=16, upscale=4)) == 38
    assert receptive_field_radius(RRDBNet(3, 3, scale=4, num_feat=64, num_block=23)) == 351


def test_receptive_field_of_generic_layers():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, padding=2), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                              torch.nn.Upsample(scale_factor=2, mode='bilinear'), torch.nn.Conv2d(4, 3, 3, padding=1))
    # 2 + (pool: reach max(0, 1) = 1 at 1x) + ceil(2 / 0.5) + ceil(1 / 0.5) (upsampler) + 1, aligned to 2
    assert receptive_field(net) == ReceptiveField(radius=10, alignment=2)


def test_global_pooling_has_no_finite_receptive_field(tmp_path):
    """RCAN's channel attention pools the whole image: such a level runs untiled only."""
    opt = {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_group': 1, 'num_block': 1,
           'squeeze_factor': 4, 'upscale': 4}
    net = build_network(dict(opt))
    with pytest.raises(UnboundedReceptiveField, match=r'RCAN pools globally \(AdaptiveAvgPool2d\)'):
        receptive_field(net)
    weights = tmp_path / 'rcan.pth'
    torch.save({'params': net.state_dict()}, weights)
    with pytest.raises(LevelError, match=r"Level 'rcan': RCAN pools globally .* run it untiled \(tile: 0\)"):
        NetworkLevel('rcan', opt, str(weights), 4, tile=8, device='cpu')
    lr = random_image(9, 7, seed=1)
    assert NetworkLevel('rcan', opt, str(weights), 4, device='cpu')(lr, np.zeros((36, 28, 3), np.uint8), 'i').shape \
        == (36, 28, 3)


def test_too_small_tile_pad_is_refused(level_weights):
    opt, _, radius = TILING_CASES['RRDBNet']
    weights = level_weights['RRDBNet'][1]
    level_opt = {'name': 'esrgan', 'type': 'network', 'network': opt, 'weights': weights, 'tile': 8}
    with pytest.raises(LevelError, match=rf"Level 'esrgan': tile_pad 16 is below .* radius \({radius} LR pixels\)"
                                         rf".*at least {radius}"):
        build_level({**level_opt, 'tile_pad': 16}, 4, device='cpu')
    assert build_level({**level_opt, 'tile_pad': radius}, 4, device='cpu').tile_pad == radius
    # untiled, the pad is not used: no error
    assert build_level({**level_opt, 'tile': 0, 'tile_pad': 16}, 4, device='cpu').tile == 0
    with pytest.raises(LevelError, match="tile_pad must be `auto` or a pixel count"):
        build_level({**level_opt, 'tile_pad': 'big'}, 4, device='cpu')
    with pytest.raises(LevelError, match='tile must be 0'):
        build_level({**level_opt, 'tile': -8}, 4, device='cpu')
    x2_opt, _, _ = TILING_CASES['RRDBNet_x2']
    x2_level = {**level_opt, 'network': x2_opt, 'weights': level_weights['RRDBNet_x2'][1]}
    with pytest.raises(LevelError, match='tile 7 is not a multiple of 2'):
        build_level({**x2_level, 'tile': 7}, 2, device='cpu')
    with pytest.raises(LevelError, match='tile_pad 39 is not a multiple of 2'):
        build_level({**x2_level, 'tile_pad': 39}, 2, device='cpu')


# ------------------------------------------------------------------------------------------------
# network levels reading the official checkpoints (the paper's SRResNet / SRGAN / ESRGAN files)


def test_network_level_reads_official_srresnet_layout(tmp_path):
    nf, nb = 8, 2
    old = randomize(OldSRResNet(nf, nb), seed=3)
    weights = tmp_path / 'SRResNet_bicx4_in3nf64nb16.pth'
    torch.save(old.state_dict(), weights)  # a bare model.N state_dict, as the release
    opt = {'type': 'RankSRGANGenerator', 'num_feat': nf, 'num_block': nb, 'upscale': 4}
    level = build_level({'name': 'srres', 'type': 'network', 'network': opt, 'weights': str(weights)}, 4,
                        device='cpu')
    lr = random_image(13, 11, seed=2, smooth=1.0)
    np.testing.assert_array_equal(level(lr, np.zeros((52, 44, 3), np.uint8), 'img'), run_net(old, lr))


@pytest.mark.parametrize('layout', ['model', 'mmsr'])
def test_network_level_reads_official_esrgan_layouts(tmp_path, layout):
    nf, nb, gc = 8, 1, 4
    source = randomize(OldESRGAN(nf, nb, gc) if layout == 'model' else MmsrRRDBNet(nf, nb, gc), seed=5)
    weights = tmp_path / 'ESRGAN_SuperSR.pth'
    torch.save(source.state_dict(), weights)
    opt = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': nf, 'num_block': nb, 'num_grow_ch': gc}
    level = NetworkLevel('esrgan', opt, str(weights), 4, device='cpu')
    lr = random_image(12, 10, seed=3, smooth=1.0)
    sr = level(lr, np.zeros((48, 40, 3), np.uint8), 'img')
    np.testing.assert_array_equal(sr, run_net(source, lr))
    assert sr.std() > 10


def test_network_level_official_layout_of_another_network_is_refused(tmp_path):
    weights = tmp_path / 'SRGAN.pth'
    torch.save(randomize(OldSRResNet(8, 2), seed=1).state_dict(), weights)
    opt = {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 3, 'upscale': 4}
    with pytest.raises(LevelError, match=r"Level 'srgan': .*SRGAN.pth \(an official generator_model checkpoint: "
                                         r".*'num_block': 2.*\) does not fit the network RankSRGANGenerator"):
        build_level({'name': 'srgan', 'type': 'network', 'network': opt, 'weights': str(weights)}, 4, device='cpu')


def test_paper_options_use_the_authors_networks_untiled():
    """The paper's rank-dataset options: the authors' SRResNet / SRGAN (the RankSRGAN generator) and ESRGAN."""
    for variant in ('NIQE', 'Ma', 'PI', 'NIQE_HR'):
        with open(osp.join(REPO, 'options', f'rank_dataset_DF2K_{variant}.yml')) as f:
            levels = {level['name']: level for level in yaml.safe_load(f)['levels']}
        expected = {'srres': ('RankSRGANGenerator', 'SRResNet_bicx4_in3nf64nb16.pth'),
                    'srgan': ('RankSRGANGenerator', 'SRGAN.pth'), 'esrgan': ('RRDBNet', 'ESRGAN_SuperSR.pth')}
        if variant == 'NIQE_HR':
            expected.pop('esrgan')
            assert levels['hr']['type'] == 'hr'
        for name, (arch, weights) in expected.items():
            level = levels[name]
            assert level['network']['type'] == arch and osp.basename(level['weights']) == weights, (variant, name)
            assert level.get('tile', 0) == 0 and 'tile_pad' not in level, (variant, name)
        if 'esrgan' in expected:
            assert levels['esrgan']['network']['num_block'] == 23
    with open(osp.join(REPO, 'options', 'rank_dataset_DF2K_NIQE_basicsr_zoo.yml')) as f:
        zoo = [level['network']['type'] for level in yaml.safe_load(f)['levels']]
    assert zoo == ['MSRResNet', 'MSRResNet', 'RRDBNet']


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


def test_level_and_patch_metric_registries():
    from ranksrgan_plugin.rank_dataset import LEVEL_REGISTRY, PATCH_METRIC_REGISTRY, build_patch_metric
    from ranksrgan_plugin.rank_dataset.patch_metrics import MaPatchMetric, NIQEPatchMetric, PIPatchMetric

    assert LEVEL_REGISTRY.names() == ['network', 'folder', 'hr', 'builtin']
    assert [LEVEL_REGISTRY.get(name) for name in ('network', 'folder', 'hr', 'builtin')] == [
        NetworkLevel, FolderLevel, HRLevel, BuiltinLevel]
    assert set(PATCH_METRIC_REGISTRY.names()) >= {'niqe', 'ma', 'pi'}
    assert [PATCH_METRIC_REGISTRY.get(name) for name in ('niqe', 'ma', 'pi')] == [
        NIQEPatchMetric, MaPatchMetric, PIPatchMetric]
    with pytest.raises(LevelError, match=r"^Level 'x': unknown type 'gan'; use network, folder, hr or builtin\.$"):
        build_level({'name': 'x', 'type': 'gan'}, SCALE)
    with pytest.raises(ValueError, match=r"^Unknown rank-dataset metric 'brisque'; available: \[.*'ma', 'niqe', 'pi'"):
        build_patch_metric({'type': 'brisque'})


def test_network_level_that_is_no_upscaler_is_refused_by_name(tmp_path):
    """Was: a Ranker as a level network: a raw ScaleError traceback from the tool (or 'upscales x0' before)."""
    opt = {'type': 'RankerVGG', 'depth': 8}
    weights = tmp_path / 'ranker.pth'
    torch.save({'params': build_network(dict(opt)).state_dict()}, weights)
    with pytest.raises(LevelError, match=rf"Level 'srgan': the network RankerVGG \({weights}\) (cannot run on|maps)"):
        build_level({'name': 'srgan', 'type': 'network', 'network': opt, 'weights': str(weights)}, SCALE,
                    device='cpu')
