"""`make demo`: the project's main job on its built-in data, offline, on CPU or GPU.

1. writes scikit-image's bundled photos to datasets/demo/hr;
2. builds a NIQE rank dataset from them with built-in levels (options/rank_dataset_demo.yml);
3. trains a small Ranker through ``basicsr/train.py`` (options/train_Ranker_demo.yml);
4. prints the Ranker's validation SROCC and pair accuracy (before and after training) and where
   every output is, and saves them to the experiment folder as demo_results.json.
"""
import json
import os.path as osp
import subprocess
import sys
from typing import Any, Dict

import torch
import yaml

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from basicsr.archs import build_network

from ranksrgan_plugin.archs import load_ranker
from ranksrgan_plugin.data.demo_images import export_skimage_photos
from ranksrgan_plugin.data.rank_dataset_builder import RankDatasetBuilder, load_config
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DATASET_OPTIONS = osp.join(REPO_ROOT, 'options', 'rank_dataset_demo.yml')
RANKER_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_Ranker_demo.yml')


def read_yaml(path: str) -> Dict[str, Any]:
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def build_rank_dataset() -> str:
    """Build the demo rank dataset, or reuse it when a finished one was built with the same options."""
    cfg = load_config(read_yaml(DATASET_OPTIONS))
    cfg['hr'], cfg['output'] = (osp.join(REPO_ROOT, cfg[key]) for key in ('hr', 'output'))
    export_skimage_photos(cfg['hr'])
    manifest_path = osp.join(cfg['output'], 'manifest.json')
    if osp.isfile(manifest_path):
        with open(manifest_path, encoding='utf-8') as f:
            if json.load(f)['options'] == cfg:
                print(f'Reusing the demo rank dataset in {cfg["output"]}')
                return cfg['output']
    RankDatasetBuilder(cfg, overwrite=True).run()
    return cfg['output']


def train_ranker() -> str:
    subprocess.run([sys.executable, osp.join(REPO_ROOT, 'basicsr', 'train.py'), '-opt', RANKER_OPTIONS],
                   cwd=REPO_ROOT, check=True)
    return osp.join(REPO_ROOT, 'experiments', read_yaml(RANKER_OPTIONS)['name'])


def evaluate(experiment: str, val_root: str) -> Dict[str, Dict[str, float]]:
    """SROCC and pair accuracy on the validation split, of the trained Ranker and of its initialisation."""
    opt = read_yaml(RANKER_OPTIONS)
    results = {}
    torch.manual_seed(opt['manual_seed'])
    untrained = build_network(dict(opt['network_r']))
    trained = load_ranker(build_network(dict(opt['network_r'])), osp.join(experiment, 'models', 'net_r_latest.pth'))
    for name, net in (('untrained', untrained), ('trained', trained)):
        result = evaluate_ranker(net, val_root)
        results[name] = {'srocc': result['srocc'], 'pair_accuracy': result['pair_accuracy'],
                         'num_items': len(result['scores'])}
    return results


def main() -> None:
    dataset = build_rank_dataset()
    experiment = train_ranker()
    results = evaluate(experiment, osp.join(dataset, 'val'))
    results_path = osp.join(experiment, 'demo_results.json')
    with open(results_path, 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    print('\nRanker on the demo validation split (NIQE labels):')
    print('| Ranker | SROCC | pair accuracy | items |\n|---|---|---|---|')
    for name, values in results.items():
        print(f"| {name} | {values['srocc']:.4f} | {values['pair_accuracy']:.4f} | {values['num_items']} |")
    print(f'\nRank dataset:  {dataset} (train/, val/, manifest.json)')
    print(f'Ranker:        {experiment}/models/net_r_latest.pth (training log and options in {experiment})')
    print(f'TensorBoard:   {osp.join(REPO_ROOT, "tb_logger", osp.basename(experiment))}')
    print(f'Results:       {results_path}')


if __name__ == '__main__':
    main()
