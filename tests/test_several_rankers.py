"""Several frozen Rankers in one RankSRGAN (``rankers``, the journal version's idea), BasicSR and MMagic."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from basicsr.utils import check_resume
from mmagic.registry import MODELS
from mmengine.runner import Runner
from test_mmagic_training import RANKSRGAN_CONFIG, TINY_RANKER, sr_workspace, tiny_ranker, tiny_sr_config  # noqa: F401
from test_ranksrgan_model import RANKER_OPT, _build, _tiny_batch, tiny_options, workspace  # noqa: F401  (fixture)

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.models.ranksrgan_model import BASICSR_REGISTRIES, basicsr_single_ranker
from ranksrgan_plugin.rank_content import ranker_specs


def two_ranker_options(root, second_weight=0.05):
    options = tiny_options(root, perceptual=False)
    torch.manual_seed(1)
    torch.save({'params': RankerVGG(**{k: v for k, v in RANKER_OPT.items() if k != 'type'}).state_dict()},
               root / 'ranker_ma.pth')
    del options['network_r'], options['path']['pretrain_network_r'], options['train']['rank_opt']
    options['rankers'] = [
        {'name': 'niqe', 'network': dict(RANKER_OPT), 'path': str(root / 'ranker.pth'),
         'rank_opt': {'type': 'RankContentLoss', 'loss_weight': 0.03}},
        {'name': 'ma', 'network': dict(RANKER_OPT), 'path': str(root / 'ranker_ma.pth'), 'batchnorm': 'running',
         'rank_opt': {'type': 'RankContentLoss', 'loss_weight': second_weight, 'reduction': 'mean'}}]
    return options


def test_two_rankers_each_logged_and_summed_into_the_generator_loss(workspace):  # noqa: F811
    torch.manual_seed(0)
    model = _build(two_ranker_options(workspace))
    assert set(model.rankers) == {'niqe', 'ma'} and not hasattr(model, 'net_r')
    assert model.rankers['ma'].bn1_0.training is False and model.rankers['niqe'].bn1_0.training is True
    for step in (1, 2, 3):
        model.feed_data(_tiny_batch(step))
        model.optimize_parameters(step)
        assert {'l_g_rank_niqe', 'out_r_niqe', 'l_g_rank_ma', 'out_r_ma'} <= set(model.log_dict)
    model.output = model.net_g(model.lq)
    parts = {}
    total = model.generator_losses(parts)
    expected = parts['l_g_pix'] + parts['l_g_gan'] + parts['l_g_rank_niqe'] + parts['l_g_rank_ma']
    torch.testing.assert_close(total, expected, rtol=0, atol=0)
    ma_scores = model.rankers['ma'](model.output).reshape(-1)  # its own weight and reduction (mean)
    torch.testing.assert_close(parts['l_g_rank_ma'], 0.05 * torch.sigmoid(ma_scores).mean())


def test_one_ranker_in_a_list_gives_exactly_todays_losses(workspace):  # noqa: F811
    single = tiny_options(workspace, perceptual=False)
    listed = copy.deepcopy(single)
    del listed['network_r'], listed['path']['pretrain_network_r'], listed['train']['rank_opt']
    listed['rankers'] = [{'name': 'niqe', 'network': dict(RANKER_OPT), 'path': str(workspace / 'ranker.pth'),
                          'rank_opt': dict(single['train']['rank_opt'])}]
    logs = []
    for options in (single, listed):
        torch.manual_seed(0)
        model = _build(options)
        for step in (1, 2):
            model.feed_data(_tiny_batch(step))
            model.optimize_parameters(step)
        logs.append(model.log_dict)
    today, as_list = logs
    assert as_list['l_g_rank_niqe'] == today['l_g_rank'] and as_list['out_r_niqe'] == today['out_r']
    for name in ('l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake'):
        assert as_list[name] == today[name], name


def test_resume_keeps_every_rankers_path(workspace):  # noqa: F811
    options = two_ranker_options(workspace)
    options['path']['models'] = str(workspace / 'models')
    resumed = copy.deepcopy(options)
    check_resume(resumed, 2)  # what BasicSR does to the options on --auto_resume
    assert [item['path'] for item in resumed['rankers']] == [item['path'] for item in options['rankers']]


@pytest.mark.parametrize('change, message', [
    (lambda o: o.update(network_r=dict(RANKER_OPT)), 'not both'),
    (lambda o: o['rankers'][1].update(name='niqe'), 'names must differ'),
    (lambda o: o['rankers'][1].pop('path'), r'rankers\[1\] needs path'),
    (lambda o: o['rankers'][0].update(weight=2), r"rankers\[0\]: unknown option 'weight'"),
])
def test_bad_ranker_lists_are_refused(workspace, change, message):  # noqa: F811
    options = two_ranker_options(workspace)
    change(options)
    with pytest.raises(ValueError, match=message):
        _build(options)


def test_mmagic_ranksrgan_trains_with_two_rankers_and_resumes(sr_workspace, tmp_path):  # noqa: F811
    torch.manual_seed(1)
    torch.save({'params': tiny_ranker().state_dict()}, tmp_path / 'ranker_ma.pth')

    def config(max_iters):
        cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', max_iters=max_iters)
        single = cfg.model.pop('ranker'), cfg.model.pop('ranker_checkpoint')
        cfg.model.pop('rank_loss', None)  # the single Ranker's: not read with rankers (refused)
        cfg.model.rankers = [  # the keys of a BasicSR rankers: item
            dict(name='niqe', network=single[0], path=single[1],
                 rank_opt=dict(type='RankContentLoss', loss_weight=0.03, reduction='sum')),
            dict(name='ma', network=dict(TINY_RANKER), path=str(tmp_path / 'ranker_ma.pth'),
                 rank_opt=dict(type='RankContentLoss', loss_weight=0.05, reduction='mean'), batchnorm='running')]
        return cfg

    runner = Runner.from_cfg(config(2))
    runner.train()
    for name in ('train/loss_rank_niqe', 'train/loss_rank_ma', 'train/out_r_niqe', 'train/out_r_ma'):
        assert np.isfinite(float(runner.message_hub.get_scalar(name).current())), name
    assert set(runner.model.rankers) == {'niqe', 'ma'}
    cfg = config(3)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 3
    ma = torch.load(tmp_path / 'ranker_ma.pth', weights_only=True)['params']
    assert all(torch.equal(value.cpu(), ma[key]) for key, value in resumed.model.rankers['ma'].state_dict().items())


def test_niqe_ma_option_file_is_the_ma_file_with_two_rankers():
    root = Path(__file__).resolve().parents[1] / 'options'
    two = yaml.safe_load((root / 'train_RankSRGAN_NIQE_Ma.yml').read_text())
    ma = yaml.safe_load((root / 'train_RankSRGAN_Ma.yml').read_text())
    specs = ranker_specs(basicsr_single_ranker(two), two['rankers'], BASICSR_REGISTRIES)
    assert [spec.name for spec in specs] == ['niqe', 'ma']
    for spec, ranker_file in zip(specs, ('Ranker_NIQE_basicsr.pth', 'Ranker_Ma_basicsr.pth')):
        assert spec.path.endswith(ranker_file) and spec.batchnorm == 'batch'
        assert spec.rank_opt == ma['train']['rank_opt'] and spec.network == ma['network_r']  # the paper's each
    for options in (two, ma):
        options.pop('name'), options.pop('rankers', None), options.pop('network_r', None)
        options['path'].pop('pretrain_network_r', None), options['path'].pop('strict_load_r', None)
        options['train'].pop('rank_opt', None), options['train'].pop('ranker_batchnorm', None)
    assert two == ma


def test_mmagic_niqe_ma_config_is_the_ma_paper_config_with_two_rankers():
    from mmengine.config import Config
    from test_mmagic_configs import CONFIG_DIR, PAPER_CONFIGS, TWO_RANKER_CONFIG

    two, ma = Config.fromfile(str(CONFIG_DIR / TWO_RANKER_CONFIG)), Config.fromfile(str(CONFIG_DIR / PAPER_CONFIGS[1]))
    assert [item['name'] for item in two.model.rankers] == ['niqe', 'ma']
    assert two.model.ranker is None and two.model.ranker_checkpoint is None
    for item in two.model.rankers:  # the keys of a BasicSR rankers: item
        assert item['rank_opt'] == ma.model.rank_loss and item['network'] == ma.model.ranker
        assert item['batchnorm'] == ma.model.ranker_batchnorm
    assert two.model.rankers[1]['path'] == ma.model.ranker_checkpoint
    assert two.model.rankers[0]['path'] == 'experiments/Ranker_VGG12_NIQE/models/net_r_latest.pth'
    for key in ('generator', 'discriminator', 'perceptual_loss', 'gan_loss', 'pixel_loss'):
        assert two.model[key] == ma.model[key], key
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'optim_wrapper', 'train_cfg', 'randomness'):
        assert two.get(key) == ma.get(key), key


def test_one_parser_reads_a_rankers_list_alike_in_both_toolboxes():
    from ranksrgan_plugin.mmagic.ranksrgan import MMAGIC_TOOLBOX, mmagic_single_ranker

    two = yaml.safe_load((Path(__file__).resolve().parents[1] / 'options' / 'train_RankSRGAN_NIQE_Ma.yml').read_text())
    basicsr = ranker_specs(basicsr_single_ranker(two), two['rankers'], BASICSR_REGISTRIES)
    mmagic = ranker_specs(mmagic_single_ranker(None, None, None, 'batch'), two['rankers'], MMAGIC_TOOLBOX.registries)
    fields = ('name', 'network', 'path', 'rank_opt', 'batchnorm', 'param_key', 'strict')
    assert [[getattr(spec, key) for key in fields] for spec in basicsr] == \
        [[getattr(spec, key) for key in fields] for spec in mmagic]
    assert (basicsr[1].option('path'), mmagic[1].option('path')) == ('rankers[1].path', 'model.rankers[1].path')


@pytest.mark.parametrize('former, key', [('ranker', 'network'), ('ranker_checkpoint', 'path'),
                                         ('rank_loss', 'rank_opt'), ('ranker_batchnorm', 'batchnorm')])
def test_former_mmagic_item_keys_are_refused_with_their_new_names(sr_workspace, former, key):  # noqa: F811
    item = dict(name='niqe', network=dict(TINY_RANKER), path=str(sr_workspace / 'ranker_basicsr.pth'))
    item[former] = item.pop(key, None) or ({'type': 'RankContentLoss'} if key == 'rank_opt' else 'batch')
    model = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, sr_workspace / 'unused').model.to_dict()
    model.update(ranker=None, ranker_checkpoint=None, rank_loss=None, rankers=[item])
    with pytest.raises(ValueError, match=rf"^model\.rankers\[0\]: '{former}' is now '{key}' \(a rankers item takes "
                                         r"the same keys in BasicSR and MMagic"):
        MODELS.build(model)


def test_mmagic_rankers_items_take_basicsrs_param_key_and_strict(sr_workspace, tmp_path):  # noqa: F811
    weights = tiny_ranker().state_dict()
    torch.save({'params_ema': weights}, tmp_path / 'ranker_ema.pth')
    model = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'unused').model.to_dict()
    item = dict(name='ema', network=dict(TINY_RANKER), path=str(tmp_path / 'ranker_ema.pth'), param_key='params_ema')
    model.update(ranker=None, ranker_checkpoint=None, rank_loss=None, rankers=[item])
    built = MODELS.build(model)
    assert all(torch.equal(value, weights[key]) for key, value in built.rankers['ema'].state_dict().items())
    model['rankers'] = [dict(item, strict='false')]
    with pytest.raises(ValueError, match=r'^model\.rankers\[0\]\.strict must be true or false'):
        MODELS.build(model)
