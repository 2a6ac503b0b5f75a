"""The speed path that cannot poison a run (issue 31, items 1-4): the non-finite guard, channels_last before DDP,
fused optimisers that leave the user's choice alone, and MMagic bf16 without a gradient scaler."""
import copy
import sys
import time
import warnings
from unittest import mock

import pytest
import torch
from basicsr.models import build_model
from rank_set_factory import make_rank_set
from test_ranksrgan_model import _build, _free_port, _run, _tiny_batch, tiny_options, workspace  # noqa: F401
from test_train_ranker import _tiny_ranker_options

from ranksrgan_plugin.compat.basicsr import patch_basicsr_train
from ranksrgan_plugin.models.training_precision import GUARD_STATE_KEY, NonFiniteTrainingError, fused_optimizer_kwargs
from ranksrgan_plugin.utils.training_state import read_training_state

BUCKET_WARNING = 'Grad strides do not match bucket view strides'


def with_train(options, **values):
    options = copy.deepcopy(options)
    options['train'].update(values)
    return options


def nan_gt_batch(seed=1):
    batch = _tiny_batch(seed)
    batch['gt'][0, 0, 0, 0] = float('nan')
    return batch


def snapshot(model, names):
    """Deep copies of whole state_dicts (networks and optimisers)."""
    return {name: copy.deepcopy(getattr(model, name).state_dict()) for name in names}


def assert_same_state(before, after, where):
    if isinstance(before, torch.Tensor):
        assert torch.equal(before, after) or (before.isnan() == after.isnan()).all() and torch.equal(
            before.nan_to_num(), after.nan_to_num()), where
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for key in before:
            assert_same_state(before[key], after[key], f'{where}.{key}')
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after), where
        for index, (one, other) in enumerate(zip(before, after)):
            assert_same_state(one, other, f'{where}[{index}]')
    else:
        assert before == after, where


# ------------------------------------------------------------------------------------------------
# 1. the non-finite guard


@pytest.mark.parametrize('relativistic', [False, True])
def test_one_nan_gt_pixel_leaves_every_network_and_optimiser_as_before(workspace, relativistic):  # noqa: F811
    """L1's gradient at a NaN target is 0: the gradients are finite, the loss is not. Nothing may step, and the
    discriminator's BatchNorm statistics of the bad forward must not stay."""
    options = with_train(tiny_options(workspace, perceptual=False), ema_decay=0.9, relativistic=relativistic)
    torch.manual_seed(0)
    model = _build(options)
    model.feed_data(_tiny_batch(0))
    model.optimize_parameters(1)  # a finite step first: Adam has state, the scheduler and BatchNorm have moved
    names = ('net_g', 'net_d', 'net_g_ema', 'optimizer_g', 'optimizer_d')
    before = snapshot(model, names)
    model.feed_data(nan_gt_batch())
    model.optimize_parameters(2)
    assert torch.isnan(torch.tensor(model.log_dict['l_g_pix']))
    assert model.log_dict['nonfinite_steps'] == 1.0
    after = snapshot(model, names)
    for name in names:
        assert_same_state(before[name], after[name], name)
    assert all(torch.isfinite(value).all() for value in model.net_d.state_dict().values())
    model.feed_data(_tiny_batch(2))
    model.optimize_parameters(3)  # a finite step steps again
    assert not torch.equal(model.net_g.conv_first.weight, before['net_g']['conv_first.weight'])
    assert model._nonfinite_run == 0 and model.nonfinite_steps == 1


def test_ranker_model_nan_image_keeps_batchnorm_statistics(tmp_path):
    root = str(make_rank_set(tmp_path / 'rank', storage='folder', keys=['k000', 'k001', 'k002']))
    options = _tiny_ranker_options(root, root, total_iter=4)
    options.update(is_train=True, dist=False, rank=0, world_size=1)
    for phase, dataset in options['datasets'].items():
        dataset['phase'] = phase
    options['datasets']['train']['io_backend'] = {'type': 'disk'}
    torch.manual_seed(0)
    model = build_model(options)
    generator = torch.Generator().manual_seed(0)
    batch = {'img_a': torch.rand(2, 3, 32, 32, generator=generator), 'img_b': torch.rand(2, 3, 32, 32,
                                                                                         generator=generator),
             'label_a': torch.tensor([1.0, 2.0]), 'label_b': torch.tensor([2.0, 1.0])}
    model.feed_data(batch)
    model.optimize_parameters(1)
    before = snapshot(model, ('net_r', 'optimizer_r'))
    poisoned = dict(batch, img_a=batch['img_a'].clone())
    poisoned['img_a'][0, 0, 0, 0] = float('nan')
    model.feed_data(poisoned)
    model.optimize_parameters(2)
    assert model.log_dict['nonfinite_steps'] == 1.0
    after = snapshot(model, ('net_r', 'optimizer_r'))
    for name in before:
        assert_same_state(before[name], after[name], name)


def test_guard_counts_live_in_the_training_state(workspace, tmp_path):  # noqa: F811
    options = with_train(tiny_options(workspace, perceptual=False), nonfinite_limit=3)
    options['path']['training_states'] = str(tmp_path)
    model = _build(options)
    model.feed_data(nan_gt_batch())
    model.optimize_parameters(1)
    model.optimize_parameters(2)
    assert (model.nonfinite_steps, model._nonfinite_run) == (2, 2)
    model.save_training_state(epoch=0, current_iter=2)
    state = read_training_state(str(tmp_path / '2.state'))
    assert state[GUARD_STATE_KEY]['skipped'] == 2 and state[GUARD_STATE_KEY]['run'] == 2
    resumed = _build(options)
    resumed.resume_training(state)
    assert (resumed.nonfinite_steps, resumed._nonfinite_run) == (2, 2)
    resumed.feed_data(nan_gt_batch())
    with pytest.raises(NonFiniteTrainingError, match=r'Iteration 3: non-finite gradients for 3 iterations in a row '
                                                     r'\(train.nonfinite_limit 3, precision fp32\)'):
        resumed.optimize_parameters(3)  # the run of skipped iterations goes on across the resume
    older = {key: value for key, value in state.items() if key != GUARD_STATE_KEY}  # a state from before the counts
    fresh = _build(options)
    fresh.resume_training(older)
    assert (fresh.nonfinite_steps, fresh._nonfinite_run) == (0, 0)


def test_fp16_scale_search_is_not_counted_towards_the_limit(workspace):  # noqa: F811
    """A scaler that needs more than nonfinite_limit halvings (started at 2**40 here) trains instead of aborting."""
    options = with_train(tiny_options(workspace, perceptual=False), precision='fp16', nonfinite_limit=3)
    torch.manual_seed(0)
    model = _build(options)
    for scaler in model.scalers.values():
        scaler._init_scale = 2.0 ** 40
    weight = model.net_g.conv_first.weight.detach().clone()
    for step in range(1, 41):
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
        if model._scales_found == {'g', 'd'}:
            break
    assert model._scales_found == {'g', 'd'}, model.scalers['d'].get_scale()
    assert model.scale_search_steps > 3 and model.nonfinite_steps == 0
    assert model.log_dict['fp16_scale_search_steps'] == float(model.scale_search_steps)
    assert not torch.equal(weight, model.net_g.conv_first.weight)


def test_fp16_guard_reads_the_scalers_found_inf_in_one_sync(workspace):  # noqa: F811
    """Per iteration the guard reads the device once (BasicSR's log values aside); the scaler's own step, which
    reads its found-inf again, is not called."""
    options = with_train(tiny_options(workspace, perceptual=False), precision='fp16')
    options['train']['ranker_monitor'] = {'enabled': False}
    torch.manual_seed(0)
    model = _build(options)
    for step in (1, 2, 3):  # past the scale search
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
    reads = []
    originals = {name: getattr(torch.Tensor, name) for name in ('item', 'tolist', '__bool__', '__float__')}

    def counting(name):
        def read(self, *args, **kwargs):
            reads.append(name)
            return originals[name](self, *args, **kwargs)
        return read

    with mock.patch.object(model, 'reduce_loss_dict', lambda loss_dict: dict(loss_dict)):
        for name in originals:
            setattr(torch.Tensor, name, counting(name))
        try:
            model.feed_data(_tiny_batch(4))
            model.optimize_parameters(4)
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)
    assert reads == ['tolist'], reads


def test_guard_off_with_null_and_zero_refused(workspace):  # noqa: F811
    options = with_train(tiny_options(workspace, perceptual=False), nonfinite_limit=None)
    torch.manual_seed(0)
    model = _build(options)
    weight = model.net_g.conv_first.weight.detach().clone()
    model.feed_data(nan_gt_batch())
    model.optimize_parameters(1)  # applied as in BasicSR: the generator steps on its finite gradients
    assert not torch.equal(weight, model.net_g.conv_first.weight)
    assert model.nonfinite_steps == 0 and 'nonfinite_steps' not in model.log_dict
    with pytest.raises(ValueError, match=r'train\.nonfinite_limit must be a whole number >= 1, got 0 \(null turns '
                                         r'the non-finite guard off\)'):
        _build(with_train(tiny_options(workspace, perceptual=False), nonfinite_limit=0))


def test_guard_cost_on_the_cpu(workspace):  # noqa: F811
    """The figure the docs give: a tiny step with and without the guard (CPU; printed with -s)."""
    seconds = {}
    for label, limit in (('guard', 10), ('off', None)):
        torch.manual_seed(0)
        model = _build(with_train(tiny_options(workspace, perceptual=False), nonfinite_limit=limit))
        batch = _tiny_batch(0)
        model.feed_data(batch)
        model.optimize_parameters(1)
        start = time.perf_counter()
        for step in range(2, 22):
            model.optimize_parameters(step)
        seconds[label] = (time.perf_counter() - start) / 20
    print(f"CPU ms per tiny step: guard {seconds['guard'] * 1e3:.2f}, off {seconds['off'] * 1e3:.2f}")
    assert seconds['guard'] < 3 * seconds['off']  # a loose bound on a shared 2-core box


# ------------------------------------------------------------------------------------------------
# 2. channels_last before DDP wraps the networks


def test_networks_are_channels_last_before_ddp_wraps_them(workspace, tmp_path):  # noqa: F811
    from torch.nn.parallel import DistributedDataParallel

    patch_basicsr_train()  # the CPU DDP wrapping of BaseModel.model_to_device
    options = with_train(tiny_options(workspace, perceptual=False), channels_last=True)
    options['dist'] = True
    wrapped = []
    upstream = DistributedDataParallel.__init__

    def recording(self, module, *args, **kwargs):
        wrapped.append(all(p.is_contiguous(memory_format=torch.channels_last)
                           for p in module.parameters() if p.dim() == 4))
        upstream(self, module, *args, **kwargs)

    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        with mock.patch.object(DistributedDataParallel, '__init__', recording), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            model = _build(options)
            for step in (1, 2):
                model.feed_data(_tiny_batch(step))
                model.optimize_parameters(step)
    finally:
        torch.distributed.destroy_process_group()
    assert wrapped == [True, True]  # net_g and net_d
    assert not [w for w in caught if BUCKET_WARNING in str(w.message)]


def test_torchrun_channels_last_has_no_bucket_stride_warning(workspace):  # noqa: F811
    options = with_train(tiny_options(workspace, total_iter=2, perceptual=False), channels_last=True)
    options['val']['val_freq'] = 2
    torchrun = (sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}')
    output = _run(workspace, options, '--launcher', 'pytorch', launcher=torchrun)
    assert 'World size (gpu number): 2' in (workspace / 'experiments' / 'tiny_ranksrgan').joinpath(
        next(p.name for p in (workspace / 'experiments' / 'tiny_ranksrgan').glob('train_*.log'))).read_text()
    assert BUCKET_WARNING not in output


def test_basicsr_vgg_discriminator_trains_in_channels_last(workspace):  # noqa: F811
    """basicsr 1.4.2's own VGGStyleDiscriminator flattens with .view: made to work (compat.basicsr)."""
    options = with_train(tiny_options(workspace, perceptual=False), channels_last=True)
    options['network_d'] = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4, 'input_size': 128}
    torch.manual_seed(0)
    model = _build(options)
    generator = torch.Generator().manual_seed(0)
    model.feed_data({'lq': torch.rand(2, 3, 32, 32, generator=generator),
                     'gt': torch.rand(2, 3, 128, 128, generator=generator)})
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.log_dict['l_d_real']))
    net_d = model.net_d.eval()
    x = torch.rand(1, 3, 128, 128, generator=generator)
    expected = copy.deepcopy(net_d).to(memory_format=torch.contiguous_format)(x.contiguous())
    torch.testing.assert_close(net_d(x.contiguous(memory_format=torch.channels_last)), expected, rtol=1e-4,
                               atol=1e-6)


# ------------------------------------------------------------------------------------------------
# 3. fused optimisers leave what the user set


def test_fused_optimizers_never_override_the_users_choice(workspace):  # noqa: F811
    assert fused_optimizer_kwargs('Adam', {'foreach': True}, 'cuda') == {'foreach': True}
    assert fused_optimizer_kwargs('Adam', {'fused': False}, 'cuda') == {'fused': False}
    assert fused_optimizer_kwargs('Adam', {}, 'cuda') == {'fused': True}
    assert fused_optimizer_kwargs('Adam', {}, 'cpu') == {'foreach': True}
    options = with_train(tiny_options(workspace, perceptual=False), fused_optimizers=True)
    options['train']['optim_g']['fused'] = True  # Adam refuses fused and foreach together
    model = _build(options)
    assert model.optimizer_g.defaults['fused'] is True and not model.optimizer_g.defaults['foreach']
    assert model.optimizer_d.defaults['foreach'] is True


# ------------------------------------------------------------------------------------------------
# 4. MMagic bf16: no gradient scaler


def _amp_wrapper(cls, **kwargs):
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    net = torch.nn.Linear(2, 1)
    with mock.patch.object(amp_optimizer_wrapper, 'is_cuda_available', lambda: True), \
            mock.patch.object(torch.cuda, 'is_available', lambda: True):  # as on a GPU: a live CUDA scaler
        return net, cls(optimizer=torch.optim.SGD(net.parameters(), lr=0.1), **kwargs)


@pytest.mark.parametrize('wrapper', ['AmpOptimWrapper', 'AnyDeviceAmpOptimWrapper'])
def test_mmagic_bf16_amp_wrapper_has_no_grad_scaler(wrapper):
    from mmagic.registry import OPTIM_WRAPPERS

    import ranksrgan_plugin.mmagic  # noqa: F401  (the compat workarounds, the wrapper's registration)

    cls = OPTIM_WRAPPERS.get(wrapper)
    assert _amp_wrapper(cls, dtype='float16')[1].loss_scaler.is_enabled()  # fp16 keeps upstream's scaler
    net, bf16 = _amp_wrapper(cls, dtype='bfloat16')
    assert not bf16.loss_scaler.is_enabled()
    net(torch.ones(1, 2)).sum().mul(float('inf')).backward()  # a step the scaler would have skipped
    before = net.weight.detach().clone()
    bf16.step()
    assert not torch.equal(before, net.weight)  # stepped (no scaler decides anything)
    assert bf16.state_dict()['loss_scaler'] == {}
    with pytest.raises(ValueError, match=r"loss_scale=512\.0 with dtype='bfloat16': only float16 runs scale their "
                                         r"losses\. Remove loss_scale, or set dtype='float16'"):
        _amp_wrapper(cls, dtype='bfloat16', loss_scale=512.0)
