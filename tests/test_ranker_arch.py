"""RankerVGG against Table 2 of the supplementary and the original checkpoint layouts."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from ranksrgan_plugin.archs.ranker_arch import RankerVGG
from ranksrgan_plugin.checkpoints import (
    CheckpointMismatchError,
    convert_features_state_dict,
    load_ranker,
    ranker_state_dict,
)

# a narrow Ranker for checkpoint round trips (the layer names do not depend on the widths)
SMALL = {'num_feat': 8, 'stage_widths': (8, 16, 16, 16), 'num_hidden': 6}
STRIDE1_PER_STAGE = {8: 0, 12: 1, 16: 2}


def original_vgg12_keys():
    """The original mmsr VGG-12 state_dict keys, in module order."""
    conv = ['weight', 'bias']
    bn = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    keys = [f'conv0_0.{p}' for p in conv] + [f'conv0_1.{p}' for p in conv] + [f'bn0_1.{p}' for p in bn]
    for stage in range(1, 5):
        for index in range(2):
            keys += [f'conv{stage}_{index}.{p}' for p in conv] + [f'bn{stage}_{index}.{p}' for p in bn]
    keys += ['classifier.0.weight', 'classifier.0.bias', 'classifier.2.weight', 'classifier.2.bias']
    return keys


def table2_convs(depth, num_feat=64, widths=(128, 256, 512, 512)):
    """(in, out, kernel, stride, has_bn) of every conv of Table 2, written out independently."""
    convs = [(3, num_feat, 3, 1, False), (num_feat, num_feat, 4, 2, True)]
    in_ch = num_feat
    for width in widths:
        for _ in range(STRIDE1_PER_STAGE[depth]):
            convs.append((in_ch, width, 3, 1, True))
            in_ch = width
        convs.append((in_ch, width, 4, 2, True))
        in_ch = width
    return convs


class OldFeaturesRanker(nn.Module):
    """The older release's structure: one ``features`` Sequential in layer order, then ``classifier``."""

    def __init__(self, depth, num_feat=64, stage_widths=(128, 256, 512, 512), num_hidden=100):
        super().__init__()
        layers = []
        for in_ch, out_ch, kernel, stride, has_bn in table2_convs(depth, num_feat, stage_widths):
            layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=True))
            if has_bn:
                layers.append(nn.BatchNorm2d(out_ch, affine=True))
            layers.append(nn.LeakyReLU(0.2, True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # no parameters: not in the state_dict
        self.classifier = nn.Sequential(nn.Linear(stage_widths[-1], num_hidden), nn.LeakyReLU(0.2, True),
                                        nn.Linear(num_hidden, 1))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def randomize(net, seed=0):
    """Random weights and BN running statistics (so a wrong mapping cannot go unnoticed)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype == torch.long:
                tensor.fill_(7)
            elif name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return net.eval()


@pytest.mark.parametrize('depth, expected', [(8, 7_069_961), (12, 13_734_281), (16, 19_194_377)])
def test_parameter_counts_match_table2(depth, expected):
    net = RankerVGG(depth=depth)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert sum(p.numel() for p in OldFeaturesRanker(depth).parameters()) == expected  # our reading of Table 2


def test_default_depth_is_vgg12():
    assert RankerVGG().depth == 12


def test_vgg12_state_dict_keys_are_the_originals():
    assert list(RankerVGG(depth=12).state_dict().keys()) == original_vgg12_keys()


def test_architecture_details():
    net = RankerVGG(depth=12)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs] == [
        (i, o, k, s, 1) for i, o, k, s, _ in table2_convs(12)]
    assert all(m.bias is not None for m in convs)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 9 and all(m.affine for m in bns)
    lrelus = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert lrelus and all(m.negative_slope == pytest.approx(0.2) for m in lrelus)
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [100, 1]


@pytest.mark.parametrize('height, width', [(32, 32), (96, 96), (40, 72)])
@pytest.mark.parametrize('depth', [8, 12, 16])
def test_output_shape(depth, height, width):
    net = RankerVGG(depth=depth, **SMALL).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, height, width))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()


def test_output_shape_full_width_vgg12():
    net = RankerVGG().eval()
    with torch.no_grad():
        assert net(torch.rand(3, 3, 48, 64)).shape == (3, 1)


@pytest.mark.parametrize('depth', [0, 10, 19, '12'])
def test_invalid_depth_raises(depth):
    with pytest.raises(ValueError, match='depth'):
        RankerVGG(depth=depth)


def test_original_mmsr_checkpoint_loads_strictly(tmp_path):
    source = randomize(RankerVGG(depth=12, **SMALL), seed=1)
    state_dict = OrderedDict((k, v.clone()) for k, v in source.state_dict().items())
    assert {k.split('.')[0] for k in state_dict} >= {'conv0_0', 'conv0_1', 'bn0_1', 'conv4_1', 'bn4_1', 'classifier'}
    path = tmp_path / 'mmsr_Ranker_NIQE.pth'
    torch.save(state_dict, path)  # bare state_dict, original names
    target = RankerVGG(depth=12, **SMALL)
    assert load_ranker(target, str(path), strict=True) is target
    target.eval()
    x = torch.rand(2, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))
    for key, value in target.state_dict().items():
        assert torch.equal(value, state_dict[key]), key


@pytest.mark.parametrize('depth', [8, 12, 16])
def test_old_features_checkpoint_gives_identical_outputs(tmp_path, depth):
    old = randomize(OldFeaturesRanker(depth, SMALL['num_feat'], SMALL['stage_widths'], SMALL['num_hidden']), seed=2)
    state_dict = old.state_dict()
    assert any(k.startswith('features.') for k in state_dict)
    # the LeakyReLUs count in the indices: the second conv is features.2 (features.1 is an activation)
    assert 'features.2.weight' in state_dict and 'features.1.weight' not in state_dict
    path = tmp_path / 'Ranker_NIQE.pth'
    torch.save(state_dict, path)
    net = load_ranker(RankerVGG(depth=depth, **SMALL), str(path)).eval()
    x = torch.rand(3, 3, 36, 44)
    with torch.no_grad():
        expected = old(x)
        assert torch.equal(net(x), expected)
    assert float(expected.std()) > 0  # a degenerate (constant) output would prove nothing


def test_convert_features_state_dict_names():
    old = OldFeaturesRanker(12, SMALL['num_feat'], SMALL['stage_widths'], SMALL['num_hidden'])
    converted = convert_features_state_dict(old.state_dict(), RankerVGG(depth=12, **SMALL))
    assert list(converted) == original_vgg12_keys()
    assert torch.equal(converted['conv0_1.weight'], old.features[2].weight)
    assert torch.equal(converted['bn0_1.running_var'], old.features[3].running_var)


def test_basicsr_params_checkpoint_loads(tmp_path):
    source = randomize(RankerVGG(depth=8, **SMALL), seed=3)
    path = tmp_path / 'net_r_100.pth'
    torch.save({'params': source.state_dict()}, path)
    net = load_ranker(RankerVGG(depth=8, **SMALL), str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def test_other_param_key_loads(tmp_path):
    source, other = randomize(RankerVGG(depth=8, **SMALL), seed=4), randomize(RankerVGG(depth=8, **SMALL), seed=5)
    path = tmp_path / 'net_r_ema.pth'
    torch.save({'params': other.state_dict(), 'params_ema': source.state_dict()}, path)
    net = load_ranker(RankerVGG(depth=8, **SMALL), str(path), param_key='params_ema')
    assert torch.equal(net.conv0_0.weight, source.conv0_0.weight)
    assert not torch.equal(net.conv0_0.weight, other.conv0_0.weight)


@pytest.mark.parametrize('wrap_params', [False, True])
def test_dataparallel_module_prefix_loads(tmp_path, wrap_params):
    source = randomize(RankerVGG(depth=12, **SMALL), seed=6)
    state_dict = OrderedDict((f'module.{k}', v) for k, v in source.state_dict().items())
    path = tmp_path / 'dp.pth'
    torch.save({'params': state_dict} if wrap_params else state_dict, path)
    net = load_ranker(RankerVGG(depth=12, **SMALL), str(path)).eval()
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def test_module_prefixed_old_features_checkpoint_loads(tmp_path):
    old = randomize(OldFeaturesRanker(8, SMALL['num_feat'], SMALL['stage_widths'], SMALL['num_hidden']), seed=7)
    path = tmp_path / 'old_dp.pth'
    torch.save(OrderedDict((f'module.{k}', v) for k, v in old.state_dict().items()), path)
    net = load_ranker(RankerVGG(depth=8, **SMALL), str(path)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), old(x))


def test_ranker_state_dict_leaves_current_names_alone():
    net = RankerVGG(depth=8, **SMALL)
    state_dict = ranker_state_dict(net.state_dict(), net)
    assert list(state_dict) == list(net.state_dict())


def test_wrong_depth_old_features_checkpoint_is_a_clear_error(tmp_path):
    old = OldFeaturesRanker(16, SMALL['num_feat'], SMALL['stage_widths'], SMALL['num_hidden'])
    path = tmp_path / 'vgg16_old.pth'
    torch.save(old.state_dict(), path)
    with pytest.raises(ValueError, match=r'depth=12.*wrong depth'):
        load_ranker(RankerVGG(depth=12, **SMALL), str(path))


@pytest.mark.parametrize('saved_depth, net_depth', [(16, 12), (8, 12), (12, 8)])
def test_wrong_depth_mmsr_checkpoint_is_a_clear_error(tmp_path, saved_depth, net_depth):
    path = tmp_path / f'vgg{saved_depth}.pth'
    torch.save(RankerVGG(depth=saved_depth, **SMALL).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=rf'{path} \(named by the Ranker checkpoint\) does not fit '
                                                      rf'RankerVGG\(depth={net_depth}\)'):
        load_ranker(RankerVGG(depth=net_depth, **SMALL), str(path))


def test_non_strict_load_of_partial_checkpoint(tmp_path):
    source = randomize(RankerVGG(depth=8, **SMALL), seed=8)
    partial = OrderedDict((k, v) for k, v in source.state_dict().items() if not k.startswith('classifier.'))
    path = tmp_path / 'partial.pth'
    torch.save(partial, path)
    with pytest.raises(CheckpointMismatchError, match='classifier'):
        load_ranker(RankerVGG(depth=8, **SMALL), str(path))
    net = load_ranker(RankerVGG(depth=8, **SMALL), str(path), strict=False)
    assert torch.equal(net.conv0_0.weight, source.conv0_0.weight)
