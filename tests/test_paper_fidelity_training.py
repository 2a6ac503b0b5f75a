"""The paper-named training options reproduce the original code (docs/fidelity.md), each pinned here.

Expected values are written from the original scripts (XPixelGroup/RankSRGAN: RankSRGAN_model.py,
Ranker_model.py, Rank_IMIM_Pair_dataset.py, train_RankSRGAN.yml), not from the code under test.
"""
import os
import socket
import sys
from pathlib import Path

import ranksrgan_plugin  # noqa: F401,I001  (first: spawned DDP workers import this module without conftest)

# isort: split
import pytest
import torch
import yaml
from basicsr.archs import build_network
from test_ranksrgan_model import _build, _tiny_batch, tiny_options, workspace  # noqa: F401  (fixture)
from torch import distributed as dist
from torch import multiprocessing as mp
from torch.nn import functional as F

from ranksrgan_plugin.archs.ranker_arch import RankerVGG, freeze_ranker, score_pairs
from ranksrgan_plugin.losses import RankContentLoss, RankLoss

REPO_ROOT = Path(__file__).resolve().parents[1]
OPTIONS = REPO_ROOT / 'options'
FIRST_RELEASE_OPTIONS = OPTIONS / 'train_RankSRGAN_NIQE_first_release.yml'
TWO_RANKER_OPTIONS = OPTIONS / 'train_RankSRGAN_NIQE_Ma.yml'  # a construction (tests/test_several_rankers.py)
OTHER_SCALES = ('_x2.yml', '_x3.yml')  # not the paper's (x4 only): tests/test_other_scales.py
RANKSRGAN_OPTIONS = [path for path in sorted(OPTIONS.glob('train_RankSRGAN_[!d]*.yml'))
                     if path not in (FIRST_RELEASE_OPTIONS, TWO_RANKER_OPTIONS)
                     and not path.name.endswith(OTHER_SCALES)]
RANKSRGAN_OPTIONS.append(OPTIONS / 'train_RankESRGAN_NIQE.yml')
RANKER_OPTIONS = [OPTIONS / f'train_Ranker_{metric}.yml' for metric in ('NIQE', 'Ma', 'PI')]


def _yaml(path: Path) -> dict:
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _tiny_ranker(seed: int = 0) -> RankerVGG:
    torch.manual_seed(seed)
    return RankerVGG(depth=8, num_feat=8, stage_widths=(8, 8, 16, 16), num_hidden=8)


# ------------------------------------------------------------------------------------------------
# The option files


def test_ranksrgan_options_are_found():
    assert {p.name for p in RANKSRGAN_OPTIONS} == {
        'train_RankSRGAN_NIQE.yml', 'train_RankSRGAN_Ma.yml', 'train_RankSRGAN_PI.yml', 'train_RankSRGAN_HR.yml',
        'train_RankESRGAN_NIQE.yml'}


@pytest.mark.parametrize('path', RANKSRGAN_OPTIONS, ids=lambda p: p.stem)
def test_ranksrgan_options_are_the_originals(path):
    opt = _yaml(path)
    train = opt['train']
    assert train['rank_opt'] == {'type': 'RankContentLoss', 'loss_weight': 0.03, 'bias': 0, 'reduction': 'sum'}
    assert train['ranker_batchnorm'] == 'batch'
    assert train['gan_opt']['loss_weight'] == 5e-3
    assert train.get('relativistic', False) is (path.stem == 'train_RankESRGAN_NIQE')  # the original's ragan
    data = opt['datasets']['train']
    assert data['batch_size_per_gpu'] == 8 and data['gt_size'] == 296  # the TOTAL batch of the original
    assert data['dataroot_gt'] == 'datasets/DIV2K/DIV2K_train_HR'  # DIV2K only, not DF2K
    assert data['dataroot_lq'] == 'datasets/DIV2K/DIV2K_train_LR_bicubic/X4'
    metrics = opt['val']['metrics']
    assert metrics['psnr']['test_y_channel'] is False and metrics['psnr']['crop_border'] == 4  # RGB, as train_niqe.py
    assert metrics['psnr_y']['test_y_channel'] is True
    assert metrics['niqe']['crop_border'] == 4
    assert opt['network_d']['input_size'] == 296
    if path.stem != 'train_RankESRGAN_NIQE':
        assert train['pixel_opt'] is None and opt['network_g']['type'] == 'RankSRGANGenerator'


@pytest.mark.parametrize('path', RANKSRGAN_OPTIONS, ids=lambda p: p.stem)
def test_multi_gpu_examples_keep_the_total_batch_of_8_and_the_batchnorm_groups(path):
    text = path.read_text(encoding='utf-8')
    assert '--nproc_per_node=2' in text and 'batch_size_per_gpu=4' in text  # 2 x 4: the original's groups of 4
    assert _yaml(path)['train']['batchnorm_group'] == 4


@pytest.mark.parametrize('path', RANKER_OPTIONS, ids=lambda p: p.stem)
def test_ranker_options_are_the_originals(path):
    opt = _yaml(path)
    assert opt['train']['rank_opt']['clamp'] == 5 and opt['train']['rank_opt']['margin'] == 0.5
    assert opt['train']['pair_forward'] == 'separate'
    assert opt['train']['batchnorm_group'] == 8  # each side's 16 on the original's 2 GPUs
    assert opt['datasets']['train']['use_hflip'] is False and opt['datasets']['train']['use_rot'] is False
    assert opt['datasets']['train']['pair_order'] == 'better_first'
    assert opt['manual_seed'] == 10  # train_Ranker.yml l. 61


def test_nothing_in_the_repository_points_outside_it():
    checked = [*OPTIONS.rglob('*.yml'), *OPTIONS.rglob('*.py'), *(REPO_ROOT / 'docs').glob('*.md'),
               *(REPO_ROOT / 'ranksrgan_plugin').rglob('*.py'), REPO_ROOT / 'README.md']
    offenders = [str(p) for p in checked if '../shared' in p.read_text(encoding='utf-8')
                 or 'REFERENCE.md' in p.read_text(encoding='utf-8')]
    assert not offenders


def test_force_yml_sets_the_per_gpu_batch(monkeypatch, tmp_path):
    """The README's multi-GPU line: BasicSR's own --force_yml gives 2 per GPU (x4 GPUs = the original's 8)."""
    from basicsr.utils.options import parse_options

    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(OPTIONS / 'train_RankSRGAN_NIQE.yml'),
                                      '--force_yml', 'datasets:train:batch_size_per_gpu=2'])
    opt, _ = parse_options(str(tmp_path), is_train=True)
    assert opt['datasets']['train']['batch_size_per_gpu'] == 2


# ------------------------------------------------------------------------------------------------
# Rank-content loss: the original's sum over the total batch, also under DDP


def test_sum_is_8x_the_mean_at_the_original_batch():
    scores = torch.linspace(-2, 2, 8)
    expected = 0.03 * sum(1 / (1 + torch.exp(-s)).item() for s in scores)  # 0.03 * torch.sum(sigmoid(R - 0))
    assert RankContentLoss()(scores).item() == pytest.approx(expected, rel=1e-6)
    assert RankContentLoss()(scores).item() == pytest.approx(8 * RankContentLoss(reduction='mean')(scores).item())


def _ddp_worker(rank: int, world_size: int, port: int, images: torch.Tensor, queue) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.manual_seed(0)
    generator = torch.nn.Conv2d(3, 3, 3, padding=1)
    ranker = freeze_ranker(_tiny_ranker(), 'running')
    model = torch.nn.parallel.DistributedDataParallel(generator)
    share = images.chunk(world_size)[rank]
    RankContentLoss()(ranker(model(share))).backward()
    if rank == 0:
        queue.put(generator.weight.grad.numpy().copy())  # numpy: pickled by value, outlives the process
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_sum_under_ddp_gives_the_gradient_of_the_total_batch_sum():
    """2 processes x 2 images under DDP == the original's DataParallel sum over the total batch of 4."""
    images = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    generator = torch.nn.Conv2d(3, 3, 3, padding=1)
    ranker = freeze_ranker(_tiny_ranker(), 'running')
    torch.sigmoid(ranker(generator(images))).sum().mul(0.03).backward()
    context = mp.get_context('spawn')
    queue = context.Queue()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), images, queue), nprocs=2, join=False,
                       start_method='spawn').join()
    torch.testing.assert_close(torch.from_numpy(queue.get(timeout=60)), generator.weight.grad, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------
# The frozen Ranker's BatchNorm


def test_batch_mode_uses_the_generator_batch_statistics():
    net = _tiny_ranker()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
    images = torch.rand(4, 3, 48, 48)
    reference = _tiny_ranker()
    reference.load_state_dict(net.state_dict())
    with torch.no_grad():
        eval_scores = reference.eval()(images)
        batch_scores = freeze_ranker(net, 'batch')(images)
        assert torch.allclose(batch_scores, reference.train()(images))  # the original: a train-mode Ranker
        assert not torch.allclose(batch_scores, eval_scores)
        assert torch.equal(freeze_ranker(net, 'running')(images), eval_scores)
    assert not any(p.requires_grad for p in net.parameters())


def test_unknown_batchnorm_mode_is_an_error(workspace):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    options['train']['ranker_batchnorm'] = 'eval'
    with pytest.raises(ValueError, match='batchnorm'):
        _build(options)


# ------------------------------------------------------------------------------------------------
# Ranker training as Ranker_model.py


def _original_ranker_step(net, img1, img2, score1, score2):
    """Ranker_model.optimize_parameters, written from the original: two passes, clamp, MarginRankingLoss."""
    predict1 = torch.clamp(net(img1), min=-5, max=5)
    predict2 = torch.clamp(net(img2), min=-5, max=5)
    label = ((score1 >= score2).float() - 0.5) * 2
    return F.margin_ranking_loss(predict1, predict2, label.view(-1, 1), margin=0.5)


def test_separate_pair_forward_and_clamp_reproduce_the_original_loss_and_gradients():
    images_a, images_b = torch.rand(4, 3, 40, 40), torch.rand(4, 3, 40, 40) * 0.5
    labels_a, labels_b = torch.tensor([3.0, 1.0, 4.0, 2.0]), torch.tensor([1.0, 2.0, 3.0, 5.0])
    net, original = _tiny_ranker(), _tiny_ranker()
    net.train(), original.train()
    ours = RankLoss()(*score_pairs(net, images_a, images_b, 'separate'), labels_a, labels_b)
    theirs = _original_ranker_step(original, images_a, images_b, labels_a, labels_b)
    torch.testing.assert_close(ours, theirs)
    ours.backward(), theirs.backward()
    torch.testing.assert_close(net.conv0_0.weight.grad, original.conv0_0.weight.grad)
    joint = RankLoss()(*score_pairs(_tiny_ranker().train(), images_a, images_b, 'joint'), labels_a, labels_b)
    assert not torch.allclose(joint, theirs)  # one concatenated pass mixes both sides' BatchNorm statistics


def test_ranker_model_uses_pair_forward_option(monkeypatch):
    from basicsr.models import build_model

    seen = []

    def spy(net, img_a, img_b, pair_forward='separate'):
        seen.append(pair_forward)
        return score_pairs(net, img_a, img_b, pair_forward)

    monkeypatch.setattr('ranksrgan_plugin.models.ranker_model.score_pairs', spy)
    opt = {'name': 'r', 'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'path': {'pretrain_network_r': None},
           'network_r': {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 16, 16],
                         'num_hidden': 8},
           'train': {'rank_opt': {'type': 'RankLoss'}, 'optim_r': {'type': 'Adam', 'lr': 1e-4},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}}
    for mode in ('separate', 'joint'):
        opt['train']['pair_forward'] = mode
        model = build_model(opt)
        model.feed_data({'img_a': torch.rand(2, 3, 40, 40), 'img_b': torch.rand(2, 3, 40, 40),
                         'label_a': torch.tensor([1.0, 2.0]), 'label_b': torch.tensor([2.0, 1.0])})
        model.optimize_parameters(1)
    assert seen == ['separate', 'joint']
    opt['train']['pair_forward'] = 'both'
    with pytest.raises(ValueError, match='pair_forward'):
        build_model(opt)


# ------------------------------------------------------------------------------------------------
# RankESRGAN: the original's ragan


def test_relativistic_gan_matches_the_original_formulas(workspace):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    options['train']['relativistic'] = True
    model = _build(options)
    model.feed_data(_tiny_batch())
    model.output = model.net_g(model.lq)
    bce = torch.nn.BCEWithLogitsLoss()

    def cri(pred, real):
        return bce(pred, torch.full_like(pred, float(real)))

    net_d = model.net_d
    with torch.no_grad():
        real, fake = net_d(model.gt), net_d(model.output)
        expected_g = 5e-3 * (cri(real - fake.mean(), False) + cri(fake - real.mean(), True)) / 2
    torch.testing.assert_close(model.generator_gan_loss().detach(), expected_g)
    # the discriminator: RankSRGAN_model.py's ragan, both terms through both predictions
    model.optimizer_d.zero_grad()
    real, fake = net_d(model.gt), net_d(model.output.detach())
    ((cri(real - fake.mean(), True) + cri(fake - real.mean(), False)) / 2).backward()
    expected_grad = net_d.conv0_0.weight.grad.clone()
    detached_grad = _detached_ragan_grad(model)  # BasicSR's / MMagic's ESRGAN: the other mean detached
    model.optimizer_d.zero_grad()
    model.optimizer_d.step = lambda: None  # keep the weights: compare the gradient the step would use
    model.discriminator_step({})
    torch.testing.assert_close(net_d.conv0_0.weight.grad, expected_grad)
    assert not torch.allclose(detached_grad, expected_grad)


def _detached_ragan_grad(model) -> torch.Tensor:
    model.optimizer_d.zero_grad()
    bce = torch.nn.BCEWithLogitsLoss()
    real, fake = model.net_d(model.gt), model.net_d(model.output.detach())
    loss = (bce(real - fake.detach().mean(), torch.ones_like(real))
            + bce(fake - real.detach().mean(), torch.zeros_like(fake))) / 2
    loss.backward()
    return model.net_d.conv0_0.weight.grad.clone()


# ------------------------------------------------------------------------------------------------
# Rank-dataset options (the selection rules themselves: tests/test_patch_selection_original.py)


@pytest.mark.parametrize('path', [path for path in sorted(OPTIONS.glob('rank_dataset_DF2K_*.yml'))
                                  if not path.name.endswith(OTHER_SCALES)], ids=lambda p: p.stem)
def test_rank_dataset_options_are_the_originals(path):
    from ranksrgan_plugin.rank_dataset import load_config

    cfg = load_config(_yaml(path))
    assert (cfg['patch_size'], cfg['stride'], cfg['max_patches_per_image']) == (296, 148, 200)
    assert (cfg['grid'], cfg['sharpness_measure'], cfg['max_patches_choice']) == ('original', 'original', 'random')
    assert (cfg['sharpness_threshold'], cfg['sharpness_block'], cfg['min_gap']) == (40, 96, 0.1)
    assert cfg['gap_metric'] == {'type': 'niqe', 'crop_border': 0, 'convert_to': 'gray_uint8'}
    assert (cfg['val_fraction'], cfg['val_split_by']) == (0.1, 'patch')
    assert all(level.get('tile', 0) == 0 for level in cfg['levels'])  # whole images, as the original
    if 'basicsr_zoo' not in path.stem:
        assert [level['network']['type'] for level in cfg['levels'] if level['type'] == 'network'][:2] == [
            'RankSRGANGenerator', 'RankSRGANGenerator']


def _flat(options: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def test_first_release_options_differ_only_where_the_first_release_did():
    mmsr, first = _flat(_yaml(OPTIONS / 'train_RankSRGAN_NIQE.yml')), _flat(_yaml(FIRST_RELEASE_OPTIONS))
    differing = {key for key in mmsr.keys() | first.keys() if mmsr.get(key) != first.get(key)}
    assert differing == {'name', 'manual_seed', 'network_d.conv_bias', 'network_d.init', 'train.optim_g.betas',
                         'train.optim_d.betas', 'datasets.train.dataroot_gt', 'datasets.train.dataroot_lq',
                         'datasets.train.filename_tmpl', 'datasets.train.io_backend.type'}  # F4: sub-image LMDBs
    assert first['manual_seed'] == 0 and first['network_d.conv_bias'] is True and first['network_d.init'] == 'kaiming'
    assert first['train.optim_g.betas'] == first['train.optim_d.betas'] == [0.9, 0.999]


def test_first_release_discriminator_convolutions_and_initialisation():
    torch.manual_seed(0)
    mmsr = build_network({'type': 'VGGStyleDiscriminatorAnySize', 'num_feat': 16, 'input_size': 64})
    first = build_network({'type': 'VGGStyleDiscriminatorAnySize', 'num_feat': 16, 'input_size': 64,
                           'conv_bias': True, 'init': 'kaiming'})
    convs = [name for name, module in first.named_children() if isinstance(module, torch.nn.Conv2d)]
    assert all(getattr(first, name).bias is not None for name in convs)
    assert [name for name in convs if getattr(mmsr, name).bias is None] == convs[1:]  # only conv0_0 has one
    weight = first.conv1_0.weight  # kaiming normal, fan-in: std sqrt(2 / fan_in)
    assert weight.std().item() == pytest.approx((2 / weight[0].numel()) ** 0.5, rel=0.1)
    assert all(float(getattr(first, name).bias.abs().sum()) == 0 for name in convs)
    assert float(first.bn1_0.weight.min()) == 1.0 and first(torch.rand(2, 3, 64, 64)).shape == (2, 1)
    with pytest.raises(ValueError, match="init must be 'pytorch' or 'kaiming'"):
        build_network({'type': 'VGGStyleDiscriminatorAnySize', 'input_size': 64, 'init': 'xavier'})
