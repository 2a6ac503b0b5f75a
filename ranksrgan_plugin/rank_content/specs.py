"""The frozen Rankers of a RankSRGAN model, read from its options by one parser for BasicSR and MMagic.

A model takes the paper's single Ranker, under its toolbox's own option names (BasicSR: ``network_r``,
``path.pretrain_network_r`` / ``param_key_r`` / ``strict_load_r``, ``train.rank_opt``, ``train.ranker_batchnorm``;
MMagic: ``model.ranker``, ``ranker_checkpoint``, ``rank_loss``, ``ranker_batchnorm``), or a ``rankers`` list
(MMagic: ``model.rankers``) whose items take the same keys in both toolboxes::

    rankers:
      - name: niqe                                   # letters, digits, _; names the log entries (out_r_niqe, ...)
        network: {type: RankerVGG, depth: 12}
        path: experiments/pretrained_models/Ranker_NIQE_basicsr.pth
        rank_opt: {type: RankContentLoss, loss_weight: 0.03, bias: 0, reduction: sum}   # default: weight 0.03
        batchnorm: batch                             # or running
        # param_key: params, strict: true          (a BasicSR-layout file's entry, strict loading)

Several Rankers follow the authors' journal version (TPAMI 2022: "multiple Rankers to provide multi-dimension
constraints for the generator"); its exact weights are not known here, so a list is our construction. In BasicSR
the list sits outside ``network_*`` / ``path.pretrain_network_*``, so BasicSR's resume leaves every Ranker's path as
it is (as ``frozen_networks`` does for ``network_r``).

Every block refuses a key it does not know, with the closest valid name; an item key of MMagic's former dialect
(``ranker``, ``ranker_checkpoint``, ``rank_loss``, ``ranker_batchnorm``) is refused with the key it became.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..archs.ranker_arch import RANKER_BATCHNORM_MODES
from ..losses.loss_options import check_rank_content_options
from ..utils.built_options import check_built_options
from ..utils.option_keys import UnknownOptionError, refuse_unknown_keys

DEFAULT_RANK_OPT = {'type': 'RankContentLoss', 'loss_weight': 0.03}
ITEM_DEFAULTS = {'batchnorm': 'batch', 'param_key': 'params', 'strict': True}
ITEM_KEYS = ('name', 'network', 'path', 'rank_opt', *ITEM_DEFAULTS)
FORMER_ITEM_KEYS = {'ranker': 'network', 'ranker_checkpoint': 'path', 'rank_loss': 'rank_opt',
                    'ranker_batchnorm': 'batchnorm'}
_NAME = re.compile(r'^[A-Za-z0-9_]+$')

# the toolbox's options of the single Ranker: {item key: (option name, value)}; a None value is not set
SingleRanker = Mapping[str, Tuple[str, Any]]


@dataclass(frozen=True)
class Registries:
    """Where a toolbox registers Ranker networks and rank-content losses, and where its ``rankers`` list sits."""
    networks: Any
    losses: Any
    network_kind: str  # the registry's word in messages: 'network' (BasicSR's ARCH_REGISTRY), 'model' (MMagic)
    prefix: str = ''  # the options' path to ``rankers``: '' (BasicSR) or 'model.' (MMagic)


@dataclass(frozen=True)
class RankerSpec:
    """One frozen Ranker as the options give it, checked. ``name`` is ``''`` for the paper's single Ranker (its log
    entries keep their names without a suffix); ``options`` names the option of each field, for messages."""
    name: str
    network: Mapping[str, Any]
    path: Optional[str]
    rank_opt: Mapping[str, Any]
    batchnorm: str = 'batch'
    param_key: Optional[str] = 'params'
    strict: bool = True
    options: Mapping[str, str] = field(default_factory=dict)

    def option(self, key: str) -> str:
        """The option that sets ``key`` (``path.pretrain_network_r``, ``model.rankers[1].path``, ...)."""
        return self.options.get(key, key)


def ranker_specs(single: SingleRanker, rankers: Any, registries: Registries) -> List[RankerSpec]:
    """The Rankers of a RankSRGAN model: ``rankers`` (a list of items, above) or else the ``single`` Ranker.

    Every block is checked before any network is built. ``single`` holds the toolbox's options of the single Ranker
    by item key (``network``, ``path``, ``rank_opt``, ``batchnorm``, and BasicSR's ``param_key`` / ``strict``);
    beside a list, any of them set to other than its default is refused, saying where it goes.
    """
    list_option = f'{registries.prefix}rankers'
    if not rankers:
        if single['network'][1] is None:
            raise ValueError(f"RankSRGAN needs {single['network'][0]}: the Ranker architecture (e.g. type: RankerVGG) "
                             f"and {single['path'][0]}, its trained checkpoint; or a {list_option} list.")
        values = {key: value for key, (_, value) in single.items() if value is not None}
        return [_spec('', values, {key: option for key, (option, _) in single.items()}, registries)]
    if single['network'][1]:
        raise ValueError(f"RankSRGAN takes {single['network'][0]} (one Ranker) or {list_option} (a list), not both.")
    _refuse_single_ranker_options(single, list_option)
    if not isinstance(rankers, (list, tuple)):
        raise ValueError(f'{list_option} must be a list of mappings (name, network, path, ...), got {rankers!r}.')
    check_unique_names(rankers, list_option)
    return [_item(item, f'{list_option}[{index}]', registries) for index, item in enumerate(rankers)]


def _is_set(key: str, value: Any) -> bool:
    return value is not None and not (key in ITEM_DEFAULTS and value == ITEM_DEFAULTS[key])


def _refuse_single_ranker_options(single: SingleRanker, list_option: str) -> None:
    """With a ``rankers`` list, the single Ranker's options would be ignored: refused, saying where they go."""
    given = [(option, key) for key, (option, value) in single.items() if key != 'network' and _is_set(key, value)]
    if given:
        options = ', '.join(option for option, _ in given)
        keys = ', '.join(f'{list_option}[i].{key}' for _, key in given)
        raise ValueError(f'{options}: not read with a {list_option} list (each Ranker takes its own: {keys}); move it '
                         f'into the {list_option} items.')


def _item(item: Any, where: str, registries: Registries) -> RankerSpec:
    if not isinstance(item, Mapping):
        raise ValueError(f'{where} must be a mapping (name, network, path, ...), got {item!r}.')
    former = [key for key in item if key in FORMER_ITEM_KEYS]
    if former:
        renamed = ', '.join(f'{key!r} is now {FORMER_ITEM_KEYS[key]!r}' for key in former)
        raise UnknownOptionError(f'{where}: {renamed} (a rankers item takes the same keys in BasicSR and MMagic: '
                                 f'{list(ITEM_KEYS)}).')
    refuse_unknown_keys(item, ITEM_KEYS, where)
    missing = [key for key in ('name', 'network', 'path') if not item.get(key)]
    if missing:
        raise ValueError(f'{where} needs {", ".join(missing)} (name, network options and the checkpoint path).')
    check_ranker_name(item['name'], where)
    return _spec(item['name'], item, {key: f'{where}.{key}' for key in ITEM_KEYS}, registries)


def _spec(name: str, values: Mapping[str, Any], options: Dict[str, str], registries: Registries) -> RankerSpec:
    check_built_options(values['network'], options['network'], registries.networks, registries.network_kind,
                        'RankerVGG')
    rank_opt = values.get('rank_opt') or dict(DEFAULT_RANK_OPT)
    check_rank_content_options(rank_opt, options['rank_opt'], registries.losses)
    settings = {key: values.get(key, default) for key, default in ITEM_DEFAULTS.items()}
    if settings['batchnorm'] not in RANKER_BATCHNORM_MODES:
        raise ValueError(f"{options['batchnorm']}: unknown Ranker batchnorm mode {settings['batchnorm']!r}; choose "
                         "batch (the original's: each generator batch's statistics) or running (eval mode).")
    if not isinstance(settings['strict'], bool):  # a quoted 'false' is truthy
        raise ValueError(f"{options.get('strict', 'strict')} must be true or false, got {settings['strict']!r}.")
    return RankerSpec(name, values['network'], values.get('path'), rank_opt, options=options, **settings)


def check_unique_names(items: Any, list_option: str = 'rankers') -> None:
    names = [item.get('name') if isinstance(item, Mapping) else None for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f'{list_option}: names must differ, got {names}.')


def check_ranker_name(name: Any, where: str) -> None:
    """A Ranker's name names log entries: letters, digits and _ only."""
    if not _NAME.match(str(name)):
        raise ValueError(f'{where}.name {name!r}: use letters, digits and _ only (it names log entries).')
