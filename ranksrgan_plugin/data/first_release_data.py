"""The first release's training data (XPixelGroup/RankSRGAN ``5c09d6c``, ``RankSRGAN_NIQE.json``), in Python.

The first release trained on two LMDB databases:

* ``DIV2K800_sub.lmdb``: 480x480 sub-images of the 800 DIV2K train HR images, cut by its
  ``codes/scripts/extract_subimgs_single.py`` (crop 480, step 240, threshold 48; names ``<stem>_s001``...,
  counted row-major from 1);
* ``DIV2K800_sub_bicLRx4.lmdb``: each sub-image's own MATLAB-bicubic x4 LR, made by its
  ``codes/scripts/generate_mod_LR_bic.m`` (``im2double``, modcrop to a multiple of 4, ``imresize(img, 1/4,
  'bicubic')``, ``imwrite``: uint8). The bicubic of the SUB-IMAGE, with its own borders: not a crop of the
  whole image's LR.

:func:`build_first_release_data` writes both as BasicSR LMDBs (PNG bytes, ``meta_info.txt``, the same keys),
readable by ``PairedImageDataset`` with ``io_backend: {type: lmdb}``; the resize is BasicSR's port of MATLAB's
``imresize`` (:func:`basicsr.utils.matlab_functions.imresize`, float32 inside) and the LMDBs are made with
:class:`basicsr.utils.lmdb_util.LmdbMaker`. A build goes into ``<gt>.lmdb.partial/`` and is renamed into place
when complete, each database with a ``first_release_build.json`` that pairs it with its partner: a killed build
never leaves a pair that passes :func:`pair_is_complete`, and running the same command again starts it afresh.
"""
import json
import os
import os.path as osp
import shutil
import uuid
from functools import partial
from multiprocessing import get_all_start_methods, get_context
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
from basicsr.utils import get_root_logger
from basicsr.utils.lmdb_util import LmdbMaker
from basicsr.utils.matlab_functions import imresize
from tqdm import tqdm

from ..utils.image_files import listing

CROP_SIZE = 480  # extract_subimgs_single.py: crop_sz
STEP = 240  # step
THRESHOLD = 48  # thres_sz
SCALE = 4  # generate_mod_LR_bic.m: up_scale, mod_scale
GT_LMDB_NAME = 'DIV2K800_sub.lmdb'  # RankSRGAN_NIQE.json: dataroot_HR
PNG_COMPRESSION = 1  # lossless whatever the level; BasicSR's default (the original wrote its PNGs with 0)
BUILD_INFO = 'first_release_build.json'  # written last into each database: the mark of a complete build
PARTIAL_SUFFIX = '.partial'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


class FirstReleaseDataError(ValueError):
    """A bad input, parameter or output folder of the first release's data build."""


class SubImageParams(NamedTuple):
    """The sub-image grid and the LR scale: ``extract_subimgs_single.py``'s and ``generate_mod_LR_bic.m``'s."""

    crop_size: int = CROP_SIZE
    step: int = STEP
    threshold: int = THRESHOLD
    scale: int = SCALE


class SubImageRecord(NamedTuple):
    """One sub-image and its LR, PNG-encoded, as the two databases store them under ``key``."""

    key: str
    gt_png: bytes
    gt_shape: Tuple[int, int, int]
    lq_png: bytes
    lq_shape: Tuple[int, int, int]


ORIGINAL = SubImageParams()  # the first release's crop 480, step 240, threshold 48, scale 4


def lq_lmdb_name(scale: int = SCALE) -> str:
    """``DIV2K800_sub_bicLRx4.lmdb`` for scale 4 (RankSRGAN_NIQE.json: dataroot_LR)."""
    return f'DIV2K800_sub_bicLRx{scale}.lmdb'


def check_params(params: SubImageParams) -> SubImageParams:
    """``params`` when usable, else a :class:`FirstReleaseDataError` saying which is wrong."""
    for name in ('crop_size', 'step', 'scale'):
        value = getattr(params, name)
        if not isinstance(value, int) or value < 1:
            raise FirstReleaseDataError(f'{name} must be a positive integer, got {value!r}')
    if not isinstance(params.threshold, int) or params.threshold < 0:
        raise FirstReleaseDataError(f'threshold must be a non-negative integer, got {params.threshold!r}')
    if params.crop_size % params.scale:
        # generate_mod_LR_bic.m would modcrop the LR's sub-image but not the GT's: the pair would not match
        raise FirstReleaseDataError(f'crop_size {params.crop_size} is not a multiple of scale {params.scale}: '
                                    'the GT sub-images and their LR images would not pair')
    return params


def grid_starts(length: int, crop_size: int = CROP_SIZE, step: int = STEP, threshold: int = THRESHOLD) -> List[int]:
    """The sub-image starts along one side, as ``extract_subimgs_single.py``.

    ``np.arange(0, length - crop_size + 1, step)``, and ``length - crop_size`` appended when more than
    ``threshold`` pixels are left after the last crop. A side shorter than ``crop_size`` has no start (the
    original then fails on ``h_space[-1]``): a :class:`FirstReleaseDataError`.
    """
    if length < crop_size:
        raise FirstReleaseDataError(f'a side of {length} px is shorter than the crop size {crop_size}')
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > threshold:
        starts.append(length - crop_size)
    return starts


def sub_image_grid(height: int, width: int, params: SubImageParams = ORIGINAL) -> List[Tuple[int, int]]:
    """The (top, left) of every sub-image, row-major (tops outer, lefts inner), as the original's loops."""
    tops = grid_starts(height, params.crop_size, params.step, params.threshold)
    lefts = grid_starts(width, params.crop_size, params.step, params.threshold)
    return [(top, left) for top in tops for left in lefts]


def sub_image_key(stem: str, index: int) -> str:
    """``<stem>_s<index:03d>``: the original's file name (without ``.png``), ``index`` counted from 1."""
    return f'{stem}_s{index:03d}'


def extract_sub_images(img: np.ndarray, stem: str,
                       params: SubImageParams = ORIGINAL) -> List[Tuple[str, np.ndarray]]:
    """(key, sub-image) of every grid position of ``img`` (H, W[, C]), in the original's order."""
    crop = params.crop_size
    return [(sub_image_key(stem, index), np.ascontiguousarray(img[top:top + crop, left:left + crop]))
            for index, (top, left) in enumerate(sub_image_grid(img.shape[0], img.shape[1], params), start=1)]


def bicubic_lr(sub_image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """``generate_mod_LR_bic.m`` of one uint8 image: ``im2double``, modcrop, ``imresize(., 1/scale, 'bicubic')``,
    then ``imwrite``'s uint8 conversion (MATLAB's rounding: half away from zero, clipped to [0, 255])."""
    height, width = sub_image.shape[:2]
    img = sub_image[:height - height % scale, :width - width % scale]  # modcrop
    lr = imresize(img.astype(np.float64) / 255.0, 1 / scale)
    return np.clip(np.floor(lr.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def list_hr_images(hr_folder: str) -> List[str]:
    """The image files of ``hr_folder`` (not recursive), sorted; refuses a missing or image-less folder, and
    file stems that cannot be BasicSR LMDB keys (non-ASCII, a dot: ``paired_paths_from_lmdb`` cuts keys at the
    first dot) or that two files share."""
    if not osp.isdir(hr_folder):
        raise FirstReleaseDataError(f'HR folder not found: {hr_folder}'
                                    if not osp.exists(hr_folder) else f'HR folder is not a folder: {hr_folder}')
    entries = sorted(os.listdir(hr_folder))
    paths = [osp.join(hr_folder, name) for name in entries
             if name.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(hr_folder, name))]
    if not paths:
        raise FirstReleaseDataError(f'HR folder has no images ({", ".join(IMAGE_EXTENSIONS)}): {hr_folder}'
                                    + (f' ({len(entries)} other entries)' if entries else ' (it is empty)'))
    stems = [osp.splitext(osp.basename(path))[0] for path in paths]
    bad = [path for path, stem in zip(paths, stems)
           if not stem.isascii() or '.' in stem or any(ch.isspace() for ch in stem)]
    if bad:
        raise FirstReleaseDataError('file names unusable as LMDB keys (non-ASCII, a dot or a space in the stem): '
                                    + listing(bad))
    seen: Dict[str, str] = {}
    for path, stem in zip(paths, stems):
        if stem in seen:
            raise FirstReleaseDataError(f'two HR images give the same keys {stem}_s...: {seen[stem]} and {path}')
        seen[stem] = path
    return paths


def read_hr_image(path: str) -> np.ndarray:
    """The uint8 image at ``path`` (H, W) or (H, W, 3) BGR; refuses, naming the file, one that cv2 cannot
    decode, or with an alpha channel or more than 8 bits."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FirstReleaseDataError(f'cannot decode image: {path}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8 or (img.ndim == 3 and img.shape[2] != 3) or img.ndim not in (2, 3):
        raise FirstReleaseDataError(f'not an 8-bit grey or colour image (dtype {img.dtype}, shape {img.shape}): '
                                    f'{path}')
    return img


def check_hr_sizes(paths: Sequence[str], crop_size: int = CROP_SIZE) -> None:
    """Refuse, before anything is written, images that cannot be opened or that have a side shorter than
    ``crop_size`` (their header, read with PIL; the build checks the decoded images again).

    Such an image gives no sub-image (the original's ``np.arange`` is empty, and its script then fails on
    ``h_space[-1]``): skipping it would make a smaller data set than the first release's without a word.
    """
    from PIL import Image, UnidentifiedImageError

    unreadable, small = [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable.append(path)
            continue
        if min(height, width) < crop_size:
            small.append(f'{path} ({width}x{height})')
    if unreadable:
        raise FirstReleaseDataError(f'cannot decode {len(unreadable)} image(s): {listing(unreadable)}')
    if small:
        raise FirstReleaseDataError(
            f'{len(small)} image(s) have a side shorter than the crop size {crop_size} and would give no sub-image '
            f'(the original would fail on them): {listing(small)}; remove them or lower the crop size')


def hr_image_records(path: str, params: SubImageParams = ORIGINAL) -> List[SubImageRecord]:
    """Every sub-image of the HR image at ``path`` with its bicubic LR, PNG-encoded (one worker's task)."""
    img = read_hr_image(path)
    if min(img.shape[:2]) < params.crop_size:
        raise FirstReleaseDataError(f'a side of {img.shape[1]}x{img.shape[0]} is shorter than the crop size '
                                    f'{params.crop_size}: {path}')
    records = []
    for key, sub in extract_sub_images(img, osp.splitext(osp.basename(path))[0], params):
        lr = bicubic_lr(sub, params.scale)
        records.append(SubImageRecord(key, _png(sub), _shape(sub), _png(lr), _shape(lr)))
    return records


def lmdb_build_info(lmdb_path: str) -> Optional[Dict[str, Any]]:
    """The ``first_release_build.json`` of a database this module completed, else None (missing, unreadable, or
    its key count not that of ``meta_info.txt``)."""
    try:
        with open(osp.join(lmdb_path, BUILD_INFO), encoding='utf-8') as f:
            info = json.load(f)
        with open(osp.join(lmdb_path, 'meta_info.txt'), encoding='utf-8') as f:
            num_lines = sum(1 for line in f if line.strip())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get('num_keys') != num_lines or not osp.isfile(
            osp.join(lmdb_path, 'data.mdb')):
        return None
    return info


def pair_is_complete(gt_path: str, lq_path: str) -> bool:
    """Whether ``gt_path`` and ``lq_path`` are the two databases of one complete build."""
    gt, lq = lmdb_build_info(gt_path), lmdb_build_info(lq_path)
    return (gt is not None and lq is not None and gt.get('build_id') == lq.get('build_id')
            and (gt.get('role'), lq.get('role')) == ('gt', 'lq') and gt['num_keys'] == lq['num_keys'])


def build_first_release_data(hr_folder: str, out_folder: str, params: SubImageParams = ORIGINAL,
                             workers: int = 1, overwrite: bool = False, gt_name: str = GT_LMDB_NAME,
                             lq_name: Optional[str] = None, progress: bool = True) -> Dict[str, Any]:
    """Write ``<out_folder>/DIV2K800_sub.lmdb`` and ``<out_folder>/DIV2K800_sub_bicLRx4.lmdb`` from ``hr_folder``.

    Refuses (a :class:`FirstReleaseDataError` naming the path) a missing or empty ``hr_folder``, an image that
    cannot be decoded or is smaller than the crop, and an existing output unless ``overwrite`` (a complete pair
    is then replaced only once the new one is complete). ``workers`` > 1 cuts and resizes in that many
    processes. Returns a summary: the two paths, ``num_images`` and ``num_keys``.
    """
    params = check_params(SubImageParams(*params))
    lq_name = lq_name or lq_lmdb_name(params.scale)
    if not (gt_name.endswith('.lmdb') and lq_name.endswith('.lmdb')) or gt_name == lq_name:
        raise FirstReleaseDataError(f'the two database names must differ and end with .lmdb: {gt_name}, {lq_name}')
    logger = get_root_logger(logger_name='ranksrgan_plugin')
    gt_path, lq_path = osp.join(out_folder, gt_name), osp.join(out_folder, lq_name)
    paths = list_hr_images(hr_folder)
    check_outputs(gt_path, lq_path, overwrite)
    check_hr_sizes(paths, params.crop_size)

    staging = gt_path + PARTIAL_SUFFIX
    if osp.exists(staging):
        logger.info(f'Removing the leftover of an interrupted build: {staging}')
        shutil.rmtree(staging)
    os.makedirs(staging)
    staged = {'gt': osp.join(staging, gt_name), 'lq': osp.join(staging, lq_name)}
    makers = {role: LmdbMaker(path, compress_level=PNG_COMPRESSION) for role, path in staged.items()}
    logger.info(f'Cutting {len(paths)} images of {hr_folder} into {params.crop_size}px sub-images (step '
                f'{params.step}, threshold {params.threshold}) with their x{params.scale} bicubic LR, into {staging}')
    num_keys = 0
    with tqdm(total=len(paths), unit='image', desc='first-release data', disable=not progress) as bar:
        for records in _records_of_images(paths, params, workers):
            for record in records:
                makers['gt'].put(record.gt_png, record.key, record.gt_shape)
                makers['lq'].put(record.lq_png, record.key, record.lq_shape)
            num_keys += len(records)
            bar.update(1)
            bar.set_postfix(keys=num_keys)
    for maker in makers.values():
        maker.close()

    info = {'tool': 'ranksrgan_plugin.data.first_release_data', 'build_id': uuid.uuid4().hex,
            'hr_folder': osp.abspath(hr_folder), 'num_images': len(paths), 'num_keys': num_keys,
            'png_compression': PNG_COMPRESSION, **params._asdict()}
    for role, partner in (('gt', lq_name), ('lq', gt_name)):
        with open(osp.join(staged[role], BUILD_INFO), 'w', encoding='utf-8') as f:
            json.dump({**info, 'role': role, 'partner': partner}, f, indent=1)
    for path in (gt_path, lq_path):  # both old ones first: an old and a new database never stand side by side
        if osp.isdir(path) and not osp.islink(path):
            shutil.rmtree(path)
        elif osp.lexists(path):
            os.remove(path)
    os.replace(staged['lq'], lq_path)
    os.replace(staged['gt'], gt_path)
    os.rmdir(staging)
    logger.info(f'Wrote {num_keys} sub-images of {len(paths)} images: {gt_path}, {lq_path}')
    return {'gt': gt_path, 'lq': lq_path, 'num_images': len(paths), 'num_keys': num_keys}


def check_outputs(gt_path: str, lq_path: str, overwrite: bool) -> None:
    """Refuse a complete pair, or a database of these names that this module did not make, unless ``overwrite``.

    A database of this module whose partner is missing or from another build (a build killed while it renamed
    them) is rebuilt without asking.
    """
    if overwrite:
        return
    if pair_is_complete(gt_path, lq_path):
        raise FirstReleaseDataError(f'already built: {gt_path} and {lq_path}; pass --overwrite to rebuild them')
    foreign = [path for path in (gt_path, lq_path) if osp.lexists(path) and not osp.isfile(
        osp.join(path, BUILD_INFO))]
    if foreign:
        raise FirstReleaseDataError(f'{" and ".join(foreign)} already exist(s) and is not a complete build of this '
                                    f'tool (no {BUILD_INFO}); remove it or pass --overwrite to replace it')


def _records_of_images(paths: Sequence[str], params: SubImageParams,
                       workers: int) -> Iterator[List[SubImageRecord]]:
    """:func:`hr_image_records` of each path, in order, in ``workers`` processes when more than one."""
    if workers <= 1:
        for path in paths:
            yield hr_image_records(path, params)
        return
    method = 'fork' if 'fork' in get_all_start_methods() else 'spawn'
    with get_context(method).Pool(min(workers, len(paths)), initializer=_one_thread) as pool:
        yield from pool.imap(partial(hr_image_records, params=params), paths)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the workers are the parallelism


def _png(img: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise FirstReleaseDataError(f'cv2 could not encode a {img.shape} image as PNG')
    return buffer.tobytes()


def _shape(img: np.ndarray) -> Tuple[int, int, int]:
    return (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])


