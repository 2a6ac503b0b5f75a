"""Issue 29 items 1, 2 and 6b: a scale the network does not have, files that do not pair one to one by stem,
and an image too small for NIQE are refused by name before any work (tools, Python API, MMagic side)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from tool_loader import load_tool

from ranksrgan_plugin import evaluation
from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator
from ranksrgan_plugin.evaluation import EvaluationError, evaluate_folder, evaluate_folders
from ranksrgan_plugin.inference import GeneratorUpscaler, InferenceError, load_generator, upscale_folder
from ranksrgan_plugin.mmagic.inference import init_model
from ranksrgan_plugin.utils.tiling import TilingError
from ranksrgan_plugin.utils.upscaler import ScaleError, TiledUpscaler, infer_scale

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEST_CONFIG = osp.join(ROOT, 'options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm.py')


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 128 + 60 * np.sin(xx / (4.0 + seed)) * np.cos(yy / 7.0)
    img = np.stack([base, 255 - base, base / 2 + 60], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _generator(tmp_path, upscale: int):
    """A tiny RankSRGANGenerator of ``upscale`` and its BasicSR checkpoint."""
    torch.manual_seed(upscale)
    net = RankSRGANGenerator(num_feat=8, num_block=1, upscale=upscale).eval()
    ckpt = tmp_path / f'net_g_x{upscale}.pth'
    torch.save({'params': net.state_dict()}, ckpt)
    return net, str(ckpt)


def _arch_args(upscale: int):
    return ['--arch', 'RankSRGANGenerator', '--arch-opt', 'num_feat=8', 'num_block=1', f'upscale={upscale}']


@pytest.fixture
def lr_folder(tmp_path):
    folder = tmp_path / 'LR'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), _image(40, 36, 0))
    return folder


# ---------------------------------------------------------------------------------------------- 1. scale
@pytest.mark.parametrize('network, asked', [(4, 2), (2, 4)])
def test_cli_refuses_a_scale_the_network_does_not_have(tmp_path, lr_folder, capsys, network, asked):
    """Was: x4 network + --scale 2 --tile 16: exit 0, "x2", a patchwork of tiles; the reverse: a raw RuntimeError.
    Without --scale (or with the right one) the measured scale is used and printed."""
    _, ckpt = _generator(tmp_path, network)
    tool = load_tool('inference')
    common = ['--checkpoint', ckpt, *_arch_args(network), '--tile', '16', '--device', 'cpu', '--no-progress']
    out = tmp_path / 'SR'
    rc = tool.main(['--input', str(lr_folder), '--output', str(out), *common, '--scale', str(asked)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f'--scale {asked} does not match' in err and ckpt in err and f'upscales x{network}' in err
    assert 'Traceback' not in err and not out.exists()
    for extra in ([], ['--scale', str(network)]):
        assert tool.main(['--input', str(lr_folder), '--output', str(out), *common, *extra]) == 0
        assert f'(x{network}, RankSRGANGenerator)' in capsys.readouterr().out
        assert cv2.imread(str(out / 'a.png')).shape == (40 * network, 36 * network, 3)


def test_api_refuses_a_scale_naming_the_weights(tmp_path):
    net, ckpt = _generator(tmp_path, 4)
    model, options = load_generator(ckpt, {'type': 'RankSRGANGenerator', 'num_feat': 8, 'num_block': 1, 'upscale': 4})
    with pytest.raises(InferenceError, match=rf'--scale 2 does not match RankSRGANGenerator \({ckpt}\): the '
                                             r'network upscales x4'):
        GeneratorUpscaler(model, options, scale=2, tile=16, device='cpu', weights=ckpt)
    with pytest.raises(InferenceError, match='--scale must be a positive integer'):
        GeneratorUpscaler(model, options, scale=0, device='cpu', weights=ckpt)
    assert GeneratorUpscaler(model, options, scale=4, device='cpu', weights=ckpt).scale == 4


def test_tiled_upscaler_given_a_wrong_scale_refuses_to_stitch(tmp_path):
    """A TiledUpscaler built by hand (as the demo's) with another scale: was a patchwork, now a TilingError."""
    net, _ = _generator(tmp_path, 4)
    upscaler = TiledUpscaler(net, 2, torch.device('cpu'), tile=16, tile_pad=8)
    with pytest.raises(TilingError, match=r'maps 24x24 tiles to \(96, 96\), not to the 48x48 of the scale 2'):
        upscaler(_image(40, 40))


def test_infer_scale_refuses_what_is_not_an_integer_upscaler():
    ranker_like = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                                      torch.nn.Flatten())
    with pytest.raises(ScaleError, match=r'the Ranker maps a \(1, 3, 16, 16\) input to \(1, 4\)'):
        infer_scale(ranker_like, name='the Ranker')
    fractional = torch.nn.Upsample(scale_factor=1.5)
    with pytest.raises(ScaleError, match='not an image upscaled by an integer factor'):
        infer_scale(fractional)


def test_mmagic_init_model_measures_the_scale_and_refuses_another_config_scale(tmp_path):
    cfg = Config.fromfile(TEST_CONFIG)
    cfg.model.generator = dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=1,
                               upscale_factor=2)
    with pytest.raises(ScaleError, match=r'scale = 4, but its model.generator \(MSRResNet\) upscales x2'):
        init_model(cfg)
    cfg.scale = 2
    assert init_model(cfg).scale == 2


# -------------------------------------------------------------------------------------------- 2. pairing
def test_inference_refuses_two_inputs_of_one_stem(tmp_path, lr_folder, capsys):
    """Was: x.png and x.jpg wrote one x.png and reported two."""
    cv2.imwrite(str(lr_folder / 'a.jpg'), _image(40, 36, 1))
    cv2.imwrite(str(lr_folder / 'b.png'), _image(40, 36, 2))
    net, ckpt = _generator(tmp_path, 2)
    upscaler = GeneratorUpscaler(net, {'type': 'RankSRGANGenerator'}, device='cpu')
    with pytest.raises(InferenceError, match=r'1 stem\(s\) name more than one image: a.jpg and a.png'):
        upscale_folder(str(lr_folder), str(tmp_path / 'SR'), upscaler, progress=False)
    assert not (tmp_path / 'SR').exists()
    rc = load_tool('inference').main(['--input', str(lr_folder), '--output', str(tmp_path / 'SR'), '--checkpoint',
                                      ckpt, *_arch_args(2), '--device', 'cpu', '--no-progress'])
    assert rc == 2 and 'a.jpg and a.png' in capsys.readouterr().err


def test_inference_refuses_the_input_folder_as_output(tmp_path, lr_folder):
    net, _ = _generator(tmp_path, 2)
    upscaler = GeneratorUpscaler(net, {'type': 'RankSRGANGenerator'}, device='cpu')
    with pytest.raises(InferenceError, match='is the input folder'):
        upscale_folder(str(lr_folder), str(lr_folder), upscaler, progress=False)
    assert os.listdir(lr_folder) == ['a.png']


@pytest.fixture
def eval_folders(tmp_path):
    """HR and SR folders of two 104x200 images (two NIQE blocks after the 4-pixel shave: the fewest it takes)."""
    hr, sr = tmp_path / 'HR', tmp_path / 'SR'
    hr.mkdir()
    sr.mkdir()
    for i, stem in enumerate(('astronaut', 'coffee')):
        cv2.imwrite(str(hr / f'{stem}.png'), _image(104, 200, i))
        cv2.imwrite(str(sr / f'{stem}.png'), cv2.GaussianBlur(_image(104, 200, i), (5, 5), 1.0))
    return {'hr': str(hr), 'sr': str(sr), 'tmp': tmp_path}


def test_evaluation_refuses_a_stale_file_of_the_same_stem(eval_folders, capsys):
    """Was: astronaut.png and a stale astronaut.tif in the SR folder: the .tif was scored."""
    cv2.imwrite(osp.join(eval_folders['sr'], 'astronaut.tif'), _image(104, 200, 9))
    with pytest.raises(EvaluationError, match=r'SR: 1 stem\(s\) name more than one image: astronaut.png and '
                                              r'astronaut.tif'):
        evaluate_folder(eval_folders['sr'], eval_folders['hr'], progress=False)
    rc = load_tool('evaluate').main(['--hr', eval_folders['hr'], '--sr', eval_folders['sr'], '--output',
                                     str(eval_folders['tmp'] / 'out'), '--no-progress'])
    assert rc == 2 and 'astronaut.png and astronaut.tif' in capsys.readouterr().err


def test_evaluation_refuses_an_hr_image_without_its_sr_unless_allowed(eval_folders, capsys):
    """Was: the HR image without an SR image was left out silently (a mean over fewer images)."""
    os.remove(osp.join(eval_folders['sr'], 'coffee.png'))
    out_dir = str(eval_folders['tmp'] / 'out')
    with pytest.raises(EvaluationError, match=r'No SR image in .*SR for 1 HR image\(s\): .*HR.coffee\.png\. Only 1 '
                                              r'of the 2 HR images pair; .* --allow-missing'):
        evaluate_folders([eval_folders['sr']], eval_folders['hr'], out_dir, progress=False)
    out = evaluate_folders([eval_folders['sr']], eval_folders['hr'], out_dir, progress=False, allow_missing=True)
    assert [row['name'] for row in out['results']['SR']] == ['astronaut']
    assert '| SR | 1 of 2 |' in out['table']
    rc = load_tool('evaluate').main(['--hr', eval_folders['hr'], '--sr', eval_folders['sr'], '--output', out_dir,
                                     '--no-progress', '--allow-missing'])
    assert rc == 0 and '| SR | 1 of 2 |' in capsys.readouterr().out


# ------------------------------------------------------------------------------------ 6b. too small for NIQE
def test_images_too_small_for_niqe_are_all_named_before_any_metric_runs(eval_folders, monkeypatch, capsys):
    """NIQE needs two full 96x96 blocks after the shave: 104x199 (one block) is refused, by file."""
    second = eval_folders['tmp'] / 'SR2'
    second.mkdir()
    for folder in (eval_folders['sr'], str(second)):
        for stem in ('astronaut', 'coffee'):
            cv2.imwrite(osp.join(folder, f'{stem}.png'), _image(104, 200, 3))
    for stem in ('astronaut', 'coffee'):  # the HR images too, as sizes must agree
        cv2.imwrite(osp.join(eval_folders['hr'], f'{stem}.png'), _image(104, 199, 3))
        cv2.imwrite(osp.join(eval_folders['sr'], f'{stem}.png'), _image(104, 199, 3))
    cv2.imwrite(osp.join(str(second), 'coffee.png'), _image(100, 100, 3))

    def no_metric(*args, **kwargs):
        raise AssertionError('a metric ran before the inputs were checked')

    monkeypatch.setattr(evaluation, 'image_metrics', no_metric)
    with pytest.raises(EvaluationError) as info:
        evaluate_folders([eval_folders['sr'], str(second)], eval_folders['hr'], str(eval_folders['tmp'] / 'o'),
                         progress=False)
    message = str(info.value)
    assert message.startswith('3 problems, nothing evaluated')
    assert ('2 SR image(s) too small for NIQE, which needs at least 2 full 96x96 blocks after the 4-pixel shave '
            '(--crop-border), e.g. 104x200 or 200x104 pixels (with one block the covariance of its features is '
            f'undefined and the score meaningless): {eval_folders["sr"]}{os.sep}astronaut.png (199x104), '
            f'{eval_folders["sr"]}{os.sep}coffee.png (199x104).') in message
    assert f'SR2{os.sep}coffee.png is 100x100, ' in message  # its HR is 199x104: the size mismatch, named
    assert f'Size mismatch: {second}{os.sep}astronaut.png is 200x104' in message
    rc = load_tool('evaluate').main(['--hr', eval_folders['hr'], '--sr', eval_folders['sr'], '--output',
                                     str(eval_folders['tmp'] / 'o'), '--no-progress', '--crop-border', '8'])
    err = capsys.readouterr().err
    assert rc == 2 and 'e.g. 112x208 or 208x112 pixels' in err and 'coffee.png (199x104)' in err


def test_evaluation_refuses_the_hr_folder_as_sr_and_a_negative_crop_border(eval_folders):
    with pytest.raises(EvaluationError, match='is the HR folder'):
        evaluate_folder(eval_folders['hr'], eval_folders['hr'], progress=False)
    with pytest.raises(EvaluationError, match=r'crop_border \(--crop-border\) must be a pixel count >= 0, got -1'):
        evaluate_folder(eval_folders['sr'], eval_folders['hr'], crop_border=-1, progress=False)
