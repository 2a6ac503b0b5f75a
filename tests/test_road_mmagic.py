"""The paper road in MMagic (tools/reproduce.py --toolbox mmagic): RankSRGAN trained by MMagic's Runner from the paper
config with the BasicSR Ranker stage's last checkpoint, killed after its first checkpoint and resumed, its generator
exported for the road's test stage; the paper configs agree with the BasicSR road (the last Ranker checkpoint, the
paper's generator tested on datasets/PIRM/test)."""
import os
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.runner import Runner
from test_mmagic_configs import CONFIG_DIR, PAPER_CONFIGS, RANKSRGAN_CONFIG
from test_mmagic_test_protocol import _MetricsOfTest as MetricsOfTest
from test_reproduce import TINY_G, TINY_RANKER, tiny_layout

import ranksrgan_plugin.mmagic  # noqa: F401  (registers the plugin in MMagic)
from ranksrgan_plugin.archs.ranker_arch import RankerVGG
from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator
from ranksrgan_plugin.checkpoints import read_checkpoint, read_mmengine_checkpoint
from ranksrgan_plugin.reproduce import mmagic_stages
from ranksrgan_plugin.reproduce.measure import measure_generator
from ranksrgan_plugin.reproduce.rehearsal import rehearsal_plan
from ranksrgan_plugin.reproduce.stages import StageFailed
from ranksrgan_plugin.reproduce.variants import VARIANTS

PAPER_TEST_CONFIG = CONFIG_DIR / 'ranksrgan-paper_x4c64b16_test_pirm.py'
TINY_CROP = 32


def tiny_paper_config(folder: str) -> str:
    """The -N paper config with tiny networks, 32-pixel crops and no perceptual VGG; its data, files and work dir
    left as the repository's (datasets/..., experiments/...): the road sets them."""
    cfg = Config.fromfile(str(CONFIG_DIR / PAPER_CONFIGS[0]))
    cfg.model.generator.update({k: v for k, v in TINY_G.items() if k in ('num_feat', 'num_block')})
    cfg.model.discriminator.update(num_feat=8, input_size=TINY_CROP)
    cfg.model.perceptual_loss = None
    cfg.model.ranker = dict(TINY_RANKER)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'PairedRandomCrop':
            step['gt_patch_size'] = TINY_CROP
    cfg.train_dataloader.update(num_workers=0, batch_size=2)
    cfg.val_dataloader.update(num_workers=0)
    path = osp.join(folder, 'tiny_paper_niqe.py')
    cfg.dump(path)
    return path


def tiny_ranker_file(path: str) -> str:
    torch.manual_seed(1)
    net = RankerVGG(**{k: v for k, v in TINY_RANKER.items() if k != 'type'})
    torch.save({'params': net.state_dict()}, path)  # what the BasicSR Ranker stage writes (net_r_latest.pth)
    return path


@pytest.fixture(scope='module')
def mmagic_road(tmp_path_factory):
    """The MMagic RankSRGAN stage on a tiny layout with the rehearsal's overrides, killed after iteration 1."""
    folder = str(tmp_path_factory.mktemp('mmagic_road'))
    layout = tiny_layout(folder)
    ranker = tiny_ranker_file(osp.join(folder, 'net_r_latest.pth'))
    plan = rehearsal_plan('mmagic')
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(mmagic_stages.PAPER_CONFIGS, 'niqe', tiny_paper_config(folder))
        outputs = mmagic_stages.run_ranksrgan_mmagic(layout, ranker, False, lines.append,
                                                     overrides=plan.overrides['ranksrgan'],
                                                     kill_after=plan.kill_after['ranksrgan'], show_bars=False)
    return layout, ranker, outputs, lines


def test_rehearsal_plan_of_mmagic():
    basicsr, mmagic = rehearsal_plan(), rehearsal_plan('mmagic')
    assert mmagic.overrides['ranker'] == basicsr.overrides['ranker']  # the Ranker stage is the BasicSR one
    assert mmagic.overrides['ranksrgan'] == {'train_cfg.max_iters': 3, 'train_cfg.val_interval': 3,
                                             'default_hooks.checkpoint.interval': 1,
                                             'default_hooks.checkpoint.max_keep_ckpts': 2,
                                             'default_hooks.logger.interval': 1}
    assert mmagic.kill_after == {'ranksrgan': 1} and mmagic.rehearsal
    assert 'MMagic' in mmagic.notes[0] and 'MMagic' not in basicsr.notes[0]
    with pytest.raises(ValueError, match="toolbox 'mmcv'"):
        rehearsal_plan('mmcv')


def test_mmagic_stage_runs_the_paper_config_with_the_road_files(mmagic_road):
    layout, ranker, outputs, _ = mmagic_road
    assert outputs['toolbox'] == 'mmagic' and outputs['ranker'] == ranker
    assert outputs['options'] == osp.join(layout.output, 'options', 'ranksrgan.py')
    cfg = Config.fromfile(outputs['options'])
    assert cfg.model.ranker_checkpoint == ranker
    assert cfg.model.generator.type == 'RankSRGANGenerator'
    assert cfg.model.generator.init_cfg.checkpoint == outputs['initialisation']
    assert read_checkpoint(outputs['initialisation']).keys() == {'params'}  # the converted SRResNet
    assert cfg.train_dataloader.dataset.data_root == osp.join(layout.data, 'DIV2K')  # relocated from datasets/
    assert cfg.val_dataloader.dataset.data_root == osp.join(layout.data, 'PIRM', 'test')
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_cfg.max_iters == 3
    assert cfg.work_dir == outputs['experiment'] and outputs['experiment'].startswith(layout.root)
    assert {name for name in os.listdir(outputs['experiment']) if name.startswith('iter_')} == {'iter_2.pth',
                                                                                               'iter_3.pth'}
    assert 'last_checkpoint' in os.listdir(outputs['experiment'])  # two checkpoints kept (each is 370 MB)


def test_mmagic_stage_killed_after_its_first_checkpoint_resumes(mmagic_road):
    """The kill polls the checkpoint pointer, so it can land an iteration late: the run resumes from the checkpoint
    the killed run left (1 or 2 of 3) and trains the rest, not from 0."""
    layout, _, outputs, lines = mmagic_road
    killed, finished = outputs['runs']
    saved = killed['checkpoint']
    assert killed['status'] == 'killed' and saved in (1, 2) and killed['iteration'] >= saved
    assert finished == {'status': 0, 'iteration': 3, 'checkpoint': 3}
    assert outputs['resumed_from'] == [saved]
    assert any(f'its last checkpoint at iteration {saved}' in line for line in lines)
    with open(layout.log_file('ranksrgan'), encoding='utf-8') as f:
        after_resume = f.read().split('resumed epoch:', 1)[1]
    assert 'Iter(train) [3/3]' in after_resume and f'Iter(train) [{saved}/3]' not in after_resume  # not from 0


def test_mmagic_stage_exports_the_generator_for_the_test_stage(mmagic_road):
    layout, _, outputs, _ = mmagic_road
    assert outputs['network_g'] == TINY_G
    last = read_mmengine_checkpoint(osp.join(outputs['experiment'], 'iter_3.pth'))
    exported = read_checkpoint(outputs['checkpoint'])
    assert exported.keys() == {'params'}
    generator = {k[len('generator.'):]: v for k, v in last['state_dict'].items() if k.startswith('generator.')}
    assert exported['params'].keys() == generator.keys()
    assert all(torch.equal(exported['params'][k], generator[k]) for k in generator)
    results = measure_generator(layout, outputs['network_g'], outputs['checkpoint'], progress=False)
    assert results['PIRM_test']['rgb']['psnr'] > 0 and results['PIRM_test']['y']['images'] == 2


def test_paper_test_config_tests_the_stage_checkpoint_on_pirm_test(mmagic_road, tmp_path):
    """ranksrgan-paper_x4c64b16_test_pirm.py through MMagic's Runner: the MMagic checkpoint of the stage, the road's
    PIRM test folders; its RGB PSNR is the road's test stage's (MMagic scores unrounded outputs: within 0.05 dB)."""
    layout, _, outputs, _ = mmagic_road
    cfg = Config.fromfile(str(PAPER_TEST_CONFIG))
    cfg.model.generator.update(num_feat=TINY_G['num_feat'], num_block=TINY_G['num_block'])
    cfg.test_dataloader[0].update(num_workers=0)
    cfg.test_dataloader[0].dataset.data_root = layout.relocate(cfg.test_dataloader[0].dataset.data_root)
    cfg.update(work_dir=str(tmp_path / 'work'), load_from=outputs['mmagic_checkpoint'])
    runner, metrics = Runner.from_cfg(cfg), {}
    runner.register_hook(MetricsOfTest(metrics))  # MMagic's MultiTestLoop.run returns nothing
    runner.test()
    road = measure_generator(layout, outputs['network_g'], outputs['checkpoint'], progress=False)['PIRM_test']
    assert abs(metrics['PIRM/PSNR'] - road['rgb']['psnr']) < 0.05
    assert abs(metrics['PIRM/Y/PSNR'] - road['y']['psnr']) < 0.05


def test_a_ranker_checkpoint_that_does_not_fit_is_refused_before_training(tmp_path, monkeypatch):
    layout = tiny_layout(str(tmp_path))
    wrong = str(tmp_path / 'net_r_latest.pth')
    torch.save({'params': RankSRGANGenerator(num_feat=8, num_block=1).state_dict()}, wrong)
    monkeypatch.setitem(mmagic_stages.PAPER_CONFIGS, 'niqe', tiny_paper_config(str(tmp_path)))
    with pytest.raises(StageFailed) as error:
        mmagic_stages.run_ranksrgan_mmagic(layout, wrong, False, lambda line: None, overrides={}, show_bars=False)
    message = str(error.value)
    assert f"the Ranker stage's checkpoint {wrong} cannot be the frozen Ranker of" in message
    assert 'model.ranker_checkpoint' in message and '--from ranker' in message
    assert not osp.exists(layout.log_file('ranksrgan')) and not osp.exists(osp.join(layout.root, 'work_dirs'))


def test_a_config_without_the_paper_generator_is_refused(tmp_path, monkeypatch):
    layout = tiny_layout(str(tmp_path))
    monkeypatch.setitem(mmagic_stages.PAPER_CONFIGS, 'niqe', str(RANKSRGAN_CONFIG))  # the port: MMagic's MSRResNet
    with pytest.raises(StageFailed, match=r'model.generator is MSRResNet, not the paper\'s RankSRGANGenerator'):
        mmagic_stages.run_ranksrgan_mmagic(layout, tiny_ranker_file(str(tmp_path / 'r.pth')), False,
                                           lambda line: None, overrides={}, show_bars=False)


# ------------------------------------------------------------------------------------------------
# the paper configs agree with the BasicSR road


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_paper_configs_take_the_last_checkpoint_of_the_basicsr_ranker(variant):
    """The Ranker of each paper config is the last checkpoint (net_r_latest.pth) of the Ranker the BasicSR road
    trains for that variant, as tools/reproduce.py passes it; the map of the MMagic road names these configs."""
    with open(CONFIG_DIR.parent / VARIANTS[variant].ranker, encoding='utf-8') as f:
        name = VARIANTS[variant].ranker_values.get('name', yaml.safe_load(f)['name'])
    cfg = Config.fromfile(str(CONFIG_DIR / mmagic_stages.PAPER_CONFIGS[variant]))
    assert cfg.model.ranker_checkpoint == f'experiments/{name}/models/net_r_latest.pth'
    assert cfg.model.generator.type == 'RankSRGANGenerator'


def test_paper_test_config_builds_the_paper_generator_on_pirm_test():
    cfg = Config.fromfile(str(PAPER_TEST_CONFIG))
    assert cfg.model.type == 'StrictEditModel' and 'ranker' not in cfg.model
    assert cfg.model.generator == dict(type='RankSRGANGenerator', num_in_ch=3, num_out_ch=3, num_feat=64,
                                       num_block=16, upscale=4)
    loader, = cfg.test_dataloader
    assert loader.dataset.data_root == 'datasets/PIRM/test' and loader.dataset.data_prefix == dict(img='LR', gt='HR')
    metrics = cfg.test_evaluator[0].metrics
    assert [(m.type, m.get('convert_to'), m.crop_border, m.prefix) for m in metrics] == [
        ('PSNR', None, 4, 'PIRM'), ('SSIM', None, 4, 'PIRM'), ('PSNR', 'Y', 4, 'PIRM/Y'), ('SSIM', 'Y', 4, 'PIRM/Y'),
        ('BatchedNIQE', 'y', 4, 'PIRM')]
