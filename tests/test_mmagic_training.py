"""MMagic side: RankSRGAN, RankESRGAN and the Ranker trained by mmengine's Runner; checkpoints across sides; DDP."""
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import torch
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmagic_evaluation import run_evaluator
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from rank_set_factory import make_rank_set
from torchrun_retry import run_torchrun

import ranksrgan_plugin.mmagic  # noqa: F401  (placeholders, registration)
from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.checkpoints import load_ranker, read_ranker_file
from ranksrgan_plugin.iqa import niqe_batch
from ranksrgan_plugin.losses import RankContentLoss
from ranksrgan_plugin.metrics.rank_metrics import calculate_pair_accuracy, calculate_srocc
from ranksrgan_plugin.mmagic import SROCC, BatchedNIQE, PairAccuracy, RankPairDataset
from ranksrgan_plugin.mmagic.train import build_config, parse_args

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / 'options' / 'mmagic'
RANKSRGAN_CONFIG = CONFIG_DIR / 'ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'
RANKESRGAN_CONFIG = CONFIG_DIR / 'rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe.py'
RANKER_CONFIG = CONFIG_DIR / 'ranker_vgg12_1xb16-400k_rank-df2k-niqe.py'
TINY_RANKER = dict(type='RankerVGG', depth=8, num_feat=8, stage_widths=[8, 8, 16, 16], num_hidden=8)
TINY_GENERATORS = {
    'RankSRGAN': dict(mid_channels=8, num_blocks=1, init_cfg=None),
    'RankESRGAN': dict(mid_channels=8, num_blocks=1, growth_channels=4, init_cfg=None),
}
GT_CROP = 32


def tiny_ranker() -> RankerVGG:
    return RankerVGG(**{key: value for key, value in TINY_RANKER.items() if key != 'type'})


def ranker_state(net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


def _write_sr_split(root: Path, count: int, hr_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / 'gt').mkdir(parents=True)
    (root / 'lq').mkdir()
    for index in range(count):
        texture = cv2.GaussianBlur(rng.uniform(0, 255, (hr_size, hr_size, 3)).astype(np.float32), (0, 0), 1.5)
        gt = np.clip((texture - texture.mean()) * 4 + 128, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / 'gt' / f'im{index}.png'), gt)
        lq = cv2.resize(gt, (hr_size // 4, hr_size // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / 'lq' / f'im{index}.png'), lq)


@pytest.fixture(scope='module')
def sr_workspace(tmp_path_factory):
    """Tiny SR train (48 px GT) / val (104 px GT: NIQE needs one 96 px block after the 4 px shave) sets,
    and a tiny Ranker saved in BasicSR's checkpoint format (what the BasicSR side writes)."""
    root = tmp_path_factory.mktemp('sr')
    _write_sr_split(root / 'train', 4, 48, seed=0)
    _write_sr_split(root / 'val', 2, 104, seed=1)
    torch.manual_seed(0)
    torch.save({'params': tiny_ranker().state_dict()}, root / 'ranker_basicsr.pth')
    return root


def tiny_sr_config(root: Path, config: Path, work_dir: Path, max_iters: int = 3, keep_init: bool = False) -> Config:
    """A shipped RankSRGAN / RankESRGAN config, shrunk: tiny nets, no perceptual loss, tmp data and work_dir.

    ``keep_init``: the config's own generator initialisation (``load_from`` / ``init_cfg``) is kept as shipped.
    """
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(work_dir)
    tiny_generator = dict(TINY_GENERATORS[cfg.model.type])
    if keep_init:
        tiny_generator.pop('init_cfg', None)
    else:
        cfg.load_from = None
        cfg.model.pop('init_cfg', None)
    cfg.model.generator.update(tiny_generator)
    cfg.model.discriminator.update(num_feat=8, input_size=GT_CROP)
    cfg.model.perceptual_loss = None
    cfg.model.update(ranker=dict(TINY_RANKER), ranker_checkpoint=str(root / 'ranker_basicsr.pth'))
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'PairedRandomCrop':
            step['gt_patch_size'] = GT_CROP
    cfg.train_dataloader.update(num_workers=0, batch_size=2)
    cfg.train_dataloader.dataset.update(data_root=str(root / 'train'), data_prefix=dict(img='lq', gt='gt'), ann_file='')
    cfg.val_dataloader.update(num_workers=0)
    cfg.val_dataloader.dataset.update(data_root=str(root / 'val'), data_prefix=dict(img='lq', gt='gt'))
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.default_hooks.checkpoint.update(interval=max_iters, out_dir=None, save_best=None)
    cfg.default_hooks.logger.update(interval=1)
    return cfg


def _scalar(runner: Runner, name: str) -> float:
    return float(runner.message_hub.get_scalar(name).current())


def _assert_ranker_untouched(model, reference: Dict[str, torch.Tensor]) -> None:
    assert not model.ranker.training
    assert not any(param.requires_grad for param in model.ranker.parameters())
    for key, value in model.ranker.state_dict().items():  # weights and BN running statistics
        torch.testing.assert_close(value.cpu(), reference[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize('config', [RANKSRGAN_CONFIG, RANKESRGAN_CONFIG], ids=['ranksrgan', 'rankesrgan'])
def test_gan_trains_validates_with_frozen_ranker(sr_workspace, tmp_path, config):
    reference = torch.load(sr_workspace / 'ranker_basicsr.pth', weights_only=True)['params']
    cfg = tiny_sr_config(sr_workspace, config, tmp_path / 'work')
    cfg.model.ranker_monitor = dict(every=1)  # default: one step in 10
    runner = Runner.from_cfg(cfg)
    generator_before = ranker_state(runner.model.generator)
    runner.train()
    model = runner.model
    _assert_ranker_untouched(model, reference)
    assert any(not torch.equal(value, model.generator.state_dict()[key]) for key, value in generator_before.items())
    assert _scalar(runner, 'train/loss_rank') > 0 and np.isfinite(_scalar(runner, 'train/out_r'))
    assert np.isfinite(_scalar(runner, 'train/gt_r'))  # the Ranker-exploitation monitor, every step
    assert 0 <= _scalar(runner, 'train/out_beats_gt') <= 1
    assert np.isfinite(_scalar(runner, 'val/PSNR')) and 'val/NIQE' in runner.message_hub.log_scalars
    if type(model).__name__ == 'RankSRGAN':  # a tiny RRDBNet starts flat: NIQE is NaN
        assert np.isfinite(_scalar(runner, 'val/NIQE'))
    checkpoint = read_ranker_file(str(tmp_path / 'work' / 'iter_3.pth'))
    prefixes = {key.split('.')[0] for key in checkpoint['state_dict']}
    assert prefixes == {'generator', 'discriminator'}  # the frozen Ranker is never saved


def test_resume_reloads_ranker_from_its_path(sr_workspace, tmp_path):
    """mmengine's own --resume (compat.allow_mmengine_checkpoint_globals) with the Ranker from its file."""
    reference = torch.load(sr_workspace / 'ranker_basicsr.pth', weights_only=True)['params']
    Runner.from_cfg(tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', max_iters=2)).train()
    cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', max_iters=3)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    _assert_ranker_untouched(runner.model, reference)


def _generator_init_files(cfg: Config) -> List[str]:
    """Every generator initialisation file a config names (``load_from``, the model's or the generator's init_cfg)."""
    candidates = [cfg.get('load_from'), (cfg.model.get('init_cfg') or {}).get('checkpoint'),
                  (cfg.model.generator.get('init_cfg') or {}).get('checkpoint')]
    return [path for path in candidates if path]


def _write_generator_only_checkpoints(cfg: Config) -> Dict[str, torch.Tensor]:
    """A generator-only file, as MMagic's model zoo ships (state_dict of ``generator.*``), at each configured path."""
    generator_cfg = cfg.model.generator.to_dict()
    generator_cfg.pop('init_cfg', None)
    torch.manual_seed(7)
    generator = MODELS.build(generator_cfg)
    with torch.no_grad():
        for param in generator.parameters():
            param.normal_(0, 0.05)
    state = {f'generator.{key}': value for key, value in generator.state_dict().items()}
    paths = _generator_init_files(cfg)
    assert paths, 'the config initialises no generator'
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({'meta': {}, 'state_dict': state}, path)
    return state


@pytest.mark.parametrize('config', [RANKSRGAN_CONFIG, RANKESRGAN_CONFIG], ids=['ranksrgan', 'rankesrgan'])
def test_resume_with_the_shipped_generator_init(sr_workspace, tmp_path, monkeypatch, config):
    """--resume as a user runs it: the config's generator initialisation as shipped (a generator-only file at the
    configured relative path) must initialise the generator and must not replace work_dir/last_checkpoint."""
    monkeypatch.chdir(tmp_path)
    work_dir = tmp_path / 'work'
    cfg = tiny_sr_config(sr_workspace, config, work_dir, max_iters=2, keep_init=True)
    init_state = _write_generator_only_checkpoints(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()  # what the Runner does before training
    for key, value in model.generator.state_dict().items():
        torch.testing.assert_close(value, init_state[f'generator.{key}'], rtol=0, atol=0, msg=key)
    Runner.from_cfg(cfg).train()
    assert (work_dir / 'last_checkpoint').is_file()
    cfg = tiny_sr_config(sr_workspace, config, work_dir, max_iters=3, keep_init=True)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    saved = read_ranker_file(str(work_dir / 'iter_3.pth'))
    assert saved['meta']['iter'] == 3


def _tiny_ranksrgan(root: Path, ranker_checkpoint: Path, config: Path = RANKSRGAN_CONFIG, **overrides):
    model = tiny_sr_config(root, config, root / 'unused').model.to_dict()
    model['ranker_checkpoint'] = str(ranker_checkpoint)
    model.update(overrides)
    return MODELS.build(model)


@pytest.mark.parametrize('channel_order', ['RGB', 'BGR'])
def test_rank_content_loss_in_generator_step(sr_workspace, channel_order):
    model = _tiny_ranksrgan(sr_workspace, sr_workspace / 'ranker_basicsr.pth').train()
    assert not model.ranker.training  # train() of the model leaves the Ranker frozen
    model._output_channel_order = channel_order
    outputs = torch.rand(2, 3, GT_CROP, GT_CROP, requires_grad=True)
    losses = model.g_step(outputs, torch.rand(2, 3, GT_CROP, GT_CROP))
    rgb = outputs if channel_order == 'RGB' else outputs.flip(1)
    scores = model.ranker(rgb)
    torch.testing.assert_close(losses['loss_rank'], RankContentLoss(loss_weight=0.03)(scores))
    torch.testing.assert_close(losses['out_r'], scores.mean())
    losses['loss_rank'].backward()
    assert outputs.grad is not None and outputs.grad.abs().sum() > 0
    assert all(param.grad is None for param in model.ranker.parameters())


def test_moving_the_model_moves_the_hidden_ranker(sr_workspace):
    """The Runner's model.to(device) must reach the Ranker, which is not a submodule (same path as .cuda())."""
    model = _tiny_ranksrgan(sr_workspace, sr_workspace / 'ranker_basicsr.pth').to(torch.float64)
    floating = [value for value in model.ranker.state_dict().values() if value.is_floating_point()]
    assert floating and all(value.dtype == torch.float64 for value in floating)
    assert model.generator.conv_first.weight.dtype == torch.float64


@pytest.mark.parametrize('batchnorm', ['running', 'batch'])
def test_basicsr_ranker_checkpoint_gives_identical_scores(sr_workspace, batchnorm):
    torch.manual_seed(3)
    net = tiny_ranker()
    with torch.no_grad():  # move the BN statistics away from their defaults
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = sr_workspace / 'ranker_trained_by_basicsr.pth'
    torch.save({'params': net.state_dict()}, path)  # exactly BasicSR's save_network format
    model = _tiny_ranksrgan(sr_workspace, path, ranker_batchnorm=batchnorm).train()
    images = torch.rand(3, 3, 40, 40)
    with torch.no_grad():  # 'batch': BatchNorm with the batch's statistics, as the original's train-mode Ranker
        assert torch.equal(model.ranker(images), net.train(batchnorm == 'batch')(images))
    saved = torch.load(path, weights_only=True)['params']
    for key, value in model.ranker.state_dict().items():
        assert torch.equal(value, saved[key]), key  # running statistics untouched by the frozen Ranker


@pytest.fixture
def rank_workspace(tmp_path):
    make_rank_set(tmp_path / 'rank' / 'train', storage='lmdb', keys=[f'k{i:03d}' for i in range(8)])
    make_rank_set(tmp_path / 'rank' / 'val', storage='folder', seed=1)
    return tmp_path


RANKER_CONFIG_OVERRIDES = """
_base_ = {base!r}
work_dir = {work_dir!r}
model = dict(ranker=dict(_delete_=True, **{ranker!r}))
train_dataloader = dict(num_workers=0, batch_size=4, dataset=dict(data_root={train!r}, gt_size=32))
val_dataloader = dict(num_workers=0, batch_size=5, dataset=dict(data_root={val!r}, io_backend=dict(type='disk')))
train_cfg = dict(max_iters=4, val_interval=4)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(checkpoint=dict(interval=4, out_dir=None), logger=dict(interval=1))
"""


def test_ranker_trains_with_mmagic_train_py_and_crosses_to_basicsr(rank_workspace):
    """MMagic's own tools/train.py (from the wheel) trains the Ranker; its checkpoint serves both sides."""
    import mmagic

    config = rank_workspace / 'tiny_ranker.py'
    config.write_text(RANKER_CONFIG_OVERRIDES.format(
        base=str(RANKER_CONFIG), work_dir=str(rank_workspace / 'work'), ranker=TINY_RANKER,
        train=str(rank_workspace / 'rank' / 'train'), val=str(rank_workspace / 'rank' / 'val')))
    train_py = Path(mmagic.__file__).parent / '.mim' / 'tools' / 'train.py'
    result = subprocess.run([sys.executable, str(train_py), str(config)], cwd=rank_workspace, capture_output=True,
                            text=True, timeout=300, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r'loss_rank: [0-9.]+\s+pair_acc: [0-9.]+', output), output[-3000:]
    validation = re.search(r'SROCC: (-?[0-9.]+)\s+PairAccuracy: ([0-9.]+)', output)
    assert validation and -1 <= float(validation[1]) <= 1 and 0 <= float(validation[2]) <= 1, output[-3000:]
    best = rank_workspace / 'work' / 'best_SROCC_iter_4.pth'
    assert best.is_file()

    trained = MODELS.build(dict(type='RankerModel', ranker=dict(TINY_RANKER)))
    load_checkpoint(trained, str(best), map_location='cpu', strict=True)
    mmagic_net = trained.ranker.eval()
    assert not torch.equal(mmagic_net.conv0_0.weight, tiny_ranker().conv0_0.weight)
    # the MMagic checkpoint into the BasicSR side: export, then BasicSR's own loader
    exported = rank_workspace / 'ranker_for_basicsr.pth'
    runpy.run_path(str(REPO_ROOT / 'tools' / 'mmagic_export_ranker.py'), run_name='mmagic_export_ranker')['main'](
        [str(best), str(exported)])
    assert set(torch.load(exported, weights_only=True)) == {'params', 'ranker_record'}  # the record goes along
    basicsr_net = load_ranker(tiny_ranker(), str(exported)).eval()
    images = torch.rand(3, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(basicsr_net(images), mmagic_net(images))
        # and RankSRGAN takes the MMagic Ranker checkpoint as it is
        ranker = _tiny_ranksrgan(rank_workspace, best, ranker_batchnorm='running').ranker
        assert torch.equal(ranker(images), mmagic_net(images))


def test_rank_pair_dataset_items(tmp_path):
    root = make_rank_set(tmp_path / 'train', storage='lmdb', higher_is_better=True, metric='ma')
    pairs = RankPairDataset(root, gt_size=24, use_hflip=True, use_rot=True)
    items = RankPairDataset(root, test_mode=True)
    assert len(pairs) == 4 and len(items) == 12
    pair = pairs[0]
    assert pair['img_a'].shape == pair['img_b'].shape == (3, 24, 24) and pair['level_a'] != pair['level_b']
    assert pair['label_a'].dtype == torch.float32
    item = items[0]
    assert item['img'].shape == (3, 40, 40) and item['label'] < 0  # Ma: negated, the score grows with the label
    assert items.metainfo['metric'] == 'ma' and items.metainfo['levels'] == ['srres', 'srgan', 'esrgan']


@pytest.mark.parametrize('kind', ['mmagic', 'mmengine'])
def test_rank_metrics_over_the_whole_split(kind):
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=12), rng.normal(size=12)
    keys = [f'k{i // 3}' for i in range(12)]
    outputs = [{'score': s, 'label': la, 'key': k, 'level': 'x'} for s, la, k in zip(scores, labels, keys)]
    # several batches of 5: the metrics must see the whole split at once
    result = run_evaluator(kind, [dict(type='SROCC'), dict(type='PairAccuracy')], outputs, batch_size=5)
    assert result == {'SROCC': pytest.approx(calculate_srocc(scores, labels)),
                      'PairAccuracy': pytest.approx(calculate_pair_accuracy(scores, labels, keys))}


@pytest.mark.parametrize('kind', ['mmagic', 'mmengine'])
def test_batched_niqe_matches_niqe_batch_on_mmagic_outputs(kind):
    rng = np.random.default_rng(0)
    shapes = [(3, 104, 104), (3, 104, 120), (3, 104, 104), (3, 104, 104), (3, 104, 120)]
    images = [torch.from_numpy(cv2.GaussianBlur(rng.uniform(0, 255, s[1:] + (3,)).astype(np.float32), (0, 0), 1.0))
              .permute(2, 0, 1).contiguous() for s in shapes]  # MMagic's pred_img: CHW, BGR, [0, 255]
    outputs = [DataSample(output=DataSample(pred_img=image)) for image in images[:3]]
    outputs += [{'output': {'pred_img': image}} for image in images[3:]]
    result = run_evaluator(kind, [dict(type='BatchedNIQE', crop_border=4, batch_size=2)], outputs, batch_size=3)
    expected = np.mean([niqe_batch(image[None], crop_border=4, input_order='CHW')[0] for image in images])
    assert result == {'NIQE': pytest.approx(expected, rel=1e-9)}


def test_plugin_metrics_use_mmagic_sample_wise_base():
    from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric

    from ranksrgan_plugin.mmagic import MaPI

    assert all(issubclass(cls, BaseSampleWiseMetric) for cls in (SROCC, PairAccuracy, BatchedNIQE, MaPI))


def test_train_cli_config(tmp_path):
    args = parse_args([str(RANKSRGAN_CONFIG), '--work-dir', str(tmp_path), '--amp', '--resume',
                       '--cfg-options', 'train_cfg.max_iters=7'])
    cfg = build_config(args)
    assert cfg.work_dir == str(tmp_path) and cfg.resume is True and cfg.train_cfg.max_iters == 7
    assert cfg.optim_wrapper.generator.type == cfg.optim_wrapper.discriminator.type == 'AmpOptimWrapper'
    assert cfg.launcher == 'none' and cfg.model.type == 'RankSRGAN'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


DDP_CONFIG = """
_base_ = {base!r}
work_dir = {work_dir!r}
model = dict(
    generator=dict(mid_channels=8, num_blocks=1, init_cfg=None),  # no init file (the shipped: MMagic's zoo MSRResNet)
    discriminator=dict(num_feat=8, input_size={crop}),
    perceptual_loss=None,
    ranker=dict(_delete_=True, **{ranker!r}),
    ranker_checkpoint={ranker_checkpoint!r})
train_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=4)),
    dict(type='PairedRandomCrop', gt_patch_size={crop}),
    dict(type='PackInputs'),
]
train_dataloader = dict(num_workers=0, batch_size=2, dataset=dict(
    data_root={train!r}, data_prefix=dict(img='lq', gt='gt'), ann_file='', pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(data_root={val!r}, data_prefix=dict(img='lq', gt='gt')))
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2, out_dir=None, save_best=None), logger=dict(interval=1))
"""


def test_two_process_cpu_ddp_through_torchrun(sr_workspace, tmp_path):
    config = tmp_path / 'tiny_ranksrgan.py'
    config.write_text(DDP_CONFIG.format(
        base=str(RANKSRGAN_CONFIG), work_dir=str(tmp_path / 'work'), crop=GT_CROP, ranker=TINY_RANKER,
        ranker_checkpoint=str(sr_workspace / 'ranker_basicsr.pth'), train=str(sr_workspace / 'train'),
        val=str(sr_workspace / 'val')))
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1'}
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
               str(REPO_ROOT / 'tools' / 'mmagic_train.py'), str(config), '--launcher', 'pytorch']
    result = run_torchrun(command, lambda: shutil.rmtree(tmp_path / 'work', ignore_errors=True), cwd=tmp_path,
                          env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert 'Distributed training: True' in output and 'GPU number: 2' in output, output[-3000:]  # world size 2
    assert "dist_cfg=dict(backend='gloo')" in output and 'loss_rank' in output and 'NIQE' in output, output[-3000:]
    checkpoint = read_ranker_file(str(tmp_path / 'work' / 'iter_2.pth'))
    assert {key.split('.')[0] for key in checkpoint['state_dict']} == {'generator', 'discriminator'}


@pytest.mark.parametrize('config', [RANKSRGAN_CONFIG], ids=['ranksrgan'])
def test_validation_curves_by_iteration_from_a_real_work_dir(sr_workspace, tmp_path, config):
    """The shipped configs log validation scalars by iteration: two validations, two points of the curve."""
    from ranksrgan_plugin.utils.training_logs import load_run, select

    cfg = tiny_sr_config(sr_workspace, config, tmp_path / 'work', max_iters=4)
    cfg.train_cfg.update(val_interval=2)
    Runner.from_cfg(cfg).train()
    points = select(load_run(str(tmp_path / 'work')), 'psnr', None, 'tiny')
    assert [step for step, _ in points] == [2, 4]


@pytest.mark.parametrize('variant', ['ma', 'pi', 'hr'])
def test_variant_configs_train_and_validate(sr_workspace, tmp_path, monkeypatch, variant):
    """RankSRGAN-M / -PI / -HR run through MMagic's runner; -M and -PI validate Ma and PI too."""
    from test_ma_metric import _write_model

    monkeypatch.setenv('RANKSRGAN_MA_MODEL', _write_model(tmp_path / 'model.mat'))
    config = CONFIG_DIR / f'ranksrgan_x4c64b16_1xb8-500k_div2k-{variant}.py'
    runner = Runner.from_cfg(tiny_sr_config(sr_workspace, config, tmp_path / 'work', max_iters=2))
    runner.train()
    assert _scalar(runner, 'train/loss_rank') > 0 and np.isfinite(_scalar(runner, 'val/PSNR'))
    if variant in ('ma', 'pi'):
        assert np.isfinite(_scalar(runner, 'val/Ma')) and np.isfinite(_scalar(runner, 'val/PI'))
