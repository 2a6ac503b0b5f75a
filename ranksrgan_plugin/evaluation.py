"""Full-reference and no-reference evaluation of folders of SR outputs against an HR folder.

The paper's protocol: NIQE, PSNR and SSIM on the Y channel with a 4-pixel shave (``crop_border``);
Ma's metric and PI when the authors' ``model.mat`` is given. SR images are matched to HR images
by file stem (an SR folder may add a ``suffix`` to the stem, e.g. ``0801_rlt.png``), one to one: a
stem naming two images in a folder, or an image without its partner, is refused before any metric
runs (``allow_missing`` scores the pairs alone, counted ``N of M``). One CSV per folder (one row per
image) and one Markdown table of the per-metric means of all folders.
"""
import csv
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from PIL import Image
from tqdm import tqdm

from .data.rank_dataset_format import IMAGE_EXTENSIONS
from .iqa import MaModel, load_ma_model, ma_score, niqe_score, perceptual_index
from .iqa.niqe import BLOCK_SIZE as NIQE_BLOCK
from .iqa.niqe import MIN_BLOCKS as NIQE_MIN_BLOCKS
from .iqa.niqe import niqe_block_count
from .rank_dataset.levels import LevelError, read_image
from .utils.image_files import describe_shared_stems, files_by_stem, listing

Row = Dict[str, Union[str, float]]
Pair = Tuple[str, str, str]  # stem, SR path, HR path
_ORIENTATION, _QUARTER_TURNS = 0x0112, (5, 6, 7, 8)  # the EXIF orientations that swap width and height
BASE_METRICS = ('niqe', 'psnr', 'ssim')
MA_METRICS = ('ma', 'pi')


class EvaluationError(ValueError):
    """Missing, empty or mismatched inputs of an evaluation (the message names the files)."""


def list_images(folder: str, suffix: str = '') -> Dict[str, str]:
    """``{stem: path}`` of the images in ``folder``; ``suffix`` is removed from the end of each stem.

    Raises:
        EvaluationError: the folder does not exist, holds no image, or holds images sharing a stem
            (``x.png`` and a stale ``x.tif``: which one to score is not for the listing order to say).
    """
    if not osp.isdir(folder):
        raise EvaluationError(f'Folder {folder} does not exist.')
    stems = files_by_stem(folder, suffix)
    if not stems:
        what = f' whose name ends with {suffix!r}' if suffix else ''
        raise EvaluationError(f'Folder {folder} holds no image{what} (extensions {", ".join(IMAGE_EXTENSIONS)}).')
    shared = describe_shared_stems(stems)
    if shared:
        raise EvaluationError(f'Folder {folder}: {shared}. SR and HR images are paired by stem: keep one image '
                              'per stem (move the stale ones out).')
    return {stem: osp.join(folder, names[0]) for stem, names in stems.items()}


def pair_images(sr_folder: str, hr_folder: str, suffix: str = '', allow_missing: bool = False) -> List[Pair]:
    """``[(stem, SR path, HR path)]`` of the stems both folders hold, one to one.

    Raises:
        EvaluationError: see :func:`list_images`; an SR image without its HR image or an HR image
            without its SR image (all listed), unless ``allow_missing``; no pair at all.
    """
    sr_images, hr_images = list_images(sr_folder, suffix), list_images(hr_folder)
    if osp.samefile(sr_folder, hr_folder):
        raise EvaluationError(f'SR folder {sr_folder} is the HR folder {hr_folder}: give the folder of the SR outputs.')
    pairs = [(stem, path, hr_images[stem]) for stem, path in sr_images.items() if stem in hr_images]
    no_hr = [path for stem, path in sr_images.items() if stem not in hr_images]
    no_sr = [path for stem, path in hr_images.items() if stem not in sr_images]
    if pairs and (allow_missing or not (no_hr or no_sr)):
        return pairs
    problems = [f'No HR image in {hr_folder} for {len(no_hr)} SR image(s): {listing(no_hr)}' if no_hr else '',
                f'No SR image{_ending(suffix)} in {sr_folder} for {len(no_sr)} HR image(s): {listing(no_sr)}'
                if no_sr else '']
    advice = ('No stem is in both folders.' if not pairs else
              f'Only {len(pairs)} of the {len(hr_images)} HR images pair; to evaluate those alone, pass '
              '--allow-missing (allow_missing=True).')
    raise EvaluationError('. '.join(p for p in problems if p) + '. ' + advice)


def _ending(suffix: str) -> str:
    return f' (stem + {suffix!r})' if suffix else ''


def check_pairs(pairs: Sequence[Pair], crop_border: int) -> List[str]:
    """What is wrong with ``pairs`` before any metric runs: SR and HR sizes that differ (one problem each), SR
    images too small for NIQE after the ``crop_border`` shave (one problem listing them); sizes from the files'
    headers, an unreadable file is left to the read.
    """
    problems, small = [], []
    for _, sr_path, hr_path in pairs:
        sr_size, hr_size = _size(sr_path), _size(hr_path)
        if sr_size and hr_size and sr_size != hr_size:
            problems.append(f'Size mismatch: {sr_path} is {sr_size[0]}x{sr_size[1]}, {hr_path} is '
                            f'{hr_size[0]}x{hr_size[1]} (width x height).')
        elif sr_size and niqe_block_count(sr_size[1], sr_size[0], crop_border) < NIQE_MIN_BLOCKS:
            small.append(f'{sr_path} ({sr_size[0]}x{sr_size[1]})')
    if small:
        side, two = NIQE_BLOCK + 2 * crop_border, 2 * NIQE_BLOCK + 2 * crop_border
        problems.append(f'{len(small)} SR image(s) too small for NIQE, which needs at least {NIQE_MIN_BLOCKS} full '
                        f'{NIQE_BLOCK}x{NIQE_BLOCK} blocks after the {crop_border}-pixel shave (--crop-border), '
                        f'e.g. {side}x{two} or {two}x{side} pixels (with one block the covariance of its features '
                        f'is undefined and the score meaningless): {listing(small)}.')
    return problems


def _size(path: str) -> Optional[Tuple[int, int]]:
    """(width, height) as ``cv2.imread`` reads the file (EXIF rotations applied), from its header; ``None`` when
    PIL cannot open it."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            return (height, width) if img.getexif().get(_ORIENTATION, 1) in _QUARTER_TURNS else (width, height)
    except (OSError, ValueError):
        return None


def _read(path: str) -> np.ndarray:
    try:
        return read_image(path)
    except LevelError as err:
        raise EvaluationError(str(err)) from err


def image_metrics(sr: np.ndarray, hr: np.ndarray, crop_border: int = 4, test_y_channel: bool = True,
                  ma_model: Optional[MaModel] = None, device: Optional[str] = None) -> Dict[str, float]:
    """NIQE, PSNR, SSIM (and Ma, PI with ``ma_model``) of one BGR uint8 SR image against its HR image.

    NIQE is on the Y channel when ``test_y_channel`` (else on gray); PI (on the Y channel only) is
    :func:`ranksrgan_plugin.iqa.perceptual_index` of Ma and NIQE.
    """
    convert_to = 'y' if test_y_channel else 'gray'
    niqe = niqe_score(sr, crop_border, input_order='HWC', convert_to=convert_to, device=device)
    values = {'niqe': niqe,
              'psnr': float(calculate_psnr(sr, hr, crop_border, input_order='HWC', test_y_channel=test_y_channel)),
              'ssim': float(calculate_ssim(sr, hr, crop_border, input_order='HWC', test_y_channel=test_y_channel))}
    if ma_model is not None:
        ma = ma_score(sr, crop_border, ma_model)
        values['ma'] = ma
        values['pi'] = perceptual_index(ma, niqe) if test_y_channel else float('nan')
    return values


def evaluate_folder(sr_folder: str, hr_folder: str, suffix: str = '', crop_border: int = 4,
                    test_y_channel: bool = True, ma_model: Optional[Union[MaModel, str]] = None,
                    device: Optional[str] = None, progress: bool = True, allow_missing: bool = False) -> List[Row]:
    """One row per SR image: ``{'name': stem, 'niqe': ..., 'psnr': ..., 'ssim': ...[, 'ma', 'pi']}``.

    Raises:
        EvaluationError: a folder is missing or empty, a stem names two images, an SR image has no HR
            image or an HR image no SR image (unless ``allow_missing``: the pairs alone are scored), an
            image cannot be read, an SR image's size differs from its HR image's, or an SR image is too
            small for NIQE (all such files listed before any metric runs).
    """
    _check_crop_border(crop_border)
    pairs = pair_images(sr_folder, hr_folder, suffix, allow_missing)
    _refuse(check_pairs(pairs, crop_border))
    model = load_ma_model(ma_model) if isinstance(ma_model, (str, os.PathLike)) else ma_model
    return score_pairs(pairs, crop_border, test_y_channel, model, device,
                       osp.basename(osp.normpath(sr_folder)) if progress else None)


def score_pairs(pairs: Sequence[Pair], crop_border: int = 4, test_y_channel: bool = True,
                ma_model: Optional[MaModel] = None, device: Optional[str] = None,
                progress: Optional[str] = None) -> List[Row]:
    """The rows of checked ``pairs`` (:func:`pair_images`); ``progress``: the progress bar's label, or none."""
    rows: List[Row] = []
    for stem, sr_path, hr_path in tqdm(pairs, desc=progress, unit='img', disable=progress is None):
        sr, hr = _read(sr_path), _read(hr_path)
        if sr.shape != hr.shape:
            raise EvaluationError(f'Size mismatch: {sr_path} is {sr.shape[1]}x{sr.shape[0]}, '
                                  f'{hr_path} is {hr.shape[1]}x{hr.shape[0]} (width x height).')
        try:
            rows.append({'name': stem, **image_metrics(sr, hr, crop_border, test_y_channel, ma_model, device)})
        except ValueError as err:  # the metrics' own size checks (a file whose header PIL could not read)
            raise EvaluationError(f'{sr_path}: {err}') from err
    return rows


def _check_crop_border(crop_border: int) -> None:
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise EvaluationError(f'crop_border (--crop-border) must be a pixel count >= 0, got {crop_border!r}.')


def _refuse(problems: Sequence[str]) -> None:
    """One :class:`EvaluationError` listing every problem (the first ten and a count)."""
    if len(problems) == 1:
        raise EvaluationError(problems[0])
    if problems:
        more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
        raise EvaluationError(f'{len(problems)} problems, nothing evaluated:\n  ' + '\n  '.join(problems[:10]) + more)


def metric_names(rows: Sequence[Row]) -> List[str]:
    """The metric columns of ``rows`` in the table's order."""
    present = set(rows[0]) if rows else set()
    return [m for m in BASE_METRICS + MA_METRICS if m in present]


def write_csv(rows: Sequence[Row], path: str) -> None:
    """Per-image CSV (``name`` then one column per metric, full precision) with a final ``mean`` row."""
    metrics = metric_names(rows)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['name', *metrics])
        for row in rows:
            writer.writerow([row['name'], *(repr(float(row[m])) for m in metrics)])
        writer.writerow(['mean', *(repr(v) for v in mean_metrics(rows).values())])


def mean_metrics(rows: Sequence[Row]) -> Dict[str, float]:
    """Mean of each metric over ``rows``."""
    return {m: float(np.mean([float(row[m]) for row in rows])) for m in metric_names(rows)}


_ARROWS = {'niqe': 'NIQE ↓', 'psnr': 'PSNR ↑', 'ssim': 'SSIM ↑', 'ma': 'Ma ↑', 'pi': 'PI ↓'}


def summary_table(results: Mapping[str, Sequence[Row]], totals: Optional[Mapping[str, int]] = None) -> str:
    """Markdown table: one row per folder (its name, image count, mean of each metric).

    ``totals``: the HR images of each folder's test set; the count reads ``N of M`` when the folder
    was scored on fewer (``allow_missing``).
    """
    metrics: List[str] = []
    for rows in results.values():
        metrics += [m for m in metric_names(rows) if m not in metrics]
    lines = ['| method | images | ' + ' | '.join(_ARROWS[m] for m in metrics) + ' |',
             '|---|---:|' + '---:|' * len(metrics)]
    for name, rows in results.items():
        means = mean_metrics(rows)
        cells = [f'{means[m]:.4f}' if m in means else '' for m in metrics]
        total = (totals or {}).get(name, len(rows))
        count = f'{len(rows)} of {total}' if total != len(rows) else str(len(rows))
        lines.append(f'| {name} | {count} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def evaluate_folders(sr_folders: Sequence[str], hr_folder: str, output_dir: str,
                     names: Optional[Sequence[str]] = None, suffixes: Optional[Sequence[str]] = None,
                     crop_border: int = 4, test_y_channel: bool = True, ma_model: Optional[str] = None,
                     device: Optional[str] = None, progress: bool = True,
                     allow_missing: bool = False) -> Dict[str, Any]:
    """Evaluate every folder; write ``<output_dir>/<name>.csv`` each and ``<output_dir>/summary.md``.

    Every folder is paired and checked (:func:`pair_images`, :func:`check_pairs`) before any metric
    runs; all problems of all folders are one :class:`EvaluationError`.

    Args:
        sr_folders: folders of SR outputs.
        hr_folder: the ground-truth folder.
        output_dir: where the CSVs and the summary go.
        names: table names of the folders (default: the folder names).
        suffixes: one stem suffix per folder, or one for all (default: none).
        crop_border: pixels shaved off each edge (the paper: 4).
        test_y_channel: PSNR / SSIM / NIQE on the Y channel (the paper) rather than on BGR / gray.
        ma_model: path of Ma et al.'s ``model.mat``; adds Ma and PI.
        device: device of NIQE / Ma (default: CUDA when available).
        progress: show tqdm progress bars.
        allow_missing: score the stems both folders hold when some HR image has no SR image (or the
            reverse); the summary's count then reads ``N of M``.

    Returns:
        ``{'results': {name: rows}, 'totals': {name: HR images}, 'csv': {name: path}, 'summary': path,
        'table': markdown}``.
    """
    names, suffixes = _names_and_suffixes(sr_folders, names, suffixes)
    _check_crop_border(crop_border)
    hr_total = len(list_images(hr_folder))  # a missing / empty HR folder or a shared stem: one clear error first
    folder_pairs: Dict[str, List[Pair]] = {}
    problems: List[str] = []
    for name, folder, suffix in zip(names, sr_folders, suffixes):
        try:
            folder_pairs[name] = pair_images(folder, hr_folder, suffix, allow_missing)
        except EvaluationError as err:
            problems.append(str(err))
            continue
        problems += check_pairs(folder_pairs[name], crop_border)
    _refuse(problems)
    model = load_ma_model(ma_model) if ma_model else None
    results = {name: score_pairs(pairs, crop_border, test_y_channel, model, device, name if progress else None)
               for name, pairs in folder_pairs.items()}
    csv_paths = {name: osp.join(output_dir, f'{name}.csv') for name in results}
    for name, rows in results.items():
        write_csv(rows, csv_paths[name])
    totals = {name: hr_total for name in results}
    table = summary_table(results, totals)
    summary = osp.join(output_dir, 'summary.md')
    with open(summary, 'w') as f:
        f.write(table)
    return {'results': results, 'totals': totals, 'csv': csv_paths, 'summary': summary, 'table': table}


def _names_and_suffixes(sr_folders: Sequence[str], names: Optional[Sequence[str]],
                        suffixes: Optional[Sequence[str]]) -> Tuple[List[str], List[str]]:
    """One distinct table name and one stem suffix per SR folder."""
    if not sr_folders:
        raise EvaluationError('Give at least one SR folder.')
    names = list(names) if names else [osp.basename(osp.normpath(f)) for f in sr_folders]
    if len(names) != len(sr_folders) or len(set(names)) != len(names):
        raise EvaluationError(f'Need one distinct name per SR folder, got names {names} for {list(sr_folders)}.')
    suffixes = list(suffixes) if suffixes else ['']
    if len(suffixes) == 1:
        suffixes = suffixes * len(sr_folders)
    if len(suffixes) != len(sr_folders):
        raise EvaluationError(f'Give one suffix for all SR folders or one per folder, got {len(suffixes)} '
                              f'for {len(sr_folders)} folders.')
    return names, suffixes
