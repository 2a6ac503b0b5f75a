"""BatchNorm over fixed groups (ghost BatchNorm): the original's per-replica statistics (docs/fidelity.md S4, R6)."""
import copy
import logging
import os
import warnings
from pathlib import Path

import ranksrgan_plugin  # noqa: F401,I001  (first: spawned DDP workers import this module without conftest)

# isort: split
import pytest
import torch
import yaml
from test_mmagic_training import _tiny_ranksrgan, sr_workspace  # noqa: F401  (fixture)
from test_paper_fidelity_training import _free_port
from test_ranksrgan_model import _build, tiny_options, workspace  # noqa: F401  (fixture)
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn

from ranksrgan_plugin.archs.discriminator_arch import VGGStyleDiscriminatorAnySize
from ranksrgan_plugin.archs.ghost_batchnorm import (
    GhostBatchNorm2d,
    UnevenBatchNormGroupsWarning,
    batchnorm_group_size,
    batchnorm_groups_line,
    use_batchnorm_groups,
)
from ranksrgan_plugin.archs.ranker_arch import RankerVGG, freeze_ranker, score_pairs
from ranksrgan_plugin.losses import RankLoss


def _tiny_ranker(seed: int = 0) -> RankerVGG:
    torch.manual_seed(seed)
    return RankerVGG(depth=8, num_feat=8, stage_widths=(8, 8, 16, 16), num_hidden=8)


def _tiny_discriminator(seed: int = 0) -> VGGStyleDiscriminatorAnySize:
    torch.manual_seed(seed)
    return VGGStyleDiscriminatorAnySize(num_feat=4, input_size=32)


def _images(count: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _batchnorms(net: nn.Module):
    return [module for module in net.modules() if isinstance(module, nn.BatchNorm2d)]


# ------------------------------------------------------------------------------------------------
# The layer


def test_groups_are_normalised_each_on_its_own():
    grouped = use_batchnorm_groups(_tiny_ranker(), 4, 'x')
    plain = _tiny_ranker()
    images = _images(8, 1)
    expected = torch.cat([plain(images[:4]), plain(images[4:])])
    torch.testing.assert_close(grouped(images), expected, rtol=0, atol=0)
    assert not torch.allclose(_tiny_ranker()(images), expected, atol=1e-4)  # whole-batch statistics differ


def test_only_the_first_group_updates_the_running_statistics():
    grouped = use_batchnorm_groups(_tiny_ranker(), 4, 'x')
    first_only = _tiny_ranker()
    images = _images(12, 2)
    grouped(images)
    first_only(images[:4])
    for mine, replica0 in zip(_batchnorms(grouped), _batchnorms(first_only)):
        torch.testing.assert_close(mine.running_mean, replica0.running_mean, rtol=0, atol=0)
        torch.testing.assert_close(mine.running_var, replica0.running_var, rtol=0, atol=0)
        assert int(mine.num_batches_tracked) == 1


def test_evaluation_and_small_batches_are_batchnorm_s():
    grouped = use_batchnorm_groups(_tiny_ranker(), 4, 'x')
    plain = _tiny_ranker()
    images = _images(8, 3)
    torch.testing.assert_close(grouped(images[:3]), plain(images[:3]), rtol=0, atol=0)
    torch.testing.assert_close(grouped.eval()(images), plain.eval()(images), rtol=0, atol=0)


def test_the_frozen_ranker_s_batch_mode_is_grouped_and_updates_nothing():
    net = use_batchnorm_groups(freeze_ranker(_tiny_ranker(), 'batch'), 4, 'x')
    before = copy.deepcopy(net.state_dict())
    images = _images(8, 4)
    reference = freeze_ranker(_tiny_ranker(), 'batch')
    torch.testing.assert_close(net(images), torch.cat([reference(images[:4]), reference(images[4:])]), rtol=0,
                               atol=0)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_state_dict_keys_parameters_and_undoing():
    net = _tiny_ranker()
    parameters = list(net.parameters())
    keys = list(net.state_dict())
    use_batchnorm_groups(net, 4, 'x')
    assert all(type(module) is GhostBatchNorm2d for module in _batchnorms(net))
    assert list(net.state_dict()) == keys and list(net.parameters()) == parameters and batchnorm_group_size(net) == 4
    use_batchnorm_groups(net, None, 'x')
    assert all(type(module) is nn.BatchNorm2d for module in _batchnorms(net)) and batchnorm_group_size(net) is None


@pytest.mark.parametrize('value', [0, -4, 2.5, True, '4'])
def test_a_group_size_that_is_not_a_count_is_refused_by_its_option(value):
    with pytest.raises(ValueError, match='train.batchnorm_group must be a whole number'):
        use_batchnorm_groups(_tiny_ranker(), value, 'train.batchnorm_group')


def test_another_kind_of_batchnorm_is_refused_by_name():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match=r'model.batchnorm_group: Sequential.1 is a BatchNorm1d'):
        use_batchnorm_groups(net, 4, 'model.batchnorm_group')


def test_a_batch_that_is_not_whole_groups_warns_once():
    net = use_batchnorm_groups(_tiny_ranker(), 5, 'x')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        net(_images(7, 5))
        net(_images(7, 6))
    uneven = [w for w in caught if issubclass(w.category, UnevenBatchNormGroupsWarning)]
    assert len(uneven) == 1 and 'its last group holds 2 images, not 5' in str(uneven[0].message)


# ------------------------------------------------------------------------------------------------
# One process with groups of 4 == two DDP processes of 4 (gloo): Ranker training, the discriminator's step,
# the generator's gradient through the frozen Ranker


def _ranker_step(net: nn.Module, img_a: torch.Tensor, img_b: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)  # the update follows the gradient
    labels_a, labels_b = torch.zeros(img_a.shape[0]), torch.ones(img_a.shape[0])
    score_a, score_b = score_pairs(net, img_a, img_b, 'separate')
    RankLoss(clamp=5)(score_a, score_b, labels_a, labels_b).backward()
    optimizer.step()


def _discriminator_step(net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    bce = nn.BCEWithLogitsLoss()
    real_pred, fake_pred = net(real), net(fake)
    (bce(real_pred, torch.ones_like(real_pred)) + bce(fake_pred, torch.zeros_like(fake_pred))).backward()
    optimizer.step()


def _rank_content_gradient(ranker: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    # the original's 0.03 * sum(sigmoid(R(SR))); RankContentLoss itself scales by the world size, for DDP's mean
    outputs = outputs.clone().requires_grad_(True)
    torch.sigmoid(ranker(outputs)).sum().mul(0.03).backward()
    return outputs.grad


def _numpy_state(net: nn.Module):
    return {key: value.detach().numpy().copy() for key, value in net.state_dict().items()}


def _replica_worker(rank: int, port: int, data: dict, queue) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    share = {key: value.chunk(2)[rank] for key, value in data.items()}
    ranker = nn.parallel.DistributedDataParallel(_tiny_ranker())
    _ranker_step(ranker, share['img_a'], share['img_b'])
    discriminator = nn.parallel.DistributedDataParallel(_tiny_discriminator())
    _discriminator_step(discriminator, share['real'], share['fake'])
    gradient = _rank_content_gradient(freeze_ranker(_tiny_ranker(1), 'batch'), share['fake'])
    queue.put((rank, _numpy_state(ranker.module), _numpy_state(discriminator.module), gradient.numpy().copy()))
    dist.barrier()
    dist.destroy_process_group()


def _assert_state_close(net: nn.Module, expected: dict) -> None:
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, torch.from_numpy(expected[key]), rtol=2e-5, atol=2e-6, msg=key)


def test_one_process_in_groups_of_4_equals_two_processes_of_4():
    data = {'img_a': _images(8, 10), 'img_b': _images(8, 11), 'real': _images(8, 12), 'fake': _images(8, 13)}
    context = mp.get_context('spawn')
    queue = context.Queue()
    processes = mp.start_processes(_replica_worker, args=(_free_port(), data, queue), nprocs=2, join=False,
                                   start_method='spawn')
    results = {}
    for _ in range(2):
        rank, *result = queue.get(timeout=120)
        results[rank] = result
    processes.join()
    ranker_state, discriminator_state, _ = results[0]

    ranker = use_batchnorm_groups(_tiny_ranker(), 4, 'x')
    _ranker_step(ranker, data['img_a'], data['img_b'])
    _assert_state_close(ranker, ranker_state)  # weights, and running statistics of rank 0 (replica 0)

    discriminator = use_batchnorm_groups(_tiny_discriminator(), 4, 'x')
    _discriminator_step(discriminator, data['real'], data['fake'])
    _assert_state_close(discriminator, discriminator_state)

    frozen = use_batchnorm_groups(freeze_ranker(_tiny_ranker(1), 'batch'), 4, 'x')
    gradient = _rank_content_gradient(frozen, data['fake'])
    replicas = torch.cat([torch.from_numpy(results[rank][2]) for rank in (0, 1)])
    torch.testing.assert_close(gradient, replicas, rtol=1e-5, atol=1e-8)

    whole = _tiny_ranker()
    _ranker_step(whole, data['img_a'], data['img_b'])  # statistics over all 8: not what the replicas did
    assert not torch.allclose(whole.conv0_0.weight, torch.from_numpy(ranker_state['conv0_0.weight']), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# The models and the paper-named files


OPTIONS = Path(__file__).resolve().parents[1] / 'options'
RANKSRGAN_FILES = sorted(path.name for path in OPTIONS.glob('train_Rank*GAN_*.yml') if 'demo' not in path.name)


@pytest.mark.parametrize('name', RANKSRGAN_FILES)
def test_every_ranksrgan_option_file_sets_the_original_s_groups(name):
    assert len(RANKSRGAN_FILES) == 9
    assert yaml.safe_load((OPTIONS / name).read_text())['train']['batchnorm_group'] == 4


@pytest.mark.parametrize('metric', ['NIQE', 'Ma', 'PI'])
def test_every_ranker_option_file_sets_the_original_s_groups(metric):
    assert yaml.safe_load((OPTIONS / f'train_Ranker_{metric}.yml').read_text())['train']['batchnorm_group'] == 8


def test_every_mmagic_training_config_sets_the_original_s_groups():
    from mmengine import Config

    configs = sorted(path for path in (OPTIONS / 'mmagic').glob('*.py') if '_test_' not in path.name)
    groups = {path.name: Config.fromfile(str(path)).model.get('batchnorm_group') for path in configs}
    assert len(groups) == 14
    assert all(size == (8 if name.startswith('ranker_') else 4) for name, size in groups.items()), groups


def test_basicsr_ranksrgan_groups_its_discriminator_and_ranker(workspace, caplog, monkeypatch):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    options['train']['batchnorm_group'] = 1
    monkeypatch.setattr(logging.getLogger('basicsr'), 'handlers', [caplog.handler])  # BasicSR's logger: no propagation
    with caplog.at_level('INFO', logger='basicsr'):
        model = _build(options)
    assert batchnorm_group_size(model.get_bare_model(model.net_d)) == 1 and batchnorm_group_size(model.net_r) == 1
    assert ('BatchNorm statistics (train.batchnorm_group): network_d: groups of 1 images; Ranker: groups of 1 images.'
            in caplog.text)
    options['train']['batchnorm_group'] = 0
    with pytest.raises(ValueError, match='train.batchnorm_group must be a whole number'):
        _build(options)
    del options['train']['batchnorm_group']
    model = _build(options)
    assert batchnorm_group_size(model.net_d) is None and batchnorm_group_size(model.net_r) is None


def test_basicsr_ranker_model_groups_its_ranker():
    from basicsr.models import build_model

    opt = {'name': 'r', 'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'path': {'pretrain_network_r': None},
           'network_r': {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 16, 16],
                         'num_hidden': 8},
           'train': {'rank_opt': {'type': 'RankLoss'}, 'optim_r': {'type': 'Adam', 'lr': 1e-4}, 'batchnorm_group': 2,
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}}
    model = build_model(opt)
    assert batchnorm_group_size(model.net_r) == 2
    assert set(model.optimizer_r.param_groups[0]['params']) == set(model.net_r.parameters())


def test_mmagic_models_group_their_networks(sr_workspace):  # noqa: F811
    from mmagic.registry import MODELS

    model = _tiny_ranksrgan(sr_workspace, sr_workspace / 'ranker_basicsr.pth', batchnorm_group=1)
    assert batchnorm_group_size(model.discriminator) == 1 and batchnorm_group_size(model.ranker) == 1
    with pytest.raises(ValueError, match='model.batchnorm_group must be a whole number'):
        _tiny_ranksrgan(sr_workspace, sr_workspace / 'ranker_basicsr.pth', batchnorm_group='4')
    ranker_model = MODELS.build(dict(type='RankerModel', ranker=dict(type='RankerVGG', depth=8, num_feat=8,
                                                                    stage_widths=(8, 8, 16, 16), num_hidden=8),
                                     batchnorm_group=8))
    assert batchnorm_group_size(ranker_model.ranker) == 8


def test_the_road_says_what_more_gpus_change_in_the_batchnorm_statistics(tmp_path):
    from ranksrgan_plugin.reproduce.layout import RoadLayout
    from ranksrgan_plugin.reproduce.variants import VARIANTS

    def notes(gpus: int):
        return RoadLayout(repo=str(OPTIONS.parent), variant=VARIANTS['niqe'], data=str(tmp_path / 'data'),
                          pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out'),
                          root=str(tmp_path / 'root'), gpus=gpus).batchnorm_group_notes()

    assert notes(1) == [] and notes(2) == []
    four = notes(4)
    assert len(four) == 2 and 'each Ranker process holds 4 images' in four[0] and "not the original's 8" in four[0]
    assert 'each RankSRGAN process holds 2 images' in four[1] and "not the original's 4" in four[1]
    assert 'each RankSRGAN process holds 1 images' in notes(8)[1]


def test_the_log_line_names_each_network_s_statistics():
    grouped = use_batchnorm_groups(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), 4, 'x')
    line = batchnorm_groups_line({'network_d': grouped, 'Ranker': nn.Sequential(nn.BatchNorm2d(3)),
                                  'plain': nn.Conv2d(3, 3, 1)}, 'train.batchnorm_group')
    assert line == ("BatchNorm statistics (train.batchnorm_group): network_d: groups of 4 images; Ranker: each "
                    "process's batch.")
    none = batchnorm_groups_line({'g': nn.Conv2d(3, 3, 1)}, 'o')
    assert none == 'BatchNorm statistics (o): no network has BatchNorm.'
