"""Issue 29, items 4 and 5 (model side): Ranker files record their direction, and RankSRGAN refuses a rank-content
loss that contradicts it; the model-side option blocks refuse unknown keys by name, in both toolboxes."""
import contextlib
import copy
import hashlib
import logging
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from rank_set_factory import make_rank_set
from test_mmagic_training import (
    RANKER_CONFIG,
    RANKESRGAN_CONFIG,
    RANKSRGAN_CONFIG,
    TINY_RANKER,
    sr_workspace,  # noqa: F401  (fixture)
    tiny_sr_config,
)
from test_ranksrgan_model import RANKER_OPT, _build, tiny_options, workspace  # noqa: F401  (fixture)

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.checkpoints import (
    export_ranker_for_basicsr,
    load_ranker,
    load_ranker_checkpoint,
    read_ranker_file,
)

RankerDirectionError = ValueError  # ranksrgan_plugin.rank_content.ranker_record's (a ValueError); messages pinned below


def mmengine_record(path: Path) -> dict:
    """The record an MMagic RankerModel checkpoint carries (the Runner's message hub, saved by mmengine)."""
    return (read_ranker_file(str(path)).get('message_hub') or {}).get('runtime_info', {}).get('ranker_record')

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def rank_sets(tmp_path_factory):
    """A Ma split (higher is better: the labels are negated for training) and a NIQE split, with manifests."""
    root = tmp_path_factory.mktemp('rank')
    keys = [f'k{i:03d}' for i in range(4)]
    return {'ma': make_rank_set(root / 'ma' / 'train', storage='folder', keys=keys, metric='ma', higher_is_better=True),
            'niqe': make_rank_set(root / 'niqe' / 'train', storage='folder', keys=keys, metric='niqe')}


@contextlib.contextmanager
def log_records(logger: logging.Logger):
    """The records ``logger`` emits at INFO and above inside the block."""
    records, level = [], logger.level
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---- BasicSR: the Ranker's record, and RankSRGAN's check against it ----------------------------------------------

def basicsr_ranker_file(root: Path, dataroot: str, **dataset) -> Path:
    """The ``net_r`` file a BasicSR RankerModel trained on ``dataroot`` writes."""
    opt = {'name': 'ranker', 'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_r': dict(RANKER_OPT), 'path': {'models': str(root)},
           'datasets': {'train': {'name': 'rank', 'type': 'RankPairDataset', 'dataroot': dataroot, **dataset}},
           'train': {'rank_opt': {'type': 'RankLoss', 'margin': 0.5},
                     'optim_r': {'type': 'Adam', 'lr': 1e-4},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}, 'total_iter': 1}}
    model = build_model(opt)
    model.save_network(model.net_r, 'net_r', 1)
    return root / 'net_r_1.pth'


def test_basicsr_ranker_file_carries_its_record_and_loads_everywhere(tmp_path, rank_sets):
    path = basicsr_ranker_file(tmp_path, rank_sets['ma'])
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {'params', 'ranker_record'}
    manifest = Path(rank_sets['ma']) / 'manifest.json'
    assert checkpoint['ranker_record'] == {
        'metric': 'ma', 'higher_is_better': True, 'labels_higher_is_better': True,
        'score_grows_with_quality': False, 'manifest': str(manifest),
        'digest': hashlib.sha256(manifest.read_bytes()).hexdigest()}
    network = {key: value for key, value in RANKER_OPT.items() if key != 'type'}
    reference = checkpoint['params']
    for loaded in (load_ranker(RankerVGG(**network), str(path)),
                   load_ranker_checkpoint(RankerVGG(**network), str(path))):
        assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())


def test_basicsr_ranksrgan_refuses_a_rank_content_direction_that_contradicts_the_ranker(workspace, rank_sets):  # noqa: F811
    ranker = basicsr_ranker_file(workspace, rank_sets['ma'])
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_r'] = str(ranker)
    options['train']['rank_opt']['higher_is_better'] = True  # "Ma is higher-is-better": the trap
    with pytest.raises(RankerDirectionError) as refused:
        _build(options)
    message = str(refused.value)
    assert message.startswith('train.rank_opt.higher_is_better is true, but the Ranker ')
    for part in (str(ranker), 'path.pretrain_network_r', 'ma labels', 'grows as images get worse',
                 'set train.rank_opt.higher_is_better to false', 'towards worse ma'):
        assert part in message, part
    options['train']['rank_opt']['higher_is_better'] = False
    with log_records(logging.getLogger('basicsr')) as records:
        _build(options)
    loaded = [record.getMessage() for record in records if 'Frozen Ranker' in record.getMessage()]
    assert len(loaded) == 1 and 'trained on ma labels, sha256 ' in loaded[0], loaded


def test_basicsr_several_rankers_name_the_item(workspace, rank_sets):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    del options['network_r'], options['path']['pretrain_network_r'], options['train']['rank_opt']
    ma = basicsr_ranker_file(workspace, rank_sets['ma'])
    options['rankers'] = [
        {'name': 'niqe', 'network': dict(RANKER_OPT), 'path': str(workspace / 'ranker.pth')},
        {'name': 'ma', 'network': dict(RANKER_OPT), 'path': str(ma),
         'rank_opt': {'type': 'RankContentLoss', 'higher_is_better': True}}]
    with pytest.raises(RankerDirectionError, match=r'^rankers\[1\]\.rank_opt\.higher_is_better is true, but the '
                                                   r'Ranker .*net_r_1\.pth \(named by rankers\[1\]\.path\)'):
        _build(options)


def test_an_inverted_ranker_is_refused_unless_the_loss_says_so(workspace, rank_sets):  # noqa: F811
    """higher_is_better: true over a NIQE split trained a Ranker whose score grows with quality (the dataset now
    refuses the option over a manifest that contradicts it; older files, and models built without a dataset, remain)."""
    inverted = basicsr_ranker_file(workspace, rank_sets['niqe'], higher_is_better=True)
    assert torch.load(inverted, weights_only=True)['ranker_record']['score_grows_with_quality'] is True
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_r'] = str(inverted)
    with pytest.raises(RankerDirectionError, match=r'^train\.rank_opt\.higher_is_better is false, .* niqe labels, '
                                                   r'whose lower values are better, with higher_is_better true .*'
                                                   r'grows as images get better: set train\.rank_opt\.'
                                                   r'higher_is_better to true\.'):
        _build(options)
    options['train']['rank_opt']['higher_is_better'] = True
    assert _build(options).rank_content.rankers[''].loss.sign == -1.0


@pytest.mark.parametrize('layout', ['basicsr', 'bare'], ids=['older_plugin_file', 'authors_bare_state_dict'])
def test_a_ranker_file_without_record_is_one_log_line(workspace, layout):  # noqa: F811
    plain = torch.load(workspace / 'ranker.pth', weights_only=True)
    path = workspace / f'ranker_{layout}.pth'
    torch.save(plain if layout == 'basicsr' else plain['params'], path)
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_r'] = str(path)
    with log_records(logging.getLogger('basicsr')) as records:
        _build(options)
    lines = [record.getMessage() for record in records if 'records no metric or direction' in record.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0] and 'train.rank_opt.higher_is_better is unchecked' in lines[0]


# ---- MMagic: the Runner's Ranker checkpoint, its export, and RankSRGAN / RankESRGAN -------------------------------

def mmagic_ranksrgan(root: Path, config: Path = RANKSRGAN_CONFIG, **overrides):
    """A tiny RankSRGAN / RankESRGAN of a shipped config, its Ranker the BasicSR file of ``sr_workspace``."""
    from mmagic.registry import MODELS

    model = tiny_sr_config(root, config, root / 'unused').model.to_dict()
    model.update(overrides)
    return MODELS.build(model)


def mmagic_ranker_checkpoint(work_dir: Path, data_root: str) -> Path:
    """An MMagic RankerModel checkpoint written by mmengine's Runner (one iteration on ``data_root``)."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(RANKER_CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.model.ranker = dict(TINY_RANKER)
    cfg.train_dataloader.update(num_workers=0, batch_size=2)
    cfg.train_dataloader.dataset.update(data_root=data_root, io_backend=dict(type='disk'), gt_size=32)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg.update(max_iters=1, val_interval=10)
    cfg.default_hooks.checkpoint.update(interval=1, save_best=None, out_dir=None)
    cfg.default_hooks.logger.update(interval=1)
    Runner.from_cfg(cfg).train()
    return work_dir / 'iter_1.pth'


@pytest.fixture(scope='module')
def mmagic_ma_ranker(tmp_path_factory, rank_sets):
    return mmagic_ranker_checkpoint(tmp_path_factory.mktemp('mmagic_ranker'), rank_sets['ma'])


def test_mmagic_ranker_checkpoint_records_and_export_keeps_it(mmagic_ma_ranker, tmp_path, workspace):  # noqa: F811
    record = mmengine_record(mmagic_ma_ranker)
    assert record and (record['metric'], record['higher_is_better'], record['score_grows_with_quality']) == (
        'ma', True, False)
    exported = Path(export_ranker_for_basicsr(str(mmagic_ma_ranker), str(tmp_path / 'exported.pth')))
    assert torch.load(exported, weights_only=True)['ranker_record'] == record
    options = tiny_options(workspace, perceptual=False)  # the exported file on the BasicSR side, checked the same
    options['network_r'] = dict(TINY_RANKER)
    options['path']['pretrain_network_r'] = str(exported)
    options['train']['rank_opt']['higher_is_better'] = True
    with pytest.raises(RankerDirectionError, match=r'^train\.rank_opt\.higher_is_better is true'):
        _build(options)


@pytest.mark.parametrize('model_type', ['RankSRGAN', 'RankESRGAN'])
def test_mmagic_ranksrgan_refuses_a_contradicting_rank_loss(sr_workspace, mmagic_ma_ranker, model_type):  # noqa: F811
    config = RANKSRGAN_CONFIG if model_type == 'RankSRGAN' else RANKESRGAN_CONFIG
    with pytest.raises(RankerDirectionError) as refused:
        mmagic_ranksrgan(sr_workspace, config, ranker_checkpoint=str(mmagic_ma_ranker),
                         rank_loss=dict(type='RankContentLoss', loss_weight=0.03, higher_is_better=True))
    message = str(refused.value)
    assert message.startswith('model.rank_loss.higher_is_better is true, but the Ranker ')
    assert f'{mmagic_ma_ranker} (named by model.ranker_checkpoint)' in message and 'ma labels' in message
    assert mmagic_ranksrgan(sr_workspace, config, ranker_checkpoint=str(mmagic_ma_ranker)).rank_loss.sign == 1.0


def test_mmagic_ranker_list_item_is_named(sr_workspace, mmagic_ma_ranker):  # noqa: F811
    rankers = [dict(name='niqe', network=dict(TINY_RANKER), path=str(sr_workspace / 'ranker_basicsr.pth')),
               dict(name='ma', network=dict(TINY_RANKER), path=str(mmagic_ma_ranker),
                    rank_opt=dict(type='RankContentLoss', higher_is_better=True))]
    with pytest.raises(RankerDirectionError, match=r'^model\.rankers\[1\]\.rank_opt\.higher_is_better is true, .*'
                                                   r'\(named by model\.rankers\[1\]\.path\)'):
        mmagic_ranksrgan(sr_workspace, ranker=None, ranker_checkpoint=None, rank_loss=None, rankers=rankers)


def test_mmagic_ranker_file_without_record_is_one_log_line(sr_workspace):  # noqa: F811
    with log_records(MMLogger.get_current_instance()) as records:
        mmagic_ranksrgan(sr_workspace)
    lines = [record.getMessage() for record in records if 'records no metric or direction' in record.getMessage()]
    assert len(lines) == 1 and 'model.rank_loss.higher_is_better is unchecked' in lines[0]


def test_mmagic_ranker_model_records_the_split_the_runner_announces(rank_sets):
    from mmagic.registry import MODELS

    from ranksrgan_plugin.mmagic import RankPairDataset

    hub = MessageHub.get_instance('direction_keys_test')
    # what RuntimeInfoHook announces, with a higher_is_better the dataset used over NIQE labels (an older plugin's)
    hub.update_info('dataset_meta', dict(RankPairDataset(rank_sets['niqe']).metainfo, higher_is_better=True))
    model = MODELS.build(dict(type='RankerModel', ranker=dict(TINY_RANKER)))
    images, labels = torch.rand(2, 3, 32, 32), torch.tensor([1.0, 2.0])
    model(mode='loss', img_a=images, img_b=images.flip(0), label_a=labels, label_b=labels.flip(0))
    record = hub.get_info('ranker_record')
    assert (record['metric'], record['higher_is_better'], record['score_grows_with_quality']) == ('niqe', True, True)


# ---- option keys: every model-side block, both toolboxes -----------------------------------------------------------

def _set(options: dict, dotted: str, value) -> None:
    *parents, key = dotted.split('.')
    for parent in parents:
        options = options[int(parent)] if isinstance(options, list) else options[parent]
    options[key] = value


RANKSRGAN_TYPOS = [
    ('train.precison', 'fp16', r"^train \(RankSRGANModel\): unknown option 'precison' \(did you mean 'precision'\?\)"),
    ('train.channel_last', True, r"unknown option 'channel_last' \(did you mean 'channels_last'\?\)"),
    ('train.nonfinite_limt', 3, r"unknown option 'nonfinite_limt' \(did you mean 'nonfinite_limit'\?\)"),
    ('train.rank_optt', {}, r"unknown option 'rank_optt' \(did you mean 'rank_opt'\?\)"),
    ('train.rank_opt.higher_is_beter', True,
     r"^train\.rank_opt: unknown option 'higher_is_beter' \(did you mean 'higher_is_better'\?\)"),
    ('train.rank_opt.reductoin', 'mean', r"^train\.rank_opt: unknown option 'reductoin' \(did you mean 'reduction'"),
    ('train.rank_opt.type', 'RankContentLos',
     r"^train\.rank_opt\.type 'RankContentLos' is not a registered loss \(did you mean 'RankContentLoss'\?\)"),
    ('train.rank_opt.type', 'RankLoss', r"^train\.rank_opt\.type 'RankLoss' trains a Ranker on pairs"),
    ('train.rank_opt.higher_is_better', 'false', r'RankContentLoss higher_is_better must be true or false'),
    ('network_r.dept', 12, r"^network_r: unknown option 'dept' \(did you mean 'depth'\?\)"),
    ('train.ranker_monitor', {'share_limt': 0.3},
     r"^train\.ranker_monitor: unknown option 'share_limt' \(did you mean 'share_limit'\?\)"),
    ('train.ranker_monitor', {'enabled': 'false'}, r'train\.ranker_monitor\.enabled must be true or false'),
    ('train.channels_last', 'false', r'train\.channels_last must be true or false'),
    ('train.nonfinite_limit', 0, r'train\.nonfinite_limit must be a whole number >= 1, got 0'),
]


@pytest.mark.parametrize('dotted, value, message', RANKSRGAN_TYPOS, ids=[case[0] for case in RANKSRGAN_TYPOS])
def test_basicsr_ranksrgan_refuses_unknown_keys_by_name(workspace, dotted, value, message):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    _set(options, dotted, value)
    with pytest.raises(ValueError, match=message):
        _build(options)


RANKER_LIST_TYPOS = [
    ('rankers.1.batchnrom', 'running', r"^rankers\[1\]: unknown option 'batchnrom' \(did you mean 'batchnorm'\?\)"),
    ('rankers.1.rank_opt.loss_wieght', 0.1,
     r"^rankers\[1\]\.rank_opt: unknown option 'loss_wieght' \(did you mean 'loss_weight'\?\)"),
    ('rankers.0.network.num_feats', 8, r"^rankers\[0\]\.network: unknown option 'num_feats' \(did you mean 'num_feat'"),
    ('train.rank_opt', {'type': 'RankContentLoss'}, r'^train\.rank_opt: not read with a rankers list .*rankers\[i\]'
                                                    r'\.rank_opt'),
    ('train.ranker_batchnorm', 'running', r'^train\.ranker_batchnorm: not read with a rankers list'),
]


@pytest.mark.parametrize('dotted, value, message', RANKER_LIST_TYPOS, ids=[case[0] for case in RANKER_LIST_TYPOS])
def test_basicsr_rankers_items_refuse_unknown_keys(workspace, dotted, value, message):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    del options['network_r'], options['path']['pretrain_network_r'], options['train']['rank_opt']
    options['rankers'] = [{'name': name, 'network': dict(RANKER_OPT), 'path': str(workspace / 'ranker.pth'),
                           'rank_opt': {'type': 'RankContentLoss'}} for name in ('niqe', 'ma')]
    _set(options, dotted, value)
    with pytest.raises(ValueError, match=message):
        _build(options)


@pytest.mark.parametrize('dotted, value, message', [
    ('train.precison', 'bf16', r"^train \(RankerModel\): unknown option 'precison' \(did you mean 'precision'\?\)"),
    ('train.pair_foward', 'joint', r"unknown option 'pair_foward' \(did you mean 'pair_forward'\?\)"),
    ('train.pixel_opt', {'type': 'L1Loss'}, r"^train \(RankerModel\): unknown option 'pixel_opt'"),
    ('train.rank_opt.margn', 0.3, r"^train\.rank_opt: unknown option 'margn' \(did you mean 'margin'\?\)"),
    ('train.rank_opt.type', 'RankContentLoss', r"^train\.rank_opt\.type 'RankContentLoss' is RankSRGAN's generator"),
    ('train.rank_opt.higher_is_better', True,
     r"^train\.rank_opt takes no higher_is_better: a Ranker's direction is its training set.s \(datasets\.train\."),
    ('network_r.stage_width', [8, 8, 16, 16], r"^network_r: unknown option 'stage_width' \(did you mean 'stage_wid"),
])
def test_basicsr_ranker_model_refuses_unknown_keys(tmp_path, rank_sets, dotted, value, message):
    opt = {'name': 'ranker', 'model_type': 'RankerModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_r': dict(RANKER_OPT), 'path': {'models': str(tmp_path)},
           'datasets': {'train': {'name': 'rank', 'type': 'RankPairDataset', 'dataroot': rank_sets['niqe']}},
           'train': {'rank_opt': {'type': 'RankLoss'}, 'optim_r': {'type': 'Adam', 'lr': 1e-4},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}, 'total_iter': 1}}
    _set(opt, dotted, value)
    with pytest.raises(ValueError, match=message):
        build_model(copy.deepcopy(opt))


MMAGIC_TYPOS = [
    ({'rank_los': {'type': 'RankContentLoss'}},
     r"^model \(RankSRGAN\): unknown option 'rank_los' \(did you mean 'rank_loss'\?\)"),
    ({'ranker_batchnrom': 'running'}, r"unknown option 'ranker_batchnrom' \(did you mean 'ranker_batchnorm'\?\)"),
    ({'discriminatr': None}, r"unknown option 'discriminatr' \(did you mean 'discriminator'\?\)"),
    ({'rank_loss': {'type': 'RankContentLoss', 'higher_is_beter': True}},
     r"^model\.rank_loss: unknown option 'higher_is_beter' \(did you mean 'higher_is_better'\?\)"),
    ({'rank_loss': {'type': 'RankRegressionLoss'}}, r"^model\.rank_loss\.type 'RankRegressionLoss' trains a Ranker"),
    ({'ranker': dict(TINY_RANKER, dept=12)}, r"^model\.ranker: unknown option 'dept' \(did you mean 'depth'\?\)"),
    ({'ranker_monitor': {'evrey': 5}}, r"^model\.ranker_monitor: unknown option 'evrey' \(did you mean 'every'\?\)"),
]


@pytest.mark.parametrize('overrides, message', MMAGIC_TYPOS, ids=[next(iter(case[0])) for case in MMAGIC_TYPOS])
def test_mmagic_ranksrgan_refuses_unknown_keys_by_name(sr_workspace, overrides, message):  # noqa: F811
    with pytest.raises(ValueError, match=message):
        mmagic_ranksrgan(sr_workspace, **overrides)


def test_mmagic_rankesrgan_and_rankers_items_refuse_unknown_keys(sr_workspace):  # noqa: F811
    ranker = str(sr_workspace / 'ranker_basicsr.pth')
    with pytest.raises(ValueError, match=r"^model \(RankESRGAN\): unknown option 'pixel_los' \(did you mean "
                                         r"'pixel_loss'\?\)"):
        mmagic_ranksrgan(sr_workspace, RANKESRGAN_CONFIG, pixel_los=None)
    item = dict(name='niqe', network=dict(TINY_RANKER), paht=ranker)
    with pytest.raises(ValueError, match=r"^model\.rankers\[0\]: unknown option 'paht' \(did you mean 'path'\?\)"):
        mmagic_ranksrgan(sr_workspace, ranker=None, ranker_checkpoint=None, rank_loss=None, rankers=[item])
    item = dict(name='niqe', network=dict(TINY_RANKER), path=ranker)
    with pytest.raises(ValueError, match=r'^model\.rank_loss: not read with a model\.rankers list .*'
                                         r'model\.rankers\[i\]\.rank_opt'):
        mmagic_ranksrgan(sr_workspace, ranker=None, ranker_checkpoint=None, rank_loss=dict(type='RankContentLoss'),
                         rankers=[item])


@pytest.mark.parametrize('config, message', [
    (dict(pair_foward='joint'), r"^model \(RankerModel\): unknown option 'pair_foward' \(did you mean 'pair_forward'"),
    (dict(rank_loss=dict(type='RankLoss', margn=0.3)), r"^model\.rank_loss: unknown option 'margn' \(did you mean "
                                                       r"'margin'\?\)"),
    (dict(ranker=dict(TINY_RANKER, num_hiden=8)), r"^model\.ranker: unknown option 'num_hiden' \(did you mean "
                                                  r"'num_hidden'\?\)"),
    (dict(rank_loss=dict(type='RankLoss', higher_is_better=True)),
     r'^model\.rank_loss takes no higher_is_better: .*\(train_dataloader\.dataset\.higher_is_better;'),
])
def test_mmagic_ranker_model_refuses_unknown_keys(config, message):
    from mmagic.registry import MODELS

    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(dict(type='RankerModel', ranker=dict(TINY_RANKER)), **config))


def test_export_tool_refuses_a_missing_checkpoint_in_one_paragraph(tmp_path, capsys):
    import runpy

    main = runpy.run_path(str(REPO_ROOT / 'tools' / 'mmagic_export_ranker.py'), run_name='export')['main']
    assert main([str(tmp_path / 'absent.pth'), str(tmp_path / 'out.pth')]) == 2
    error = capsys.readouterr().err
    assert 'absent.pth' in error and 'does not exist' in error and 'Traceback' not in error
    assert not (tmp_path / 'out.pth').exists()
