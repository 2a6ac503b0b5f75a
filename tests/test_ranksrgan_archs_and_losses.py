"""RankSRGANGenerator, VGGStyleDiscriminatorAnySize, RankContentLoss, VGGPerceptualLoss, frozen networks on resume."""
import os.path as osp

import pytest
import torch
import torchvision
from basicsr.archs import vgg_arch
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.utils import check_resume
from torch.nn import functional as F

from ranksrgan_plugin.archs import RankSRGANGenerator, VGGStyleDiscriminatorAnySize
from ranksrgan_plugin.compat import basicsr as compat
from ranksrgan_plugin.losses import RankContentLoss, VGGPerceptualLoss
from ranksrgan_plugin.losses.vgg_weights import MissingVGGWeightsError, find_imagenet_vgg_weights
from ranksrgan_plugin.models.frozen_networks import keep_frozen_network_paths

VGG19_FILE = 'vgg19-dcbb9e9d.pth'


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def randomize_bn(net, seed=0):
    """Random BN running statistics (eval-mode outputs then depend on them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return net


# --------------------------------------------------------------------------------------------------
# RankSRGANGenerator
@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_generator_output_shape(upscale):
    net = RankSRGANGenerator(num_feat=16, num_block=2, upscale=upscale).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 8, 10))
    assert out.shape == (2, 3, 8 * upscale, 10 * upscale)


def test_generator_default_output_shape():
    with torch.no_grad():
        assert RankSRGANGenerator().eval()(torch.rand(1, 3, 6, 7)).shape == (1, 3, 24, 28)


def test_generator_parameter_count_is_msrresnet_plus_lrconv():
    net = RankSRGANGenerator()
    assert n_params(net.LRconv) == 64 * 64 * 9 + 64 == 36_928
    assert n_params(net) == n_params(MSRResNet(num_feat=64, num_block=16, upscale=4)) + 36_928


@pytest.mark.parametrize('upscale', [1, 8, 0])
def test_generator_invalid_upscale_raises(upscale):
    with pytest.raises(ValueError, match='upscale'):
        RankSRGANGenerator(upscale=upscale)


@pytest.mark.parametrize('upscale', [3, 4])
def test_generator_long_skip(upscale):
    """With trunk and LRconv zeroed, conv_first's features go straight to the upsampler (no activation)."""
    torch.manual_seed(0)
    net = RankSRGANGenerator(num_feat=8, num_block=3, upscale=upscale).eval()
    with torch.no_grad():
        for param in list(net.recon_trunk.parameters()) + list(net.LRconv.parameters()):
            param.zero_()
        x = torch.rand(2, 3, 7, 9) - 0.5
        feat = net.conv_first(x)
        feat = F.relu(F.pixel_shuffle(net.upconv1(feat), 3 if upscale == 3 else 2))
        if upscale == 4:
            feat = F.relu(F.pixel_shuffle(net.upconv2(feat), 2))
        expected = net.conv_last(F.relu(net.HRconv(feat)))
        out = net(x)
    assert float(expected.std()) > 0
    assert torch.allclose(out, expected, atol=1e-6)


def test_generator_trunk_matters():
    """The counter-check of the test above: with the trunk left alone the output differs."""
    torch.manual_seed(1)
    net = RankSRGANGenerator(num_feat=8, num_block=2).eval()
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        before = net(x)
        net.LRconv.weight.zero_()
        net.LRconv.bias.zero_()
        after = net(x)
    assert not torch.allclose(before, after, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# VGGStyleDiscriminatorAnySize
def test_discriminator_keys_equal_basicsr():
    ours = VGGStyleDiscriminatorAnySize(num_in_ch=3, num_feat=64, input_size=296)
    basicsr_net = VGGStyleDiscriminator(num_in_ch=3, num_feat=64, input_size=128)
    assert list(ours.state_dict()) == list(basicsr_net.state_dict())


def test_discriminator_128_is_basicsr():
    torch.manual_seed(2)
    ours = randomize_bn(VGGStyleDiscriminatorAnySize(num_in_ch=3, num_feat=16, input_size=128), seed=3).eval()
    basicsr_net = VGGStyleDiscriminator(num_in_ch=3, num_feat=16, input_size=128)
    basicsr_net.load_state_dict(ours.state_dict(), strict=True)
    basicsr_net.eval()
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        expected = basicsr_net(x)
        assert torch.equal(ours(x), expected)
    assert expected.shape == (2, 1) and float(expected.std()) > 0


def test_discriminator_296():
    net = VGGStyleDiscriminatorAnySize(input_size=296).eval()
    assert net.linear1.in_features == 512 * 9 * 9
    assert net.linear1.out_features == 100
    with torch.no_grad():
        assert net(torch.rand(2, 3, 296, 296)).shape == (2, 1)


def test_discriminator_wrong_input_size_raises():
    net = VGGStyleDiscriminatorAnySize(num_feat=8, input_size=64).eval()
    with pytest.raises(AssertionError, match='input_size'):
        net(torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize('input_size', [31, 16, 0])
def test_discriminator_too_small_raises(input_size):
    with pytest.raises(ValueError, match='32'):
        VGGStyleDiscriminatorAnySize(input_size=input_size)


# --------------------------------------------------------------------------------------------------
# RankContentLoss
SCORES = torch.tensor([-1.5, 0.2, 0.7, 3.0])


@pytest.mark.parametrize('bias', [0.0, 0.8])
def test_rank_content_loss_value(bias):
    loss = RankContentLoss(loss_weight=0.03, bias=bias, reduction='mean')(SCORES)
    expected = 0.03 * sum(1 / (1 + torch.exp(-(s - bias)).item()) for s in SCORES) / len(SCORES)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_rank_content_loss_defaults_are_the_originals_sum():
    loss = RankContentLoss()
    assert (loss.loss_weight, loss.bias, loss.reduction) == (0.03, 0.0, 'sum')
    assert loss(torch.zeros(3)).item() == pytest.approx(0.03 * 0.5 * 3)


def test_rank_content_loss_sum_is_batch_sum():
    mean = RankContentLoss(loss_weight=0.5, bias=0.3, reduction='mean')(SCORES)
    total = RankContentLoss(loss_weight=0.5, bias=0.3, reduction='sum')(SCORES)
    assert total.item() == pytest.approx(0.5 * torch.sigmoid(SCORES - 0.3).sum().item(), rel=1e-6)
    assert total.item() == pytest.approx(len(SCORES) * mean.item(), rel=1e-6)


def test_rank_content_loss_higher_is_better_flips_sign():
    loss = RankContentLoss(loss_weight=2.0, bias=0.4, higher_is_better=True)(SCORES)
    assert loss.item() == pytest.approx(2.0 * torch.sigmoid(0.4 - SCORES).sum().item(), rel=1e-6)
    assert loss.item() != pytest.approx(RankContentLoss(loss_weight=2.0, bias=0.4)(SCORES).item(), rel=1e-3)


@pytest.mark.parametrize('higher_is_better, sign', [(False, 1), (True, -1)])
def test_rank_content_loss_gradient_sign(higher_is_better, sign):
    scores = SCORES.clone().requires_grad_(True)
    RankContentLoss(higher_is_better=higher_is_better)(scores).backward()
    # default: d loss / d score > 0, so gradient descent lowers the score (better NIQE)
    assert (torch.sign(scores.grad) == sign).all()


def test_rank_content_loss_shapes_agree():
    loss = RankContentLoss(loss_weight=1.0, bias=0.1)
    assert torch.equal(loss(SCORES.view(-1, 1)), loss(SCORES))
    assert loss(SCORES.view(-1, 1)).dim() == 0


@pytest.mark.parametrize('reduction', ['none', 'avg', ''])
def test_rank_content_loss_invalid_reduction(reduction):
    with pytest.raises(ValueError, match='reduction'):
        RankContentLoss(reduction=reduction)


# --------------------------------------------------------------------------------------------------
# VGGPerceptualLoss and find_imagenet_vgg_weights
@pytest.fixture
def no_download(monkeypatch):
    """Every way torch/torchvision download weights raises (and records that it was asked)."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise OSError('network disabled in this test')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', refuse)
    monkeypatch.setattr(torchvision.models._api, 'load_state_dict_from_url', refuse)
    monkeypatch.setattr(torchvision._internally_replaced_utils, 'load_state_dict_from_url', refuse)
    return calls


@pytest.fixture
def empty_places(tmp_path, monkeypatch):
    """No VGG file on disk: cwd and the torch hub cache are empty temporary folders."""
    work, torch_home = tmp_path / 'work', tmp_path / 'torch_home'
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv('TORCH_HOME', str(torch_home))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    assert torch.hub.get_dir() == osp.join(str(torch_home), 'hub')
    return work, torch_home


def test_perceptual_loss_without_weights_never_downloads(no_download, empty_places):
    saved = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    loss = VGGPerceptualLoss({'conv5_4': 1.0}, vgg_weights=None, criterion='l1')
    assert no_download == []
    assert (vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg) == saved
    x, gt = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        percep, style = loss(x, gt)
    assert torch.isfinite(percep) and percep.item() > 0
    assert style is None


def test_perceptual_loss_loads_given_file(tmp_path, no_download, empty_places):
    """A vgg19 state_dict file: real conv1_1, every other tensor a zero-stride view (a file of a few KB)."""
    with torch.device('meta'):
        shapes = {k: v.shape for k, v in torchvision.models.vgg19(weights=None).state_dict().items()}
    generator = torch.Generator().manual_seed(4)
    state_dict = {k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}
    state_dict['features.0.weight'] = torch.randn(shapes['features.0.weight'], generator=generator)
    state_dict['features.0.bias'] = torch.randn(shapes['features.0.bias'], generator=generator)
    path = tmp_path / 'my_vgg19.pth'
    torch.save(state_dict, path)
    assert path.stat().st_size < 1_000_000

    saved = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    loss = VGGPerceptualLoss({'conv1_1': 1.0}, vgg_weights=str(path))
    assert no_download == []
    assert (vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg) == saved
    assert loss.vgg_weights == str(path)
    conv = loss.vgg.vgg_net.conv1_1
    assert torch.equal(conv.weight, state_dict['features.0.weight'])
    assert torch.equal(conv.bias, state_dict['features.0.bias'])
    percep, _ = loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert torch.isfinite(percep) and percep.item() > 0


def test_perceptual_loss_missing_path_raises(tmp_path):
    missing = tmp_path / 'nowhere' / 'vgg19.pth'
    with pytest.raises(MissingVGGWeightsError, match='nowhere') as info:
        VGGPerceptualLoss({'conv5_4': 1.0}, vgg_weights=str(missing))
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_imagenet_weights_missing_offline_is_a_clear_error(no_download, empty_places):
    work, torch_home = empty_places
    saved = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    with pytest.raises(MissingVGGWeightsError) as info:
        VGGPerceptualLoss({'conv5_4': 1.0}, vgg_weights='imagenet')
    message = str(info.value)
    assert VGG19_FILE in message
    assert osp.join(str(work), 'experiments', 'pretrained_models', VGG19_FILE) in message
    assert osp.join(str(torch_home), 'hub', 'checkpoints', VGG19_FILE) in message
    assert 'vgg_weights' in message
    assert no_download and no_download[0].endswith(VGG19_FILE)  # it did try, once
    assert (vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg) == saved


@pytest.mark.parametrize('place', ['basicsr', 'hub'])
def test_find_imagenet_weights_on_disk(no_download, empty_places, place):
    work, torch_home = empty_places
    folder = work / 'experiments' / 'pretrained_models' if place == 'basicsr' else torch_home / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    (folder / VGG19_FILE).write_bytes(b'stand-in')
    assert find_imagenet_vgg_weights('vgg19') == str(folder / VGG19_FILE)
    assert no_download == []


@pytest.mark.parametrize('weights', [None, 'given'])
def test_basicsr_vgg_weights_restores_module_state(tmp_path, weights):
    saved = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    path = None if weights is None else str(tmp_path / 'w.pth')
    with pytest.raises(RuntimeError, match='inside'):
        with compat.basicsr_vgg_weights(path):
            if path is None:
                assert vgg_arch.vgg is not saved[1]
                assert not osp.exists(vgg_arch.VGG_PRETRAIN_PATH)
            else:
                assert vgg_arch.VGG_PRETRAIN_PATH == path
            raise RuntimeError('inside the context')
    assert vgg_arch.VGG_PRETRAIN_PATH == saved[0]
    assert vgg_arch.vgg is saved[1]


# --------------------------------------------------------------------------------------------------
# models.frozen_networks.keep_frozen_network_paths + BasicSR's check_resume
def resume_opt(model_type, ignore=None):
    path = {'resume_state': '/exp/training_states/100.state', 'models': '/exp/models',
            'pretrain_network_g': '/weights/SRResNet.pth', 'pretrain_network_r': '/weights/Ranker_NIQE.pth'}
    if ignore is not None:
        path['ignore_resume_networks'] = ignore
    return {'model_type': model_type, 'network_g': {'type': 'RankSRGANGenerator'},
            'network_d': {'type': 'VGGStyleDiscriminatorAnySize'}, 'network_r': {'type': 'RankerVGG'}, 'path': path}


@pytest.mark.parametrize('ignore, expected', [
    (None, ['network_r']),
    (['network_d'], ['network_d', 'network_r']),
    (['network_r'], ['network_r']),
    (['network_x', 'network_r'], ['network_x', 'network_r']),
])
def test_keep_frozen_adds_ranker_for_ranksrgan(ignore, expected):
    opt = resume_opt('RankSRGANModel', ignore)
    keep_frozen_network_paths(opt)
    assert opt['path']['ignore_resume_networks'] == expected
    keep_frozen_network_paths(opt)  # idempotent
    assert opt['path']['ignore_resume_networks'] == expected


@pytest.mark.parametrize('ignore', [None, [], ['network_d']])
def test_keep_frozen_leaves_ranker_model_alone(ignore):
    opt = resume_opt('RankerModel', ignore)
    keep_frozen_network_paths(opt)
    assert list(opt['path'].get('ignore_resume_networks') or []) == list(ignore or [])


def test_check_resume_keeps_ranker_path_and_rewrites_generator():
    opt = resume_opt('RankSRGANModel')
    keep_frozen_network_paths(opt)
    check_resume(opt, 100)
    assert opt['path']['pretrain_network_r'] == '/weights/Ranker_NIQE.pth'
    assert opt['path']['pretrain_network_g'] == osp.join('/exp/models', 'net_g_100.pth')
    assert opt['path']['pretrain_network_d'] == osp.join('/exp/models', 'net_d_100.pth')


def test_check_resume_without_fix_would_redirect_ranker():
    """The upstream defect the fix works around (so the test above proves something)."""
    opt = resume_opt('RankSRGANModel')
    check_resume(opt, 100)
    assert opt['path']['pretrain_network_r'] == osp.join('/exp/models', 'net_r_100.pth')
