"""The steps of ``make demo`` (``tools/demo.py`` runs them in order): the demo rank dataset, BasicSR
training runs, paired photos, the Ranker's and the generators' evaluation, the tables and figures.

Paths are the caller's (the repository's ``options/``, ``datasets/demo``, ``results/demo``); images
are BGR uint8, as cv2 and BasicSR read them.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from basicsr.data.transforms import mod_crop
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor

from .archs import load_ranker
from .data.rank_dataset_format import read_manifest
from .demo_images import export_skimage_photos
from .metrics.niqe_batch import calculate_niqe_batched
from .metrics.ranker_evaluation import evaluate_ranker as score_rank_set
from .metrics.ranker_plots import plot_ranker_histograms
from .rank_dataset import RankDatasetBuilder, load_config
from .rank_dataset.levels import matlab_bicubic
from .utils.checkpoint import load_state_dict
from .utils.curve_plots import plot_curves
from .utils.training_logs import load_run
from .utils.upscaler import TiledUpscaler, default_device

Scores = Dict[str, Dict[str, float]]


def read_yaml(path: str) -> Dict[str, Any]:
    """The mapping of a YAML file."""
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def build_rank_dataset(options_file: str, root: str) -> Dict[str, Any]:
    """Build the demo rank dataset (or reuse a finished one built with the same options); returns its options.

    The options' ``hr`` and ``output`` are relative to ``root``; the HR photos are scikit-image's.
    """
    cfg = load_config(read_yaml(options_file))
    cfg['hr'], cfg['output'] = (osp.join(root, cfg[key]) for key in ('hr', 'output'))
    export_skimage_photos(cfg['hr'])
    manifest_path = osp.join(cfg['output'], 'manifest.json')
    if osp.isfile(manifest_path):
        with open(manifest_path, encoding='utf-8') as f:
            if json.load(f)['options'] == cfg:
                print(f'Reusing the demo rank dataset in {cfg["output"]}')
                return cfg
    RankDatasetBuilder(cfg, overwrite=True).run()
    return cfg


def train_with_basicsr(options_file: str, root: str) -> str:
    """Train through ``<root>/basicsr/train.py`` (BasicSR's pipeline, plugin loaded); the experiment folder."""
    subprocess.run([sys.executable, osp.join(root, 'basicsr', 'train.py'), '-opt', options_file],
                   cwd=root, check=True)
    return osp.join(root, 'experiments', read_yaml(options_file)['name'])


def write_paired_photos(rank_cfg: Dict[str, Any], sr_data: str) -> None:
    """GT (mod-4 crop) and x4 MATLAB-bicubic LQ photos in ``sr_data/<split>/{gt,lq}``, split as the rank
    dataset's source images."""
    for split in ('train', 'val'):
        for stem in read_manifest(osp.join(rank_cfg['output'], split))['source_images']:
            gt = mod_crop(cv2.imread(osp.join(rank_cfg['hr'], f'{stem}.png')), 4)
            for kind, img in (('gt', gt), ('lq', matlab_bicubic(gt, 1 / 4))):
                os.makedirs(osp.join(sr_data, split, kind), exist_ok=True)
                cv2.imwrite(osp.join(sr_data, split, kind, f'{stem}.png'), img)


def load_network(options_file: str, section: str, weights: str,
                 device: Optional[torch.device] = None) -> torch.nn.Module:
    """The network of ``section`` of a BasicSR options file with the ``params`` of ``weights``, in eval mode."""
    net = build_network(dict(read_yaml(options_file)[section]))
    net.load_state_dict(load_state_dict(weights, 'params'))
    return net.eval().to(device or 'cpu')


@torch.no_grad()
def mean_ranker_score(ranker: torch.nn.Module, generator: torch.nn.Module, lq_folder: str,
                      crop: int = 128) -> float:
    """The Ranker's mean score of the generator's outputs of the LQ photos of ``lq_folder`` (``crop`` tiles).

    RankSRGAN's rank-content loss is sigmoid(score - bias): centring it on the starting
    generator's scores keeps its gradient from starting saturated (the demo Ranker's scores are not
    near 0 as the paper's were). Both networks must be on the same device.
    """
    device = next(ranker.parameters()).device
    upscale = TiledUpscaler(generator, 4, device)
    scores = []
    for name in sorted(os.listdir(lq_folder)):
        sr = upscale(cv2.imread(osp.join(lq_folder, name)))
        tiles = [sr[top:top + crop, left:left + crop] for top in range(0, sr.shape[0] - crop + 1, crop)
                 for left in range(0, sr.shape[1] - crop + 1, crop)]
        batch = torch.stack([img2tensor(tile.astype(np.float32) / 255.0, bgr2rgb=True) for tile in tiles])
        scores += ranker(batch.to(device)).reshape(-1).tolist()
    return float(np.mean(scores))


def evaluate_generators(runs: Dict[str, Tuple[str, str]], val_data: str) -> Scores:
    """Mean PSNR (Y, shave 4) and NIQE (Y, shave 4) of ``val_data/{gt,lq}``, per generator
    (``name -> (options file, weights)``) and of x4 MATLAB bicubic (``bicubic``, first)."""
    device = default_device()
    names = sorted(os.listdir(osp.join(val_data, 'gt')))
    results = {}
    for run, (options_file, weights) in {'bicubic': (None, None), **runs}.items():
        net = load_network(options_file, 'network_g', weights, device) if options_file else None
        upscale = (lambda lq: matlab_bicubic(lq, 4)) if net is None else TiledUpscaler(net, 4, device)
        psnrs, niqes = [], []
        for name in names:
            gt = cv2.imread(osp.join(val_data, 'gt', name))
            sr = upscale(cv2.imread(osp.join(val_data, 'lq', name)))
            psnrs.append(calculate_psnr(sr, gt, crop_border=4, test_y_channel=True))
            niqes.append(calculate_niqe_batched(sr, crop_border=4))
        results[run] = {'psnr': float(np.mean(psnrs)), 'niqe': float(np.mean(niqes)), 'num_images': len(names)}
    return results


def evaluate_ranker(options_file: str, experiment: str, val_root: str, histograms: str) -> Scores:
    """SROCC and pair accuracy on the validation split, of the trained Ranker and of its initialisation
    (seeded as the options' ``manual_seed``); the trained one's score histograms go to ``histograms``."""
    opt = read_yaml(options_file)
    results = {}
    torch.manual_seed(opt['manual_seed'])
    untrained = build_network(dict(opt['network_r']))
    trained = load_ranker(build_network(dict(opt['network_r'])), osp.join(experiment, 'models', 'net_r_latest.pth'))
    for name, net in (('untrained', untrained), ('trained', trained)):
        result = score_rank_set(net, val_root)
        results[name] = {'srocc': result['srocc'], 'pair_accuracy': result['pair_accuracy'],
                         'num_items': len(result['scores'])}
        if name == 'trained':
            plot_ranker_histograms({'demo Ranker': result}, histograms, 'niqe')
    return results


def markdown_table(title: str, columns: Dict[str, str], rows: Scores) -> str:
    """A titled markdown table: one row per name of ``rows``, the ``columns`` (key -> header) to 4 decimals."""
    lines = [f'\n{title}', '| | ' + ' | '.join(columns.values()) + ' |', '|---|' + '---|' * len(columns)]
    lines += [f'| {name} | ' + ' | '.join(f'{values[key]:.4f}' for key in columns) + ' |'
              for name, values in rows.items()]
    return '\n'.join(lines) + '\n'


def plot_demo_curves(experiments: Dict[str, str], results: str) -> List[str]:
    """Validation curves of the demo's runs (``Ranker`` and the generators), as the paper's Figures 1-2, 5-6."""
    runs = {name: load_run(path) for name, path in experiments.items()}
    ranker = plot_curves({'Ranker': runs.pop('Ranker')}, ['srocc', 'pair_acc'],
                         osp.join(results, 'ranker_curves.png'), title='demo Ranker validation')
    generators = plot_curves(runs, ['psnr', 'niqe'], osp.join(results, 'sr_curves.png'),
                             title='demo generators validation')
    return [ranker, generators]
