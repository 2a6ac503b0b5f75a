"""The rank-dataset build's options: defaults, loading, validation and the fingerprint a resumed build must match."""
import hashlib
import inspect
import json
from copy import deepcopy
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from ..utils.option_keys import closest_key, refuse_unknown_keys
from .levels import LEVEL_REGISTRY
from .patch_metrics import PATCH_METRIC_REGISTRY
from .patch_selection import GRID_RULES, PATCH_CHOICES, SHARPNESS_MEASURES

VAL_SPLITS = ('patch', 'image')

DEFAULT_CONFIG: Dict[str, Any] = {
    'output': None,             # output folder: <output>/{train,val}/ and <output>/manifest.json
    'hr': None,                 # HR images: a folder or a BasicSR LMDB (*.lmdb)
    'lr': None,                 # optional LR folder; default: MATLAB bicubic downscaling of HR
    'lr_suffix': '',            # LR file stem = HR stem + suffix (DIV2K: 'x4')
    'scale': 4,
    'levels': None,             # list of level options, see levels.build_level
    'patch_size': 296,
    'stride': 148,
    'grid': 'original',         # original: MATLAB 1:stride:H-patch (no patch with top H-patch); full: every full one
    'max_patches_per_image': 200,
    'max_patches_choice': 'random',  # random: a seeded random subset when more pass (original); first: raster order
    'sharpness_level': None,    # level whose patch must be sharp; default: the last level
    'sharpness_measure': 'original',  # original: compute_sharpness.m; stdfilt3: 3x3 stdfilt, full blocks
    'sharpness_threshold': 40.0,  # keep when sharpness >= threshold; None disables the filter
    'sharpness_block': 96,
    'gap_levels': None,         # two levels whose patches must differ; default: the last two levels
    'min_gap': 0.1,             # None or 0 disables the filter
    # metric of the gap filter (original: calc_NIQE, MATLAB rgb2gray, no shave); None: the labels
    'gap_metric': {'type': 'niqe', 'crop_border': 0, 'convert_to': 'gray_uint8'},
    'metric': {'type': 'niqe', 'crop_border': 4, 'convert_to': 'y'},
    'val_fraction': 0.1,
    'val_split_by': 'patch',    # patch: each location with probability val_fraction (original); image: by source
    'seed': 0,
    'storage': 'lmdb',          # lmdb or folder
    'skip_unreadable': False,   # True: log and count unreadable HR images instead of failing
    'device': None,             # torch device for networks and the metric; default: CUDA if available
    'num_shards': 1,
    'shard_index': 0,
    'io_threads': None,         # threads writing patches; default: the cores, at most 8
}
# Options that do not change the result: a rerun may change them and still resume.
RESULT_NEUTRAL = ('output', 'device', 'io_threads')


class RankDatasetBuildError(RuntimeError):
    """The rank dataset cannot be built as configured (bad input, options or output folder)."""


def load_config(config: Optional[Mapping[str, Any]] = None, source: str = 'rank-dataset options',
                **overrides: Any) -> Dict[str, Any]:
    """Defaults, then ``config`` (e.g. a YAML file's content), then non-None ``overrides``; validated.

    ``source`` names ``config`` in messages (the tool passes its YAML file). Refused, before anything
    is built: unknown keys (top level, each level, ``metric`` / ``gap_metric``; with the closest valid
    name), unknown level and metric types, and a ``patch_size`` smaller than a metric needs.
    """
    if config is not None and not isinstance(config, Mapping):
        raise RankDatasetBuildError(f'{source}: expected a mapping of rank-dataset options, got {config!r}.')
    merged = deepcopy(DEFAULT_CONFIG)
    for options in (config or {}, {k: v for k, v in overrides.items() if v is not None}):
        refuse_unknown_keys(options, DEFAULT_CONFIG, source, error=RankDatasetBuildError)
        merged.update(deepcopy(dict(options)))
    _validate_config(merged, source)
    return merged


def _validate_config(cfg: Dict[str, Any], source: str = 'rank-dataset options') -> None:
    """Check ``cfg`` in place (the first failing check raises) and fill in the level-name defaults."""
    _check_levels(cfg)
    _check_level_options(cfg['levels'], source)
    _check_values(cfg)
    _check_choices(cfg)
    _check_metrics(cfg, source)


def _check_levels(cfg: Dict[str, Any]) -> None:
    """Required options, distinct level names, and the sharpness / gap levels among them (defaults filled)."""
    for key in ('output', 'hr', 'levels'):
        if not cfg[key]:
            raise RankDatasetBuildError(f'Rank-dataset option `{key}` is required.')
    names = [level.get('name') for level in cfg['levels']]
    if len(names) < 2 or len(set(names)) != len(names):
        raise RankDatasetBuildError(f'`levels` needs >= 2 levels with distinct names, got {names}.')
    cfg['sharpness_level'] = cfg['sharpness_level'] or names[-1]
    cfg['gap_levels'] = list(cfg['gap_levels'] or names[-2:])
    for level in [cfg['sharpness_level'], *cfg['gap_levels']]:
        if level not in names:
            raise RankDatasetBuildError(f'Level {level!r} (sharpness_level / gap_levels) is not one of {names}.')
    if len(cfg['gap_levels']) != 2:
        raise RankDatasetBuildError(f'`gap_levels` names two levels, got {cfg["gap_levels"]}.')


def _check_values(cfg: Dict[str, Any]) -> None:
    """Storage, fractions, shard index and sizes in range."""
    for key, optional in (('val_fraction', False), ('min_gap', True), ('sharpness_threshold', True)):
        if not (cfg[key] is None and optional) and (isinstance(cfg[key], bool)
                                                     or not isinstance(cfg[key], (int, float))):
            raise RankDatasetBuildError(f'`{key}` must be a number{" or null" if optional else ""}, got {cfg[key]!r}.')
    if cfg['storage'] not in ('lmdb', 'folder'):
        raise RankDatasetBuildError(f'`storage` is lmdb or folder, got {cfg["storage"]!r}.')
    if not 0 <= cfg['val_fraction'] < 1:
        raise RankDatasetBuildError(f'`val_fraction` must be in [0, 1), got {cfg["val_fraction"]}.')
    if not 0 <= cfg['shard_index'] < cfg['num_shards']:
        raise RankDatasetBuildError(f'`shard_index` {cfg["shard_index"]} is not in '
                                    f'[0, num_shards={cfg["num_shards"]}).')
    for key in ('patch_size', 'stride', 'max_patches_per_image', 'scale', 'sharpness_block'):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] <= 0:
            raise RankDatasetBuildError(f'`{key}` must be a positive integer, got {cfg[key]!r}.')
    if cfg['io_threads'] is not None and (not isinstance(cfg['io_threads'], int) or cfg['io_threads'] < 1):
        raise RankDatasetBuildError(f'`io_threads` is a positive integer or null, got {cfg["io_threads"]!r}.')


def _check_choices(cfg: Dict[str, Any]) -> None:
    """The named rules are known ones, and ``gap_metric`` is null or a metric option."""
    for key, choices in (('grid', GRID_RULES), ('sharpness_measure', SHARPNESS_MEASURES),
                         ('max_patches_choice', PATCH_CHOICES), ('val_split_by', VAL_SPLITS)):
        if cfg[key] not in choices:
            raise RankDatasetBuildError(f'`{key}` is one of {list(choices)}, got {cfg[key]!r}.')
    if cfg['gap_metric'] is not None and not (isinstance(cfg['gap_metric'], Mapping) and 'type' in cfg['gap_metric']):
        raise RankDatasetBuildError(f'`gap_metric` is null or a metric like {{type: niqe, ...}}, '
                                    f'got {cfg["gap_metric"]!r}.')


def _check_level_options(levels: Iterable[Mapping[str, Any]], source: str) -> None:
    """Each level's ``type`` is a registered one and its keys are those the type reads."""
    for index, level in enumerate(levels):
        where = f"{source}, levels[{index}] ({level.get('name')!r})"
        kind = level.get('type')
        if kind not in LEVEL_REGISTRY:
            raise RankDatasetBuildError(f'{where}: unknown level type {kind!r}{_did_you_mean(kind, LEVEL_REGISTRY)}; '
                                        f'types: {LEVEL_REGISTRY.names()}.')
        keys = LEVEL_REGISTRY.get(kind).option_keys
        if keys is not None:
            refuse_unknown_keys(level, ('name', 'type', *keys), where, error=RankDatasetBuildError)


def _check_metrics(cfg: Dict[str, Any], source: str) -> None:
    """``metric`` (and ``gap_metric`` when the gap filter runs): a known type, its keys, and patches it can score."""
    if not (isinstance(cfg['metric'], Mapping) and 'type' in cfg['metric']):
        raise RankDatasetBuildError(f'`metric` is a metric like {{type: niqe, ...}}, got {cfg["metric"]!r}.')
    for key in ('metric', 'gap_metric'):
        opt = cfg[key]
        if opt is None or (key == 'gap_metric' and not cfg['min_gap']):
            continue
        factory = _metric_factory(opt, f'{source}, {key}')
        smallest = factory.min_patch_size(opt) if hasattr(factory, 'min_patch_size') else 1
        if cfg['patch_size'] < smallest:
            gap_off = ' (or turn the gap filter off: min_gap 0, --min-gap 0)' if key == 'gap_metric' else ''
            raise RankDatasetBuildError(
                f"`patch_size` (--patch-size) {cfg['patch_size']} is too small for the {key} {opt['type']} "
                f"(crop_border {opt.get('crop_border', 4)}): {factory.size_note}. The smallest patch_size that "
                f'works is {smallest}{gap_off}.')


def _metric_factory(opt: Mapping[str, Any], where: str) -> Callable[..., Any]:
    """The registered factory of a metric option, its keys checked against the factory's parameters."""
    name = opt['type']
    if name not in PATCH_METRIC_REGISTRY:
        raise RankDatasetBuildError(f'{where}: unknown metric type {name!r}{_did_you_mean(name, PATCH_METRIC_REGISTRY)}'
                                    f'; types: {PATCH_METRIC_REGISTRY.names()}.')
    factory = PATCH_METRIC_REGISTRY.get(name)
    parameters = inspect.signature(factory).parameters.values()
    if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        refuse_unknown_keys(opt, ['type', *(parameter.name for parameter in parameters)], where,
                            error=RankDatasetBuildError)
    return factory


def _did_you_mean(name: Any, registry: Any) -> str:
    guess = closest_key(str(name), registry.names())
    return f' (did you mean {guess!r}?)' if guess else ''


def config_fingerprint(cfg: Mapping[str, Any]) -> str:
    """Hash of the options that determine the result (a resumed build must have the same)."""
    relevant = {k: v for k, v in cfg.items() if k not in RESULT_NEUTRAL}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]

