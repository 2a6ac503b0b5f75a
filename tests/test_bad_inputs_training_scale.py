"""Training / test pipelines whose scale is not the generator's (issue 29 item 1), MMagic init_model given a BasicSR
MSRResNet file, and fp16 training states recording what wrote them."""
import copy
import subprocess
import sys
from pathlib import Path

import basicsr.test
import basicsr.train
import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from test_mmagic_training import sr_workspace  # noqa: F401  (fixture)
from test_ranksrgan_model import RANKER_OPT, tiny_options

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.compat.basicsr import patch_basicsr_train
from ranksrgan_plugin.utils.training_state import read_training_state

# ------------------------------------------------------------------------------------------------
# BasicSR: the options' scale against network_g


def write_pairs(root: Path, factor: int, count: int = 2, size: int = 32) -> None:
    """``count`` GT images of ``size`` and their LQ images ``factor`` times smaller under root/data/{gt,lq}."""
    rng = np.random.default_rng(0)
    for kind in ('gt', 'lq'):
        (root / 'data' / kind).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'data' / 'gt' / f'{index}.png'), gt)
        cv2.imwrite(str(root / 'data' / 'lq' / f'{index}.png'), cv2.resize(gt, (size // factor, size // factor)))


@pytest.fixture
def ranker_root(tmp_path):
    torch.manual_seed(0)
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               tmp_path / 'ranker.pth')
    return tmp_path


def with_phases(options: dict) -> dict:
    opt = copy.deepcopy(options)
    for phase, dataset in opt['datasets'].items():
        dataset.update(phase=phase.split('_')[0], scale=opt.get('scale'))
    return opt


def sr_options(root: Path, scale: int, network: dict) -> dict:
    """BasicSR's SRModel (options/train_SRResNet_demo.yml's model) with ``network`` as network_g."""
    options = tiny_options(root, perceptual=False)
    options.update(name='tiny_sr', model_type='SRModel', scale=scale, network_g=network)
    for key in ('network_d', 'network_r'):
        options.pop(key)
    options['path'].pop('pretrain_network_r')
    options['train'] = {key: options['train'][key] for key in ('optim_g', 'scheduler', 'total_iter', 'pixel_opt')}
    return options


def test_ranksrgan_model_refuses_a_scale_its_generator_does_not_have(ranker_root):
    options = tiny_options(ranker_root, perceptual=False)
    options['scale'] = 2  # network_g: RankSRGANGenerator upscale 4
    with pytest.raises(ValueError) as error:
        build_model(with_phases(options))
    message = str(error.value)
    assert message.startswith("scale 2 (the options' top-level scale) does not match network_g (RankSRGANGenerator): "
                              'it upscales x4')
    assert 'Set scale: 4 (with x4 data), or give network_g.upscale: 2.' in message
    options['scale'] = 4
    assert build_model(with_phases(options)).generator_scale == 4


@pytest.mark.parametrize('network, key', [
    ({'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4}, 'network_g.upscale: 2'),
    ({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
      'scale': 4}, 'network_g.scale: 2')])
def test_basicsr_models_of_the_plugin_entry_refuse_another_scale(tmp_path, network, key):
    """BasicSR's own SRModel (MSRResNet, RRDBNet) built by the train and test pipelines the plugin runs."""
    patch_basicsr_train()
    options = sr_options(tmp_path, 2, network)
    for pipeline in (basicsr.train, basicsr.test):
        with pytest.raises(ValueError, match=rf'does not match network_g \({network["type"]}\): it upscales x4.*{key}'):
            pipeline.build_model(with_phases(options))
    test_options = with_phases(sr_options(tmp_path, 4, network))
    test_options['is_train'] = False
    assert basicsr.test.build_model(test_options).generator_scale == 4


def test_a_dataset_scale_without_a_top_level_one_is_checked(tmp_path):
    patch_basicsr_train()
    options = with_phases(sr_options(tmp_path, 4, {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1,
                                                   'upscale': 4}))
    del options['scale']
    options['datasets']['val']['scale'] = 3
    with pytest.raises(ValueError, match=r'^datasets.val.scale 3 does not match network_g \(MSRResNet\)'):
        basicsr.train.build_model(options)
    options['datasets']['val']['scale'] = 4.0
    with pytest.raises(ValueError, match='datasets.val.scale must be a positive integer, got 4.0'):
        basicsr.train.build_model(options)


def test_train_entry_refuses_the_scale_before_reading_data(tmp_path):
    """``ranksrgan-train -opt`` with scale 2, x2 data and an x4 MSRResNet: was a torch shape error in the L1 loss."""
    write_pairs(tmp_path, factor=2)
    options = sr_options(tmp_path, 2, {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4})
    options['datasets']['train']['gt_size'] = 16
    options_file = tmp_path / 'sr.yml'
    options_file.write_text(yaml.safe_dump(options))
    run = subprocess.run([sys.executable, '-m', 'ranksrgan_plugin.train', '-opt', str(options_file)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode != 0 and last.startswith(f'ranksrgan_plugin.utils.upscaler.ScaleError: {options_file}: '
                                                   "scale 2 (the options' top-level scale) does not match network_g "
                                                   '(MSRResNet): it upscales x4'), run.stderr[-2000:]
    assert not list(tmp_path.glob('experiments/tiny_sr/models/*.pth'))


# ------------------------------------------------------------------------------------------------
# fp16 training states record what wrote them


def test_fp16_training_state_records_what_wrote_it(ranker_root):
    patch_basicsr_train()
    options = with_phases(tiny_options(ranker_root, perceptual=False))
    options['train']['precision'] = 'fp16'
    experiment = ranker_root / 'experiments' / 'fp16'
    options['path'].update(training_states=str(experiment / 'training_states'), models=str(experiment / 'models'))
    (experiment / 'training_states').mkdir(parents=True)
    model = build_model(options)
    model.scalers['g'].scale(torch.ones(()))  # the scaler's first use (it starts lazily)
    model.scalers['g'].update(1024.0)  # a scale a run reached
    model.save_training_state(epoch=0, current_iter=2)
    path = str(experiment / 'training_states' / '2.state')
    state = read_training_state(path)
    assert state['written_by'] == {'model_type': 'RankSRGANModel', 'name': 'tiny_ranksrgan', 'networks': {
        'network_g': 'RankSRGANGenerator', 'network_d': 'VGGStyleDiscriminatorAnySize', 'network_r': 'RankerVGG'}}
    assert state['scalers']['g']['scale'] == 1024.0 and len(state['optimizers']) == 2
    other = copy.deepcopy(options)  # an SRGANModel also has 2 optimizers: only the record tells the states apart
    other.update(model_type='SRGANModel', auto_resume=False)
    other['path']['resume_state'] = path
    with pytest.raises(ValueError, match=f'{path} \\(named by path.resume_state\\) cannot resume this SRGANModel run: '
                                         'it is a state written by RankSRGANModel'):
        basicsr.train.load_resume_state(other)


# ------------------------------------------------------------------------------------------------
# MMagic init_model: the checkpoint named when it does not fit

TEST_CONFIG = Path(__file__).resolve().parents[1] / 'options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm.py'


def tiny_test_config():
    from mmengine.config import Config

    cfg = Config.fromfile(str(TEST_CONFIG))
    cfg.model.generator = dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=1,
                               upscale_factor=4)
    return cfg


def test_init_model_refuses_a_basicsr_msrresnet_file_saying_why(tmp_path):
    """Was torch's ``RuntimeError: Missing key(s) ... trunk_net...``, naming no file."""
    from basicsr.archs.srresnet_arch import MSRResNet

    from ranksrgan_plugin.mmagic.inference import init_model

    path = str(tmp_path / 'net_g_5000.pth')
    torch.save({'params': MSRResNet(num_feat=8, num_block=1).state_dict()}, path)
    with pytest.raises(ValueError) as error:
        init_model(tiny_test_config(), path)
    message = str(error.value)
    assert message.startswith(f"{path} (named by init_model's checkpoint) is a BasicSR checkpoint")
    assert 'a LeakyReLU after each pixel shuffle' in message


def test_init_model_names_a_checkpoint_of_another_network(tmp_path):
    from ranksrgan_plugin.mmagic.inference import init_model

    path = str(tmp_path / 'ranker.pth')
    ranker = RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'})
    torch.save({'state_dict': {f'ranker.{k}': v for k, v in ranker.state_dict().items()}}, path)
    with pytest.raises(RuntimeError) as error:  # a RuntimeError as torch's strict load was
        init_model(tiny_test_config(), path)
    message = str(error.value)
    assert message.startswith(f"{path} (named by init_model's checkpoint) does not fit the generator of the config "
                              '(MSRResNet): the file is an mmengine (MMagic) checkpoint')
    assert 'ranker' in message and isinstance(error.value, ValueError)


# ------------------------------------------------------------------------------------------------
# MMagic: the config's scale against the generator


def x2_generator_config(root: Path, work: Path):
    """The shipped RankSRGAN config (scale = 4, x4 data), shrunk, with an x2 generator."""
    from test_mmagic_training import RANKSRGAN_CONFIG, tiny_sr_config

    cfg = tiny_sr_config(root, RANKSRGAN_CONFIG, work, max_iters=2)
    cfg.model.generator.upscale_factor = 2
    return cfg


def test_mmagic_train_entry_refuses_a_config_scale_before_reading_data(sr_workspace, tmp_path, monkeypatch,  # noqa: F811
                                                                      capsys):
    """``tools/mmagic_train.py``: was a torch shape error in the pixel loss after the first batch was read."""
    import mmagic.datasets.transforms as transforms

    from ranksrgan_plugin.mmagic.train import main, train

    cfg = x2_generator_config(sr_workspace, tmp_path / 'work')
    monkeypatch.setattr(transforms.LoadImageFromFile, 'transform', lambda *_: pytest.fail('data was read'))
    with pytest.raises(ValueError) as error:
        train(cfg)
    assert str(error.value).startswith(f'{cfg.filename}: scale = 4, but its model.generator (MSRResNet) upscales x2')
    cfg = x2_generator_config(sr_workspace, tmp_path / 'work2')
    cfg.scale = 2  # the top-level value alone: the pipeline's SetValues keeps the 4 the file gave it
    config = tmp_path / 'x2.py'
    cfg.dump(str(config))
    with pytest.raises(SystemExit) as exit_status:
        main([str(config)])
    assert exit_status.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f'mmagic_train: {config}: train_dataloader.dataset.pipeline[2].dictionary.scale '
                              '(SetValues) = 4, but its model.generator (MSRResNet) upscales x2'), message
    assert 'Traceback' not in message


@pytest.mark.parametrize('loop', ['train', 'val'])
def test_mmagic_runner_refuses_outputs_of_another_scale_than_the_gt(sr_workspace, tmp_path, loop):  # noqa: F811
    """MMagic's own tools/train.py (a Runner): was a torch shape error in the pixel loss / the metrics' shape error."""
    from mmengine.runner import Runner

    cfg = x2_generator_config(sr_workspace, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as error:
        runner.train() if loop == 'train' else runner.val()
    inputs = '8x8' if loop == 'train' else '26x26'
    assert str(error.value).startswith(f'model.generator (MSRResNet) maps the {inputs} inputs of this batch to ')
    assert '(x2), but their GT images are' in str(error.value) and '(x4)' in str(error.value)
