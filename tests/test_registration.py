"""Every plugin class/function is in the right BasicSR registry and builds through BasicSR's builders."""
import importlib

import pytest
import torch
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.data import RankPairDataset, RawPairedImageDataset
from ranksrgan_plugin.losses import RankLoss, RankRegressionLoss
from ranksrgan_plugin.metrics import calculate_pair_accuracy, calculate_srocc
from ranksrgan_plugin.models import RankerModel

PLUGIN_ENTRIES = [
    (ARCH_REGISTRY, 'RankerVGG', RankerVGG),
    (LOSS_REGISTRY, 'RankLoss', RankLoss),
    (LOSS_REGISTRY, 'RankRegressionLoss', RankRegressionLoss),
    (DATASET_REGISTRY, 'RankPairDataset', RankPairDataset),
    (DATASET_REGISTRY, 'RawPairedImageDataset', RawPairedImageDataset),
    (MODEL_REGISTRY, 'RankerModel', RankerModel),
    (METRIC_REGISTRY, 'calculate_srocc', calculate_srocc),
    (METRIC_REGISTRY, 'calculate_pair_accuracy', calculate_pair_accuracy),
]
ALL_REGISTRIES = (ARCH_REGISTRY, LOSS_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY, METRIC_REGISTRY)
TINY_RANKER = {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 8, 8], 'num_hidden': 4}


@pytest.fixture(scope='module', autouse=True)
def basicsr_builtins_registered():
    """Import BasicSR's own packages so its built-ins are registered next to the plugin's."""
    for package in ('basicsr.archs', 'basicsr.losses', 'basicsr.data', 'basicsr.models', 'basicsr.metrics'):
        importlib.import_module(package)


@pytest.mark.parametrize('registry, name, obj', PLUGIN_ENTRIES, ids=[entry[1] for entry in PLUGIN_ENTRIES])
def test_registry_holds_plugin_object(registry, name, obj):
    assert name in registry
    assert registry.get(name) is obj
    assert obj.__module__.startswith('ranksrgan_plugin.')


@pytest.mark.parametrize('registry, name, obj', PLUGIN_ENTRIES, ids=[entry[1] for entry in PLUGIN_ENTRIES])
def test_no_clash_with_basicsr_builtins(registry, name, obj):
    # BasicSR's registry falls back to '<name>_basicsr' when a name is absent: no such twin may exist
    assert f'{name}_basicsr' not in registry
    # the name is in exactly one of BasicSR's registries
    assert [reg._name for reg in ALL_REGISTRIES if name in reg] == [registry._name]
    # no BasicSR built-in is registered under any plugin name, and BasicSR's built-ins are there
    builtin_names = {key for key, value in registry._obj_map.items() if value.__module__.startswith('basicsr.')}
    assert builtin_names, f'BasicSR built-ins missing from {registry._name}'
    assert name not in builtin_names


def test_basicsr_builtins_still_resolve():
    # registering the plugin did not shadow BasicSR's own classes
    assert ARCH_REGISTRY.get('VGGStyleDiscriminator').__module__.startswith('basicsr.')
    assert LOSS_REGISTRY.get('L1Loss').__module__.startswith('basicsr.')
    assert DATASET_REGISTRY.get('PairedImageDataset').__module__.startswith('basicsr.')
    assert MODEL_REGISTRY.get('SRModel').__module__.startswith('basicsr.')
    assert METRIC_REGISTRY.get('calculate_psnr').__module__.startswith('basicsr.')


def test_build_network():
    net = build_network(dict(TINY_RANKER))
    assert type(net) is RankerVGG
    assert net.depth == 8
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 1)


@pytest.mark.parametrize('loss_opt, cls', [
    ({'type': 'RankLoss', 'margin': 0.25, 'loss_weight': 2.0}, RankLoss),
    ({'type': 'RankRegressionLoss', 'criterion': 'mse', 'reduction': 'sum'}, RankRegressionLoss),
])
def test_build_loss(loss_opt, cls):
    loss = build_loss(dict(loss_opt))
    assert type(loss) is cls
    for option, value in loss_opt.items():
        if option in ('margin', 'loss_weight', 'reduction'):
            assert getattr(loss, option) == value
    value = loss(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([1.0]))
    assert value.ndim == 0 and float(value) > 0


def test_build_dataset(rank_set):
    dataset = build_dataset({'name': 'rank', 'type': 'RankPairDataset', 'dataroot': rank_set, 'phase': 'val'})
    assert type(dataset) is RankPairDataset
    assert len(dataset) == 4 * 3


def test_calculate_metric():
    scores, labels = [0.1, 0.5, 0.2, 0.9], [1.0, 3.0, 2.0, 4.0]
    keys = ['a', 'a', 'b', 'b']
    assert calculate_metric({'scores': scores, 'labels': labels}, {'type': 'calculate_srocc'}) == pytest.approx(1.0)
    data = {'scores': scores, 'labels': labels, 'keys': keys}
    assert calculate_metric(data, {'type': 'calculate_pair_accuracy'}) == pytest.approx(1.0)
    data['scores'] = [0.5, 0.1, 0.2, 0.9]
    assert calculate_metric(data, {'type': 'calculate_pair_accuracy'}) == pytest.approx(0.5)


def test_build_model_ranker_model():
    opt = {'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'path': {},
           'network_r': dict(TINY_RANKER)}
    model = build_model(opt)
    assert type(model) is RankerModel
    assert type(model.net_r) is RankerVGG
