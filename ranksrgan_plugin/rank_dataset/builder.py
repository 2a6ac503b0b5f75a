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
``shard_index`` build a disjoint part; :func:`.merge.merge_rank_datasets` joins the parts.
"""
import json
import logging
import math
import os
import os.path as osp
import platform
import shutil
import time
from contextlib import closing
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from basicsr.utils import get_root_logger
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from ..data.rank_dataset_format import MANIFEST_FILE, format_labels, level_path, write_manifest
from ..utils.atomic_files import write_text_atomically
from ..version import __version__
from .distributed import BuildProcesses
from .image_processor import ImageProcessor
from .levels import SRLevel, build_level
from .options import RankDatasetBuildError, config_fingerprint
from .patch_metrics import PatchMetric, build_patch_metric
from .pipeline import PNG_COMPRESSION, PatchWriter, default_io_threads, read_ahead
from .sources import ImageSource, assign_splits, check_unique_key_stems, key_stem

BUILD_FORMAT = 'ranksrgan_rank_dataset_build'
SPLITS = ('train', 'val')
WORK_DIR = '.work'


class RankDatasetBuilder:
    """Builds one rank dataset (or one shard of it) from a validated config (:func:`load_config`).

    ``processes``: the processes of a launcher that share the build (see :mod:`.distributed`); default one.
    """

    def __init__(self, cfg: Dict[str, Any], overwrite: bool = False, logger: Optional[logging.Logger] = None,
                 progress: bool = True, processes: Optional[BuildProcesses] = None) -> None:
        self.cfg, self.overwrite = cfg, overwrite
        self.processes = processes or BuildProcesses()
        self.progress = progress and self.processes.is_main
        self.output = cfg['output']
        self.work = osp.join(self.output, WORK_DIR)
        self.logger = logger or get_root_logger(logger_name='ranksrgan_plugin')

    def run(self) -> Optional[Dict[str, Any]]:
        """Build (or resume) and finalise; returns the top-level manifest (None on a launcher's ranks > 0)."""
        # inputs, levels and metric first: a bad option fails before the output folder is touched
        hr_source = ImageSource(self.cfg['hr'], 'HR')
        lr_source = ImageSource(self.cfg['lr'], 'LR') if self.cfg['lr'] else None
        stems = hr_source.stems()
        check_unique_key_stems(stems, self.cfg['hr'])
        by_image = self.cfg['val_split_by'] == 'image'
        splits = assign_splits(stems, self.cfg['val_fraction'], self.cfg['seed']) if by_image else {}
        my_stems = stems[self.cfg['shard_index']::self.cfg['num_shards']]
        device = self.processes.device(self.cfg['device'])
        levels = [build_level(opt, self.cfg['scale'], device) for opt in self.cfg['levels']]
        metric = build_patch_metric(self.cfg['metric'], device)
        gap_metric = None
        if self.cfg['min_gap'] and self.cfg['gap_metric'] is not None:
            gap_metric = build_patch_metric(self.cfg['gap_metric'], device)
        if self.processes.is_main:
            self._prepare_output()
        self.processes.barrier()
        todo = [stem for stem in my_stems if not osp.isfile(self._record_path(stem))]
        self.logger.info(f'Rank dataset {self.output}: {len(my_stems)} images in this shard, '
                         f'{len(my_stems) - len(todo)} already done'
                         + (f', {self.processes.world_size} processes.' if self.processes.world_size > 1 else '.'))
        processor = ImageProcessor(self.cfg, levels, metric, hr_source, lr_source, gap_metric)
        mine = self.processes.share(todo)
        with tqdm(total=len(mine), unit='image', desc='rank dataset', disable=not self.progress) as bar:
            self._process_images(processor, mine, splits, bar)
        self.processes.barrier()
        if not self.processes.is_main:
            return None
        records = [self._read_record(stem) for stem in my_stems]
        return self._finalise(records, levels, metric)

    def _process_images(self, processor: ImageProcessor, stems: Sequence[str], splits: Mapping[str, str],
                        bar: tqdm) -> None:
        """Read ahead, process, and write the patches in the background; records committed in order."""
        def commit(record: Dict[str, Any]) -> None:
            self._log_record(record)
            write_text_atomically(self._record_path(record['stem']), json.dumps(record))
            bar.update(1)

        threads = self.cfg['io_threads'] or default_io_threads()
        with PatchWriter(commit, threads) as writer, closing(read_ahead(processor.load, stems)) as images:
            for stem, loaded in images:
                record = processor.process(
                    stem, splits.get(stem),
                    lambda level, key, patch: writer.stage(self._staged_path(level, key), patch), loaded)
                writer.finish_image(record)
            writer.drain()

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
        write_text_atomically(state_path, json.dumps({'fingerprint': fingerprint, 'config': self.cfg}, default=str))

    def _record_path(self, stem: str) -> str:
        return osp.join(self.work, 'images', f'{key_stem(stem)}.json')

    def _read_record(self, stem: str) -> Dict[str, Any]:
        with open(self._record_path(stem), encoding='utf-8') as f:
            return json.load(f)

    def _staged_path(self, level: str, key: str) -> str:
        return osp.join(self.work, 'patches', level, f'{key}.png')

    def _log_record(self, record: Dict[str, Any]) -> None:
        if record['status'] == 'skipped':
            self.logger.warning(f"Skipped {record['stem']}: {record['reason']}")

    def _finalise(self, records: List[Dict[str, Any]], levels: Sequence[SRLevel],
                  metric: PatchMetric) -> Dict[str, Any]:
        level_names = [level.name for level in levels]
        shape = (self.cfg['patch_size'], self.cfg['patch_size'], 3)
        split_summaries = {}
        started = time.perf_counter()
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
                        lambda level, key: read_bytes(self._staged_path(level, key)), lambda key: shape,
                        split_manifest)
            split_summaries[split] = {'num_keys': len(rows) // len(level_names), 'num_images': len(split_records)}
        if not split_summaries and self.cfg['num_shards'] == 1:
            raise RankDatasetBuildError(f'No patch of {len(records)} images passed the filters; nothing to write. '
                                        + why_nothing_kept(sum_counts(records), self.cfg))
        manifest = self._build_manifest(records, levels, metric, split_summaries)
        manifest['timings_s']['pack'] = round(time.perf_counter() - started, 3)  # the LMDB / folder writing
        write_text_atomically(osp.join(self.output, MANIFEST_FILE), json.dumps(manifest, indent=2) + '\n')
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
            'processes': self.processes.world_size,
        }


# ----------------------------------------------------------------------------------------------
# Writing splits


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
    write_text_atomically(osp.join(split_dir, 'labels.txt'),
                          format_labels((key, level, labels[(key, level)]) for key in keys for level in levels))
    write_manifest(split_dir, {**manifest, 'num_keys': len(keys)})


def split_rows(records: Sequence[Mapping[str, Any]], split: str,
               levels: Sequence[str]) -> Tuple[List[Mapping[str, Any]], List[Tuple[str, str, float]]]:
    """The image records that have ``split`` (as a whole or some patch) and its (key, level, label) rows."""
    split_records = [r for r in records if r['status'] == 'ok' and (r['split'] == split or split in r['splits'])]
    rows = [(key, level, record['labels'][level][i]) for record in split_records
            for i, key in enumerate(record['keys']) if record['splits'][i] == split for level in levels]
    return split_records, rows


# ----------------------------------------------------------------------------------------------
# Small helpers


def read_bytes(path: str) -> bytes:
    """The content of the file ``path``."""
    with open(path, 'rb') as f:
        return f.read()


def sum_dicts(dicts: Iterable[Mapping[str, float]]) -> Dict[str, float]:
    """Key-wise sums of ``dicts`` (a key missing from one counts as 0)."""
    total: Dict[str, float] = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + value
    return total


def why_nothing_kept(counts: Mapping[str, int], cfg: Mapping[str, Any]) -> str:
    """Which filter kept nothing, why, and which option changes it."""
    grid, sharp = counts.get('grid', 0), counts.get('sharp', 0)
    if not grid:
        return (f"The images hold no {cfg['patch_size']}-pixel grid location (grid: {cfg['grid']}, stride "
                f"{cfg['stride']}): use smaller --patch-size or larger images.")
    if not sharp:
        blocks = math.ceil(cfg['patch_size'] / cfg['sharpness_block']) ** 2
        return (f"The sharpness filter kept none of the {grid} grid locations: sharpness_threshold "
                f"{cfg['sharpness_threshold']} is the original's for 296-pixel patches, whose measure sums 16 "
                f"{cfg['sharpness_block']}-pixel block means; a {cfg['patch_size']}-pixel patch sums {blocks}. Lower "
                f"it (--sharpness-threshold, e.g. {cfg['sharpness_threshold'] * blocks / 16:g}) or turn the filter "
                'off (--no-sharpness-filter).')
    if counts.get('undefined_label'):  # every location that passed the filters had a NaN label
        return (f"The label metric {cfg['metric']['type']} is undefined (NaN) on every one of the "
                f"{counts['undefined_label']} locations that passed the filters (flat patches?), and such locations "
                'are dropped: use other images or levels.')
    metric = (cfg['gap_metric'] or cfg['metric'])['type']
    return (f"The gap filter kept none of the {sharp} sharp locations: |{' - '.join(cfg['gap_levels'])}| of "
            f"{metric} must exceed min_gap {cfg['min_gap']}: lower it (--min-gap, 0 turns the filter off).")


def sum_counts(records: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
    """Totals over images: grid locations, sharp ones, kept ones, images ok and skipped."""
    counts = sum_dicts(r['counts'] for r in records)
    counts.update(images_ok=sum(r['status'] == 'ok' for r in records),
                  images_skipped=sum(r['status'] == 'skipped' for r in records))
    return counts


def sum_timings(records: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Seconds per stage summed over images, rounded to milliseconds."""
    return {stage: round(seconds, 3) for stage, seconds in sum_dicts(r['seconds'] for r in records).items()}


def package_versions() -> Dict[str, str]:
    """The versions the manifest records: the plugin, Python, torch, BasicSR, NumPy, OpenCV."""
    import basicsr
    import cv2
    import torch

    return {'ranksrgan_plugin': __version__, 'python': platform.python_version(), 'torch': torch.__version__,
            'basicsr': basicsr.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__}
