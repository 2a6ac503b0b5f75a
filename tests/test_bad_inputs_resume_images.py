"""Issue 29, items 7 and 8: resume states and initialisation files of another model, and unreadable images,
refused by name before work starts (BasicSR and MMagic sides, the paper road's check)."""
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import basicsr.train
import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.models import build_model
from mmagic.registry import MODELS
from mmengine.runner import Runner
from test_mmagic_training import (  # noqa: F401  (sr_workspace: fixture)
    RANKESRGAN_CONFIG,
    RANKSRGAN_CONFIG,
    _generator_init_files,
    sr_workspace,
    tiny_sr_config,
)
from test_ranksrgan_model import RANKER_OPT, tiny_options
from tool_loader import load_tool

import ranksrgan_plugin.mmagic  # noqa: F401
from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.compat.basicsr import patch_basicsr_train
from ranksrgan_plugin.reproduce.rehearsal import make_rehearsal_data
from ranksrgan_plugin.utils.training_state import read_training_state

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------
# BasicSR: path.resume_state / --auto_resume


def ranker_options(root: Path) -> dict:
    return {'name': 'tiny_ranker', 'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False,
            'rank': 0, 'world_size': 1, 'network_r': dict(RANKER_OPT), 'path': {'pretrain_network_r': None},
            'train': {'rank_opt': {'type': 'RankLoss', 'margin': 0.5}, 'optim_r': {'type': 'Adam', 'lr': 1e-3},
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 4},
            'datasets': {}, 'logger': {'print_freq': 1}}


def with_experiment(options: dict, root: Path, name: str) -> dict:
    options = copy.deepcopy(options)
    experiment = root / 'experiments' / name
    options['name'] = name
    options['path'].update(experiments_root=str(experiment), models=str(experiment / 'models'),
                           training_states=str(experiment / 'training_states'), resume_state=None)
    os.makedirs(options['path']['models'], exist_ok=True)
    os.makedirs(options['path']['training_states'], exist_ok=True)
    return options


def save_state_after_a_step(options: dict) -> str:
    """Build the model, take one optimiser step on zero gradients (Adam then holds its state), save
    iteration 2's training state and the networks BasicSR's resume reloads; the state's path."""
    model = build_model(copy.deepcopy(options))
    for optimizer in model.optimizers:
        for group in optimizer.param_groups:
            for param in group['params']:
                param.grad = torch.zeros_like(param)
        optimizer.step()
    model.save_training_state(epoch=0, current_iter=2)
    for attribute in ('net_g', 'net_d', 'net_r'):
        if hasattr(model, attribute):
            model.save_network(getattr(model, attribute), attribute, 2)
    return str(Path(options['path']['training_states']) / '2.state')


@pytest.fixture(scope='module')
def basicsr_states(tmp_path_factory):
    """Training states written by the plugin's models through its entry points' patches: a Ranker, a
    RankSRGAN, and a RankSRGAN with a wider generator; with their options."""
    root = tmp_path_factory.mktemp('states')
    torch.manual_seed(0)
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               root / 'ranker.pth')
    patch_basicsr_train()
    gan = tiny_options(root, perceptual=False)
    gan['datasets'] = {}
    wide = copy.deepcopy(gan)
    wide['network_g']['num_feat'] = 16
    options = {'ranker': with_experiment(ranker_options(root), root, 'ranker'),
               'gan': with_experiment(gan, root, 'gan'), 'wide': with_experiment(wide, root, 'wide')}
    states = {name: save_state_after_a_step(opt) for name, opt in options.items()}
    return root, options, states


def resume_opt(options: dict, state: str, auto: bool = False) -> dict:
    opt = copy.deepcopy(options)
    opt['auto_resume'] = auto
    opt['path']['resume_state'] = None if auto else state
    return opt


def test_states_record_what_wrote_them_and_resume_their_own_run(basicsr_states):
    _, options, states = basicsr_states
    assert read_training_state(states['ranker'])['written_by'] == {
        'model_type': 'RankerModel', 'name': 'ranker', 'networks': {'network_r': 'RankerVGG'}}
    assert read_training_state(states['wide'])['written_by']['networks']['network_g'] == 'RankSRGANGenerator'
    opt = resume_opt(options['gan'], states['gan'])
    state = basicsr.train.load_resume_state(opt)
    assert state['written_by']['name'] == 'gan'
    model = build_model(opt)
    model.resume_training(state)
    assert model.optimizers[0].state_dict()['state'][0]['step'] == 1


@pytest.mark.parametrize('source, target, writer', [('ranker', 'gan', 'written by RankerModel'),
                                                    ('gan', 'ranker', 'written by RankSRGANModel')])
def test_state_of_another_model_type_is_refused_before_the_model_is_built(basicsr_states, source, target, writer):
    _, options, states = basicsr_states
    with pytest.raises(ValueError) as error:  # was: AssertionError: Wrong lengths of optimizers
        basicsr.train.load_resume_state(resume_opt(options[target], states[source]))
    message = str(error.value)
    assert message.startswith(f'{states[source]} (named by path.resume_state) cannot resume this')
    assert writer in message and 'path.pretrain_network_<x>' in message


def test_state_without_the_record_is_judged_by_its_optimizers(basicsr_states, tmp_path):
    _, options, states = basicsr_states
    state = read_training_state(states['ranker'])
    del state['written_by']  # as BasicSR itself, or the plugin before the record, wrote it
    old = tmp_path / '5.state'
    torch.save(state, old)
    with pytest.raises(ValueError, match=r"without the plugin's record.*a Ranker's \(RankerModel") as error:
        basicsr.train.load_resume_state(resume_opt(options['gan'], str(old)))
    assert 'a RankSRGANModel has 2 optimizers (network_g, network_d)' in str(error.value)


def test_auto_resume_pick_of_another_model_is_named_as_such(basicsr_states):
    _, options, states = basicsr_states
    gan_states = Path(options['gan']['path']['training_states'])
    shutil.copy(states['ranker'], gan_states / '9.state')
    try:
        with pytest.raises(ValueError) as error:
            basicsr.train.load_resume_state(resume_opt(options['gan'], None, auto=True))
    finally:
        os.remove(gan_states / '9.state')
    assert f"{gan_states / '9.state'} (--auto_resume's pick: the newest state in {gan_states})" in str(error.value)


def test_state_of_another_generator_is_refused_by_name_at_resume(basicsr_states):
    """Same model type, another network: was torch's size error inside the first optimiser step."""
    _, options, states = basicsr_states
    opt = resume_opt(options['gan'], states['wide'])
    model = build_model(copy.deepcopy(opt))
    with pytest.raises(ValueError) as error:
        model.resume_training(read_training_state(states['wide']))
    message = str(error.value)
    assert message.startswith(f'{states["wide"]} (named by path.resume_state) does not fit this RankSRGANModel')
    assert 'the optimizer of network_g (RankSRGANGenerator) holds exp_avg of tensor 0: (16, 3, 3, 3) instead of ' \
           '(8, 3, 3, 3)' in message and "experiment 'wide'" in message


def test_state_of_another_experiment_is_refused_before_a_weights_file_is_missed(basicsr_states, tmp_path):
    root, options, states = basicsr_states
    fresh = with_experiment(options['wide'], tmp_path, 'fresh')  # no models/net_g_2.pth there
    with pytest.raises(ValueError, match='the state belongs to another experiment') as error:
        basicsr.train.load_resume_state(resume_opt(fresh, states['wide']))
    assert str(tmp_path / 'experiments' / 'fresh' / 'models' / 'net_g_2.pth') in str(error.value)


def write_bad_files(folder: Path, weights: str) -> dict:
    folder.mkdir(exist_ok=True)
    data = Path(weights).read_bytes()
    files = {'empty': folder / 'empty.state', 'truncated': folder / 'cut.state', 'text': folder / 'text.state'}
    files['empty'].write_bytes(b'')
    files['truncated'].write_bytes(data[:len(data) // 2])
    files['text'].write_text('hello, this is not a checkpoint\n')
    return files


@pytest.mark.parametrize('bad, says', [('empty', 'the file is empty (0 bytes)'),
                                       ('truncated', 'a torch archive cut short'),
                                       ('text', "not a torch checkpoint (it starts with b'hello"),
                                       ('weights', "not a BasicSR training state (a <iter>.state file with iter, "
                                                   "optimizers, schedulers): it is a BasicSR checkpoint (weights "
                                                   "under 'params') of a Ranker"),
                                       ('absent', 'does not exist')])
def test_unreadable_resume_state_is_named(basicsr_states, tmp_path, bad, says):
    root, options, states = basicsr_states
    files = write_bad_files(tmp_path, states['gan'])
    files.update(weights=root / 'ranker.pth', absent=tmp_path / 'absent.state')
    with pytest.raises((RuntimeError, ValueError, OSError)) as error:
        basicsr.train.load_resume_state(resume_opt(options['gan'], str(files[bad])))
    assert f'{files[bad]} (named by path.resume_state)' in str(error.value) and says in str(error.value)


def test_ranker_state_given_to_ranksrgan_training(tmp_path):
    """The issue's case through BasicSR's own pipeline: was ``AssertionError: Wrong lengths of optimizers``."""
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    for kind, size in (('gt', 32), ('lq', 8)):
        (tmp_path / 'data' / kind).mkdir(parents=True)
        for index, image in enumerate(images):
            cv2.imwrite(str(tmp_path / 'data' / kind / f'{index}.png'), cv2.resize(image, (size, size)))
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               tmp_path / 'ranker.pth')
    ranker_state = tmp_path / 'experiments' / 'tiny_ranker' / 'training_states' / '2.state'
    ranker_state.parent.mkdir(parents=True)
    net = RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'})
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # Adam's state: what the Ranker's optimizer holds after its first iteration
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [optimizer.state_dict()],
                'schedulers': [torch.optim.lr_scheduler.MultiStepLR(optimizer, [100]).state_dict()]}, ranker_state)
    options = tiny_options(tmp_path, perceptual=False)
    for key in ('is_train', 'dist', 'rank', 'world_size'):
        options.pop(key)
    options['path']['resume_state'] = str(ranker_state)
    (tmp_path / 'gan.yml').write_text(yaml.safe_dump(options))
    run = subprocess.run([sys.executable, '-m', 'ranksrgan_plugin.train', '-opt', str(tmp_path / 'gan.yml')],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and 'Wrong lengths' not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert 'ResumeStateMismatchError' in last and f'{ranker_state} (named by path.resume_state)' in last
    assert "a Ranker's (RankerModel" in last


# ------------------------------------------------------------------------------------------------
# MMagic: the generator's init_cfg, load_from, --resume


def tiny_rrdbnet() -> RRDBNet:
    torch.manual_seed(3)
    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0, 0.1)
    return net.eval()


def test_basicsr_rrdbnet_file_initialises_the_mmagic_generator_to_the_same_output(sr_workspace, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_sr_config(sr_workspace, RANKESRGAN_CONFIG, tmp_path / 'work', keep_init=True)
    path, = _generator_init_files(cfg)
    basicsr_net = tiny_rrdbnet()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'params': basicsr_net.state_dict()}, path)  # what BasicSR's save_network writes
    model = MODELS.build(cfg.model)
    model.init_weights()  # was: CheckpointMismatchError, the file's keys lack the generator. prefix
    image = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(model.generator.eval()(image), basicsr_net(image))


def test_basicsr_msrresnet_file_is_refused_saying_why(sr_workspace, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', keep_init=True)
    path, = _generator_init_files(cfg)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'params': MSRResNet(num_feat=8, num_block=1).state_dict()}, path)  # the same size as the config's
    with pytest.raises(ValueError) as error:
        MODELS.build(cfg.model).init_weights()
    message = str(error.value)
    assert message.startswith(f'{path} (named by model.generator.init_cfg.checkpoint)')
    assert 'a LeakyReLU after each pixel shuffle' in message and 'another output' in message


def mmagic_cfg(root: Path, work: Path, config: Path = RANKSRGAN_CONFIG, discriminator_feat: int = 8):
    cfg = tiny_sr_config(root, config, work, max_iters=4)
    cfg.model.discriminator.update(num_feat=discriminator_feat)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.val_interval = 100
    return cfg


def training_checkpoint(cfg, path: Path) -> Path:
    """What mmengine saves at iteration 2 (meta, state_dict, message_hub), for ``cfg``'s model."""
    model = MODELS.build(cfg.model)
    torch.save({'meta': {'epoch': 0, 'iter': 2}, 'state_dict': model.state_dict(), 'message_hub': {}}, path)
    return path


def test_mmagic_resume_of_another_discriminator_is_refused(sr_workspace, tmp_path):  # noqa: F811
    """Was: a random discriminator with size-mismatch warnings, then torch's size error in the optimiser."""
    other = training_checkpoint(mmagic_cfg(sr_workspace, tmp_path / 'w16', discriminator_feat=16), tmp_path / 'd16.pth')
    cfg = mmagic_cfg(sr_workspace, tmp_path / 'work')
    cfg.load_from, cfg.resume = str(other), True
    with pytest.raises(ValueError) as error:
        Runner.from_cfg(cfg).train()
    message = str(error.value)
    assert message.startswith(f'{other} (named by --resume / resume=True) does not fit the discriminator of RankSRGAN')


@pytest.mark.parametrize('kind', ['basicsr_state', 'basicsr_weights'])
def test_mmagic_resume_from_a_basicsr_file_is_refused(sr_workspace, tmp_path, kind):  # noqa: F811
    path = tmp_path / f'{kind}.pth'
    if kind == 'basicsr_state':
        torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': []}, path)
    else:
        torch.save({'params': tiny_rrdbnet().state_dict()}, path)
    cfg = mmagic_cfg(sr_workspace, tmp_path / 'work', RANKESRGAN_CONFIG)
    cfg.load_from, cfg.resume = str(path), True
    with pytest.raises(ValueError, match='is not an mmengine training checkpoint') as error:
        Runner.from_cfg(cfg).train()
    assert str(error.value).startswith(f'{path} (named by --resume / resume=True)')


@pytest.mark.parametrize('bad', ['empty', 'truncated', 'text'])
@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_mmagic_unreadable_checkpoint_is_named(sr_workspace, tmp_path, bad, resume):  # noqa: F811
    cfg = mmagic_cfg(sr_workspace, tmp_path / 'work')
    files = write_bad_files(tmp_path / 'bad', str(training_checkpoint(cfg, tmp_path / 'ok.pth')))
    cfg.load_from, cfg.resume = str(files[bad]), resume
    with pytest.raises(RuntimeError) as error:  # was: EOFError, torch's zip error, KeyError: 101
        Runner.from_cfg(cfg).train()
    option = '--resume / resume=True' if resume else "load_from / tools/test.py's checkpoint"
    assert str(error.value).startswith(f'Cannot read {files[bad]} (named by {option}) as a checkpoint')


def test_mmagic_ranker_load_from_a_generator_checkpoint_is_refused(sr_workspace, tmp_path):  # noqa: F811
    """Was: a random Ranker trained, with mmengine's key lists as the only sign."""
    from mmengine.config import Config
    from test_mmagic_training import RANKER_CONFIG, TINY_RANKER

    generator = training_checkpoint(mmagic_cfg(sr_workspace, tmp_path / 'gan'), tmp_path / 'gan.pth')
    cfg = Config.fromfile(str(RANKER_CONFIG))
    cfg.model.ranker = dict(TINY_RANKER)
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(ValueError) as error:
        Runner.from_cfg(cfg).load_checkpoint(str(generator))  # what load_from does
    assert str(error.value).startswith(f"{generator} (named by load_from / tools/test.py's checkpoint) does not fit "
                                       'the ranker of RankerModel (keys ranker.*)')


# ------------------------------------------------------------------------------------------------
# the paper road: every image read whole before the long stages


def test_road_check_names_every_unreadable_image(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    data = tmp_path / 'data'
    make_rehearsal_data(str(data), str(tmp_path / 'photos'))
    hr, lr = data / 'DIV2K' / 'DIV2K_train_HR', data / 'DIV2K' / 'DIV2K_train_LR_bicubic' / 'X4'
    flickr = data / 'Flickr2K' / 'Flickr2K_HR'
    whole = (hr / '0001.png').read_bytes()
    (hr / '0001.png').write_bytes(whole[:len(whole) // 2])
    (hr / '0002.png').write_bytes(b'')
    _, jpeg = cv2.imencode('.jpg', cv2.imread(str(flickr / '000001.png')))
    (flickr / '000001.png').write_bytes(jpeg.tobytes())
    (flickr / '000002.png').write_text('<html>404 Not Found</html>\n')
    flipped = bytearray((flickr / '000003.png').read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (flickr / '000003.png').write_bytes(bytes(flipped))
    (flickr / '000004.png').mkdir()
    (lr / '0003x4.png').write_bytes((lr / '0003x4.png').read_bytes()[:-12])  # the IEND chunk cut off
    cv2.imwrite(str(lr / '0004x4.png'), cv2.resize(cv2.imread(str(lr / '0004x4.png')), (50, 40)))
    status = load_tool('reproduce').main(['--check', '--data', str(data), '--pretrained', str(tmp_path / 'none'),
                                          '--output', str(tmp_path / 'out'), '--no-progress'])
    out = capsys.readouterr().out
    assert status == 2 and not (tmp_path / 'out').exists()
    expected = {hr / '0001.png': 'truncated', hr / '0002.png': 'zero bytes',
                flickr / '000001.png': 'not a PNG: JPEG data under a .png name',
                flickr / '000002.png': "not a PNG: text ('<html>404 Not Found",
                flickr / '000003.png': 'fails its CRC', flickr / '000004.png': 'cannot be read: Is a directory',
                lr / '0003x4.png': 'ends before its IEND chunk',
                lr / '0004x4.png': '50x40, where its HR image 0004.png'}
    for path, says in expected.items():
        block = out.split(f'image: {path}\n', 1)
        assert len(block) == 2, path
        assert says in block[1].splitlines()[0], (path, block[1].splitlines()[0])
    assert out.count('WRONG') == len(expected)
