"""The Ranker-exploitation monitor: GT scored beside the output, the share beating GT, one warning per period."""
import logging

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from mmagic.registry import MODELS
from mmengine.logging import MessageHub, MMLogger
from test_mmagic_training import _tiny_ranksrgan, sr_workspace  # noqa: F401  (fixture)
from test_ranksrgan_model import _build, tiny_options, workspace  # noqa: F401  (fixture)
from torch import nn

from ranksrgan_plugin.rank_content import RankerExploitationMonitor, monitor_settings, uses_batch_statistics


@MODELS.register_module()
@ARCH_REGISTRY.register()
class SharpnessScoreRanker(nn.Module):
    """A stand-in Ranker: score = ``scale`` x mean absolute horizontal/vertical difference of the image.

    ``scale`` > 0 scores sharp images worse (a sane NIQE-like direction for noise); ``scale`` < 0 scores any
    sharper image better, so a noisy output "beats" a flat GT: a Ranker the generator fools.
    """

    def __init__(self, scale: float = 100.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sharpness = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + \
            (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
        return (self.scale * sharpness).reshape(-1, 1)


def noisy_lq_flat_gt(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(2, 3, 8, 8, generator=generator), 'gt': torch.full((2, 3, 32, 32), 0.5)}


def sharpness_ranker_options(root, scale: float, **monitor) -> dict:
    torch.save({'params': SharpnessScoreRanker(scale).state_dict()}, root / 'sharpness_ranker.pth')
    options = tiny_options(root, perceptual=False)
    options['network_r'] = {'type': 'SharpnessScoreRanker', 'scale': scale}
    options['path']['pretrain_network_r'] = str(root / 'sharpness_ranker.pth')
    options['train']['ranker_monitor'] = monitor
    return options


@pytest.fixture
def basicsr_warnings():
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def train_steps(model, iterations: int) -> list:
    logs = []
    for step in range(1, iterations + 1):
        model.feed_data(noisy_lq_flat_gt(step))
        model.optimize_parameters(step)
        logs.append(dict(model.log_dict))
    return logs


def test_fooled_ranker_warns_once_per_period(workspace, basicsr_warnings):  # noqa: F811
    model = _build(sharpness_ranker_options(workspace, scale=-100.0, every=1, period=2))
    logs = train_steps(model, 4)
    assert all(log['out_beats_gt'] == 1.0 and log['gt_r'] == 0.0 for log in logs)
    assert all(log['out_r'] < -0.5 for log in logs)
    messages = [record.getMessage() for record in basicsr_warnings]
    assert len(messages) == 2  # iterations 2 and 4, the period's ends
    assert 'iterations 1-2, 2 monitored steps' in messages[0] and 'iterations 3-4' in messages[1]
    assert 'better than their own GT' in messages[0] and '100%' in messages[0]
    assert 'lower rank-content weight' in messages[0]


def test_sane_ranker_does_not_warn(workspace, basicsr_warnings):  # noqa: F811
    model = _build(sharpness_ranker_options(workspace, scale=100.0, every=1, period=2))
    logs = train_steps(model, 4)
    assert all(log['out_beats_gt'] == 0.0 and log['out_r'] > log['gt_r'] for log in logs)
    assert not basicsr_warnings


def test_monitor_defaults_follow_the_logger_and_validation(workspace):  # noqa: F811
    options = sharpness_ranker_options(workspace, scale=-100.0)
    options['logger']['print_freq'] = 3
    model = _build(options)
    monitor = model.rank_content.rankers[''].monitor
    assert (monitor.every, monitor.period, monitor.margin, monitor.share_limit) == (3, 2, 0.5, 0.5)
    logs = train_steps(model, 3)
    assert [('gt_r' in log) for log in logs] == [False, False, True]  # only logged iterations pay the GT forward


def test_monitor_can_be_turned_off_and_refuses_unknown_keys(workspace):  # noqa: F811
    model = _build(sharpness_ranker_options(workspace, scale=-100.0, enabled=False))
    assert model.rank_content.rankers[''].monitor is None
    assert 'gt_r' not in train_steps(model, 1)[0]
    with pytest.raises(ValueError, match=r"train.ranker_monitor: unknown option 'limit'"):
        _build(sharpness_ranker_options(workspace, scale=-100.0, limit=0.3))


def test_monitor_does_not_change_training(workspace):  # noqa: F811
    weights = []
    for enabled in (True, False):
        torch.manual_seed(0)
        model = _build(sharpness_ranker_options(workspace, scale=-100.0, every=1, enabled=enabled))
        train_steps(model, 2)
        weights.append([p.detach().clone() for p in model.net_g.parameters()])
    for with_monitor, without in zip(*weights):
        torch.testing.assert_close(with_monitor, without, rtol=0, atol=0)


def test_margin_share_and_sign():
    def ranker(gt):
        return torch.zeros(gt.shape[0], 1)

    monitor = RankerExploitationMonitor(margin=0.5, share_limit=0.5, period=3)
    images = torch.zeros(4, 3, 8, 8)
    logged = monitor.measure(ranker, images, images, torch.tensor([-1.0, -0.6, -0.4, 2.0]))
    assert logged['out_beats_gt'].item() == 0.5 and logged['gt_r'].item() == 0.0  # -0.4: within the margin
    assert monitor.end_of_period(2) is None  # not a period end
    assert 'scored 50% of the outputs' in monitor.end_of_period(3)
    assert monitor.end_of_period(6) is None  # the next period had no monitored steps
    higher_is_better = RankerExploitationMonitor(sign=-1.0, period=1)
    assert higher_is_better.measure(ranker, images[:2], images[:2], torch.tensor([1.0, -1.0]))[
        'out_beats_gt'].item() == 0.5
    low_share = RankerExploitationMonitor(period=1, share_limit=0.75)
    low_share.measure(ranker, images, images, torch.tensor([-1.0, -1.0, 0.0, 0.0]))
    assert low_share.end_of_period(1) is None


@pytest.mark.parametrize('bad', [{'margin': -1}, {'share_limit': 0}, {'every': 0}, {'period': 0}])
def test_bad_settings_are_refused(bad):
    settings = monitor_settings(bad, every=1, period=1, where='x')
    with pytest.raises(ValueError, match='ranker monitor'):
        RankerExploitationMonitor('', settings['margin'],
                                  settings['share_limit'], settings['every'], settings['period'])


@pytest.fixture
def mmengine_warnings():
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def mmagic_model(root, scale: float, **monitor):
    torch.save({'params': SharpnessScoreRanker(scale).state_dict()}, root / f'sharpness_{scale}.pth')
    return _tiny_ranksrgan(root, root / f'sharpness_{scale}.pth', ranker=dict(type='SharpnessScoreRanker',
                                                                             scale=scale), ranker_monitor=monitor)


def mmagic_steps(model, iterations: int) -> list:
    hub, logs = MessageHub.get_current_instance(), []
    for iteration in range(iterations):  # the runner's 0-based iteration, as its RuntimeInfoHook sets it
        hub.update_info('iter', iteration)
        outputs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(iteration), requires_grad=True)
        logs.append(model.g_step(outputs, torch.full((2, 3, 32, 32), 0.5)))
    return logs


@pytest.mark.parametrize('scale, share, warnings', [(-100.0, 1.0, 2), (100.0, 0.0, 0)], ids=['fooled', 'sane'])
def test_mmagic_monitor(sr_workspace, mmengine_warnings, scale, share, warnings):  # noqa: F811
    model = mmagic_model(sr_workspace, scale, every=1, period=2).train()
    logs = mmagic_steps(model, 4)
    assert all(log['out_beats_gt'].item() == share and log['gt_r'].item() == 0.0 for log in logs)  # BasicSR's keys
    assert all('loss' not in key for key in ('out_r', 'gt_r', 'out_beats_gt'))  # logged, never summed into the loss
    messages = [record.getMessage() for record in mmengine_warnings if 'Ranker exploitation' in record.getMessage()]
    assert len(messages) == warnings
    if warnings:
        assert 'iterations 1-2' in messages[0] and 'iterations 3-4' in messages[1]


def test_mmagic_monitor_off_and_unknown_keys(sr_workspace):  # noqa: F811
    assert 'out_beats_gt' not in mmagic_steps(mmagic_model(sr_workspace, -100.0, enabled=False), 1)[0]
    logs = mmagic_steps(mmagic_model(sr_workspace, -100.0), 10)  # the default: one step in 10
    assert ['out_beats_gt' in log for log in logs] == [False] * 9 + [True]
    with pytest.raises(ValueError, match=r"model.ranker_monitor: unknown option 'limit'"):
        mmagic_model(sr_workspace, -100.0, limit=0.3)


def test_batch_statistics_ranker_scores_gt_and_outputs_in_one_batch():
    """A batch-statistics BatchNorm makes a batch's scores relative to the batch: a flat-brightness Ranker scores
    any lone batch alike; only a joint batch shows that outputs are brighter than GT."""
    ranker = nn.Sequential(nn.Conv2d(3, 1, 1), nn.BatchNorm2d(1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    nn.init.constant_(ranker[0].weight, -1.0)  # brighter = lower score = "better"
    ranker.train()
    assert uses_batch_statistics(ranker) and not uses_batch_statistics(ranker.eval().train(False))
    ranker.train()
    gt = torch.rand(4, 3, 8, 8) * 0.5
    outputs = gt + 0.5
    with torch.no_grad():
        alone = ranker(outputs).reshape(-1)
    joint = RankerExploitationMonitor(period=1).measure(ranker, gt, outputs, alone, batch_statistics=True)
    separate = RankerExploitationMonitor(period=1).measure(ranker, gt, outputs, alone, batch_statistics=False)
    assert joint['out_beats_gt'].item() == 1.0 and separate['out_beats_gt'].item() < 1.0
