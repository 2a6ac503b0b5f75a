"""MMagic side: configs inherit MMagic's own, the plugin registers into MMagic's registries, compat workarounds."""
import importlib
import logging
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from mmagic.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config

import ranksrgan_plugin.mmagic  # noqa: F401  (placeholders, registration)
from ranksrgan_plugin.archs import RankerVGG, VGGStyleDiscriminatorAnySize
from ranksrgan_plugin.compat import mmagic as compat
from ranksrgan_plugin.losses import RankContentLoss, RankLoss, RankRegressionLoss
from ranksrgan_plugin.losses.vgg_weights import MissingVGGWeightsError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / 'options' / 'mmagic'
RANKER_CONFIG = CONFIG_DIR / 'ranker_vgg12_1xb16-400k_rank-df2k-niqe.py'
RANKSRGAN_CONFIG = CONFIG_DIR / 'ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'
RANKESRGAN_CONFIG = CONFIG_DIR / 'rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe.py'
PLUGIN_IMPORT = dict(imports=['ranksrgan_plugin.mmagic'], allow_failed_imports=False)


VARIANT_CONFIGS = {  # RankSRGAN-M / -PI / -HR and their Rankers: what each changes in the -N config
    'ranksrgan_x4c64b16_1xb8-500k_div2k-ma.py': ('experiments/pretrained_models/Ranker_Ma_basicsr.pth', True),
    'ranksrgan_x4c64b16_1xb8-500k_div2k-pi.py': ('experiments/pretrained_models/Ranker_PI_basicsr.pth', True),
    'ranksrgan_x4c64b16_1xb8-500k_div2k-hr.py': ('experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth', False),
}
RANKER_VARIANTS = {  # data root, higher_is_better
    'ranker_vgg12_1xb16-400k_rank-df2k-ma.py': ('datasets/rank_DF2K_ma', True),
    'ranker_vgg12_1xb16-400k_rank-df2k-pi.py': ('datasets/rank_DF2K_pi', None),
    'ranker_vgg12_1xb16-400k_rank-df2k-niqe-hr.py': ('datasets/rank_DF2K_niqe_hr', None),
}

TEST_CONFIGS = (  # tests/test_mmagic_test_protocol.py; the paper road's: tests/test_road_mmagic.py
    'ranksrgan_x4c64b16_test_set5-set14-pirm.py', 'ranksrgan_x4c64b16_test_set5-set14-pirm-ma-pi.py',
    'ranksrgan-paper_x4c64b16_test_pirm.py')
PAPER_CONFIGS = tuple(f'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-{v}.py' for v in ('niqe', 'ma', 'pi', 'hr'))
TWO_RANKER_CONFIG = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe-ma.py'  # tests/test_several_rankers.py


def test_every_config_is_tested():
    assert sorted(CONFIG_DIR.glob('*.py')) == sorted(
        [RANKER_CONFIG, RANKSRGAN_CONFIG, RANKESRGAN_CONFIG]
        + [CONFIG_DIR / name
           for name in [*VARIANT_CONFIGS, *RANKER_VARIANTS, *TEST_CONFIGS, *PAPER_CONFIGS, TWO_RANKER_CONFIG]])


@pytest.mark.parametrize('name', sorted(VARIANT_CONFIGS))
def test_ranksrgan_variants_change_only_the_ranker_and_validation(name):
    ranker_checkpoint, ma_pi = VARIANT_CONFIGS[name]
    cfg, base = Config.fromfile(str(CONFIG_DIR / name)), Config.fromfile(str(RANKSRGAN_CONFIG))
    assert cfg.work_dir == f'./work_dirs/{name[:-3]}' and cfg.custom_imports == PLUGIN_IMPORT
    assert cfg.model.ranker_checkpoint == ranker_checkpoint
    assert {**cfg.model.to_dict(), 'ranker_checkpoint': None} == {**base.model.to_dict(), 'ranker_checkpoint': None}
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'train_cfg', 'param_scheduler', 'load_from'):
        assert cfg.get(key) == base.get(key), key
    expected = list(base.val_evaluator.metrics)
    if ma_pi:  # the Ma / PI validation of options/train_RankSRGAN_{Ma,PI}.yml (model.mat: model_path or the default)
        expected.append(dict(type='MaPI', crop_border=4, model_path=None))
    assert cfg.val_evaluator.metrics == expected


@pytest.mark.parametrize('name', sorted(RANKER_VARIANTS))
def test_ranker_variants_change_only_the_rank_dataset(name):
    data_root, higher_is_better = RANKER_VARIANTS[name]
    cfg, base = Config.fromfile(str(CONFIG_DIR / name)), Config.fromfile(str(RANKER_CONFIG))
    assert cfg.work_dir == f'./work_dirs/{name[:-3]}'
    assert cfg.model == base.model and cfg.optim_wrapper == base.optim_wrapper and cfg.train_cfg == base.train_cfg
    for split, loader in (('train', cfg.train_dataloader), ('val', cfg.val_dataloader)):
        assert loader.dataset.data_root == f'{data_root}/{split}'
        assert loader.dataset.get('higher_is_better') == higher_is_better  # Ma: labels flipped, as train_Ranker_Ma.yml


def test_original_generator_in_mmagic_loads_converted_official_weights():
    """RankSRGANGenerator through mmagic.registry.MODELS, with an official-layout (model.N) checkpoint converted."""
    from collections import OrderedDict

    from ranksrgan_plugin.archs import RankSRGANGenerator
    from ranksrgan_plugin.checkpoints import convert_official_checkpoint, convert_old_generator_keys

    assert MODELS.get('RankSRGANGenerator') is RankSRGANGenerator
    torch.manual_seed(0)
    source = RankSRGANGenerator(num_feat=8, num_block=2)
    inverse = {new: old for old, new in zip(_official_keys(source), source.state_dict())}
    official = OrderedDict((inverse[key], value) for key, value in source.state_dict().items())
    layout, options, _ = convert_official_checkpoint(official)
    assert layout == 'generator_model'
    net = MODELS.build(options)
    net.load_state_dict(convert_old_generator_keys(official), strict=True)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def _official_keys(net) -> list:
    """The official ``model.N`` key names of RankSRGANGenerator's parameters, in state_dict order."""
    keys, blocks = [], len(net.recon_trunk)
    tail = {'upconv1': 'model.2', 'upconv2': 'model.5', 'HRconv': 'model.8', 'conv_last': 'model.10'}
    for key in net.state_dict():
        name, param = key.rsplit('.', 1)
        if name == 'conv_first':
            old = 'model.0'
        elif name.startswith('recon_trunk.'):
            _, index, conv = name.split('.')
            old = f'model.1.sub.{index}.res.{0 if conv == "conv1" else 2}'
        elif name == 'LRconv':
            old = f'model.1.sub.{blocks}'
        else:
            old = tail[name]
        keys.append(f'{old}.{param}')
    return keys


def test_ranksrgan_config_inherits_mmagic_srgan():
    cfg = Config.fromfile(str(RANKSRGAN_CONFIG))
    # set only by the MMagic base configs (srgan_x4c64b16, msrresnet_x4c64b16, default_runtime)
    assert cfg.default_scope == 'mmagic'
    generator = cfg.model.generator.to_dict()
    generator.pop('init_cfg')  # the plugin's (checked below)
    assert generator == dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=64, num_blocks=16,
                             upscale_factor=4)
    assert cfg.model.perceptual_loss.layer_weights == {'34': 1.0}
    assert cfg.model.gan_loss.loss_weight == 5e-3 and cfg.model.gan_loss.gan_type == 'vanilla'
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    assert cfg.param_scheduler.milestones == [50000, 100000, 200000, 300000]
    assert cfg.val_cfg.type == 'MultiValLoop'
    assert cfg.train_dataloader.dataset.ann_file == 'meta_info_DIV2K800sub_GT.txt'
    assert cfg.default_hooks.checkpoint.save_best == 'PSNR'
    # what RankSRGAN changes
    assert cfg.custom_imports == PLUGIN_IMPORT
    assert cfg.model.type == 'RankSRGAN'
    assert cfg.model.ranker == dict(type='RankerVGG', depth=12)
    assert cfg.model.ranker_checkpoint == 'experiments/pretrained_models/Ranker_NIQE_basicsr.pth'
    assert cfg.model.rank_loss.type == 'RankContentLoss' and cfg.model.rank_loss.loss_weight == 0.03
    assert cfg.model.rank_loss.reduction == 'sum' and cfg.model.ranker_batchnorm == 'batch'  # the original's
    assert cfg.model.pixel_loss.loss_weight == 0
    assert cfg.model.discriminator == dict(type='VGGStyleDiscriminatorAnySize', num_in_ch=3, num_feat=64,
                                           input_size=296)
    crop = next(step for step in cfg.train_dataloader.dataset.pipeline if step.type == 'PairedRandomCrop')
    assert crop.gt_patch_size == 296 and cfg.train_dataloader.batch_size == 8
    assert cfg.optim_wrapper.generator.optimizer.betas == (0.9, 0.99)
    assert cfg.optim_wrapper.discriminator.optimizer.betas == (0.9, 0.99)
    assert cfg.train_cfg.max_iters == 500_000
    assert {'type': 'BatchedNIQE', 'crop_border': 4, 'convert_to': 'y'} in cfg.val_evaluator.metrics
    assert cfg.work_dir == './work_dirs/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe'
    # the generator is initialised through init_cfg, not load_from (which --resume would resume from)
    assert cfg.load_from is None
    assert 'init_cfg' not in cfg.model
    assert cfg.model.generator.init_cfg == dict(
        type='StrictPretrained',
        checkpoint='experiments/pretrained_models/msrresnet_x4c64b16_1x16_300k_div2k_20200521-61556be5.pth',
        prefix='generator.')


def test_rankesrgan_config_inherits_mmagic_esrgan():
    cfg = Config.fromfile(str(RANKESRGAN_CONFIG))
    assert cfg.model.generator.type == 'RRDBNet' and cfg.model.generator.num_blocks == 23
    assert cfg.model.generator.init_cfg.prefix == 'generator.'
    assert cfg.model.pixel_loss.loss_weight == 1e-2
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert cfg.model.type == 'RankESRGAN'
    assert cfg.custom_imports == PLUGIN_IMPORT
    assert cfg.model.generator.init_cfg.checkpoint.startswith('experiments/pretrained_models/esrgan_psnr_x4c64b23g32')
    assert cfg.model.ranker_checkpoint == 'experiments/pretrained_models/Ranker_NIQE_basicsr.pth'
    assert cfg.model.discriminator.input_size == 296 and cfg.train_dataloader.batch_size == 8
    assert cfg.work_dir == './work_dirs/rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe'


def test_ranker_config_inherits_mmagic_runtime():
    cfg = Config.fromfile(str(RANKER_CONFIG))
    # set only by mmagic's _base_/default_runtime.py
    assert cfg.default_scope == 'mmagic'
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 10
    assert cfg.log_processor.window_size == 100 and cfg.log_processor.by_epoch is False
    assert cfg.env_cfg.mp_cfg.mp_start_method == 'fork'
    # the paper's Ranker settings
    assert cfg.custom_imports == PLUGIN_IMPORT
    assert cfg.model.ranker == dict(type='RankerVGG', depth=12)
    # the original's Ranker training: clamp to [-5, 5], one pass per side, no flips/rotations
    assert cfg.model.rank_loss == dict(type='RankLoss', margin=0.5, loss_weight=1.0, clamp=5)
    assert cfg.model.pair_forward == 'separate'
    assert cfg.train_dataloader.dataset.use_hflip is False and cfg.train_dataloader.dataset.use_rot is False
    assert cfg.train_dataloader.dataset.pair_order == 'better_first'  # the original's
    assert cfg.randomness.seed == 10  # the original's manual_seed
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    assert cfg.param_scheduler.milestones == [100_000, 200_000] and cfg.train_cfg.max_iters == 400_000
    assert cfg.train_dataloader.dataset.data_root == 'datasets/rank_DF2K_niqe/train'
    assert cfg.val_dataloader.dataset.data_root == 'datasets/rank_DF2K_niqe/val'
    assert cfg.val_dataloader.dataset.test_mode is True
    assert cfg.default_hooks.checkpoint.save_best == 'SROCC' and cfg.custom_hooks == []


@pytest.mark.parametrize('registry, name, cls', [
    (MODELS, 'RankerVGG', RankerVGG),
    (MODELS, 'RankSRGANGenerator', ranksrgan_plugin.archs.RankSRGANGenerator),
    (MODELS, 'VGGStyleDiscriminatorAnySize', VGGStyleDiscriminatorAnySize),
    (MODELS, 'RankLoss', RankLoss),
    (MODELS, 'RankRegressionLoss', RankRegressionLoss),
    (MODELS, 'RankContentLoss', RankContentLoss),
    (MODELS, 'RankSRGAN', ranksrgan_plugin.mmagic.RankSRGAN),
    (MODELS, 'RankESRGAN', ranksrgan_plugin.mmagic.RankESRGAN),
    (MODELS, 'RankerModel', ranksrgan_plugin.mmagic.RankerModel),
    (DATASETS, 'RankPairDataset', ranksrgan_plugin.mmagic.RankPairDataset),
    (METRICS, 'SROCC', ranksrgan_plugin.mmagic.SROCC),
    (METRICS, 'PairAccuracy', ranksrgan_plugin.mmagic.PairAccuracy),
    (METRICS, 'BatchedNIQE', ranksrgan_plugin.mmagic.BatchedNIQE),
    (METRICS, 'MaPI', ranksrgan_plugin.mmagic.MaPI),
])
def test_plugin_classes_are_in_mmagic_registries(registry, name, cls):
    assert registry.get(name) is cls  # the shared core is the BasicSR side's very class, not a copy


def _ranker_file(path: Path, depth: int = 12) -> Path:
    torch.save({'params': RankerVGG(depth=depth).state_dict()}, path)
    return path


def _model_cfg(config: Path, ranker_checkpoint: Path) -> dict:
    model = Config.fromfile(str(config)).model.to_dict()
    model.update(ranker_checkpoint=str(ranker_checkpoint))
    model['perceptual_loss']['pretrained'] = None  # unpretrained VGG: no download
    model['generator'].pop('init_cfg', None)
    return model


@pytest.mark.parametrize('config', [RANKSRGAN_CONFIG, RANKESRGAN_CONFIG], ids=['ranksrgan', 'rankesrgan'])
def test_shipped_model_config_builds(tmp_path, config):
    model = MODELS.build(_model_cfg(config, _ranker_file(tmp_path / 'ranker.pth')))
    assert type(model).__name__ == Config.fromfile(str(config)).model.type
    assert isinstance(model.ranker, RankerVGG) and not model.ranker.training
    assert not any(name.startswith('ranker') for name in model.state_dict())
    with torch.no_grad():
        scores = model.ranker(torch.rand(2, 3, 64, 64))
    assert scores.shape == (2, 1)


def test_missing_ranker_checkpoint_is_a_clear_error(tmp_path):
    model = _model_cfg(RANKSRGAN_CONFIG, tmp_path / 'absent.pth')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        MODELS.build(model)
    model['ranker_checkpoint'] = None
    with pytest.raises(ValueError, match='ranker_checkpoint'):
        MODELS.build(model)


def test_missing_vgg_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))

    def offline(*args, **kwargs):
        raise OSError('network unreachable')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
    model = _model_cfg(RANKSRGAN_CONFIG, _ranker_file(tmp_path / 'ranker.pth'))
    model['perceptual_loss']['pretrained'] = 'torchvision://vgg19'
    with pytest.raises(MissingVGGWeightsError, match='vgg19-dcbb9e9d.pth') as info:
        MODELS.build(model)
    assert 'model.perceptual_loss.pretrained' in str(info.value)  # MMagic's option, not BasicSR's
    assert 'perceptual_opt' not in str(info.value)


def test_perceptual_loss_loads_the_given_vgg_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.vgg11(weights=None)
    torch.save(reference.state_dict(), tmp_path / 'vgg11.pth')
    model = _model_cfg(RANKSRGAN_CONFIG, _ranker_file(tmp_path / 'ranker.pth', depth=8))
    model.update(ranker=dict(type='RankerVGG', depth=8))
    model['perceptual_loss'].update(vgg_type='vgg11', layer_weights={'3': 1.0}, pretrained=str(tmp_path / 'vgg11.pth'))
    built = MODELS.build(model)
    torch.testing.assert_close(built.perceptual_loss.vgg.vgg_layers[3].weight, reference.features[3].weight)


def _forget_mmcv_ops(monkeypatch, replacement):
    for name in ('mmcv.ops', 'mmcv.ops.fused_bias_leakyrelu', 'mmcv.ops.upfirdn2d'):
        monkeypatch.setitem(sys.modules, name, None)  # records the original entry (or its absence) for teardown
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'mmcv.ops', replacement)
    monkeypatch.setattr(sys.modules['mmcv'], 'ops', replacement, raising=False)


def test_mmcv_ops_placeholders_only_when_ops_are_missing(monkeypatch, caplog):
    _forget_mmcv_ops(monkeypatch, None)  # None in sys.modules: `import mmcv.ops` raises ImportError
    with caplog.at_level(logging.WARNING, logger='ranksrgan_plugin'):
        installed = compat.install_mmcv_ops_placeholders()
    assert installed == ['mmcv.ops', 'mmcv.ops.fused_bias_leakyrelu', 'mmcv.ops.upfirdn2d']
    assert len([r for r in caplog.records if 'placeholders' in r.getMessage()]) == 1
    ops = importlib.import_module('mmcv.ops')
    assert getattr(ops, compat.MMCV_OPS_PLACEHOLDER_FLAG)
    from mmcv.ops.fused_bias_leakyrelu import FusedBiasLeakyReLU
    from mmcv.ops.upfirdn2d import upfirdn2d

    class Subclass(ops.ModulatedDeformConv2d):  # MMagic subclasses some ops at import time
        pass

    with pytest.raises(RuntimeError, match='full mmcv'):
        Subclass(3, 3, 3)
    with pytest.raises(RuntimeError, match='full mmcv'):
        FusedBiasLeakyReLU(3)
    with pytest.raises(RuntimeError, match='upfirdn2d'):
        upfirdn2d(torch.zeros(1))
    with pytest.raises(ImportError):  # names MMagic imports with a fallback stay absent
        exec('from mmcv.ops import conv2d', {})
    assert compat.install_mmcv_ops_placeholders() == []  # already importable now: nothing more


def test_mmcv_ops_untouched_when_real_ops_exist(monkeypatch, caplog):
    real_ops = types.ModuleType('mmcv.ops')
    _forget_mmcv_ops(monkeypatch, real_ops)
    with caplog.at_level(logging.WARNING, logger='ranksrgan_plugin'):
        assert compat.install_mmcv_ops_placeholders() == []
    assert sys.modules['mmcv.ops'] is real_ops
    assert 'mmcv.ops.upfirdn2d' not in sys.modules and not caplog.records


@pytest.mark.parametrize('path', sorted(CONFIG_DIR.glob('*.py')), ids=lambda p: p.stem)
def test_validation_scalars_are_logged_by_iteration(path):
    """MMagic's runtime logs validation metrics by epoch (step 0 for every validation of an iter-based run)."""
    assert Config.fromfile(str(path)).default_hooks.logger.log_metric_by_epoch is False


def test_model_zoo_metafile_lists_every_config():
    """options/mmagic/metafile.yml (MMagic's model-index format) names every shipped config, each once."""
    meta = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text(encoding='utf-8'))
    collection = meta['Collections'][0]
    assert collection['Name'] == 'RankSRGAN' and (REPO_ROOT / collection['README']).is_file()
    listed = [model['Config'] for model in meta['Models']]
    shipped = sorted(str(p.relative_to(REPO_ROOT)) for p in CONFIG_DIR.glob('*.py'))
    assert sorted(listed) == shipped
    for model in meta['Models']:
        assert model['In Collection'] == 'RankSRGAN' and model['Name'] == Path(model['Config']).stem
