"""Joining the shards of one rank-dataset build (``num_shards`` / ``shard_index``) into one rank dataset, after
checking that they are a complete set built with the same options."""
import json
import logging
import os
import os.path as osp
import shutil
from typing import Any, Callable, Dict, Optional, Sequence

from basicsr.utils import FileClient, get_root_logger

from ..data.rank_dataset_format import (
    MANIFEST_FILE,
    level_path,
    read_labels,
    read_lmdb_meta_info,
    read_manifest,
)
from ..utils.atomic_files import write_text_atomically
from .builder import BUILD_FORMAT, SPLITS, read_bytes, sum_dicts, write_split
from .options import RESULT_NEUTRAL, RankDatasetBuildError


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
                    counts=sum_dicts(m['counts'] for m in manifests),
                    skipped={k: v for m in manifests for k, v in m['skipped'].items()},
                    timings_s=sum_dicts(m['timings_s'] for m in manifests),
                    inputs={**manifest['inputs'], 'num_images': sum(m['inputs']['num_images'] for m in manifests)},
                    shard={'num_shards': 1, 'shard_index': 0}, merged_from=[osp.abspath(p) for p in inputs],
                    processes=sum(m.get('processes', 1) for m in manifests))
    write_text_atomically(osp.join(output, MANIFEST_FILE), json.dumps(manifest, indent=2) + '\n')
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
    return lambda level, key: read_bytes(osp.join(level_path(split_dir, level, 'folder'), f'{key}.png'))


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
        return {k: v for k, v in options.items() if k not in ('shard_index', 'num_shards', *RESULT_NEUTRAL)}

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

