"""The steps of ``make demo`` (``tools/demo.py`` runs them in order): paired photos, BasicSR training runs
with a progress bar, the demo rank dataset from the demo's own generators, and the evaluation of the
Ranker and of the generators (PSNR, NIQE, Ranker score), the tables and the figures.

Paths are the caller's (the repository's ``options/``, ``datasets/demo``, ``results/demo``); images
are BGR uint8, as cv2 and BasicSR read them.
"""
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from basicsr.data.transforms import mod_crop
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor

from .checkpoints import load_ranker, load_state_dict
from .demo_images import export_skimage_photos
from .metrics.niqe_batch import calculate_niqe_batched
from .metrics.ranker_evaluation import evaluate_ranker as score_rank_set
from .metrics.ranker_plots import plot_ranker_histograms
from .rank_dataset import RankDatasetBuilder, load_config
from .rank_dataset.levels import matlab_bicubic
from .rank_dataset.sources import assign_splits
from .utils.logged_process import last_logged_iteration, run_logged
from .utils.upscaler import TiledUpscaler, default_device

Scores = Dict[str, Dict[str, float]]
# the builder's INFO lines would go to the terminal through BasicSR's root logger; the manifest keeps them
_QUIET = logging.getLogger('ranksrgan_plugin.demo')
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
Images = Dict[str, np.ndarray]


def read_yaml(path: str) -> Dict[str, Any]:
    """The mapping of a YAML file."""
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def write_paired_photos(hr_folder: str, sr_data: str, val_fraction: float, seed: int) -> Dict[str, List[str]]:
    """scikit-image's photos as GT (mod-4 crop) and x4 MATLAB-bicubic LQ in ``sr_data/<split>/{gt,lq}``.

    The split is by photo, as the rank dataset's (``assign_splits``): the ``val`` photos are held out
    from every training run of the demo. Returns the photo names per split.
    """
    paths = export_skimage_photos(hr_folder)
    stems = sorted(osp.splitext(osp.basename(p))[0] for p in paths)
    splits = assign_splits(stems, val_fraction, seed)
    for stem, split in splits.items():
        gt = mod_crop(cv2.imread(osp.join(hr_folder, f'{stem}.png')), 4)
        for kind, img in (('gt', gt), ('lq', matlab_bicubic(gt, 1 / 4))):
            os.makedirs(osp.join(sr_data, split, kind), exist_ok=True)
            cv2.imwrite(osp.join(sr_data, split, kind, f'{stem}.png'), img)
    return {split: sorted(s for s, sp in splits.items() if sp == split) for split in ('train', 'val')}


def train_with_basicsr(options_file: str, root: str, desc: str, log_dir: str, verbose: bool = False) -> str:
    """Train through ``<root>/basicsr/train.py``; returns the experiment folder.

    A previous experiment of the same name is replaced (BasicSR would archive it). The run's output
    goes to ``<log_dir>/<name>.log`` behind a progress bar of its iterations, or to the terminal with
    ``verbose``.
    """
    opt = read_yaml(options_file)
    experiment = osp.join(root, 'experiments', opt['name'])
    for folder in (experiment, osp.join(root, 'tb_logger', opt['name'])):
        shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, osp.join(root, 'basicsr', 'train.py'), '-opt', options_file]
    if verbose:
        subprocess.run(command, cwd=root, check=True)
        return experiment
    log_path = osp.join(log_dir, f'{opt["name"]}.log')
    if osp.isfile(log_path):
        os.remove(log_path)
    status = run_logged(command, root, log_path, desc, int(opt['train']['total_iter']),
                        lambda: last_logged_iteration(log_path))
    if status:
        raise RuntimeError(f'Training {opt["name"]} failed (exit code {status}); see {log_path}')
    return experiment


def latest(experiment: str, net: str) -> str:
    """The latest checkpoint of network ``net`` (``r``, ``g``) of a BasicSR experiment folder."""
    return osp.join(experiment, 'models', f'net_{net}_latest.pth')


def build_rank_dataset(cfg: Mapping[str, Any], progress: bool = True) -> Dict[str, Any]:
    """Build a rank dataset from validated-to-be options (``load_config``), quietly; returns its options."""
    cfg = load_config(dict(cfg))
    RankDatasetBuilder(cfg, overwrite=True, logger=_QUIET, progress=progress).run()
    return cfg


def load_network(options_file: str, section: str, weights: str,
                 device: Optional[torch.device] = None) -> torch.nn.Module:
    """The network of ``section`` of a BasicSR options file with the ``params`` of ``weights``, in eval mode."""
    net = build_network(dict(read_yaml(options_file)[section]))
    net.load_state_dict(load_state_dict(weights, 'params'))
    return net.eval().to(device or 'cpu')


def upscale_photos(upscalers: Mapping[str, Callable[[np.ndarray], np.ndarray]], lq_folder: str) -> Dict[str, Images]:
    """``{run: {photo: SR image}}`` of every LQ photo of ``lq_folder`` by each upscaler."""
    names = sorted(os.listdir(lq_folder))
    lqs = {name: cv2.imread(osp.join(lq_folder, name)) for name in names}
    with torch.no_grad():
        return {run: {name: upscale(lq) for name, lq in lqs.items()} for run, upscale in upscalers.items()}


def generator_upscalers(runs: Mapping[str, Optional[tuple]]) -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Upscalers per run: ``None`` for x4 MATLAB bicubic, else ``(options file, weights)`` of a generator."""
    device = default_device()
    upscalers: Dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for run, source in runs.items():
        if source is None:
            upscalers[run] = lambda lq: matlab_bicubic(lq, 4)
        else:
            upscalers[run] = TiledUpscaler(load_network(source[0], 'network_g', source[1], device), 4, device)
    return upscalers


@torch.no_grad()
def ranker_scores(ranker: torch.nn.Module, images: Images, crop: int = 128) -> List[float]:
    """The Ranker's scores of the ``crop`` x ``crop`` tiles of every image (RGB in [0, 1], as it was trained)."""
    device = next(ranker.parameters()).device
    scores: List[float] = []
    for img in images.values():
        tiles = [img[top:top + crop, left:left + crop] for top in range(0, img.shape[0] - crop + 1, crop)
                 for left in range(0, img.shape[1] - crop + 1, crop)]
        batch = torch.stack([img2tensor(tile.astype(np.float32) / 255.0, bgr2rgb=True) for tile in tiles])
        scores += ranker(batch.to(device)).reshape(-1).tolist()
    return scores


def image_scores(srs: Dict[str, Images], gt_folder: str, ranker: torch.nn.Module) -> Scores:
    """Per run: mean PSNR (Y, shave 4), mean NIQE (Y, shave 4) and mean Ranker score of its SR photos."""
    names = next(iter(srs.values()))
    gts = {name: cv2.imread(osp.join(gt_folder, name)) for name in names}
    return {run: {**fidelity_scores(images, gts), 'ranker_score': float(np.mean(ranker_scores(ranker, images)))}
            for run, images in srs.items()}


def fidelity_scores(images: Images, gts: Images) -> Dict[str, float]:
    """Mean PSNR and mean NIQE (both Y channel, 4-pixel shave) of SR photos, PSNR against ``gts`` (same names)."""
    return {'psnr': float(np.mean([calculate_psnr(sr, gts[name], crop_border=4, test_y_channel=True)
                                   for name, sr in images.items()])),
            'niqe': float(np.mean(list(per_image_niqe(images).values())))}


def per_image_niqe(images: Images) -> Dict[str, float]:
    """NIQE (Y channel, 4-pixel shave) of each image."""
    return {name: float(calculate_niqe_batched(img, crop_border=4)) for name, img in images.items()}


def evaluate_ranker(options_file: str, weights: str, val_root: str, histograms: Optional[str] = None) -> Scores:
    """SROCC and pair accuracy on a rank-set split, of the trained Ranker and of its initialisation
    (seeded as the options' ``manual_seed``); the trained one's score histograms go to ``histograms``."""
    opt = read_yaml(options_file)
    torch.manual_seed(opt['manual_seed'])
    untrained = build_network(dict(opt['network_r']))
    trained = load_ranker(build_network(dict(opt['network_r'])), weights)
    results = {}
    for name, net in (('untrained', untrained), ('trained', trained)):
        result = score_rank_set(net, val_root)
        results[name] = {'srocc': result['srocc'], 'pair_accuracy': result['pair_accuracy']}
        if name == 'trained' and histograms:
            plot_ranker_histograms({'demo Ranker': result}, histograms, 'niqe')
    return results


def aggregate(per_seed: Sequence[Scores]) -> Scores:
    """Means over seeds of every value (and ``<key>_std``, the standard deviation, with several seeds)."""
    merged: Scores = {}
    for row in per_seed[0]:
        merged[row] = {}
        for key in per_seed[0][row]:
            values = [scores[row][key] for scores in per_seed]
            merged[row][key] = float(np.mean(values))
            if len(per_seed) > 1:
                merged[row][f'{key}_std'] = float(np.std(values))
    return merged


def markdown_table(title: str, columns: Dict[str, str], rows: Scores, digits: int = 3) -> str:
    """A titled markdown table: one row per name of ``rows``, the ``columns`` (key -> header); ``+- std``
    where the row has ``<key>_std``."""
    def cell(values: Dict[str, float], key: str) -> str:
        std = values.get(f'{key}_std')
        return f'{values[key]:.{digits}f}' + ('' if std is None else f' +- {std:.{digits}f}')

    lines = [f'\n{title}', '| | ' + ' | '.join(columns.values()) + ' |', '|---|' + '---|' * len(columns)]
    lines += [f'| {name} | ' + ' | '.join(cell(values, key) for key in columns) + ' |' for name, values in rows.items()]
    return '\n'.join(lines) + '\n'


def detailed_crop(hr: np.ndarray, size: int) -> Tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` crop of ``hr`` with the most detail (mean absolute Laplacian
    of its gray image, on a grid of quarter-crop steps)."""
    energy = np.abs(cv2.Laplacian(cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F))
    step = max(size // 4, 1)
    corners = [(top, left) for top in range(0, hr.shape[0] - size + 1, step)
               for left in range(0, hr.shape[1] - size + 1, step)]
    return max(corners, key=lambda c: float(energy[c[0]:c[0] + size, c[1]:c[1] + size].mean()))


def plot_comparison(srs: Dict[str, Images], hr_images: Images, output: str, crop: int = 128) -> str:
    """The same crop of each held-out photo side by side per run, then HR, with each whole image's NIQE
    under it (the paper's qualitative figures). The crop is the photo's most detailed one (``detailed_crop``
    of its HR): where a flat region would hide every difference between the runs."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    columns = {**srs, 'HR': hr_images}
    names = sorted(hr_images)
    niqes = {run: per_image_niqe(images) for run, images in columns.items()}
    fig, axes = plt.subplots(len(names), len(columns), figsize=(2.4 * len(columns), 2.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        top, left = detailed_crop(hr_images[name], crop)
        for col, (run, images) in enumerate(columns.items()):
            ax = axes[row][col]
            ax.imshow(cv2.cvtColor(images[name][top:top + crop, left:left + crop], cv2.COLOR_BGR2RGB))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(f'NIQE {niqes[run][name]:.2f}', fontsize=9)
            if row == 0:
                ax.set_title(run, fontsize=10)
        axes[row][0].set_ylabel(osp.splitext(name)[0], fontsize=9)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
