"""tools/inference.py and ranksrgan_plugin.inference on a tiny generator and images made here."""
import os.path as osp
import subprocess
import sys
from copy import deepcopy

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs.rrdbnet_arch import RRDBNet
from test_convert_official_weights import OldESRGAN, scaled_random
from tool_loader import load_tool

from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator
from ranksrgan_plugin.inference import (
    GeneratorUpscaler,
    InferenceError,
    load_generator,
    parse_arch_options,
    upscale_folder,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPT = {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 2, 'upscale': 4}


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 120 + 70 * np.sin(xx / 4.0) * np.cos(yy / 6.0)
    return np.clip(np.stack([base, 255 - base, base / 2 + 60], -1) + rng.normal(0, 10, (h, w, 3)), 0,
                   255).round().astype(np.uint8)


def _direct(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float().div(255)[None]
    with torch.no_grad():
        out = net(x)[0].clamp(0, 1).mul(255).round().byte().numpy()
    return np.ascontiguousarray(out.transpose(1, 2, 0)[:, :, ::-1])


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    net = RankSRGANGenerator(**{k: v for k, v in OPT.items() if k != 'type'}).eval()
    ckpt = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, ckpt)
    lr_dir = tmp_path / 'LR'
    lr_dir.mkdir()
    images = {'a': _image(20, 28, 0), 'b': _image(33, 17, 1)}
    for stem, img in images.items():
        cv2.imwrite(str(lr_dir / f'{stem}.png'), img)
    return {'net': net, 'ckpt': str(ckpt), 'lr': str(lr_dir), 'images': images, 'tmp': tmp_path}


def test_output_size_and_equal_to_direct_output(setup):
    net, opt = load_generator(setup['ckpt'], OPT)
    upscaler = GeneratorUpscaler(net, opt, device='cpu')
    assert upscaler.scale == 4
    written = upscale_folder(setup['lr'], str(setup['tmp'] / 'SR'), upscaler, progress=False)
    assert [osp.basename(p) for p in written] == ['a.png', 'b.png']
    for path, lr in zip(written, setup['images'].values()):
        sr = cv2.imread(path, cv2.IMREAD_COLOR)
        assert sr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
        np.testing.assert_array_equal(sr, _direct(setup['net'], lr))


def test_tiled_equals_untiled(setup):
    """With the default context (the receptive-field radius), tiles (context clipped at the image edge,
    where the network's own zero padding applies) reproduce the whole-image output, borders included."""
    net, opt = load_generator(setup['ckpt'], OPT)
    lr = _image(40, 44, 2)
    tiled_upscaler = GeneratorUpscaler(net, opt, tile=12, batch_size=3, device='cpu')
    assert tiled_upscaler.tile_pad == tiled_upscaler.receptive_radius == 10  # 1 + 2 * 2 + 1 + 4 (x4 tail)
    tiled = tiled_upscaler(lr)
    whole = GeneratorUpscaler(net, opt, device='cpu')(lr)
    assert tiled.shape == whole.shape == (160, 176, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # float32 kernels' last-bit rounding only
    # in float64 that rounding is far below half a grey level: the tiling alone, exactly
    net64 = deepcopy(net).double()
    assert torch.equal(torch.from_numpy(GeneratorUpscaler(net64, opt, tile=12, batch_size=3, device='cpu')(lr)),
                       torch.from_numpy(GeneratorUpscaler(net64, opt, device='cpu')(lr)))
    # a smaller pad is allowed for inference (memory, speed), with a warning: the tile seams show
    with pytest.warns(UserWarning, match=r'tile pad 0 is below the RankSRGANGenerator receptive-field radius '
                                         r'\(10 LR pixels\)'):
        unpadded = GeneratorUpscaler(net, opt, tile=12, tile_pad=0, device='cpu')
    assert np.abs(unpadded(lr).astype(int) - whole.astype(int)).max() > 1


def test_bad_tiling_options_are_refused(setup):
    net, opt = load_generator(setup['ckpt'], OPT)
    with pytest.raises(InferenceError, match='tile_pad must be `auto` or a pixel count'):
        GeneratorUpscaler(net, opt, tile=12, tile_pad=-1, device='cpu')
    with pytest.raises(InferenceError, match='tile must be 0'):
        GeneratorUpscaler(net, opt, tile=-4, device='cpu')


def test_official_checkpoint_is_converted(setup):
    sd = setup['net'].state_dict()
    tail = {'upconv1': 'model.2', 'upconv2': 'model.5', 'HRconv': 'model.8', 'conv_last': 'model.10'}
    official = {}
    for key, value in sd.items():
        name, param = key.rsplit('.', 1)
        if name.startswith('recon_trunk.'):
            _, block, conv = name.split('.')
            name = f'model.1.sub.{block}.res.{0 if conv == "conv1" else 2}'
        else:
            name = {'conv_first': 'model.0', 'LRconv': 'model.1.sub.2', **tail}[name]
        official[f'{name}.{param}'] = value
    path = setup['tmp'] / 'RankSRGAN_official.pth'
    torch.save(official, path)
    net, opt = load_generator(str(path))
    assert opt['num_feat'] == 8 and opt['num_block'] == 2 and opt['upscale'] == 4
    lr = setup['images']['a']
    np.testing.assert_array_equal(GeneratorUpscaler(net, opt, device='cpu')(lr), _direct(setup['net'], lr))


def test_official_esrgan_checkpoint_with_and_without_arch(setup):
    """ESRGAN's older release layout: converted with the architecture read off the weights, or loaded into
    a given RRDBNet (--arch RRDBNet ...)."""
    old = scaled_random(OldESRGAN(8, 2, 4), seed=3)
    path = setup['tmp'] / 'ESRGAN_SuperSR.pth'
    torch.save(old.state_dict(), path)
    lr = setup['images']['b']
    net, opt = load_generator(str(path))
    assert opt == {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 8, 'num_block': 2,
                   'num_grow_ch': 4}
    np.testing.assert_array_equal(GeneratorUpscaler(net, opt, device='cpu')(lr), _direct(old, lr))
    arch = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'num_grow_ch': 4}
    net, _ = load_generator(str(path), arch)
    assert isinstance(net, RRDBNet)
    np.testing.assert_array_equal(GeneratorUpscaler(net, arch, device='cpu')(lr), _direct(old, lr))
    with pytest.raises(InferenceError, match=r'an official rrdbnet_model checkpoint: .*does not fit the network'):
        load_generator(str(path), {**arch, 'num_block': 3})


def test_errors(setup):
    with pytest.raises(InferenceError, match='nope.pth does not exist'):
        load_generator(str(setup['tmp'] / 'nope.pth'), OPT)
    with pytest.raises(InferenceError, match='does not fit the network'):
        load_generator(setup['ckpt'], {**OPT, 'num_block': 3})
    with pytest.raises(InferenceError, match="no 'params_ema' entry"):
        load_generator(setup['ckpt'], OPT, param_key='params_ema')
    torch.save({'params': {'foo.weight': torch.zeros(1)}}, setup['tmp'] / 'odd.pth')
    with pytest.raises(InferenceError, match='Unknown checkpoint layout'):
        load_generator(str(setup['tmp'] / 'odd.pth'))
    empty = setup['tmp'] / 'empty'
    empty.mkdir()
    upscaler = GeneratorUpscaler(*load_generator(setup['ckpt'], OPT), device='cpu')
    with pytest.raises(InferenceError, match='empty holds no image'):
        upscale_folder(str(empty), str(setup['tmp'] / 'out'), upscaler, progress=False)
    with pytest.raises(InferenceError, match='missing does not exist'):
        upscale_folder(str(setup['tmp'] / 'missing'), str(setup['tmp'] / 'out'), upscaler, progress=False)
    assert parse_arch_options(['num_feat=8', 'act=relu']) == {'num_feat': 8, 'act': 'relu'}
    with pytest.raises(InferenceError, match='KEY=VALUE'):
        parse_arch_options(['num_feat'])


def test_cli(setup):
    opt_file = setup['tmp'] / 'train.yml'
    opt_file.write_text(yaml.safe_dump({'network_g': OPT}))
    out_dir = setup['tmp'] / 'cli'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'inference.py'), '--input', setup['lr'], '--output', str(out_dir),
           '--checkpoint', setup['ckpt'], '--opt', str(opt_file), '--tile', '16', '--device', 'cpu', '--suffix',
           '_x4', '--no-progress']
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'Wrote 2 image(s) (x4, RankSRGANGenerator)' in done.stdout
    sr = cv2.imread(str(out_dir / 'b_x4.png'), cv2.IMREAD_COLOR)
    assert sr.shape == (33 * 4, 17 * 4, 3)


def test_cli_small_tile_pad_warns_and_bad_one_is_refused(setup, capsys):
    tool = load_tool('inference')
    args = ['--input', setup['lr'], '--output', str(setup['tmp'] / 'w'), '--checkpoint', setup['ckpt'], '--arch',
            'RankSRGANGenerator', '--arch-opt', 'num_feat=8', 'num_block=2', '--tile', '8', '--device', 'cpu',
            '--no-progress']
    with pytest.warns(UserWarning, match='tile pad 3 is below'):
        assert tool.main(args + ['--tile-pad', '3']) == 0
    with pytest.raises(SystemExit) as info:
        tool.main(args + ['--tile-pad', 'wide'])
    assert info.value.code == 2 and "expected auto or a pixel count >= 0, got 'wide'" in capsys.readouterr().err


def test_cli_error_exit_status(setup, capsys):
    tool = load_tool('inference')
    rc = tool.main(['--input', setup['lr'], '--output', str(setup['tmp'] / 'o'), '--checkpoint',
                    str(setup['tmp'] / 'gone.pth'), '--no-progress'])
    assert rc == 2 and 'gone.pth does not exist' in capsys.readouterr().err
    rc = tool.main(['--input', setup['lr'], '--output', str(setup['tmp'] / 'o'), '--checkpoint', setup['ckpt'],
                    '--arch-opt', 'num_feat=8', '--no-progress'])
    assert rc == 2 and '--arch-opt needs --arch' in capsys.readouterr().err
