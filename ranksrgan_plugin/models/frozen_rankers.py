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

DEFAULT_RANK_OPT = {'type': 'RankContentLoss', 'loss_weight': 0.03}
_NAME = re.compile(r'^[A-Za-z0-9_]+$')


def ranker_specs(opt: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """``[{name, network, path, param_key, strict, rank_opt, batchnorm, option}]`` of a RankSRGAN options dict.

    ``name`` is ``''`` for the single ``network_r`` (its logs keep today's ``l_g_rank`` / ``out_r``).
    """
    if opt.get('rankers') and opt.get('network_r'):
        raise ValueError('RankSRGANModel takes network_r (one Ranker) or rankers (a list), not both.')
    if opt.get('rankers'):
        check_unique_names(opt['rankers'])
        return [_list_item(item, index) for index, item in enumerate(opt['rankers'])]
    train_opt = opt['train']
    if not train_opt.get('rank_opt'):
        raise ValueError('RankSRGANModel needs train.rank_opt (e.g. type: RankContentLoss, loss_weight: 0.03).')
    if 'network_r' not in opt:
        raise ValueError('RankSRGANModel needs network_r: the Ranker architecture (e.g. type: RankerVGG), or a '
                         'rankers list.')
    return [{'name': '', 'network': opt['network_r'], 'path': opt['path'].get('pretrain_network_r'),
             'param_key': opt['path'].get('param_key_r', 'params'), 'strict': opt['path'].get('strict_load_r', True),
             'rank_opt': train_opt['rank_opt'], 'batchnorm': train_opt.get('ranker_batchnorm', 'batch'),
             'option': 'path.pretrain_network_r'}]


def _list_item(item: Mapping[str, Any], index: int) -> Dict[str, Any]:
    where = f'rankers[{index}]'
    missing = [key for key in ('name', 'network', 'path') if not item.get(key)]
    if missing:
        raise ValueError(f'{where} needs {", ".join(missing)} (name, network options and the checkpoint path).')
    unknown = sorted(set(item) - {'name', 'network', 'path', 'param_key', 'strict', 'rank_opt', 'batchnorm'})
    if unknown:
        raise ValueError(f'{where}: unknown option(s) {unknown}.')
    check_ranker_name(item['name'], where)
    return {'name': item['name'], 'network': item['network'], 'path': item['path'],
            'param_key': item.get('param_key', 'params'), 'strict': item.get('strict', True),
            'rank_opt': item.get('rank_opt') or dict(DEFAULT_RANK_OPT), 'batchnorm': item.get('batchnorm', 'batch'),
            'option': f'{where}.path'}


def check_unique_names(items: List[Mapping[str, Any]]) -> None:
    names = [item.get('name') for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f'rankers: names must differ, got {names}.')


def check_ranker_name(name: Any, where: str) -> None:
    """A Ranker's name names log entries: letters, digits and _ only."""
    if not _NAME.match(str(name)):
        raise ValueError(f'{where}.name {name!r}: use letters, digits and _ only (it names log entries).')
