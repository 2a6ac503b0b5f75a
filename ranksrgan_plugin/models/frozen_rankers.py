"""The frozen Rankers of a RankSRGAN model: the paper's single ``network_r``, or a ``rankers:`` list.

Several Rankers follow the authors' journal version (TPAMI 2022: "multiple Rankers to provide
multi-dimension constraints for the generator"); its exact weights are not known here, so a list is our
construction. Each item::

    rankers:
      - name: niqe                                   # letters, digits, _; logs l_g_rank_niqe, out_r_niqe
        network: {type: RankerVGG, depth: 12}
        path: experiments/pretrained_models/Ranker_NIQE_basicsr.pth
        rank_opt: {type: RankContentLoss, loss_weight: 0.03, bias: 0, reduction: sum}   # higher_is_better too
        batchnorm: batch                             # or running
        # param_key: params, strict: true

The list sits outside ``network_*`` / ``path.pretrain_network_*``, so BasicSR's resume leaves every
Ranker's path as it is (as ``frozen_networks`` does for ``network_r``).
"""
import re
from typing import Any, Dict, List, Mapping

from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY

from ..losses.loss_options import check_rank_content_options
from ..utils.built_options import check_built_options
from ..utils.option_keys import refuse_unknown_keys

DEFAULT_RANK_OPT = {'type': 'RankContentLoss', 'loss_weight': 0.03}
ITEM_KEYS = ('name', 'network', 'path', 'param_key', 'strict', 'rank_opt', 'batchnorm')
_NAME = re.compile(r'^[A-Za-z0-9_]+$')


def ranker_specs(opt: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """``[{name, network, path, param_key, strict, rank_opt, batchnorm, option, loss_option}]`` of a RankSRGAN
    options dict, every block's keys checked (an unknown key is refused with its closest valid name).

    ``name`` is ``''`` for the single ``network_r`` (its logs keep today's ``l_g_rank`` / ``out_r``);
    ``option`` / ``loss_option`` name the Ranker's path and its rank-content loss block in messages.
    """
    train_opt = opt.get('train') or {}
    if opt.get('rankers'):
        if opt.get('network_r'):
            raise ValueError('RankSRGANModel takes network_r (one Ranker) or rankers (a list), not both.')
        _refuse_single_ranker_options(opt)
        check_unique_names(opt['rankers'])
        return [_list_item(item, index) for index, item in enumerate(opt['rankers'])]
    if not train_opt.get('rank_opt'):
        raise ValueError('RankSRGANModel needs train.rank_opt (e.g. type: RankContentLoss, loss_weight: 0.03).')
    if 'network_r' not in opt:
        raise ValueError('RankSRGANModel needs network_r: the Ranker architecture (e.g. type: RankerVGG), or a '
                         'rankers list.')
    check_built_options(opt['network_r'], 'network_r', ARCH_REGISTRY, 'network', 'RankerVGG')
    check_rank_content_options(train_opt['rank_opt'], 'train.rank_opt', LOSS_REGISTRY)
    return [{'name': '', 'network': opt['network_r'], 'path': opt['path'].get('pretrain_network_r'),
             'param_key': opt['path'].get('param_key_r', 'params'), 'strict': opt['path'].get('strict_load_r', True),
             'rank_opt': train_opt['rank_opt'], 'batchnorm': train_opt.get('ranker_batchnorm', 'batch'),
             'option': 'path.pretrain_network_r', 'loss_option': 'train.rank_opt'}]


def _refuse_single_ranker_options(opt: Mapping[str, Any]) -> None:
    """With a ``rankers`` list, the single Ranker's options would be ignored: refused, saying where they go."""
    single = {'train.rank_opt': ((opt.get('train') or {}).get('rank_opt'), 'rank_opt'),
              'train.ranker_batchnorm': ((opt.get('train') or {}).get('ranker_batchnorm'), 'batchnorm'),
              'path.pretrain_network_r': ((opt.get('path') or {}).get('pretrain_network_r'), 'path'),
              'path.param_key_r': ((opt.get('path') or {}).get('param_key_r'), 'param_key'),
              'path.strict_load_r': ((opt.get('path') or {}).get('strict_load_r'), 'strict')}
    given = [(option, key) for option, (value, key) in single.items() if value is not None]
    if given:
        options = ', '.join(option for option, _ in given)
        keys = ', '.join(f'rankers[i].{key}' for _, key in given)
        raise ValueError(f'{options}: not read with a rankers list (each Ranker takes its own: {keys}); move it '
                         'into the rankers items.')


def _list_item(item: Mapping[str, Any], index: int) -> Dict[str, Any]:
    where = f'rankers[{index}]'
    if not isinstance(item, Mapping):
        raise ValueError(f'{where} must be a mapping (name, network, path, ...), got {item!r}.')
    refuse_unknown_keys(item, ITEM_KEYS, where)
    missing = [key for key in ('name', 'network', 'path') if not item.get(key)]
    if missing:
        raise ValueError(f'{where} needs {", ".join(missing)} (name, network options and the checkpoint path).')
    check_ranker_name(item['name'], where)
    check_built_options(item['network'], f'{where}.network', ARCH_REGISTRY, 'network', 'RankerVGG')
    rank_opt = item.get('rank_opt') or dict(DEFAULT_RANK_OPT)
    check_rank_content_options(rank_opt, f'{where}.rank_opt', LOSS_REGISTRY)
    return {'name': item['name'], 'network': item['network'], 'path': item['path'],
            'param_key': item.get('param_key', 'params'), 'strict': item.get('strict', True),
            'rank_opt': rank_opt, 'batchnorm': item.get('batchnorm', 'batch'),
            'option': f'{where}.path', 'loss_option': f'{where}.rank_opt'}


def check_unique_names(items: List[Mapping[str, Any]]) -> None:
    names = [item.get('name') if isinstance(item, Mapping) else None for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f'rankers: names must differ, got {names}.')


def check_ranker_name(name: Any, where: str) -> None:
    """A Ranker's name names log entries: letters, digits and _ only."""
    if not _NAME.match(str(name)):
        raise ValueError(f'{where}.name {name!r}: use letters, digits and _ only (it names log entries).')
