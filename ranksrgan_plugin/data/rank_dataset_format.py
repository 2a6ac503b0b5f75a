"""Reading and writing the on-disk rank dataset format (specified in docs/rank_dataset.md).

One *split* (train or val) of a rank dataset is a folder holding ``manifest.json``, ``labels.txt``
and one image store per *level* (``<level>.lmdb`` in BasicSR's LMDB layout, or a ``<level>/``
folder of ``<key>.png``). Keys are shared by every level: one key is one patch location.
"""
import hashlib
import json
import math
import os
import os.path as osp
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ..utils.atomic_files import write_text_atomically

FORMAT_NAME = 'ranksrgan_rank_dataset'
FORMAT_VERSION = 1
MANIFEST_FILE = 'manifest.json'
LABELS_FILE = 'labels.txt'
STORAGES = ('lmdb', 'folder')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
_NAME_PATTERN = re.compile(r'^[A-Za-z0-9_\-]+$')

LabelTable = Dict[Tuple[str, str], float]
Shape = Tuple[int, int, int]


class RankDatasetError(ValueError):
    """A rank dataset on disk is missing a part or is inconsistent."""


def check_name(kind: str, name: str) -> str:
    """Keys and level names become LMDB keys and file names: letters, digits, '_' and '-' only."""
    if not _NAME_PATTERN.match(name):
        raise RankDatasetError(f'Invalid {kind} {name!r}: use letters, digits, "_" and "-" only '
                               '(BasicSR LMDB keys cannot contain dots or spaces).')
    return name


def level_path(root: str, level: str, storage: str) -> str:
    """Where one level's images live: ``<root>/<level>.lmdb`` or ``<root>/<level>``."""
    if storage not in STORAGES:
        raise RankDatasetError(f'Unknown storage {storage!r}; supported: {STORAGES}.')
    return osp.join(root, f'{level}.lmdb' if storage == 'lmdb' else level)


def read_manifest(root: str) -> Optional[Dict[str, Any]]:
    """The split's manifest, or None when ``manifest.json`` is absent."""
    path = osp.join(root, MANIFEST_FILE)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as error:
            raise RankDatasetError(f'{path} is not valid JSON: {error}') from error
    if manifest.get('format') != FORMAT_NAME:
        raise RankDatasetError(f'{path}: "format" is {manifest.get("format")!r}, expected {FORMAT_NAME!r}.')
    if manifest.get('format_version', 0) > FORMAT_VERSION:
        raise RankDatasetError(f'{path}: format_version {manifest["format_version"]} is newer than this '
                               f'ranksrgan_plugin reads ({FORMAT_VERSION}); upgrade the plugin.')
    return manifest


def rank_set_record(root: str) -> Optional[Dict[str, Any]]:
    """What a split says about its labels: the metric, its direction, and which manifest says so.

    Returns ``{'metric': <name or None>, 'higher_is_better': <bool>, 'manifest': <path>,
    'digest': <sha256 hex of the manifest file>}``, or None for a split without ``manifest.json``
    or whose manifest does not record ``higher_is_better`` (a hand-made split: the options decide).
    A model trained on the split can store this record and compare it with a later one.
    """
    manifest = read_manifest(root)
    if manifest is None or 'higher_is_better' not in manifest:
        return None
    path = osp.join(root, MANIFEST_FILE)
    direction = manifest['higher_is_better']
    if not isinstance(direction, bool):
        raise RankDatasetError(f'{path}: "higher_is_better" is {direction!r}, expected true or false.')
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    metric = manifest.get('metric')
    if isinstance(metric, Mapping):  # a build's top-level manifest records the metric's description
        metric = metric.get('name')
    return {'metric': metric, 'higher_is_better': direction, 'manifest': path, 'digest': digest}


def write_manifest(root: str, manifest: Mapping[str, Any]) -> str:
    """Write ``manifest.json`` (adding the format fields) atomically; returns its path."""
    content = {'format': FORMAT_NAME, 'format_version': FORMAT_VERSION, **manifest}
    path = osp.join(root, MANIFEST_FILE)
    write_text_atomically(path, json.dumps(content, indent=2, sort_keys=False) + '\n')
    return path


def format_labels(rows: Iterable[Tuple[str, str, float]]) -> str:
    """Text of a labels file: one ``<key> <level> <label>`` line per item, in the given order."""
    lines = ['# key level label']
    lines += [f'{check_name("key", key)} {check_name("level", level)} {label:.6f}' for key, level, label in rows]
    return '\n'.join(lines) + '\n'


def write_labels(path: str, rows: Iterable[Tuple[str, str, float]]) -> None:
    """Write a labels file atomically (a killed writer never leaves half a file)."""
    write_text_atomically(path, format_labels(rows))


def read_labels(path: str) -> LabelTable:
    """Parse a labels file into ``{(key, level): label}``; errors name the file and line.

    Refused: a line without exactly three fields, a label that is not a finite number (``nan``,
    ``inf``), a (key, level) given twice, and a file without labels.
    """
    if not osp.isfile(path):
        raise RankDatasetError(f'Labels file not found: {path}')
    labels: LabelTable = {}
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            fields = line.split()
            if len(fields) != 3:
                raise RankDatasetError(f'{path}:{line_no}: expected "<key> <level> <label>", got {line!r}')
            key, level, value = fields
            try:
                label = float(value)
            except ValueError:
                raise RankDatasetError(f'{path}:{line_no}: label {value!r} is not a number') from None
            if not math.isfinite(label):
                raise RankDatasetError(f'{path}:{line_no}: label {value!r} of key {key!r}, level {level!r} is not a '
                                       'finite number: a metric that failed on the patch (NIQE of a flat patch is '
                                       'undefined); fix the label or remove the key from every level.')
            if (key, level) in labels:
                raise RankDatasetError(f'{path}:{line_no}: duplicate label for key {key!r}, level {level!r}')
            labels[(key, level)] = label
    if not labels:
        raise RankDatasetError(f'Labels file {path} has no labels.')
    return labels


def read_lmdb_meta_info(lmdb_path: str) -> Dict[str, Shape]:
    """``{key: (h, w, c)}`` from a BasicSR LMDB's ``meta_info.txt`` (``<key>.png (h,w,c) <level>``)."""
    meta_path = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta_path):
        raise RankDatasetError(f'{meta_path} not found: {lmdb_path} is not a BasicSR LMDB.')
    shapes: Dict[str, Shape] = {}
    with open(meta_path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            match = re.match(r'^(\S+?)\.\w+ \((\d+),(\d+),(\d+)\)', line.strip())
            if match is None:
                raise RankDatasetError(f'{meta_path}:{line_no}: unreadable line {line.strip()!r}')
            shapes[match.group(1)] = tuple(int(v) for v in match.group(2, 3, 4))
    return shapes


def list_folder_images(folder: str) -> Dict[str, str]:
    """``{key: file path}`` of the images in a level folder (key = file name without extension)."""
    paths: Dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        if stem in paths:
            raise RankDatasetError(f'Two images with key {stem!r} in {folder}: {osp.basename(paths[stem])}, {name}')
        paths[stem] = osp.join(folder, name)
    return paths


def read_image_shape(path: str) -> Shape:
    """(h, w, c) from an image file's header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands())
    except OSError as error:
        raise RankDatasetError(f'Cannot read image {path}: {error}') from error
    return height, width, channels
