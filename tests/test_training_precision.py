"""train.precision (bf16, fp16 + scaler), train.channels_last and the non-finite guard of the BasicSR models."""
import copy
import re
import shutil

import pytest
import torch
from rank_set_factory import make_rank_set
from test_ranksrgan_model import _build, _tiny_batch, tiny_options, workspace  # noqa: F401  (fixture)
from test_train_ranker import REPO_ROOT, _run_train, _tiny_ranker_options

from ranksrgan_plugin.archs.discriminator_arch import VGGStyleDiscriminatorAnySize
from ranksrgan_plugin.models.training_precision import NonFiniteTrainingError, TrainingPrecision
from ranksrgan_plugin.utils.training_state import read_training_state

LOSSES = ('l_g_pix', 'l_g_gan', 'l_g_rank', 'l_d_real', 'l_d_fake')


def one_step(options, batch=None, seed=0):
    torch.manual_seed(seed)
    model = _build(options)
    model.feed_data(batch or _tiny_batch())
    model.optimize_parameters(1)
    return model


def with_train(options, **values):
    options = copy.deepcopy(options)
    options['train'].update(values)
    return options


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_reduced_precision_step_is_finite_and_close_to_fp32(workspace, precision):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    reference = one_step(options).log_dict
    reduced = one_step(with_train(options, precision=precision)).log_dict
    for name in LOSSES:
        # bf16 keeps 8 mantissa bits (~0.4% per rounding), fp16 11: a few % after a forward pass of the
        # tiny networks; the losses themselves are computed on fp32 values
        assert torch.isfinite(torch.tensor(reduced[name])), name
        assert reduced[name] == pytest.approx(reference[name], rel=0.05, abs=1e-3), name
    if precision == 'bf16':  # fp16's scaler starts at 2**16 and skips its first overflowing steps (counted)
        assert 'nonfinite_steps' not in reduced
    model = one_step(with_train(options, precision=precision))
    for step in (2, 3):  # a few more iterations stay finite
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
        assert all(torch.isfinite(torch.tensor(model.log_dict[name])) for name in LOSSES), step


def test_fp16_scalers_are_saved_and_restored(workspace, tmp_path):  # noqa: F811
    options = with_train(tiny_options(workspace, perceptual=False), precision='fp16')
    options['path']['training_states'] = str(tmp_path)
    model = one_step(options)
    assert set(model.scalers) == {'g', 'd'}
    model.scalers['g'].update(1024.0)  # a scale a run reached
    model.save_training_state(epoch=0, current_iter=1)
    state = read_training_state(str(tmp_path / '1.state'))
    assert state['scalers']['g']['scale'] == 1024.0
    resumed = _build(options)
    resumed.resume_training(state)
    assert resumed.scalers['g'].get_scale() == 1024.0


def test_channels_last_gives_the_same_step(workspace):  # noqa: F811
    """channels_last changes only the summation order: the losses and the step's gradients agree within rounding.

    Weights after the step are not compared: Adam's first update is +-lr whatever a gradient's size, so a
    near-zero gradient whose sign flips with the summation order moves a weight by 2 * lr (seen on AMD EPYC).
    """
    options = tiny_options(workspace, perceptual=False)
    reference = one_step(options)
    channels_last = one_step(with_train(options, channels_last=True))
    assert channels_last.net_g.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    for name in LOSSES:
        assert channels_last.log_dict[name] == pytest.approx(reference.log_dict[name], rel=1e-4, abs=1e-6), name
    for network in ('net_g', 'net_d'):  # the gradients of the last backward of each network's step
        for (key, param), other in zip(getattr(reference, network).named_parameters(),
                                       getattr(channels_last, network).parameters()):
            scale = param.grad.abs().max().item()
            torch.testing.assert_close(other.grad, param.grad, rtol=1e-3, atol=1e-4 * scale + 1e-12,
                                       msg=f'{network}.{key}')


def test_nonfinite_step_is_skipped_logged_and_a_run_of_them_stops_training(workspace):  # noqa: F811
    options = with_train(tiny_options(workspace, perceptual=False), nonfinite_limit=3)
    torch.manual_seed(0)
    model = _build(options)
    before = copy.deepcopy(model.net_g.state_dict())
    poisoned = _tiny_batch()
    poisoned['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(poisoned)
    model.optimize_parameters(1)
    assert model.log_dict['nonfinite_steps'] == 1.0
    assert all(torch.equal(value, model.net_g.state_dict()[key]) for key, value in before.items())  # no step
    model.feed_data(_tiny_batch(1))
    model.optimize_parameters(2)  # a finite step ends the run of skipped ones
    assert model.nonfinite_steps == 1 and model._nonfinite_run == 0
    model.feed_data(poisoned)
    model.optimize_parameters(3)
    model.optimize_parameters(4)
    with pytest.raises(NonFiniteTrainingError, match=r'Iteration 5: non-finite gradients for 3 iterations in a row '
                                                     r'\(train.nonfinite_limit 3, precision fp32\); losses: .*l_g_pix'):
        model.optimize_parameters(5)


def test_unknown_precision_is_an_error(workspace):  # noqa: F811
    with pytest.raises(ValueError, match="train.precision must be one of"):
        _build(with_train(tiny_options(workspace, perceptual=False), precision='int8'))


def test_ranker_trains_and_resumes_in_fp16_with_channels_last(tmp_path):
    """BasicSR's own pipeline: 2 Ranker iterations in fp16 + channels_last, then --auto_resume to 4 (scaler
    restored)."""
    (tmp_path / 'basicsr').mkdir()
    shutil.copy(REPO_ROOT / 'basicsr' / 'train.py', tmp_path / 'basicsr' / 'train.py')
    train_root = str(make_rank_set(tmp_path / 'rank' / 'train', storage='lmdb', keys=[f'k{i:03d}' for i in range(6)]))
    val_root = str(make_rank_set(tmp_path / 'rank' / 'val', storage='folder', keys=['v000', 'v001'], seed=1))
    options = _tiny_ranker_options(train_root, val_root, total_iter=2)
    options['train'].update(precision='fp16', channels_last=True)
    _run_train(tmp_path, options)
    state = read_training_state(str(tmp_path / 'experiments' / 'tiny_ranker' / 'training_states' / '2.state'))
    assert set(state['scalers']) == {'r'}
    options['train']['total_iter'] = 4
    log = _run_train(tmp_path, options, '--auto_resume')
    assert 'Resuming training from epoch' in log and re.search(r'iter:\s+4, .*l_rank: [0-9.e+-]+', log)


def test_compiled_networks_train_and_keep_their_checkpoint_keys(workspace, tmp_path):  # noqa: F811
    # the eager backend runs TorchDynamo's capture without a C++ build (a GPU run uses the default, inductor)
    options = with_train(tiny_options(workspace, perceptual=False), compile={'backend': 'eager'},
                         fused_optimizers=True)
    options['path']['models'] = str(tmp_path)
    model = one_step(options)
    assert all(torch.isfinite(torch.tensor(model.log_dict[name])) for name in LOSSES)
    assert model.optimizer_g.defaults['foreach'] is True  # fused=True on CUDA
    model.save_network(model.net_g, 'net_g', 1)
    saved = torch.load(tmp_path / 'net_g_1.pth', weights_only=True)['params']
    assert list(saved) == list(_build(tiny_options(workspace, perceptual=False)).net_g.state_dict())
    resumed_options = copy.deepcopy(options)  # what a resume does: the saved weights back into a compiled model
    resumed_options['path']['pretrain_network_g'] = str(tmp_path / 'net_g_1.pth')
    resumed = _build(resumed_options)
    assert all(torch.equal(value, saved[key]) for key, value in resumed.net_g.state_dict().items())
    with pytest.raises(ValueError, match='train.compile must be'):
        _build(with_train(tiny_options(workspace, perceptual=False), compile=3))


def test_discriminator_takes_channels_last_inputs():
    """BasicSR's forward flattens with .view, which channels_last features (> 1x1) would break."""
    torch.manual_seed(0)
    net = VGGStyleDiscriminatorAnySize(3, 8, input_size=96).eval()
    x = torch.rand(2, 3, 96, 96)
    expected = net(x)
    net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-6)


def test_precision_state_is_set_before_basicsr_builds_anything():
    """Every attribute of the precision family exists before BasicSR's __init__ (which builds the networks and, in
    training, calls init_training_settings): no method depends on another having run first."""
    seen = {}

    class Base:  # stands for BasicSR's BaseModel
        def __init__(self, opt):
            seen.update((name, getattr(self, name)) for name in (
                'precision', 'channels_last', 'nonfinite_limit', 'compile_options', 'nonfinite_steps',
                'scale_search_steps', 'scalers'))
            self.device = torch.device('cpu')

    class Model(TrainingPrecision, Base):
        optimizer_names = ('g', 'd')

    model = Model({'is_train': True, 'train': {'precision': 'fp16', 'channels_last': True, 'nonfinite_limit': 3}})
    assert seen == {'precision': 'fp16', 'channels_last': True, 'nonfinite_limit': 3, 'compile_options': None,
                    'nonfinite_steps': 0, 'scale_search_steps': 0, 'scalers': {}}
    assert set(model.scalers) == {'g', 'd'} and model.autocast() is not None and model.log_guard({}) is None
    tested = Model({'is_train': False, 'train': {'precision': 'fp16'}})  # a test run: the original's fp32
    assert (tested.precision, tested.channels_last, tested.nonfinite_limit, tested.scalers) == ('fp32', False, None, {})

