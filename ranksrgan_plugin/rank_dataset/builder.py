"""Build a rank dataset with no MATLAB: SR levels -> aligned patches -> perceptual labels -> LMDB.

The paper's recipe as the original MATLAB scripts run it (the defaults; docs/fidelity.md): run SR models of
rising quality on the LR versions of HR training images, cut aligned 296x296 patches every 148
pixels (MATLAB's grid, see patch_selection), keep a location when the best level's patch has
``compute_sharpness >= 40`` and the NIQE (gray, no shave) of two chosen levels' patches differ by
more than 0.1, a random 200 per image when more pass, label every kept patch with NIQE (Y channel,
4-pixel shave), and hold out a random 10% of the patch locations for validation. Each of these
steps has a named option for the alternatives (docs/rank_dataset.md).

The build is resumable at image granularity. Each finished image leaves its patches (PNG) and a
JSON record under ``<output>/.work``; a rerun of the same command skips finished images, and the
final step writes the splits (docs/rank_dataset.md) from those records in a fixed key order, so an
interrupted build ends byte-identical (labels) to an uninterrupted one. ``num_shards`` /
``shard_index`` build a disjoint part; :func:`merge_rank_datasets` joins the parts.
"""
import hashlib
import json
import logging
import math
import os
import os.path as osp
import platform
import random
import re
import shutil
import time
from copy import deepcopy
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from basicsr.data.transforms import mod_crop
from basicsr.utils import FileClient, get_root_logger, imfrombytes
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from ..metrics.patch_metrics import PatchMetric, build_patch_metric
from ..version import __version__
from .patch_selection import (
    GRID_RULES,
    PATCH_CHOICES,
    SHARPNESS_MEASURES,
    choose_patches,
    crop,
    patch_grid,
    sharp_corners,
    stable_seed,
)
from .rank_dataset_format import (
    IMAGE_EXTENSIONS,
    MANIFEST_FILE,
    atomic_write,
    format_labels,
    level_path,
    list_folder_images,
    read_labels,
    read_lmdb_meta_info,
    read_manifest,
    write_manifest,
)
from .sr_levels import SRLevel, build_level, matlab_bicubic

BUILD_FORMAT = 'ranksrgan_rank_dataset_build'
SPLITS = ('train', 'val')
VAL_SPLITS = ('patch', 'image')
PNG_COMPRESSION = 1  # as BasicSR's LmdbMaker records it in meta_info.txt
WORK_DIR = '.work'

DEFAULT_CONFIG: Dict[str, Any] = {
    'output': None,             # output folder: <output>/{train,val}/ and <output>/manifest.json
    'hr': None,                 # HR images: a folder or a BasicSR LMDB (*.lmdb)
    'lr': None,                 # optional LR folder; default: MATLAB bicubic downscaling of HR
    'lr_suffix': '',            # LR file stem = HR stem + suffix (DIV2K: 'x4')
    'scale': 4,
    'levels': None,             # list of level options, see sr_levels.build_level
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
}
# Options that do not change the result: a rerun may change them and still resume.
_RESULT_NEUTRAL = ('output', 'device')


class RankDatasetBuildError(RuntimeError):
    """The rank dataset cannot be built as configured (bad input, options or output folder)."""


def load_config(config: Optional[Mapping[str, Any]] = None, **overrides: Any) -> Dict[str, Any]:
    """Defaults, then ``config`` (e.g. a YAML file's content), then non-None ``overrides``; validated."""
    merged = deepcopy(DEFAULT_CONFIG)
    for source in (config or {}, {k: v for k, v in overrides.items() if v is not None}):
        unknown = sorted(set(source) - set(DEFAULT_CONFIG))
        if unknown:
            raise RankDatasetBuildError(f'Unknown rank-dataset option(s) {unknown}; known: {sorted(DEFAULT_CONFIG)}.')
        merged.update(deepcopy(dict(source)))
    _validate_config(merged)
    return merged


def _validate_config(cfg: Dict[str, Any]) -> None:
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
    if cfg['storage'] not in ('lmdb', 'folder'):
        raise RankDatasetBuildError(f'`storage` is lmdb or folder, got {cfg["storage"]!r}.')
    if not 0 <= cfg['val_fraction'] < 1:
        raise RankDatasetBuildError(f'`val_fraction` must be in [0, 1), got {cfg["val_fraction"]}.')
    if not 0 <= cfg['shard_index'] < cfg['num_shards']:
        raise RankDatasetBuildError(f'`shard_index` {cfg["shard_index"]} is not in '
                                    f'[0, num_shards={cfg["num_shards"]}).')
    if cfg['patch_size'] <= 0 or cfg['stride'] <= 0 or cfg['max_patches_per_image'] <= 0:
        raise RankDatasetBuildError('`patch_size`, `stride` and `max_patches_per_image` must be positive.')
    for key, choices in (('grid', GRID_RULES), ('sharpness_measure', SHARPNESS_MEASURES),
                         ('max_patches_choice', PATCH_CHOICES), ('val_split_by', VAL_SPLITS)):
        if cfg[key] not in choices:
            raise RankDatasetBuildError(f'`{key}` is one of {list(choices)}, got {cfg[key]!r}.')
    if cfg['gap_metric'] is not None and not (isinstance(cfg['gap_metric'], Mapping) and 'type' in cfg['gap_metric']):
        raise RankDatasetBuildError(f'`gap_metric` is null or a metric like {{type: niqe, ...}}, '
                                    f'got {cfg["gap_metric"]!r}.')


def config_fingerprint(cfg: Mapping[str, Any]) -> str:
    """Hash of the options that determine the result (a resumed build must have the same)."""
    relevant = {k: v for k, v in cfg.items() if k not in _RESULT_NEUTRAL}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Inputs


class ImageSource:
    """Images of a folder or a BasicSR LMDB, addressed by stem (file name without extension)."""

    def __init__(self, path: str, what: str = 'HR') -> None:
        self.path, self.what = path, what
        if path.rstrip('/').endswith('.lmdb'):
            if not osp.isdir(path):
                raise RankDatasetBuildError(f'{what} LMDB {path} does not exist.')
            self._stems = sorted(read_lmdb_meta_info(path))
            self._client = FileClient('lmdb', db_paths=[path], client_keys=['default'])
            self._files = None
        else:
            if not osp.isdir(path):
                raise RankDatasetBuildError(f'{what} folder {path} does not exist.')
            self._files = list_folder_images(path)
            self._stems = sorted(self._files)
        if not self._stems:
            raise RankDatasetBuildError(f'{what} input {path} has no images (extensions {IMAGE_EXTENSIONS}).')

    def stems(self) -> List[str]:
        return list(self._stems)

    def location(self, stem: str) -> str:
        return self._files[stem] if self._files is not None else f'{self.path}:{stem}'

    def read(self, stem: str) -> np.ndarray:
        """BGR uint8 image; :class:`RankDatasetBuildError` naming the file if unreadable."""
        if self._files is not None:
            if stem not in self._files:
                raise RankDatasetBuildError(f'{self.what} image for {stem!r} not found in {self.path}.')
            img = cv2.imread(self._files[stem], cv2.IMREAD_COLOR)
        else:
            content = self._client.get(stem, 'default')
            img = imfrombytes(content) if content else None
        if img is None:
            raise RankDatasetBuildError(f'Cannot read {self.what} image {self.location(stem)}.')
        return img


def assign_splits(stems: Sequence[str], val_fraction: float, seed: int) -> Dict[str, str]:
    """Seeded split by source image: ``ceil(val_fraction * n)`` images (at most n - 1) go to val."""
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    num_val = min(math.ceil(val_fraction * len(order)), len(order) - 1) if val_fraction > 0 else 0
    val = set(order[:num_val])
    return {stem: 'val' if stem in val else 'train' for stem in stems}


def patch_split(key: str, val_fraction: float, seed: int) -> str:
    """Split of one patch location: 'val' with probability ``val_fraction``, from a hash of ``seed`` and ``key``.

    Depends on nothing else, so shards, resumed and uninterrupted builds agree.
    """
    return 'val' if stable_seed(seed, 'val', key) < val_fraction * 2.0**64 else 'train'


def key_stem(stem: str) -> str:
    """A source image stem made safe for LMDB keys (letters, digits, '_' and '-')."""
    return re.sub(r'[^A-Za-z0-9_\-]', '-', stem)


# ----------------------------------------------------------------------------------------------
# Building


class RankDatasetBuilder:
    """Builds one rank dataset (or one shard of it) from a validated config (:func:`load_config`)."""

    def __init__(self, cfg: Dict[str, Any], overwrite: bool = False,
                 logger: Optional[logging.Logger] = None, progress: bool = True) -> None:
        self.cfg, self.overwrite, self.progress = cfg, overwrite, progress
        self.output = cfg['output']
        self.work = osp.join(self.output, WORK_DIR)
        self.logger = logger or get_root_logger(logger_name='ranksrgan_plugin')

    def run(self) -> Dict[str, Any]:
        """Build (or resume) and finalise; returns the top-level manifest."""
        # inputs, levels and metric first: a bad option fails before the output folder is touched
        hr_source = ImageSource(self.cfg['hr'], 'HR')
        lr_source = ImageSource(self.cfg['lr'], 'LR') if self.cfg['lr'] else None
        stems = hr_source.stems()
        _check_unique_key_stems(stems, self.cfg['hr'])
        by_image = self.cfg['val_split_by'] == 'image'
        splits = assign_splits(stems, self.cfg['val_fraction'], self.cfg['seed']) if by_image else {}
        my_stems = stems[self.cfg['shard_index']::self.cfg['num_shards']]
        levels = [build_level(opt, self.cfg['scale'], self.cfg['device']) for opt in self.cfg['levels']]
        metric = build_patch_metric(self.cfg['metric'], self.cfg['device'])
        gap_metric = None
        if self.cfg['min_gap'] and self.cfg['gap_metric'] is not None:
            gap_metric = build_patch_metric(self.cfg['gap_metric'], self.cfg['device'])
        self._prepare_output()
        todo = [stem for stem in my_stems if not osp.isfile(self._record_path(stem))]
        self.logger.info(f'Rank dataset {self.output}: {len(my_stems)} images in this shard, '
                         f'{len(my_stems) - len(todo)} already done.')
        processor = ImageProcessor(self.cfg, levels, metric, hr_source, lr_source, gap_metric)
        with tqdm(total=len(my_stems), initial=len(my_stems) - len(todo), unit='image',
                  desc='rank dataset', disable=not self.progress) as bar:
            for stem in todo:
                record = processor.process(stem, splits.get(stem), self._stage_patch)
                self._log_record(record)
                atomic_write(self._record_path(stem), json.dumps(record))
                bar.update(1)
        records = [self._read_record(stem) for stem in my_stems]
        return self._finalise(records, levels, metric)

    # -- output folder lifecycle --------------------------------------------------------------
    def _prepare_output(self) -> None:
        if osp.isfile(osp.join(self.output, MANIFEST_FILE)):
            if not self.overwrite:
                raise RankDatasetBuildError(f'{self.output} holds a finished rank dataset; pass --overwrite '
                                            'to replace it.')
            shutil.rmtree(self.output)
        elif osp.isdir(self.output) and self.overwrite:
            shutil.rmtree(self.output)
        state_path = osp.join(self.work, 'state.json')
        fingerprint = config_fingerprint(self.cfg)
        if osp.isfile(state_path):
            with open(state_path, encoding='utf-8') as f:
                previous = json.load(f)['fingerprint']
            if previous != fingerprint:
                raise RankDatasetBuildError(f'{self.output} holds an unfinished build with other options; rerun '
                                            'with the same options to resume it, or pass --overwrite.')
            self.logger.info(f'Resuming the unfinished build in {self.output}.')
        elif osp.isdir(self.output) and os.listdir(self.output):
            raise RankDatasetBuildError(f'{self.output} exists and is not a rank dataset build; choose an empty '
                                        'or new folder, or pass --overwrite.')
        os.makedirs(osp.join(self.work, 'images'), exist_ok=True)
        atomic_write(state_path, json.dumps({'fingerprint': fingerprint, 'config': self.cfg}, default=str))

    def _record_path(self, stem: str) -> str:
        return osp.join(self.work, 'images', f'{key_stem(stem)}.json')

    def _read_record(self, stem: str) -> Dict[str, Any]:
        with open(self._record_path(stem), encoding='utf-8') as f:
            return json.load(f)

    def _staged_path(self, level: str, key: str) -> str:
        return osp.join(self.work, 'patches', level, f'{key}.png')

    def _stage_patch(self, level: str, key: str, patch: np.ndarray) -> None:
        path = self._staged_path(level, key)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, patch, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]):
            raise RankDatasetBuildError(f'Cannot write {path} (disk full?).')

    def _log_record(self, record: Dict[str, Any]) -> None:
        if record['status'] == 'skipped':
            self.logger.warning(f"Skipped {record['stem']}: {record['reason']}")

    def _finalise(self, records: List[Dict[str, Any]], levels: Sequence[SRLevel],
                  metric: PatchMetric) -> Dict[str, Any]:
        level_names = [level.name for level in levels]
        shape = (self.cfg['patch_size'], self.cfg['patch_size'], 3)
        split_summaries = {}
        for split in SPLITS:
            split_records, rows = split_rows(records, split, level_names)
            split_dir = osp.join(self.output, split)
            if not rows:
                shutil.rmtree(split_dir, ignore_errors=True)
                continue
            split_manifest = {
                'split': split, 'metric': metric.name, 'higher_is_better': metric.higher_is_better,
                'levels': level_names, 'storage': self.cfg['storage'], 'patch_size': self.cfg['patch_size'],
                'source_images': sorted(r['stem'] for r in split_records),
            }
            write_split(split_dir, rows, level_names, self.cfg['storage'],
                        lambda level, key: _read_bytes(self._staged_path(level, key)), lambda key: shape,
                        split_manifest)
            split_summaries[split] = {'num_keys': len(rows) // len(level_names), 'num_images': len(split_records)}
        if not split_summaries and self.cfg['num_shards'] == 1:
            raise RankDatasetBuildError(f'No patch of {len(records)} images passed the filters (see the counts in '
                                        f'{self.work}/images); nothing to write.')
        manifest = self._build_manifest(records, levels, metric, split_summaries)
        atomic_write(osp.join(self.output, MANIFEST_FILE), json.dumps(manifest, indent=2) + '\n')
        shutil.rmtree(self.work)
        self.logger.info(f'Rank dataset written to {self.output}: '
                         + ', '.join(f'{s}: {v["num_keys"]} keys' for s, v in split_summaries.items()))
        return manifest

    def _build_manifest(self, records, levels, metric, split_summaries) -> Dict[str, Any]:
        return {
            'format': BUILD_FORMAT, 'format_version': 1,
            'inputs': {'hr': osp.abspath(self.cfg['hr']), 'lr': self.cfg['lr'] and osp.abspath(self.cfg['lr']),
                       'scale': self.cfg['scale'], 'num_images': len(records)},
            'options': self.cfg,
            'levels': [level.describe() for level in levels],
            'metric': metric.describe(),
            'splits': split_summaries,
            'counts': sum_counts(records),
            'skipped': {r['stem']: r['reason'] for r in records if r['status'] == 'skipped'},
            'timings_s': sum_timings(records),
            'versions': package_versions(),
            'shard': {'num_shards': self.cfg['num_shards'], 'shard_index': self.cfg['shard_index']},
        }


class ImageProcessor:
    """Turns one source image into its kept patch locations, their patches, labels and splits."""

    def __init__(self, cfg: Dict[str, Any], levels: Sequence[SRLevel], metric: PatchMetric,
                 hr_source: ImageSource, lr_source: Optional[ImageSource],
                 gap_metric: Optional[PatchMetric] = None) -> None:
        self.cfg, self.levels, self.metric, self.gap_metric = cfg, levels, metric, gap_metric
        self.hr_source, self.lr_source = hr_source, lr_source

    def process(self, stem: str, split: Optional[str],
                stage_patch: Callable[[str, str, np.ndarray], None]) -> Dict[str, Any]:
        """The record of one image; ``split`` is the image's split, or None to split by patch."""
        timer = _StageTimer()
        record: Dict[str, Any] = {'stem': stem, 'split': split, 'status': 'ok', 'reason': None, 'keys': [],
                                  'splits': [], 'labels': {}, 'counts': {}, 'seconds': timer.seconds}
        try:
            hr = mod_crop(self.hr_source.read(stem), self.cfg['scale'])
        except RankDatasetBuildError as error:
            if not self.cfg['skip_unreadable']:
                raise
            return {**record, 'status': 'skipped', 'reason': str(error)}
        patch_size = self.cfg['patch_size']
        if min(hr.shape[:2]) < patch_size:
            return {**record, 'status': 'skipped',
                    'reason': f'HR image {hr.shape[1]}x{hr.shape[0]} is smaller than a {patch_size}-pixel patch'}
        lr = self._lr_image(stem, hr)
        timer.lap('read')
        srs = {}
        for level in self.levels:
            srs[level.name] = level(lr, hr, stem)
            timer.lap(f'level_{level.name}')
        corners, kept, labels, counts = self._select(stem, srs, timer)
        grid_index = {corner: i for i, corner in enumerate(corners)}
        keys = [f'{key_stem(stem)}_s{grid_index[corner]:04d}' for corner in kept]
        for name, sr in srs.items():
            for corner, key in zip(kept, keys):
                stage_patch(name, key, crop(sr, corner, patch_size))
        timer.lap('write')
        record.update(keys=keys, splits=[split or patch_split(key, self.cfg['val_fraction'], self.cfg['seed'])
                                         for key in keys],
                      labels={name: [float(v) for v in values] for name, values in labels.items()}, counts=counts)
        return record

    def _select(self, stem: str, srs: Mapping[str, np.ndarray], timer: '_StageTimer') -> Tuple[
            List[Tuple[int, int]], List[Tuple[int, int]], Dict[str, np.ndarray], Dict[str, int]]:
        """Grid, sharpness filter, gap filter and cap: (grid corners, kept corners, their labels, counts)."""
        height, width = srs[self.cfg['sharpness_level']].shape[:2]
        patch_size = self.cfg['patch_size']
        corners = patch_grid(height, width, patch_size, self.cfg['stride'], self.cfg['grid'])
        sharp = sharp_corners(srs[self.cfg['sharpness_level']], corners, patch_size, self.cfg['sharpness_threshold'],
                              self.cfg['sharpness_block'], self.cfg['sharpness_measure'])
        timer.lap('sharpness')
        passed, labels = self._gap_filter(srs, sharp, timer)
        chosen = choose_patches(passed, self.cfg['max_patches_per_image'], self.cfg['max_patches_choice'],
                                stable_seed(self.cfg['seed'], 'patches', stem))
        kept = [sharp[i] for i in chosen]
        labels = self._kept_labels(srs, kept, chosen, labels)
        timer.lap('metric')
        counts = {'grid': len(corners), 'sharp': len(sharp), 'gap': len(passed), 'kept': len(kept)}
        return corners, kept, labels, counts

    def _lr_image(self, stem: str, hr: np.ndarray) -> np.ndarray:
        scale = self.cfg['scale']
        if self.lr_source is None:
            return matlab_bicubic(hr, 1 / scale)
        lr = self.lr_source.read(stem + self.cfg['lr_suffix'])
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            raise RankDatasetBuildError(
                f'LR image {self.lr_source.location(stem + self.cfg["lr_suffix"])} is {lr.shape[1]}x{lr.shape[0]}; '
                f'x{scale} of the (mod-cropped) HR image {hr.shape[1]}x{hr.shape[0]} needs '
                f'{hr.shape[1] // scale}x{hr.shape[0] // scale}.')
        return lr

    def _labels(self, sr: np.ndarray, corners: Sequence[Tuple[int, int]], metric: PatchMetric) -> np.ndarray:
        if not corners:
            return np.zeros(0)
        patches = np.stack([crop(sr, corner, self.cfg['patch_size']) for corner in corners])
        return np.asarray(metric(patches), dtype=np.float64)

    def _gap_filter(self, srs: Mapping[str, np.ndarray], corners: Sequence[Tuple[int, int]],
                    timer: '_StageTimer') -> Tuple[List[int], Optional[Dict[str, np.ndarray]]]:
        """Indices of the corners whose gap levels differ by more than ``min_gap``, and the labels if computed.

        With a ``gap_metric`` only the two gap levels are scored (by it); without one, every level is
        labelled here and the labels decide.
        """
        min_gap = self.cfg['min_gap']
        if not min_gap:
            return list(range(len(corners))), None
        labels = None
        if self.gap_metric is None:
            labels = {name: self._labels(sr, corners, self.metric) for name, sr in srs.items()}
            first, second = (labels[name] for name in self.cfg['gap_levels'])
        else:
            first, second = (self._labels(srs[name], corners, self.gap_metric) for name in self.cfg['gap_levels'])
        timer.lap('gap')
        return [i for i in range(len(corners)) if abs(first[i] - second[i]) > min_gap], labels

    def _kept_labels(self, srs: Mapping[str, np.ndarray], kept_corners: Sequence[Tuple[int, int]],
                     kept: Sequence[int], labels: Optional[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The labels of the kept locations: taken from the gap filter's when it computed them."""
        if labels is not None:
            return {name: values[list(kept)] for name, values in labels.items()}
        return {name: self._labels(sr, kept_corners, self.metric) for name, sr in srs.items()}


class _StageTimer:
    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


# ----------------------------------------------------------------------------------------------
# Writing splits, merging shards


def write_split(split_dir: str, rows: Sequence[Tuple[str, str, float]], levels: Sequence[str], storage: str,
                read_patch: Callable[[str, str], bytes], patch_shape: Callable[[str], Tuple[int, int, int]],
                manifest: Mapping[str, Any]) -> None:
    """Write one split (level stores, labels.txt, then manifest.json last) in canonical key order.

    ``rows`` are (key, level, label); ``read_patch(level, key)`` gives PNG bytes. A leftover
    partial split folder (a killed earlier finalise) is replaced.
    """
    labels = {(key, level): label for key, level, label in rows}
    keys = sorted({key for key, _, _ in rows})
    shutil.rmtree(split_dir, ignore_errors=True)
    os.makedirs(split_dir)
    for level in levels:
        store = level_path(split_dir, level, storage)
        if storage == 'lmdb':
            maker = LmdbMaker(store, compress_level=PNG_COMPRESSION)
            for key in keys:
                maker.put(read_patch(level, key), key, patch_shape(key))
            maker.close()
        else:
            os.makedirs(store)
            for key in keys:
                with open(osp.join(store, f'{key}.png'), 'wb') as f:
                    f.write(read_patch(level, key))
    atomic_write(osp.join(split_dir, 'labels.txt'),
                 format_labels((key, level, labels[(key, level)]) for key in keys for level in levels))
    write_manifest(split_dir, {**manifest, 'num_keys': len(keys)})


def split_rows(records: Sequence[Mapping[str, Any]], split: str,
               levels: Sequence[str]) -> Tuple[List[Mapping[str, Any]], List[Tuple[str, str, float]]]:
    """The image records that have ``split`` (as a whole or some patch) and its (key, level, label) rows."""
    split_records = [r for r in records if r['status'] == 'ok' and (r['split'] == split or split in r['splits'])]
    rows = [(key, level, record['labels'][level][i]) for record in split_records
            for i, key in enumerate(record['keys']) if record['splits'][i] == split for level in levels]
    return split_records, rows


def merge_rank_datasets(inputs: Sequence[str], output: str, overwrite: bool = False,
                        logger: Optional[logging.Logger] = None) -> Dict[str, Any]:
    """Join the shards of one build (same options, every shard index once) into one rank dataset.

    The result equals a single unsharded run: same keys, byte-identical labels files.
    """
    logger = logger or get_root_logger(logger_name='ranksrgan_plugin')
    manifests = [_read_build_manifest(path) for path in inputs]
    options = _check_shards(manifests, inputs)
    if osp.exists(output):
        if not overwrite:
            raise RankDatasetBuildError(f'{output} exists; pass --overwrite to replace it.')
        shutil.rmtree(output)
    os.makedirs(output)
    split_summaries = {}
    for split in SPLITS:
        parts = [osp.join(path, split) for path in inputs if osp.isfile(osp.join(path, split, MANIFEST_FILE))]
        if parts:
            split_summaries[split] = _merge_split(parts, osp.join(output, split))
    manifest = dict(manifests[0])
    manifest.update(options={**options, 'output': output}, splits=split_summaries,
                    counts=_sum_dicts(m['counts'] for m in manifests),
                    skipped={k: v for m in manifests for k, v in m['skipped'].items()},
                    timings_s=_sum_dicts(m['timings_s'] for m in manifests),
                    inputs={**manifest['inputs'], 'num_images': sum(m['inputs']['num_images'] for m in manifests)},
                    shard={'num_shards': 1, 'shard_index': 0}, merged_from=[osp.abspath(p) for p in inputs])
    atomic_write(osp.join(output, MANIFEST_FILE), json.dumps(manifest, indent=2) + '\n')
    logger.info(f'Merged {len(inputs)} shards into {output}: '
                + ', '.join(f'{s}: {v["num_keys"]} keys' for s, v in split_summaries.items()))
    return manifest


def _merge_split(parts: Sequence[str], split_dir: str) -> Dict[str, int]:
    part_manifests = [read_manifest(part) for part in parts]
    levels, storage = part_manifests[0]['levels'], part_manifests[0]['storage']
    rows, owner, shapes = [], {}, {}
    for part in parts:
        for (key, level), label in read_labels(osp.join(part, 'labels.txt')).items():
            if owner.setdefault(key, part) != part:
                raise RankDatasetBuildError(f'Key {key!r} is in two shards: {owner[key]} and {part}.')
            rows.append((key, level, label))
        if storage == 'lmdb':
            shapes.update(read_lmdb_meta_info(level_path(part, levels[0], 'lmdb')))
    clients = {part: _store_reader(part, levels, storage) for part in parts}
    manifest = {k: v for k, v in part_manifests[0].items() if k not in ('format', 'format_version', 'num_keys')}
    manifest['source_images'] = sorted(s for m in part_manifests for s in m.get('source_images', []))
    default_shape = (manifest['patch_size'], manifest['patch_size'], 3)
    write_split(split_dir, rows, levels, storage, lambda level, key: clients[owner[key]](level, key),
                lambda key: shapes.get(key, default_shape), manifest)
    return {'num_keys': len(owner), 'num_images': len(manifest['source_images'])}


def _store_reader(split_dir: str, levels: Sequence[str], storage: str) -> Callable[[str, str], bytes]:
    if storage == 'lmdb':
        client = FileClient('lmdb', db_paths=[level_path(split_dir, lv, 'lmdb') for lv in levels],
                            client_keys=list(levels))
        return lambda level, key: client.get(key, level)
    return lambda level, key: _read_bytes(osp.join(level_path(split_dir, level, 'folder'), f'{key}.png'))


def _read_build_manifest(path: str) -> Dict[str, Any]:
    manifest_path = osp.join(path, MANIFEST_FILE)
    if not osp.isfile(manifest_path):
        raise RankDatasetBuildError(f'{path} is not a finished rank dataset build (no {MANIFEST_FILE}).')
    with open(manifest_path, encoding='utf-8') as f:
        manifest = json.load(f)
    if manifest.get('format') != BUILD_FORMAT:
        raise RankDatasetBuildError(f'{manifest_path} is not a rank dataset build manifest.')
    return manifest


def _check_shards(manifests: Sequence[Dict[str, Any]], inputs: Sequence[str]) -> Dict[str, Any]:
    """The common options of a complete shard set (shard fields reset to one shard)."""
    def shardless(options):
        return {k: v for k, v in options.items() if k not in ('shard_index', 'num_shards', *_RESULT_NEUTRAL)}

    reference = shardless(manifests[0]['options'])
    for path, manifest in zip(inputs, manifests):
        if shardless(manifest['options']) != reference:
            raise RankDatasetBuildError(f'{path} was built with other options than {inputs[0]}; cannot merge.')
    num_shards = manifests[0]['options']['num_shards']
    indices = sorted(m['options']['shard_index'] for m in manifests)
    if indices != list(range(num_shards)) or any(m['options']['num_shards'] != num_shards for m in manifests):
        raise RankDatasetBuildError(f'Merging needs each of the {num_shards} shards exactly once, got shard '
                                    f'indices {indices}.')
    return {**manifests[0]['options'], 'num_shards': 1, 'shard_index': 0}


# ----------------------------------------------------------------------------------------------
# Small helpers


def _read_bytes(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _check_unique_key_stems(stems: Iterable[str], where: str) -> None:
    seen: Dict[str, str] = {}
    for stem in stems:
        safe = key_stem(stem)
        if seen.setdefault(safe, stem) != stem:
            raise RankDatasetBuildError(f'Images {seen[safe]!r} and {stem!r} in {where} map to the same key '
                                        f'prefix {safe!r}; rename one of them.')


def _sum_dicts(dicts: Iterable[Mapping[str, float]]) -> Dict[str, float]:
    total: Dict[str, float] = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + value
    return total


def sum_counts(records: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
    """Totals over images: grid locations, sharp ones, kept ones, images ok and skipped."""
    counts = _sum_dicts(r['counts'] for r in records)
    counts.update(images_ok=sum(r['status'] == 'ok' for r in records),
                  images_skipped=sum(r['status'] == 'skipped' for r in records))
    return counts


def sum_timings(records: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    return {stage: round(seconds, 3) for stage, seconds in _sum_dicts(r['seconds'] for r in records).items()}


def package_versions() -> Dict[str, str]:
    import basicsr
    import torch

    return {'ranksrgan_plugin': __version__, 'python': platform.python_version(), 'torch': torch.__version__,
            'basicsr': basicsr.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__}
