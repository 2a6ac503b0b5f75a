"""Full-reference and no-reference evaluation of folders of SR outputs against an HR folder.

The paper's protocol: NIQE, PSNR and SSIM on the Y channel with a 4-pixel shave (``crop_border``);
Ma's metric and PI when the authors' ``model.mat`` is given. SR images are matched to HR images
by file stem (an SR folder may add a ``suffix`` to the stem, e.g. ``0801_rlt.png``). One CSV per
folder (one row per image) and one Markdown table of the per-metric means of all folders.
"""
import csv
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from tqdm import tqdm

from .data.rank_dataset_format import IMAGE_EXTENSIONS
from .iqa import MaModel, load_ma_model, ma_score, niqe_score, perceptual_index
from .rank_dataset.levels import LevelError, read_image

Row = Dict[str, Union[str, float]]
BASE_METRICS = ('niqe', 'psnr', 'ssim')
MA_METRICS = ('ma', 'pi')


class EvaluationError(ValueError):
    """Missing, empty or mismatched inputs of an evaluation (the message names the files)."""


def list_images(folder: str, suffix: str = '') -> Dict[str, str]:
    """``{stem: path}`` of the images in ``folder``; ``suffix`` is removed from the end of each stem.

    Raises:
        EvaluationError: the folder does not exist or holds no image.
    """
    if not osp.isdir(folder):
        raise EvaluationError(f'Folder {folder} does not exist.')
    images: Dict[str, str] = {}
    for file_name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(file_name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[:-len(suffix)]
        images[stem] = osp.join(folder, file_name)
    if not images:
        what = f' whose name ends with {suffix!r}' if suffix else ''
        raise EvaluationError(f'Folder {folder} holds no image{what} (extensions {", ".join(IMAGE_EXTENSIONS)}).')
    return images


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
                    device: Optional[str] = None, progress: bool = True) -> List[Row]:
    """One row per SR image: ``{'name': stem, 'niqe': ..., 'psnr': ..., 'ssim': ...[, 'ma', 'pi']}``.

    Raises:
        EvaluationError: a folder is missing or empty, an SR image has no HR image, an image cannot be
            read, or an SR image's size differs from its HR image's.
    """
    sr_images = list_images(sr_folder, suffix)
    hr_images = list_images(hr_folder)
    missing = [sr_images[stem] for stem in sr_images if stem not in hr_images]
    if missing:
        shown = ', '.join(missing[:5]) + (' ...' if len(missing) > 5 else '')
        raise EvaluationError(f'No HR image in {hr_folder} for {len(missing)} SR image(s): {shown}')
    model = load_ma_model(ma_model) if isinstance(ma_model, (str, os.PathLike)) else ma_model
    rows: List[Row] = []
    for stem, sr_path in tqdm(sr_images.items(), desc=osp.basename(osp.normpath(sr_folder)), unit='img',
                              disable=not progress):
        sr, hr = _read(sr_path), _read(hr_images[stem])
        if sr.shape != hr.shape:
            raise EvaluationError(f'Size mismatch: {sr_path} is {sr.shape[1]}x{sr.shape[0]}, '
                                  f'{hr_images[stem]} is {hr.shape[1]}x{hr.shape[0]} (width x height).')
        rows.append({'name': stem, **image_metrics(sr, hr, crop_border, test_y_channel, model, device)})
    return rows


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


def summary_table(results: Mapping[str, Sequence[Row]]) -> str:
    """Markdown table: one row per folder (its name, image count, mean of each metric)."""
    metrics: List[str] = []
    for rows in results.values():
        metrics += [m for m in metric_names(rows) if m not in metrics]
    lines = ['| method | images | ' + ' | '.join(_ARROWS[m] for m in metrics) + ' |',
             '|---|---:|' + '---:|' * len(metrics)]
    for name, rows in results.items():
        means = mean_metrics(rows)
        cells = [f'{means[m]:.4f}' if m in means else '' for m in metrics]
        lines.append(f'| {name} | {len(rows)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def evaluate_folders(sr_folders: Sequence[str], hr_folder: str, output_dir: str,
                     names: Optional[Sequence[str]] = None, suffixes: Optional[Sequence[str]] = None,
                     crop_border: int = 4, test_y_channel: bool = True, ma_model: Optional[str] = None,
                     device: Optional[str] = None, progress: bool = True) -> Dict[str, Any]:
    """Evaluate every folder; write ``<output_dir>/<name>.csv`` each and ``<output_dir>/summary.md``.

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

    Returns:
        ``{'results': {name: rows}, 'csv': {name: path}, 'summary': path, 'table': markdown}``.
    """
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
    for folder in [hr_folder, *sr_folders]:
        list_images(folder)  # fail on a missing / empty folder before any long computation
    model = load_ma_model(ma_model) if ma_model else None
    results: Dict[str, List[Row]] = {}
    csv_paths: Dict[str, str] = {}
    for name, folder, suffix in zip(names, sr_folders, suffixes):
        results[name] = evaluate_folder(folder, hr_folder, suffix, crop_border, test_y_channel, model, device,
                                        progress)
        csv_paths[name] = osp.join(output_dir, f'{name}.csv')
        write_csv(results[name], csv_paths[name])
    table = summary_table(results)
    summary = osp.join(output_dir, 'summary.md')
    with open(summary, 'w') as f:
        f.write(table)
    return {'results': results, 'csv': csv_paths, 'summary': summary, 'table': table}
