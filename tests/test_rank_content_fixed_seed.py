"""The paper option files give the same losses, for a fixed seed, whatever the code that reads their Rankers.

Two training iterations of BasicSR's RankSRGANModel (options/train_RankSRGAN_NIQE.yml and the two-Ranker
train_RankSRGAN_NIQE_Ma.yml) and of MMagic's RankSRGAN / RankESRGAN (the paper configs, the two-Ranker one and the
RankESRGAN port), each shrunk to tiny networks as the other tests do, on fixed batches. The expected values were
recorded before the rank-content term moved into ``ranksrgan_plugin.rank_content`` (issue 32) and are pinned here
(relative tolerance 1e-4: the second iteration's values move by about 1e-6 with the number of CPU threads,
which changes the order of sums; a change of behaviour moves them by far more): BasicSR's whole log, MMagic's
losses (its ``loss*`` entries).
"""
import copy
from pathlib import Path

import pytest
import torch
import yaml
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from test_mmagic_training import TINY_RANKER
from test_ranksrgan_model import RANKER_OPT, _build, _tiny_batch, tiny_options, workspace  # noqa: F401  (fixture)

import ranksrgan_plugin.mmagic  # noqa: F401  (registration)
from ranksrgan_plugin.archs import RankerVGG

REPO_ROOT = Path(__file__).resolve().parents[1]
OPTIONS = REPO_ROOT / 'options'
ITERATIONS = (1, 2)
RELATIVE = 1e-4


def _tiny_ranker_file(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()}, path)
    return str(path)


def _shrunk_ranker_options(value, paths):
    """A Ranker block's values with the network made tiny and each checkpoint path replaced (key names untouched:
    the same code shrinks every option dialect)."""
    if isinstance(value, dict) and value.get('type') == 'RankerVGG':
        return dict(RANKER_OPT)
    if isinstance(value, str) and value.endswith('.pth'):
        return paths.pop(0)
    return value


def basicsr_paper_options(root: Path, name: str) -> dict:
    """``options/<name>`` with tiny networks, a random-weights VGG, tmp data and every step logged."""
    with open(OPTIONS / name, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    tiny = tiny_options(root)
    opt.update({key: tiny[key] for key in ('num_gpu', 'is_train', 'dist', 'rank', 'world_size', 'datasets')})
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['network_d'].update(num_feat=8, input_size=32)
    opt['path'].update(pretrain_network_g=None)
    opt['train']['perceptual_opt']['vgg_weights'] = None
    opt['logger'].update(print_freq=1)
    opt['val']['metrics'] = tiny['val']['metrics']  # Ma's model.mat is not shipped
    paths = [_tiny_ranker_file(root / f'ranker{index}.pth', index) for index in range(2)]
    if 'network_r' in opt:
        opt['network_r'] = dict(RANKER_OPT)
        opt['path']['pretrain_network_r'] = paths[0]
    for index, item in enumerate(opt.get('rankers') or []):
        opt['rankers'][index] = {key: _shrunk_ranker_options(value, paths) for key, value in item.items()}
    return opt


def basicsr_losses(options: dict) -> list:
    torch.manual_seed(0)
    model = _build(options)
    logs = []
    for step in ITERATIONS:
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
        logs.append({key: float(value) for key, value in model.log_dict.items()})
    return logs


def mmagic_paper_model(root: Path, name: str):
    """The MMagic config ``name`` with tiny networks (no perceptual loss) and tiny Rankers."""
    cfg = Config.fromfile(str(OPTIONS / 'mmagic' / name))
    model = copy.deepcopy(cfg.model.to_dict())
    generator = model['generator']
    generator.pop('init_cfg', None)
    model.pop('init_cfg', None)
    if generator['type'] == 'RankSRGANGenerator':
        generator.update(num_feat=8, num_block=1)
    elif generator['type'] == 'RRDBNet':
        generator.update(mid_channels=8, num_blocks=1, growth_channels=4)
    else:
        generator.update(mid_channels=8, num_blocks=1)
    model['discriminator'].update(num_feat=8, input_size=32)
    model['perceptual_loss'] = None
    paths = [_tiny_ranker_file(root / f'mmagic_ranker{index}.pth', index + 10) for index in range(2)]
    if model.get('rankers'):
        model['rankers'] = [{key: _shrunk_ranker_options(value, paths) for key, value in item.items()}
                            for item in model['rankers']]
    else:
        model.update(ranker=dict(TINY_RANKER), ranker_checkpoint=paths[0])
    torch.manual_seed(0)
    built = MODELS.build(model)
    built.init_weights()
    with DefaultScope.overwrite_default_scope('mmagic'):  # MMagic's MultiOptimWrapperConstructor, as the Runner
        return built.train(), build_optim_wrapper(built, cfg.optim_wrapper)


def _mmagic_batch(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(3, 8, 8, generator=generator) * 255 for _ in range(2)]
    gts = [torch.rand(3, 32, 32, generator=generator) * 255 for _ in range(2)]
    return {'inputs': inputs, 'data_samples': [DataSample(gt_img=gt) for gt in gts]}


def mmagic_losses(root: Path, name: str) -> list:
    model, optim_wrapper = mmagic_paper_model(root, name)
    hub, logs = MessageHub.get_current_instance(), []
    for step in ITERATIONS:
        hub.update_info('iter', step - 1)  # the runner's 0-based iteration
        log = model.train_step(_mmagic_batch(step), optim_wrapper)
        logs.append({key: float(value) for key, value in log.items() if 'loss' in key})
    return logs


def assert_same(logs: list, expected: list) -> None:
    print(logs)  # what a new recording would pin
    assert [sorted(log) for log in logs] == [sorted(log) for log in expected]
    for log, pinned in zip(logs, expected):
        for key, value in pinned.items():
            assert log[key] == pytest.approx(value, rel=RELATIVE, abs=1e-12), key


BASICSR_EXPECTED = {
    'train_RankSRGAN_NIQE.yml': [
        {'l_g_percep': 0.011377682909369469, 'l_g_gan': 0.0032398118637502193, 'l_g_rank': 0.0298022273927927,
         'out_r': -0.013184849172830582, 'gt_r': 0.23998109996318817, 'out_beats_gt': 0.0,
         'l_d_real': 0.6671476364135742, 'out_d_real': 0.05707696080207825, 'l_d_fake': 0.7452772855758667,
         'out_d_fake': 0.09731484949588776},
        {'l_g_percep': 0.011278768070042133, 'l_g_gan': 0.0032302665058523417, 'l_g_rank': 0.030370844528079033,
         'out_r': 0.02498367428779602, 'gt_r': 0.18071019649505615, 'out_beats_gt': 0.0,
         'l_d_real': 0.6426470279693604, 'out_d_real': 0.11547985672950745, 'l_d_fake': 0.7481690645217896,
         'out_d_fake': 0.102115698158741},
    ],
    'train_RankSRGAN_NIQE_Ma.yml': [
        {'l_g_percep': 0.015280499123036861, 'l_g_gan': 0.0030603273771703243, 'l_g_rank_niqe': 0.0298022273927927,
         'out_r_niqe': -0.013184849172830582, 'gt_r_niqe': 0.23998109996318817, 'out_beats_gt_niqe': 0.0,
         'l_g_rank_ma': 0.027256837114691734, 'out_r_ma': -0.1834641396999359, 'gt_r_ma': -0.09816410392522812,
         'out_beats_gt_ma': 0.0, 'l_d_real': 0.618829607963562, 'out_d_real': 0.15961648523807526,
         'l_d_fake': 0.7830383777618408, 'out_d_fake': 0.17097286880016327},
        {'l_g_percep': 0.015388494357466698, 'l_g_gan': 0.002975243842229247,
         'l_g_rank_niqe': 0.030344491824507713, 'out_r_niqe': 0.02321261167526245, 'gt_r_niqe': 0.1804383248090744,
         'out_beats_gt_niqe': 0.0, 'l_g_rank_ma': 0.026750177145004272, 'out_r_ma': -0.21752291917800903,
         'gt_r_ma': -0.21132688224315643, 'out_beats_gt_ma': 0.0, 'l_d_real': 0.633526086807251,
         'out_d_real': 0.12393836677074432, 'l_d_fake': 0.8033026456832886, 'out_d_fake': 0.208253875374794},
    ],
}
MMAGIC_EXPECTED = {
    'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe.py': [
        {'loss_pix': 0.0, 'loss_gan': 0.0033004421275109053, 'loss_rank': 0.025000326335430145,
         'loss_d_real': 0.6671473979949951, 'loss_d_fake': 0.7368389368057251},
        {'loss_pix': 0.0, 'loss_gan': 0.0031348555348813534, 'loss_rank': 0.025266017764806747,
         'loss_d_real': 0.6424756050109863, 'loss_d_fake': 0.7712379693984985},
    ],
    'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe-ma.py': [
        {'loss_pix': 0.0, 'loss_gan': 0.0030063644517213106, 'loss_rank_niqe': 0.02579370327293873,
         'loss_rank_ma': 0.030609028413891792, 'loss_d_real': 0.6188294887542725,
         'loss_d_fake': 0.7971596121788025},
        {'loss_pix': 0.0, 'loss_gan': 0.003154885722324252, 'loss_rank_niqe': 0.025315532460808754,
         'loss_rank_ma': 0.030570361763238907, 'loss_d_real': 0.6362058520317078,
         'loss_d_fake': 0.7625698447227478},
    ],
    'rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe.py': [
        {'loss_pix': 0.0049768853932619095, 'loss_gan': 0.0033040097914636135, 'loss_rank': 0.02478380687534809,
         'loss_d_real': 0.3663584291934967, 'loss_d_fake': 0.36436915397644043},
        {'loss_pix': 0.004931328352540731, 'loss_gan': 0.003495629411190748, 'loss_rank': 0.02465149201452732,
         'loss_d_real': 0.3489011824131012, 'loss_d_fake': 0.3454822301864624},
    ],
}


@pytest.mark.parametrize('name', ['train_RankSRGAN_NIQE.yml', 'train_RankSRGAN_NIQE_Ma.yml'])
def test_basicsr_paper_options_give_the_recorded_losses(workspace, name):  # noqa: F811
    assert_same(basicsr_losses(basicsr_paper_options(workspace, name)), BASICSR_EXPECTED[name])


@pytest.mark.parametrize('name', ['ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe.py',
                                  'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe-ma.py',
                                  'rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe.py'])
def test_mmagic_paper_configs_give_the_recorded_losses(tmp_path, name):
    assert_same(mmagic_losses(tmp_path, name), MMAGIC_EXPECTED[name])

