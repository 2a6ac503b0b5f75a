"""MMagic's evaluation protocol (the test configs) equals the BasicSR side's numbers; inference from generator weights
alone (no Ranker, no VGG19 file)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from mmagic.structures import DataSample
from mmagic_evaluation import run_evaluator
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from test_ma_metric import _photo, _write_model

import ranksrgan_plugin.mmagic  # noqa: F401  (registers the plugin's metrics and models)
from ranksrgan_plugin.evaluation import evaluate_folder
from ranksrgan_plugin.mmagic.inference import inference_config, init_model, upscale_image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEST_CONFIG = osp.join(ROOT, 'options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm.py')
MA_PI_CONFIG = osp.join(ROOT, 'options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm-ma-pi.py')
TRAIN_CONFIG = osp.join(ROOT, 'options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py')
TINY_GENERATOR = dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=4)


def _image(seed: int, size: int = 96) -> np.ndarray:
    return np.stack([_photo(size, size, seed * 3 + c) for c in range(3)], axis=2).astype(np.uint8)


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()


def _sr_and_hr(folder, count=3, size=200):
    """A Set5-like pair of folders: GTmod12 (HR) and SR outputs (a distorted HR), BGR uint8 PNGs; 200 px: two NIQE
    blocks a side after the shave (evaluation refuses fewer than two)."""
    hr_dir, sr_dir = folder / 'GTmod12', folder / 'SR'
    hr_dir.mkdir(parents=True)
    sr_dir.mkdir()
    pairs = []
    for i in range(count):
        hr = _image(i, size)
        noise = np.random.default_rng(i).normal(0, 6, hr.shape)
        sr = np.clip(cv2.GaussianBlur(hr, (5, 5), 1.0) + noise, 0, 255).round().astype(np.uint8)
        cv2.imwrite(str(hr_dir / f'img{i}.png'), hr)
        cv2.imwrite(str(sr_dir / f'img{i}.png'), sr)
        pairs.append((sr, hr))
    return sr_dir, hr_dir, pairs


def test_test_configs_resolve_to_the_protocol():
    cfg = Config.fromfile(TEST_CONFIG)
    assert cfg.model.type == 'StrictEditModel' and 'ranker' not in cfg.model
    assert [d.dataset.data_root for d in cfg.test_dataloader] == ['data/Set5', 'data/Set14', 'data/PIRM_val']
    assert all(d.dataset.data_prefix == dict(img='LRbicx4', gt='GTmod12') for d in cfg.test_dataloader)
    metrics = cfg.test_evaluator[0].metrics
    assert [(m.type, m.get('convert_to'), m.crop_border) for m in metrics] == [
        ('PSNR', None, 4), ('SSIM', None, 4), ('PSNR', 'Y', 4), ('SSIM', 'Y', 4), ('BatchedNIQE', 'y', 4)]
    assert Config.fromfile(MA_PI_CONFIG).test_evaluator[2].metrics[-1].type == 'MaPI'


def test_original_generator_test_config(tmp_path):
    """docs/mmagic.md's two-line config: the original RankSRGANGenerator from a BasicSR-layout file."""
    config = tmp_path / 'original.py'
    config.write_text(f"_base_ = {TEST_CONFIG!r}\n"
                      "model = dict(generator=dict(_delete_=True, type='RankSRGANGenerator', num_in_ch=3, "
                      "num_out_ch=3, num_feat=8, num_block=1, upscale=4))\n")
    torch.manual_seed(0)
    weights = init_model(str(config)).generator.state_dict()
    torch.save({'params': weights}, tmp_path / 'net_g.pth')
    model = init_model(str(config), str(tmp_path / 'net_g.pth'))
    assert type(model.generator).__name__ == 'RankSRGANGenerator'
    assert upscale_image(model, _image(3, 16)).shape == (64, 64, 3)


def test_mmagic_test_metrics_equal_basicsr_side(tmp_path, monkeypatch):
    """The test config's metrics, run by MMagic's Evaluator on given SR images, equal BasicSR's calculate_psnr /
    calculate_ssim (Y and RGB, crop 4) and the BasicSR side's evaluation library (NIQE, Ma, PI) on the same images."""
    monkeypatch.setenv('RANKSRGAN_MA_MODEL', _write_model(tmp_path / 'model.mat'))
    sr_dir, hr_dir, pairs = _sr_and_hr(tmp_path / 'Set5')
    # what BaseEditModel gives the metrics: CHW float in [0, 255], BGR (after the data preprocessor's destruct)
    samples = [DataSample(gt_img=_chw(hr), output=DataSample(pred_img=_chw(sr))) for sr, hr in pairs]
    metrics = Config.fromfile(MA_PI_CONFIG).test_evaluator[0].metrics
    result = run_evaluator('mmagic', [dict(m) for m in metrics], samples, batch_size=2)

    rows = evaluate_folder(str(sr_dir), str(hr_dir), crop_border=4, test_y_channel=True,
                           ma_model=str(tmp_path / 'model.mat'), progress=False)
    mean = {k: float(np.mean([row[k] for row in rows])) for k in ('psnr', 'ssim', 'niqe', 'ma', 'pi')}
    psnr_rgb = np.mean([calculate_psnr(sr, hr, 4, input_order='HWC', test_y_channel=False) for sr, hr in pairs])
    psnr_y = np.mean([calculate_psnr(sr, hr, 4, input_order='HWC', test_y_channel=True) for sr, hr in pairs])
    assert mean['psnr'] == pytest.approx(psnr_y, abs=1e-12)
    # MMagic computes in float32 (its img_transform, mmcv.bgr2ycbcr for Y), BasicSR in float64: equal within
    # float32 rounding (docs/mmagic.md)
    assert result['Set5/PSNR'] == pytest.approx(psnr_rgb, abs=1e-5)
    assert result['Set5/Y/PSNR'] == pytest.approx(psnr_y, abs=1e-4)
    ssim_rgb = np.mean([calculate_ssim(sr, hr, 4, input_order='HWC', test_y_channel=False) for sr, hr in pairs])
    assert result['Set5/SSIM'] == pytest.approx(ssim_rgb, abs=1e-9)  # both in float64
    assert result['Set5/Y/SSIM'] == pytest.approx(mean['ssim'], abs=1e-6)
    assert result['Set5/NIQE'] == pytest.approx(mean['niqe'], abs=1e-9)
    assert result['Set5/Ma'] == pytest.approx(mean['ma'], abs=1e-9)
    assert result['Set5/PI'] == pytest.approx(mean['pi'], abs=1e-9)


def _generator_only_checkpoint(path) -> str:
    torch.manual_seed(0)
    model = init_model(_tiny(TEST_CONFIG))
    torch.save({'state_dict': {f'generator.{k}': v for k, v in model.generator.state_dict().items()}}, path)
    return str(path)


def _tiny(config: str) -> Config:
    cfg = Config.fromfile(config)
    cfg.model.generator = dict(TINY_GENERATOR)
    return cfg


def test_inference_from_generator_only_checkpoint(tmp_path, monkeypatch):
    """init_model of the training config (a Ranker and a VGG19 that are not on disk) needs the generator only."""
    monkeypatch.chdir(tmp_path)  # the config's Ranker / VGG19 / MSRResNet paths do not exist here
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    checkpoint = _generator_only_checkpoint(tmp_path / 'generator.pth')
    cfg = _tiny(TRAIN_CONFIG)
    assert not osp.exists(cfg.model.ranker_checkpoint)
    model = init_model(cfg, checkpoint)
    assert inference_config(cfg).model.type == 'BaseEditModel'
    assert not any(k.startswith(('ranker', 'discriminator', 'perceptual')) for k in model.state_dict())
    lr = _image(7, 24)
    sr = upscale_image(model, lr)
    assert sr.shape == (96, 96, 3) and sr.dtype == np.uint8
    # the same as the generator's own forward on RGB in [0, 1] (MMagic's SRGAN preprocessor: mean 0, std 255)
    with torch.no_grad():
        expected = model.generator(_chw(lr[..., ::-1].copy())[None] / 255.)[0] * 255.
    expected = expected.clamp(0, 255).round().byte().numpy().transpose(1, 2, 0)[..., ::-1]
    np.testing.assert_array_equal(sr, expected)
    basicsr_file = tmp_path / 'net_g.pth'  # a BasicSR-layout generator file loads the same weights
    torch.save({'params': model.generator.state_dict()}, basicsr_file)
    np.testing.assert_array_equal(upscale_image(init_model(cfg, str(basicsr_file)), lr), sr)
    with pytest.raises(RuntimeError, match='Missing key|Unexpected key|size mismatch'):
        init_model(TEST_CONFIG, checkpoint)  # the real-size generator refuses the tiny weights (strict)


def _tiny_test_sets(data):
    """data/Set5, data/Set14, data/PIRM_val with LRbicx4/ (27x27) and GTmod12/ (108x108), two images each."""
    for name in ('Set5', 'Set14', 'PIRM_val'):
        for i in range(2):
            hr = _image(i + len(name), 108)
            (data / name / 'GTmod12').mkdir(parents=True, exist_ok=True)
            (data / name / 'LRbicx4').mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(data / name / 'GTmod12' / f'{i}.png'), hr)
            lr = cv2.resize(hr, (27, 27), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(data / name / 'LRbicx4' / f'{i}.png'), lr)


class _MetricsOfTest(Hook):
    def __init__(self, into):
        self.into = into

    def after_test_epoch(self, runner, metrics=None):
        self.into.update(metrics or {})


def test_mmagic_runner_tests_with_generator_weights_only(tmp_path, monkeypatch):
    """MMagic's tools/test.py path (Runner.test, load_from = the checkpoint) on tiny Set5 / Set14 / PIRM folders,
    without Ranker / VGG19 files; PSNR(Y) equals BasicSR's on the rounded outputs within the rounding's effect."""
    monkeypatch.chdir(tmp_path)
    checkpoint = _generator_only_checkpoint(tmp_path / 'generator.pth')
    _tiny_test_sets(tmp_path / 'data')
    cfg = _tiny(TEST_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = checkpoint
    for loader in cfg.test_dataloader:
        loader.num_workers = 0
    runner = Runner.from_cfg(cfg)
    metrics = {}
    runner.register_hook(_MetricsOfTest(metrics))  # MMagic's MultiTestLoop.run returns nothing
    runner.test()
    assert {'Set5/PSNR', 'Set5/Y/PSNR', 'Set5/NIQE', 'Set14/SSIM', 'PIRM/Y/SSIM'} <= set(metrics)

    model = init_model(cfg, checkpoint)
    folder = tmp_path / 'data' / 'Set5'
    psnr_y = np.mean([calculate_psnr(upscale_image(model, cv2.imread(str(folder / 'LRbicx4' / f'{i}.png'))),
                                     cv2.imread(str(folder / 'GTmod12' / f'{i}.png')), 4, test_y_channel=True)
                      for i in range(2)])
    assert metrics['Set5/Y/PSNR'] == pytest.approx(psnr_y, abs=0.02)


def test_mmagic_tools_test_py_with_generator_weights_only(tmp_path):
    """MMagic's own tools/test.py, as docs/mmagic.md runs it (the plugin loaded by the config's custom_imports)."""
    import mmagic

    checkpoint = _generator_only_checkpoint(tmp_path / 'generator.pth')
    _tiny_test_sets(tmp_path / 'data')
    tool = osp.join(osp.dirname(mmagic.__file__), '.mim', 'tools', 'test.py')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    run = subprocess.run([sys.executable, tool, TEST_CONFIG, checkpoint, '--work-dir', str(tmp_path / 'work'),
                          '--cfg-options', 'model.generator.mid_channels=8', 'model.generator.num_blocks=1'],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (tmp_path / 'experiments').exists()  # no Ranker, VGG19 or zoo file was looked up there
    for name in ('Set5/PSNR', 'Set5/Y/PSNR', 'Set5/NIQE', 'Set14/Y/SSIM', 'PIRM/PSNR'):
        assert f'{name}: ' in run.stdout + run.stderr


def test_test_config_refuses_a_generator_of_another_factor_than_the_data(tmp_path, monkeypatch):
    """MMagic's tools/test.py with an x2 generator on x4 test data: was a metric's shape error naming no option."""
    monkeypatch.chdir(tmp_path)
    _tiny_test_sets(tmp_path / 'data')
    cfg = _tiny(TEST_CONFIG)
    cfg.model.generator['upscale_factor'] = 2
    cfg.work_dir = str(tmp_path / 'work')
    for loader in cfg.test_dataloader:
        loader.num_workers = 0
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'model.generator \(MSRResNet\) maps the 27x27 inputs of this batch to '
                                         r'54x54 \(x2\), but their GT images are 108x108 \(x4\)'):
        runner.test()
