"""`make demo`: the project's main job on its built-in data, offline, on CPU or GPU.

1. writes scikit-image's bundled photos to datasets/demo/hr;
2. builds a NIQE rank dataset from them with built-in levels (options/rank_dataset_demo.yml);
3. trains a small Ranker through ``basicsr/train.py`` (options/train_Ranker_demo.yml) and
   measures its validation SROCC and pair accuracy, before and after training;
4. trains a small SRResNet (L1) and then RankSRGAN from it with the frozen demo Ranker
   (options/train_SRResNet_demo.yml, options/train_RankSRGAN_demo.yml), and measures NIQE and
   PSNR of the validation photos before (SRResNet) and after (RankSRGAN);
5. prints both tables and where every output is; saves them in results/demo/ (demo_results.json,
   evaluation.md) with the Ranker's score histograms (the paper's Figure 3) and validation curves.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Dict, List

import cv2
import numpy as np
import torch
import yaml

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from basicsr.archs import build_network
from basicsr.data.transforms import mod_crop
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor, tensor2img

from ranksrgan_plugin.archs import load_ranker
from ranksrgan_plugin.data.demo_images import export_skimage_photos
from ranksrgan_plugin.data.rank_dataset_builder import RankDatasetBuilder, load_config
from ranksrgan_plugin.data.rank_dataset_format import read_manifest
from ranksrgan_plugin.data.sr_levels import matlab_bicubic
from ranksrgan_plugin.metrics.niqe_batch import calculate_niqe_batched
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker as score_rank_set
from ranksrgan_plugin.metrics.ranker_plots import plot_ranker_histograms

# isort: split
from plot_curves import load_run, plot_curves  # tools/plot_curves.py (this script's own folder is on sys.path)

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DATASET_OPTIONS = osp.join(REPO_ROOT, 'options', 'rank_dataset_demo.yml')
RANKER_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_Ranker_demo.yml')
SRRESNET_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_SRResNet_demo.yml')
RANKSRGAN_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_RankSRGAN_demo.yml')
SR_DATA = osp.join(REPO_ROOT, 'datasets', 'demo', 'sr')
RESULTS = osp.join(REPO_ROOT, 'results', 'demo')


def read_yaml(path: str) -> Dict[str, Any]:
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def build_rank_dataset() -> Dict[str, Any]:
    """Build the demo rank dataset (or reuse a finished one built with the same options); returns its options."""
    cfg = load_config(read_yaml(DATASET_OPTIONS))
    cfg['hr'], cfg['output'] = (osp.join(REPO_ROOT, cfg[key]) for key in ('hr', 'output'))
    export_skimage_photos(cfg['hr'])
    manifest_path = osp.join(cfg['output'], 'manifest.json')
    if osp.isfile(manifest_path):
        with open(manifest_path, encoding='utf-8') as f:
            if json.load(f)['options'] == cfg:
                print(f'Reusing the demo rank dataset in {cfg["output"]}')
                return cfg
    RankDatasetBuilder(cfg, overwrite=True).run()
    return cfg


def train(options_file: str) -> str:
    """Train through the repository's ``basicsr/train.py``; returns the experiment folder."""
    subprocess.run([sys.executable, osp.join(REPO_ROOT, 'basicsr', 'train.py'), '-opt', options_file],
                   cwd=REPO_ROOT, check=True)
    return osp.join(REPO_ROOT, 'experiments', read_yaml(options_file)['name'])


def write_paired_photos(rank_cfg: Dict[str, Any]) -> None:
    """GT (mod-4 crop) and x4 MATLAB-bicubic LQ photos, split as the rank dataset's source images."""
    for split in ('train', 'val'):
        for stem in read_manifest(osp.join(rank_cfg['output'], split))['source_images']:
            gt = mod_crop(cv2.imread(osp.join(rank_cfg['hr'], f'{stem}.png')), 4)
            for kind, img in (('gt', gt), ('lq', matlab_bicubic(gt, 1 / 4))):
                os.makedirs(osp.join(SR_DATA, split, kind), exist_ok=True)
                cv2.imwrite(osp.join(SR_DATA, split, kind, f'{stem}.png'), img)


def load_network(options_file: str, section: str, weights: str) -> torch.nn.Module:
    net = build_network(dict(read_yaml(options_file)[section]))
    net.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True)['params'])
    return net.eval()


@torch.no_grad()
def mean_ranker_score(ranker_weights: str, generator_weights: str, crop: int = 128) -> float:
    """The demo Ranker's mean score of the SRResNet's outputs on the training photos (``crop`` tiles).

    RankSRGAN's rank-content loss is sigmoid(score - bias): centring it on the starting
    generator's scores keeps its gradient from starting saturated (the demo Ranker's scores are not
    near 0 as the paper's were).
    """
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    ranker = load_network(RANKER_OPTIONS, 'network_r', ranker_weights).to(device)
    generator = load_network(SRRESNET_OPTIONS, 'network_g', generator_weights).to(device)
    scores = []
    for name in sorted(os.listdir(osp.join(SR_DATA, 'train', 'lq'))):
        sr = upscale(generator, cv2.imread(osp.join(SR_DATA, 'train', 'lq', name)), device)
        tiles = [sr[top:top + crop, left:left + crop] for top in range(0, sr.shape[0] - crop + 1, crop)
                 for left in range(0, sr.shape[1] - crop + 1, crop)]
        batch = torch.stack([img2tensor(tile.astype(np.float32) / 255.0, bgr2rgb=True) for tile in tiles])
        scores += ranker(batch.to(device)).reshape(-1).tolist()
    return float(np.mean(scores))


def options_with_rank_bias(bias: float) -> str:
    """A copy of the RankSRGAN demo options with ``train.rank_opt.bias`` set (BasicSR's --force_yml
    cannot set a negative number: basicsr 1.4.2 reads ``-0.1`` as a string)."""
    options = read_yaml(RANKSRGAN_OPTIONS)
    options['train']['rank_opt']['bias'] = round(bias, 4)
    os.makedirs(RESULTS, exist_ok=True)
    path = osp.join(RESULTS, osp.basename(RANKSRGAN_OPTIONS))
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'# {osp.relpath(RANKSRGAN_OPTIONS, REPO_ROOT)} with rank_opt.bias set by tools/demo.py\n')
        yaml.safe_dump(options, f, sort_keys=False)
    return path


def evaluate_generators(runs: Dict[str, str]) -> Dict[str, Dict[str, float]]:
    """Mean PSNR (Y, shave 4) and NIQE (Y, shave 4) on the validation photos, per generator (and bicubic)."""
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    names = sorted(os.listdir(osp.join(SR_DATA, 'val', 'gt')))
    results = {}
    for run, (options_file, weights) in {'bicubic': (None, None), **runs}.items():
        net = load_network(options_file, 'network_g', weights).to(device) if options_file else None
        psnrs, niqes = [], []
        for name in names:
            gt = cv2.imread(osp.join(SR_DATA, 'val', 'gt', name))
            lq = cv2.imread(osp.join(SR_DATA, 'val', 'lq', name))
            sr = matlab_bicubic(lq, 4) if net is None else upscale(net, lq, device)
            psnrs.append(calculate_psnr(sr, gt, crop_border=4, test_y_channel=True))
            niqes.append(calculate_niqe_batched(sr, crop_border=4))
        results[run] = {'psnr': float(np.mean(psnrs)), 'niqe': float(np.mean(niqes)), 'num_images': len(names)}
    return results


@torch.no_grad()
def upscale(net: torch.nn.Module, lq: np.ndarray, device: torch.device) -> np.ndarray:
    x = img2tensor(lq.astype(np.float32) / 255.0, bgr2rgb=True, float32=True)[None].to(device)
    return tensor2img(net(x).clamp(0, 1))


def evaluate_ranker(experiment: str, val_root: str) -> Dict[str, Dict[str, float]]:
    """SROCC and pair accuracy on the validation split, of the trained Ranker and of its initialisation."""
    opt = read_yaml(RANKER_OPTIONS)
    results = {}
    torch.manual_seed(opt['manual_seed'])
    untrained = build_network(dict(opt['network_r']))
    trained = load_ranker(build_network(dict(opt['network_r'])), osp.join(experiment, 'models', 'net_r_latest.pth'))
    for name, net in (('untrained', untrained), ('trained', trained)):
        result = score_rank_set(net, val_root)
        results[name] = {'srocc': result['srocc'], 'pair_accuracy': result['pair_accuracy'],
                         'num_items': len(result['scores'])}
        if name == 'trained':
            plot_ranker_histograms({'demo Ranker': result}, osp.join(RESULTS, 'ranker_histograms.png'), 'niqe')
    return results


def markdown_table(title: str, columns: Dict[str, str], rows: Dict[str, Dict[str, float]]) -> str:
    lines = [f'\n{title}', '| | ' + ' | '.join(columns.values()) + ' |', '|---|' + '---|' * len(columns)]
    lines += [f'| {name} | ' + ' | '.join(f'{values[key]:.4f}' for key in columns) + ' |'
              for name, values in rows.items()]
    return '\n'.join(lines) + '\n'


def plot_demo_curves(experiments: Dict[str, str]) -> List[str]:
    """Validation curves of the demo's runs (tools/plot_curves.py), as the paper's Figures 1-2, 5-6."""
    runs = {name: load_run(path) for name, path in experiments.items()}
    ranker = plot_curves({'Ranker': runs.pop('Ranker')}, ['srocc', 'pair_acc'],
                         osp.join(RESULTS, 'ranker_curves.png'), title='demo Ranker validation')
    generators = plot_curves(runs, ['psnr', 'niqe'], osp.join(RESULTS, 'sr_curves.png'),
                             title='demo generators validation')
    return [ranker, generators]


def main() -> None:
    os.makedirs(RESULTS, exist_ok=True)
    rank_cfg = build_rank_dataset()
    dataset = rank_cfg['output']
    ranker_experiment = train(RANKER_OPTIONS)
    ranker = evaluate_ranker(ranker_experiment, osp.join(dataset, 'val'))
    write_paired_photos(rank_cfg)
    srresnet_experiment = train(SRRESNET_OPTIONS)
    bias = mean_ranker_score(osp.join(ranker_experiment, 'models', 'net_r_latest.pth'),
                             osp.join(srresnet_experiment, 'models', 'net_g_latest.pth'))
    ranksrgan_experiment = train(options_with_rank_bias(bias))
    generators = evaluate_generators({
        'SRResNet (before)': (SRRESNET_OPTIONS, osp.join(srresnet_experiment, 'models', 'net_g_latest.pth')),
        'RankSRGAN (after)': (RANKSRGAN_OPTIONS, osp.join(ranksrgan_experiment, 'models', 'net_g_latest.pth')),
    })
    os.makedirs(RESULTS, exist_ok=True)
    results_path = osp.join(RESULTS, 'demo_results.json')
    with open(results_path, 'w', encoding='utf-8') as f:
        json.dump({'ranker': ranker, 'generators': generators, 'rank_content_bias': bias}, f, indent=2)
    tables = markdown_table('Ranker on the demo rank set\'s validation split (NIQE labels):',
                            {'srocc': 'SROCC', 'pair_accuracy': 'pair accuracy'}, ranker)
    tables += markdown_table(f'Generators on the validation photos (Y channel, 4-pixel shave; rank-content bias '
                             f'{bias:.3f}):', {'psnr': 'PSNR (dB)', 'niqe': 'NIQE (lower = better)'}, generators)
    print(tables)
    with open(osp.join(RESULTS, 'evaluation.md'), 'w', encoding='utf-8') as f:
        f.write(tables)
    curves = plot_demo_curves({'Ranker': ranker_experiment, 'SRResNet': srresnet_experiment,
                               'RankSRGAN': ranksrgan_experiment})
    print(f'\nRank dataset:  {dataset} (train/, val/, manifest.json)')
    for experiment in (ranker_experiment, srresnet_experiment, ranksrgan_experiment):
        print(f'Experiment:    {experiment} (models/, training log, options)')
    print(f'Validation SR: {ranksrgan_experiment}/visualization')
    print(f'TensorBoard:   {osp.join(REPO_ROOT, "tb_logger")}')
    print(f'Results:       {results_path}, {osp.join(RESULTS, "evaluation.md")}')
    print(f'Figures:       {osp.join(RESULTS, "ranker_histograms.png")}, {", ".join(curves)}')


if __name__ == '__main__':
    main()
