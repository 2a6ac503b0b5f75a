"""The paper road's check loads every weights file the road will load, as the stage loads it, and names what a bad
one really is (issue 30, item 2): a text file, an HTML page, a Git LFS pointer, a zip of something else, an empty
or cut-short file, another network's weights, as SRGAN.pth, SRResNet_bicx4_in3nf64nb16.pth or vgg19-dcbb9e9d.pth
(was: IndexError / KeyError / EOFError tracebacks, or for the VGG19 no check at all), and Ma's model.mat; every
bad file listed at once, exit status 2.

The large files are stand-ins of the real sizes whose tensors are one zero broadcast to each shape (stride 0):
torch saves the one number, the check sees every name and shape (the real VGG19 is 548 MB)."""
import os.path as osp
import shutil
import zipfile

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
from basicsr.archs.rrdbnet_arch import RRDBNet
from tool_loader import load_tool

from ranksrgan_plugin.archs.ranker_arch import RankerVGG
from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator
from ranksrgan_plugin.checkpoints import describe_file, to_release_layout
from ranksrgan_plugin.iqa.ma_model import AUTHORS_LINEAR
from ranksrgan_plugin.reproduce import EXIT_MISSING_INPUTS, RoadLayout, check_road
from ranksrgan_plugin.reproduce.variants import VARIANTS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SRGAN, SRRESNET = 'SRGAN.pth', 'SRResNet_bicx4_in3nf64nb16.pth'
ESRGAN, VGG19 = 'ESRGAN_SuperSR.pth', 'vgg19-dcbb9e9d.pth'
HTML = (b'<!DOCTYPE html><html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"/>'
        b'<title>Google Drive - Virus scan warning</title></head><body>Download anyway</body></html>\n')
LFS = b'version https://git-lfs.github.com/spec/v1\noid sha256:4a3f0e\nsize 6173867\n'
# the option that names each file, in the problem's detail
NAMED_BY = {SRGAN: 'levels[srgan].weights', SRRESNET: 'levels[srres].weights', VGG19: 'perceptual_opt.vgg_weights'}
SOURCE = {SRGAN: 'XPixelGroup/RankSRGAN', SRRESNET: 'XPixelGroup/RankSRGAN', VGG19: 'download.pytorch.org'}


def broadcast_zeros(state_dict):
    """The same names and shapes, every tensor one saved zero (stride 0)."""
    return {key: torch.zeros((), dtype=value.dtype).expand(value.shape) for key, value in state_dict.items()}


def meta_state_dict(build):
    with torch.device('meta'):
        return build().state_dict()


@pytest.fixture(scope='module')
def good_files(tmp_path_factory):
    """Every weights file of the NIQE road, in the layouts the road reads (the authors' for the levels)."""
    folder = tmp_path_factory.mktemp('good')
    for seed, name in enumerate((SRRESNET, SRGAN)):
        torch.manual_seed(seed)
        torch.save(to_release_layout(RankSRGANGenerator().state_dict(), 'generator_model'), folder / name)
    esrgan = meta_state_dict(lambda: RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32))
    torch.save(to_release_layout(broadcast_zeros(esrgan), 'rrdbnet_model'), folder / ESRGAN)
    torch.save(broadcast_zeros(meta_state_dict(lambda: torchvision.models.vgg19(weights=None))), folder / VGG19)
    return folder


@pytest.fixture
def no_external_files(tmp_path, monkeypatch):
    """No VGG19 in torch's hub cache and no model.mat anywhere the lookup goes."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('RANKSRGAN_MA_MODEL', raising=False)
    monkeypatch.setattr('ranksrgan_plugin.iqa.ma_model.DEFAULT_MODEL_PATH', tmp_path / 'no' / 'model.mat')


def road(tmp_path, good_files, variant='niqe', **kwargs):
    """A layout without data (those problems are 'missing') whose pretrained folder holds the good files."""
    shutil.copytree(good_files, tmp_path / 'pretrained')
    return RoadLayout(repo=REPO, variant=VARIANTS[variant], data=str(tmp_path / 'data'),
                      pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out'),
                      root=str(tmp_path / 'root'), **kwargs)


def wrong(layout):
    """The 'wrong' problems of the check, by file name."""
    return {osp.basename(p.path): p for p in check_road(layout) if p.kind == 'wrong'}


def write_zip(path):
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('SRGAN/README.txt', 'the weights are in the other archive')
        archive.writestr('notes.txt', 'x')


def cut_short(path, good):
    data = good.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def another_network(path, good):
    if path.name == VGG19:  # a VGG16 where the VGG19 goes: its own names and shapes
        torch.save(broadcast_zeros(meta_state_dict(lambda: torchvision.models.vgg16(weights=None))), path)
    else:
        torch.save({'params': RankerVGG(depth=8).state_dict()}, path)


BAD_KINDS = {  # kind -> (write it at path given the good file, what the check must say the file is)
    'text': (lambda path, good: path.write_text('weights: see the link in README.md\nmirror: baidu\n'),
             'it is a text file'),
    'hello world': (lambda path, good: path.write_bytes(b'hello world'),
                    'it is a text file (11 bytes, starting "hello'),
    'empty': (lambda path, good: path.write_bytes(b''), 'it is empty (0 bytes)'),
    'html page': (lambda path, good: path.write_bytes(HTML),
                  'it is an HTML page (186 bytes, title "Google Drive - Virus scan warning")'),
    'zip': (lambda path, good: write_zip(path), 'it is a zip archive that is not a torch checkpoint'),
    'git-lfs pointer': (lambda path, good: path.write_bytes(LFS),
                        'it is a Git LFS pointer (74 bytes) to a file of 5.9 MiB that was never fetched'),
    'another network': (another_network, None),
    'truncated torch file': (cut_short, 'it is a torch checkpoint cut short'),
}
ANOTHER_NETWORK = {SRGAN: "a torch file holding a BasicSR checkpoint (weights under 'params') of a Ranker",
                   SRRESNET: "a torch file holding a BasicSR checkpoint (weights under 'params') of a Ranker",
                   VGG19: "it is a torch file holding torchvision's VGG16 (13 convolutions"}


def test_the_good_files_pass_and_are_loaded(tmp_path, good_files, no_external_files):
    layout = road(tmp_path, good_files)
    problems = check_road(layout)
    assert not [p for p in problems if p.kind == 'wrong']
    assert not {SRGAN, SRRESNET, ESRGAN, VGG19} & {osp.basename(p.path) for p in problems}


@pytest.mark.parametrize('target', [SRGAN, SRRESNET, VGG19])
@pytest.mark.parametrize('kind', list(BAD_KINDS))
def test_a_bad_file_is_named_with_what_it_is(tmp_path, good_files, no_external_files, target, kind):
    """The HR road (its levels: SRResNet, SRGAN) with one bad file: exactly that file is refused, saying what it is,
    which option names it and where a good one comes from."""
    layout = road(tmp_path, good_files, 'hr')
    write, says = BAD_KINDS[kind]
    write(tmp_path / 'pretrained' / target, good_files / target)
    problems = wrong(layout)
    assert list(problems) == [target]
    problem = problems[target]
    assert problem.path == str(tmp_path / 'pretrained' / target)
    assert (says or ANOTHER_NETWORK[target]) in problem.detail
    assert NAMED_BY[target] in problem.detail and SOURCE[target] in problem.source
    if target == SRRESNET:  # the same file starts the generator: one problem, both uses named
        assert 'the generator initialisation (train_RankSRGAN_HR.yml network_g)' in problem.detail


def test_another_networks_weights_say_which_network_and_what_does_not_fit(tmp_path, good_files, no_external_files):
    layout = road(tmp_path, good_files)
    pretrained = tmp_path / 'pretrained'
    shutil.copy(good_files / ESRGAN, pretrained / SRGAN)  # ESRGAN where the SRGAN goes, and the other way round
    shutil.copy(good_files / SRGAN, pretrained / ESRGAN)
    another_network(pretrained / VGG19, None)
    problems = wrong(layout)
    assert sorted(problems) == sorted([SRGAN, ESRGAN, VGG19])
    assert ('it is a torch file holding an official ESRGAN RRDBNet, older release (model.N ... RDB1), not the weights '
            'of RankSRGANGenerator (num_in_ch 3, num_out_ch 3, num_feat 64, num_block 16, upscale 4)'
            in problems[SRGAN].detail)
    assert '72 of its 76 weights are not in the file (recon_trunk.0.conv1.weight' in problems[SRGAN].detail
    assert ('an official RankSRGAN / SRResNet / SRGAN generator, older release (model.N), not the weights of RRDBNet'
            in problems[ESRGAN].detail)
    assert "not torchvision's ImageNet VGG19 weights" in problems[VGG19].detail
    assert '12 of its 38 weights are not in the file (features.16.weight' in problems[VGG19].detail


def test_a_wrapped_vgg19_is_refused_as_basicsr_loads_it_bare(tmp_path, good_files, no_external_files):
    layout = road(tmp_path, good_files)
    vgg = broadcast_zeros(meta_state_dict(lambda: torchvision.models.vgg19(weights=None)))
    torch.save({'params': vgg}, tmp_path / 'pretrained' / VGG19)
    detail = wrong(layout)[VGG19].detail
    assert "a BasicSR checkpoint (weights under 'params') of torchvision's VGG" in detail
    assert 'a bare state_dict' in detail and '38 of its 38 weights are not in the file' in detail


def test_the_vgg19_in_torchs_hub_cache_is_checked_too(tmp_path, good_files, no_external_files):
    layout = road(tmp_path, good_files)
    hub = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    hub.mkdir(parents=True)
    (hub / VGG19).write_bytes(HTML)
    (tmp_path / 'pretrained' / VGG19).unlink()
    problem = wrong(layout)[VGG19]
    assert problem.path == str(hub / VGG19) and 'it is an HTML page' in problem.detail


def test_every_bad_file_is_listed_at_once_and_the_tool_exits_2(tmp_path, good_files, no_external_files, capsys):
    layout = road(tmp_path, good_files)
    pretrained = tmp_path / 'pretrained'
    (pretrained / SRGAN).write_text('hello world\nnot weights\n')
    (pretrained / SRRESNET).write_bytes(HTML)
    (pretrained / ESRGAN).write_bytes(b'')
    (pretrained / VGG19).write_bytes(LFS)
    status = load_tool('reproduce').main(['--check', '--data', layout.data, '--pretrained', layout.pretrained,
                                          '--output', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert status == EXIT_MISSING_INPUTS
    for name, says in ((SRGAN, 'it is a text file'), (SRRESNET, 'it is an HTML page'),
                       (ESRGAN, 'it is empty (0 bytes)'), (VGG19, 'it is a Git LFS pointer')):
        assert f'WRONG   {name}: {pretrained / name}' in out
        assert says in out.split(f'WRONG   {name}:')[1].split('WRONG')[0], name
    assert 'Traceback' not in out


def write_ma_model(path):
    """A model.mat in the sr-metric layout: three one-leaf forests and the authors' linear weights."""
    leaf = {'lDau': np.zeros((1, 1)), 'rDau': np.zeros((1, 1)), 'nodestatus': -np.ones((1, 1)),
            'upper': np.zeros((1, 1)), 'avnode': np.full((1, 1), 5.0), 'mbest': np.zeros((1, 1)),
            'ndtree': np.ones((1, 1))}
    rf = np.empty((3, 1), dtype=object)
    for index in range(3):
        rf[index, 0] = leaf
    scipy.io.savemat(str(path), {'model': {'rf': rf, 'linear': np.reshape(AUTHORS_LINEAR, (4, 1))}})


@pytest.mark.parametrize('kind, says', [
    ('good', None),
    ('text', 'it is a text file (12 bytes, starting "hello world")'),
    ('html page', 'it is an HTML page'),
    ('another .mat', 'it is a MATLAB 5.0 .mat file (296 bytes, variables weights, bias)'),
    ('torch file', 'it is a torch checkpoint (zip format'),
])
def test_ma_model_is_loaded_by_the_metrics_reader(tmp_path, good_files, no_external_files, kind, says):
    path = tmp_path / 'model.mat'
    if kind == 'good':
        write_ma_model(path)
    elif kind == 'text':
        path.write_text('hello world\n')
    elif kind == 'html page':
        path.write_bytes(HTML)
    elif kind == 'another .mat':
        scipy.io.savemat(str(path), {'weights': np.zeros((2, 2)), 'bias': np.zeros(2)})
    else:
        shutil.copy(good_files / SRGAN, path)
    problems = wrong(road(tmp_path, good_files, 'ma', ma_model=str(path)))
    if says is None:
        assert 'model.mat' not in problems
        return
    assert list(problems) == ['model.mat']
    problem = problems['model.mat']
    assert problem.path == str(path) and 'named by --ma-model' in problem.detail and says in problem.detail
    assert "not Ma et al.'s model" in problem.detail and 'chaoma99/sr-metric' in problem.source


@pytest.mark.parametrize('content, kind', [
    (b'', 'empty (0 bytes)'),
    (b'\x89PNG\r\n\x1a\n' + b'\x00' * 20, 'a PNG image (28 bytes)'),
    (b'\xff\xd8\xff\xe0' + b'\x00' * 10, 'a JPEG image'),
    (b'\x1f\x8b\x08\x00' + b'\x00' * 10, 'a gzip archive'),
    (b'MATLAB 7.3 MAT-file, Platform: GLNXA64' + b' ' * 90, 'a MATLAB v7.3 .mat file (HDF5)'),
    (b'\x89HDF\r\n\x1a\n' + b'\x00' * 8, 'an HDF5 file'),
    (b'{"weights": "https://example.org/x.pth"}', 'a JSON file (40 bytes)'),
    (b'\n  <html><body>quota exceeded</body></html>', 'an HTML page (43 bytes) saved in place of the file'),
    (b'\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.', 'a Python pickle (protocol 4, 14 bytes), not a torch'),
    (b'\x00\x01\x02\x03\xfe\xff', 'binary data that is not a torch file (6 bytes, starting 00 01 02 03 fe ff)'),
])
def test_describe_file_by_its_first_bytes(tmp_path, content, kind):
    path = tmp_path / 'SRGAN.pth'
    path.write_bytes(content)
    assert describe_file(str(path)).startswith(kind)


def test_describe_file_tells_torch_files_whole_and_cut_short(tmp_path, good_files):
    legacy = tmp_path / 'legacy.pth'
    torch.save({'a': torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert describe_file(str(legacy)).startswith('a torch checkpoint (legacy, non-zip format')
    assert describe_file(str(good_files / SRGAN)).startswith('a torch checkpoint (zip format, 5.9 MiB)')
    cut_short(tmp_path / 'cut.pth', good_files / SRGAN)
    assert describe_file(str(tmp_path / 'cut.pth')).startswith('a torch checkpoint cut short (3.0 MiB, its end is')
    tar = shutil.make_archive(str(tmp_path / 'weights'), 'tar', str(good_files))
    assert describe_file(tar).startswith('a tar archive')
