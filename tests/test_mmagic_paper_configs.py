"""The MMagic configs of the paper's road (options/mmagic/ranksrgan-paper_*.py): every paper setting pinned, as
tests/test_paper_fidelity_training.py does for the BasicSR options, and two iterations of training plus a resume."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from test_mmagic_configs import CONFIG_DIR, PAPER_CONFIGS, PLUGIN_IMPORT
from test_mmagic_training import TINY_RANKER, tiny_ranker

import ranksrgan_plugin.mmagic  # noqa: F401
from ranksrgan_plugin.archs import RankSRGANGenerator
from ranksrgan_plugin.rank_dataset.levels import matlab_bicubic

PAPER_NIQE = CONFIG_DIR / PAPER_CONFIGS[0]


def test_paper_config_has_the_original_settings():
    cfg = Config.fromfile(str(PAPER_NIQE))
    model = cfg.model
    assert cfg.custom_imports == PLUGIN_IMPORT and model.type == 'RankSRGAN'
    assert model.generator == dict(  # the original generator, from the converted authors' SRResNet (S10)
        type='RankSRGANGenerator', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4,
        init_cfg=dict(type='StrictPretrained',
                      checkpoint='experiments/pretrained_models/SRResNet_bicx4_in3nf64nb16_basicsr.pth'))
    assert 'init_cfg' not in model and cfg.load_from is None
    assert model.discriminator == dict(type='VGGStyleDiscriminatorAnySize', num_in_ch=3, num_feat=64, input_size=296)
    assert model.pixel_loss.loss_weight == 0  # S11
    assert model.perceptual_loss.layer_weights == {'34': 1.0} and model.perceptual_loss.perceptual_weight == 1.0
    assert model.gan_loss.gan_type == 'vanilla' and model.gan_loss.loss_weight == 5e-3
    assert model.rank_loss == dict(type='RankContentLoss', loss_weight=0.03, bias=0, reduction='sum')  # S1
    assert model.ranker == dict(type='RankerVGG', depth=12) and model.ranker_batchnorm == 'batch'  # S3
    for name in ('generator', 'discriminator'):
        assert cfg.optim_wrapper[name].optimizer == dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
    assert cfg.param_scheduler.milestones == [50000, 100000, 200000, 300000] and cfg.param_scheduler.gamma == 0.5
    assert cfg.train_cfg.max_iters == 500_000 and cfg.randomness.seed == 10
    data = cfg.train_dataloader  # S2, S6: total batch 8, 296 crops of whole DIV2K images, DIV2K's X4 LR
    assert data.batch_size == 8 and data.dataset.ann_file == '' and data.dataset.data_root == 'datasets/DIV2K'
    assert data.dataset.data_prefix == dict(img='DIV2K_train_LR_bicubic/X4', gt='DIV2K_train_HR')
    assert data.dataset.filename_tmpl == dict(img='{}x4', gt='{}')
    steps = {step.type: step for step in data.dataset.pipeline}
    assert steps['PairedRandomCrop'].gt_patch_size == 296 and 'RandomTransposeHW' in steps
    assert cfg.val_dataloader.dataset.data_root == 'datasets/PIRM/test'  # S7
    assert cfg.val_dataloader.dataset.data_prefix == dict(img='LR', gt='HR')
    assert list(cfg.val_evaluator.metrics) == [
        dict(type='PSNR', crop_border=4), dict(type='PSNR', crop_border=4, convert_to='Y', prefix='Y'),
        dict(type='BatchedNIQE', crop_border=4, convert_to='y')]


@pytest.mark.parametrize('name, ranker, ma_pi', [
    (PAPER_CONFIGS[1], 'experiments/Ranker_VGG12_Ma/models/net_r_latest.pth', True),
    (PAPER_CONFIGS[2], 'experiments/Ranker_VGG12_PI/models/net_r_latest.pth', True),
    (PAPER_CONFIGS[3], 'experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth', False)])
def test_paper_variants_change_only_the_ranker_and_validation(name, ranker, ma_pi):
    cfg, base = Config.fromfile(str(CONFIG_DIR / name)), Config.fromfile(str(PAPER_NIQE))
    assert cfg.work_dir == f'./work_dirs/{name[:-3]}' and cfg.model.ranker_checkpoint == ranker
    assert {**cfg.model.to_dict(), 'ranker_checkpoint': None} == {**base.model.to_dict(), 'ranker_checkpoint': None}
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'train_cfg', 'param_scheduler', 'randomness'):
        assert cfg.get(key) == base.get(key), key
    extra = [dict(type='MaPI', crop_border=4, model_path=None)] if ma_pi else []
    assert list(cfg.val_evaluator.metrics) == list(base.val_evaluator.metrics) + extra


def write_div2k_and_pirm(root: Path) -> None:
    """DIV2K-named train pairs (0001.png + 0001x4.png) and a PIRM test pair, from random smooth images."""
    rng = np.random.default_rng(0)
    for folder, lr_folder, names, size in (('DIV2K/DIV2K_train_HR', 'DIV2K/DIV2K_train_LR_bicubic/X4',
                                             ['0001', '0002'], 64), ('PIRM/test/HR', 'PIRM/test/LR', ['1'], 104)):
        (root / folder).mkdir(parents=True)
        (root / lr_folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            hr = cv2.resize(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (size, size))
            cv2.imwrite(str(root / folder / f'{name}.png'), hr)
            lr_name = f'{name}x4.png' if 'DIV2K' in folder else f'{name}.png'
            cv2.imwrite(str(root / lr_folder / lr_name), matlab_bicubic(hr, 1 / 4))


def tiny_paper_config(root: Path, max_iters: int) -> Config:
    cfg = Config.fromfile(str(PAPER_NIQE))
    cfg.work_dir = str(root / 'work')
    cfg.model.generator.update(num_feat=8, num_block=1)
    cfg.model.generator.init_cfg.checkpoint = str(root / 'srresnet_basicsr.pth')
    cfg.model.discriminator.update(num_feat=8, input_size=32)
    cfg.model.perceptual_loss = None
    cfg.model.update(ranker=dict(TINY_RANKER), ranker_checkpoint=str(root / 'ranker_basicsr.pth'))
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'PairedRandomCrop':
            step['gt_patch_size'] = 32
    cfg.train_dataloader.update(num_workers=0, batch_size=2)
    cfg.train_dataloader.dataset.data_root = str(root / 'datasets' / 'DIV2K')
    cfg.val_dataloader.update(num_workers=0)
    cfg.val_dataloader.dataset.data_root = str(root / 'datasets' / 'PIRM' / 'test')
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.default_hooks.checkpoint.update(interval=1, out_dir=None, save_best=None)
    cfg.default_hooks.logger.update(interval=1)
    return cfg


def test_paper_config_trains_two_iterations_and_resumes(tmp_path):
    write_div2k_and_pirm(tmp_path / 'datasets')
    torch.manual_seed(0)
    start = RankSRGANGenerator(num_feat=8, num_block=1).state_dict()
    torch.save({'params': start}, tmp_path / 'srresnet_basicsr.pth')  # what convert_official_weights.py writes
    torch.save({'params': tiny_ranker().state_dict()}, tmp_path / 'ranker_basicsr.pth')
    runner = Runner.from_cfg(tiny_paper_config(tmp_path, max_iters=2))
    runner.model.init_weights()
    assert all(torch.equal(value, start[key]) for key, value in runner.model.generator.state_dict().items())
    runner.train()
    assert np.isfinite(float(runner.message_hub.get_scalar('train/loss_rank').current()))
    assert {'val/PSNR', 'val/Y/PSNR', 'val/NIQE'} <= set(runner.message_hub.log_scalars)
    cfg = tiny_paper_config(tmp_path, max_iters=3)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 3
