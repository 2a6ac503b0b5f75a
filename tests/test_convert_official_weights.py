"""tools/convert_official_weights.py and its library, on checkpoints written here in the official key layouts."""
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from test_ranker_arch import OldFeaturesRanker, randomize
from tool_loader import load_tool
from torch import nn

from ranksrgan_plugin.archs import RankerVGG, RankSRGANGenerator
from ranksrgan_plugin.checkpoints import (
    UnknownCheckpointLayout,
    convert_official_checkpoint,
    detect_layout,
    to_release_layout,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'convert_official_weights.py')
SMALL_RANKER = {'num_feat': 16, 'stage_widths': (16, 32, 64, 64), 'num_hidden': 10}


# --------------------------------------------------------------------------------------------------
# the older generator release, written out independently: keys model.0, model.1.sub.N.res.0/2, ...
class ResBlock(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.res = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(nf, nf, 3, 1, 1))

    def forward(self, x):
        return x + self.res(x)


class ShortcutBlock(nn.Module):
    def __init__(self, sub):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class OldSRResNet(nn.Module):
    """The older release's SRResNet x4 (no activation after model.0, long skip in model.1)."""

    def __init__(self, nf=64, nb=16):
        super().__init__()
        conv = lambda i, o: nn.Conv2d(i, o, 3, 1, 1)  # noqa: E731
        self.model = nn.Sequential(
            conv(3, nf),  # model.0
            ShortcutBlock(nn.Sequential(*[ResBlock(nf) for _ in range(nb)], conv(nf, nf))),  # model.1
            conv(nf, 4 * nf), nn.PixelShuffle(2), nn.ReLU(inplace=True),  # model.2-4
            conv(nf, 4 * nf), nn.PixelShuffle(2), nn.ReLU(inplace=True),  # model.5-7
            conv(nf, nf), nn.ReLU(inplace=True),  # model.8-9
            conv(nf, 3))  # model.10

    def forward(self, x):
        return self.model(x)


# --------------------------------------------------------------------------------------------------
# ESRGAN's RRDBNet in its two official layouts, written out independently from the original code:
# the older release (model.N, convs wrapped as Sequential(conv, act) -> '.0') and mmsr's RRDBNet_arch.py
def lrelu():
    return nn.LeakyReLU(0.2, inplace=True)


class OldRDB(nn.Module):
    """ResidualDenseBlock_5C of the older release: conv1..conv4 = Sequential(conv, lrelu), conv5 = Sequential(conv)."""

    def __init__(self, nf, gc, wrapped=True):
        super().__init__()
        for i in range(1, 6):
            conv = nn.Conv2d(nf + (i - 1) * gc, nf if i == 5 else gc, 3, 1, 1)
            layers = [conv] if i == 5 else [conv, lrelu()]
            setattr(self, f'conv{i}', nn.Sequential(*layers) if wrapped else conv)
        self.wrapped = wrapped
        self.act = lrelu()

    def forward(self, x):
        features = [x]
        for i in range(1, 6):
            out = getattr(self, f'conv{i}')(torch.cat(features, 1))
            if not self.wrapped and i < 5:
                out = self.act(out)
            features.append(out)
        return features[-1] * 0.2 + x


class OldRRDB(nn.Module):
    def __init__(self, nf, gc, wrapped=True):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (OldRDB(nf, gc, wrapped) for _ in range(3))

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class OldESRGAN(nn.Module):
    """The older ESRGAN release x4 (ESRGAN_SuperSR.pth): model.0 conv, model.1 shortcut over the RRDBs and the
    trunk conv, model.2/5 nearest upsampling, model.3/6 convs, model.8 HR conv, model.10 last conv."""

    def __init__(self, nf=64, nb=23, gc=32, in_nc=3, out_nc=3):
        super().__init__()
        conv = lambda i, o: nn.Conv2d(i, o, 3, 1, 1)  # noqa: E731
        up = lambda: nn.Upsample(scale_factor=2, mode='nearest')  # noqa: E731
        self.model = nn.Sequential(
            conv(in_nc, nf),  # model.0
            ShortcutBlock(nn.Sequential(*[OldRRDB(nf, gc) for _ in range(nb)], conv(nf, nf))),  # model.1
            up(), conv(nf, nf), lrelu(),  # model.2-4
            up(), conv(nf, nf), lrelu(),  # model.5-7
            conv(nf, nf), lrelu(),  # model.8-9
            conv(nf, out_nc))  # model.10

    def forward(self, x):
        return self.model(x)


class MmsrRRDBNet(nn.Module):
    """The RankSRGAN code's codes/models/archs/RRDBNet_arch.py layout (x4)."""

    def __init__(self, nf=64, nb=23, gc=32, in_nc=3, out_nc=3):
        super().__init__()
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[OldRRDB(nf, gc, wrapped=False) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.act = lrelu()

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.act(self.upconv1(nn.functional.interpolate(fea, scale_factor=2, mode='nearest')))
        fea = self.act(self.upconv2(nn.functional.interpolate(fea, scale_factor=2, mode='nearest')))
        return self.conv_last(self.act(self.HRconv(fea)))


def basicsr_rrdb_to_old_keys(state_dict, num_block):
    """A BasicSR RRDBNet state_dict under the older ESRGAN release's key names, mapped by hand."""
    tail = {'conv_first': 'model.0', 'conv_body': f'model.1.sub.{num_block}', 'conv_up1': 'model.3',
            'conv_up2': 'model.6', 'conv_hr': 'model.8', 'conv_last': 'model.10'}
    old = OrderedDict()
    for key, value in state_dict.items():
        name, param = key.rsplit('.', 1)
        if name.startswith('body.'):
            _, block, rdb, conv = name.split('.')
            name = f'model.1.sub.{block}.RDB{rdb[-1]}.{conv}.0'
        else:
            name = tail[name]
        old[f'{name}.{param}'] = value
    return old


def scaled_random(net, seed, scale=0.05):
    """Random weights small enough that 16 residual blocks keep the activations moderate."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
    return net.eval()


def run_cli(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def printed_options(stdout):
    """The YAML section the CLI prints after its one-line summary."""
    return yaml.safe_load(stdout.split('\n\n', 1)[1])


@pytest.fixture
def cli_main(monkeypatch):
    """The CLI's main(), run in-process with the given arguments (fast)."""
    module = load_tool('convert_official_weights')

    def call(*args):
        monkeypatch.setattr(sys, 'argv', ['convert_official_weights.py', *map(str, args)])
        module.main()

    return call


# --------------------------------------------------------------------------------------------------
# generator, model.N layout (through the CLI, as a user would run it)
def test_cli_converts_old_model_n_generator(tmp_path):
    nf, nb = 8, 3
    old = scaled_random(OldSRResNet(nf, nb), seed=nb)
    state_dict = old.state_dict()
    expected_keys = {'model.0.weight', 'model.1.sub.0.res.0.weight', 'model.1.sub.0.res.2.bias',
                     f'model.1.sub.{nb}.weight', 'model.2.weight', 'model.5.weight', 'model.8.weight',
                     'model.10.bias'}
    assert expected_keys <= set(state_dict) and 'model.1.sub.0.res.1.weight' not in state_dict
    src, out = tmp_path / 'RankSRGAN_NIQE.pth', tmp_path / 'converted' / 'RankSRGAN_NIQE_basicsr.pth'
    torch.save(state_dict, src)

    result = run_cli(src, out)
    assert result.returncode == 0, result.stderr
    assert 'generator_model' in result.stdout
    printed = printed_options(result.stdout)
    assert list(printed) == ['network_g']
    options = printed['network_g']
    assert options['type'] == 'RankSRGANGenerator'
    assert {k: v for k, v in options.items() if k != 'type'} == {
        'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': nf, 'num_block': nb, 'upscale': 4}

    checkpoint = torch.load(out, map_location='cpu', weights_only=True)
    assert list(checkpoint) == ['params']
    net = build_network(options)
    assert isinstance(net, RankSRGANGenerator)
    net.load_state_dict(checkpoint['params'], strict=True)
    net.eval()
    assert torch.equal(net.LRconv.weight, state_dict[f'model.1.sub.{nb}.weight'])
    assert torch.equal(net.recon_trunk[nb - 1].conv2.bias, state_dict[f'model.1.sub.{nb - 1}.res.2.bias'])
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        expected = old(x)
        got = net(x)
    assert got.shape == expected.shape == (2, 3, 48, 40)
    assert float(expected.std()) > 0
    assert torch.allclose(got, expected, atol=1e-6)


def test_cli_refuses_unknown_layout(tmp_path):
    src, out = tmp_path / 'mystery.pth', tmp_path / 'out.pth'
    torch.save({'foo.weight': torch.zeros(2, 2), 'bar.bias': torch.zeros(2)}, src)
    result = run_cli(src, out)
    assert result.returncode != 0
    assert 'Unknown checkpoint layout' in result.stderr
    for supported in ('Rankers', 'generators', 'conv0_0', 'features.N', 'conv_first', 'model.0', 'RRDB_trunk',
                      'RDB1'):
        assert supported in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# the CLI's checks and section names, in-process
def test_cli_missing_input_is_a_clear_message(tmp_path, cli_main):
    missing = tmp_path / 'Ranker_NIQE.pth'
    with pytest.raises(SystemExit) as info:
        cli_main(missing, tmp_path / 'out.pth')
    assert str(info.value) == f'{missing} does not exist.'
    assert not (tmp_path / 'out.pth').exists()


def test_cli_refuses_to_overwrite_without_flag(tmp_path, cli_main, capsys):
    source = scaled_random(RankSRGANGenerator(num_feat=8, num_block=1), seed=3)
    src, out = tmp_path / 'g.pth', tmp_path / 'g_basicsr.pth'
    torch.save(source.state_dict(), src)
    out.write_bytes(b'keep me')
    with pytest.raises(SystemExit) as info:
        cli_main(src, out)
    assert '--overwrite' in str(info.value) and str(out) in str(info.value)
    assert out.read_bytes() == b'keep me'

    cli_main(src, out, '--overwrite')
    params = torch.load(out, map_location='cpu', weights_only=True)['params']
    assert all(torch.equal(params[k], v) for k, v in source.state_dict().items())
    assert list(printed_options(capsys.readouterr().out)) == ['network_g']


@pytest.mark.parametrize('layout', ['mmsr', 'features'])
def test_cli_prints_network_r_for_rankers(tmp_path, cli_main, capsys, layout):
    if layout == 'mmsr':
        source = randomize(RankerVGG(depth=8, **SMALL_RANKER), seed=11)
    else:
        source = randomize(OldFeaturesRanker(8, **SMALL_RANKER), seed=12)
    src, out = tmp_path / 'Ranker_NIQE.pth', tmp_path / 'sub' / 'Ranker_NIQE_basicsr.pth'
    torch.save(source.state_dict(), src)
    cli_main(src, out)
    stdout = capsys.readouterr().out
    assert f'ranker_{layout}' in stdout
    printed = printed_options(stdout)
    assert list(printed) == ['network_r']
    net = build_network(printed['network_r'])
    assert isinstance(net, RankerVGG)
    net.load_state_dict(torch.load(out, map_location='cpu', weights_only=True)['params'], strict=True)
    net.eval()
    x = torch.rand(2, 3, 40, 36)
    with torch.no_grad():
        assert torch.allclose(net(x), source(x), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# generator, mmsr layout (library)
@pytest.mark.parametrize('num_feat, num_block, upscale', [
    (8, 2, 4), (8, 1, 2), (16, 3, 3), (12, 2, 2),
    (18, 2, 2),  # x2 with num_feat a multiple of 9: upconv1 has 4 * 18 = 72 outputs, divisible by 9 yet not x3
])
def test_mmsr_generator_round_trip(num_feat, num_block, upscale):
    source = scaled_random(RankSRGANGenerator(num_feat=num_feat, num_block=num_block, upscale=upscale), seed=5)
    layout, options, net = convert_official_checkpoint(OrderedDict(source.state_dict()))
    assert layout == 'generator_mmsr'
    assert options == {'type': 'RankSRGANGenerator', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': num_feat,
                       'num_block': num_block, 'upscale': upscale}
    net.eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(net(x), source(x), atol=1e-6)


@pytest.mark.parametrize('wrap, prefix', [(False, False), (True, False), (True, True), (False, True)])
def test_mmsr_generator_wrappers_and_module_prefix(wrap, prefix):
    source = scaled_random(RankSRGANGenerator(num_feat=8, num_block=2), seed=6)
    state_dict = OrderedDict((f'module.{k}' if prefix else k, v) for k, v in source.state_dict().items())
    layout, options, net = convert_official_checkpoint({'params': state_dict} if wrap else state_dict)
    assert layout == 'generator_mmsr'
    assert (options['num_feat'], options['num_block'], options['upscale']) == (8, 2, 4)
    assert list(net.state_dict()) == list(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    net.eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net(x), source(x), atol=1e-6)


def test_old_generator_default_config_is_inferred():
    """The official SRResNet_bicx4_in3nf64nb16 / RankSRGAN_*.pth shape converts to the default options."""
    old = scaled_random(OldSRResNet(64, 16), seed=7)
    assert 'model.1.sub.16.weight' in old.state_dict()
    layout, options, net = convert_official_checkpoint(old.state_dict())
    assert layout == 'generator_model'
    assert options == {'type': 'RankSRGANGenerator', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                       'num_block': 16, 'upscale': 4}
    built = build_network(options)
    assert [(k, v.shape) for k, v in built.state_dict().items()] == [
        (k, v.shape) for k, v in RankSRGANGenerator().state_dict().items()]
    net.eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net(x), old(x), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Ranker layouts (library)
@pytest.mark.parametrize('layout', ['mmsr', 'features'])
@pytest.mark.parametrize('depth', [8, 12, 16])
def test_ranker_round_trip_infers_architecture(depth, layout):
    if layout == 'mmsr':
        source = randomize(RankerVGG(depth=depth, **SMALL_RANKER), seed=depth)
    else:
        source = randomize(OldFeaturesRanker(depth, **SMALL_RANKER), seed=depth)
        assert any(k.startswith('features.') for k in source.state_dict())
    detected, options, net = convert_official_checkpoint(source.state_dict())
    assert detected == f'ranker_{layout}'
    assert options == {'type': 'RankerVGG', 'depth': depth, 'num_in_ch': 3, 'num_feat': 16,
                       'stage_widths': [16, 32, 64, 64], 'num_hidden': 10}
    net.eval()
    x = torch.rand(3, 3, 36, 44)
    with torch.no_grad():
        expected = source(x)
        assert torch.allclose(net(x), expected, atol=1e-6)
    assert float(expected.std()) > 0


def test_ranker_default_widths_are_inferred():
    source = randomize(RankerVGG(), seed=1)
    layout, options, net = convert_official_checkpoint({'params': source.state_dict()})
    assert layout == 'ranker_mmsr'
    assert options == {'type': 'RankerVGG', 'depth': 12, 'num_in_ch': 3, 'num_feat': 64,
                       'stage_widths': [128, 256, 512, 512], 'num_hidden': 100}
    assert torch.equal(net.bn4_1.running_var, source.bn4_1.running_var)


def test_ranker_non_3_channel_input_is_inferred():
    source = randomize(RankerVGG(depth=8, num_in_ch=1, **SMALL_RANKER), seed=2)
    _, options, net = convert_official_checkpoint(source.state_dict())
    assert options['num_in_ch'] == 1
    assert torch.equal(net.conv0_0.weight, source.conv0_0.weight)


# --------------------------------------------------------------------------------------------------
# unknown layouts (library)
@pytest.mark.parametrize('make', [
    lambda: MSRResNet(num_feat=8, num_block=1).state_dict(),  # BasicSR's SRResNet: no LRconv
    lambda: VGGStyleDiscriminator(3, 8).state_dict(),  # conv0_0/conv0_1 but no classifier
    lambda: {'foo.weight': torch.zeros(1)},
], ids=['basicsr_msrresnet', 'basicsr_discriminator', 'random_keys'])
def test_unknown_layout_is_refused(make):
    with pytest.raises(UnknownCheckpointLayout, match='Supported'):
        convert_official_checkpoint(make())


# --------------------------------------------------------------------------------------------------
# ESRGAN RRDBNet layouts -> BasicSR RRDBNet
@pytest.mark.parametrize('layout, make', [
    ('rrdbnet_model', lambda nf, nb, gc: OldESRGAN(nf, nb, gc)),
    ('rrdbnet_mmsr', lambda nf, nb, gc: MmsrRRDBNet(nf, nb, gc)),
])
@pytest.mark.parametrize('nf, nb, gc', [(8, 2, 4), (12, 1, 6)])
def test_rrdbnet_layouts_convert_to_basicsr(layout, make, nf, nb, gc):
    source = scaled_random(make(nf, nb, gc), seed=nb + nf)
    state_dict = source.state_dict()
    if layout == 'rrdbnet_model':
        assert {'model.1.sub.0.RDB1.conv1.0.weight', 'model.1.sub.0.RDB3.conv5.0.bias', f'model.1.sub.{nb}.weight',
                'model.3.weight', 'model.6.weight', 'model.8.weight', 'model.10.weight'} <= set(state_dict)
    detected, options, net = convert_official_checkpoint(state_dict)
    assert detected == layout
    assert options == {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': nf,
                       'num_block': nb, 'num_grow_ch': gc}
    assert isinstance(net, RRDBNet)
    built = build_network(options)
    built.load_state_dict(net.state_dict(), strict=True)
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        expected = source(x)
        got = net.eval()(x)
    assert got.shape == expected.shape == (2, 3, 36, 28)
    assert float(expected.std()) > 0
    assert torch.equal(got, expected)


def test_old_esrgan_keys_mapped_back_from_basicsr():
    """A BasicSR RRDBNet's weights under the older release's names convert back to the same weights."""
    nf, nb, gc = 8, 3, 4
    source = scaled_random(RRDBNet(3, 3, scale=4, num_feat=nf, num_block=nb, num_grow_ch=gc), seed=21)
    old = basicsr_rrdb_to_old_keys(source.state_dict(), nb)
    assert set(old) == set(OldESRGAN(nf, nb, gc).state_dict())  # the hand mapping has the release's key names
    layout, options, net = convert_official_checkpoint(old)
    assert layout == 'rrdbnet_model' and options['num_block'] == nb
    assert list(net.state_dict()) == list(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_esrgan_supersr_shape_is_inferred():
    """ESRGAN_SuperSR.pth's shape (64 features, 23 blocks, growth 32) converts to BasicSR's default RRDBNet."""
    old = basicsr_rrdb_to_old_keys(RRDBNet(3, 3).state_dict(), 23)
    layout, options, _ = convert_official_checkpoint({'params': old})
    assert layout == 'rrdbnet_model'
    assert options == {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 64,
                       'num_block': 23, 'num_grow_ch': 32}


def test_rrdbnet_unexpected_key_is_refused():
    old = basicsr_rrdb_to_old_keys(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4).state_dict(), 1)
    old['model.12.weight'] = torch.zeros(3, 8, 3, 3)  # an x8 tail: not the x4 release
    with pytest.raises(UnknownCheckpointLayout, match="Unexpected key 'model.12.weight'"):
        convert_official_checkpoint(old)


def test_cli_converts_old_esrgan(tmp_path, cli_main, capsys):
    source = scaled_random(OldESRGAN(8, 2, 4), seed=4)
    src, out = tmp_path / 'ESRGAN_SuperSR.pth', tmp_path / 'ESRGAN_SuperSR_basicsr.pth'
    torch.save(source.state_dict(), src)
    cli_main(src, out)
    stdout = capsys.readouterr().out
    assert 'rrdbnet_model' in stdout
    options = printed_options(stdout)['network_g']
    assert options['type'] == 'RRDBNet' and options['num_block'] == 2
    net = build_network(options)
    net.load_state_dict(torch.load(out, map_location='cpu', weights_only=True)['params'], strict=True)
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), source(x))


@pytest.mark.parametrize('layout', ['generator_model', 'rrdbnet_model'])
def test_release_layout_writer_matches_the_independent_old_releases(layout):
    """The stand-in writer's keys are the older releases' (written out independently above), and convert back."""
    if layout == 'generator_model':
        net, old = RankSRGANGenerator(num_feat=8, num_block=3), OldSRResNet(nf=8, nb=3)
    else:
        net, old = RRDBNet(3, 3, scale=4, num_feat=8, num_block=2, num_grow_ch=4), OldESRGAN(nf=8, nb=2, gc=4)
    released = to_release_layout(scaled_random(net, 0).state_dict(), layout)
    assert list(released) == list(old.state_dict())  # same names, same order
    assert detect_layout(released) == layout
    _, _, converted = convert_official_checkpoint(released)
    assert all(torch.equal(converted.state_dict()[k], v) for k, v in net.state_dict().items())
