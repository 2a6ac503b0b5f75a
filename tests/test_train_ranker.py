"""`python basicsr/train.py -opt <options>` trains a tiny Ranker on CPU, validates and resumes."""
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from rank_set_factory import make_rank_set

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tiny_ranker_options(train_root: str, val_root: str, total_iter: int) -> dict:
    return {
        'name': 'tiny_ranker',
        'model_type': 'RankerModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'tiny_train', 'type': 'RankPairDataset', 'dataroot': train_root,
                'io_backend': {'type': 'lmdb'}, 'gt_size': 32, 'use_hflip': True, 'use_rot': True,
                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
            },
            'val': {'name': 'tiny_val', 'type': 'RankPairDataset', 'dataroot': val_root,
                    'io_backend': {'type': 'disk'}},
        },
        'network_r': {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 16, 16, 16],
                      'num_hidden': 8},
        'path': {'pretrain_network_r': None, 'resume_state': None},
        'train': {
            'rank_opt': {'type': 'RankLoss', 'margin': 0.5},
            'optim_r': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 1e-4},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': total_iter,
        },
        'val': {'val_freq': 2, 'save_img': False, 'metrics': {
            'srocc': {'type': 'calculate_srocc', 'better': 'higher'},
            'pair_acc': {'type': 'calculate_pair_accuracy', 'better': 'higher'},
        }},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
    }


def _run_train(root: Path, options: dict, *flags: str) -> str:
    """Run the repository's basicsr/train.py, copied under ``root`` so its outputs land there."""
    opt_file = root / 'tiny_ranker.yml'
    opt_file.write_text(yaml.safe_dump(options))
    result = subprocess.run([sys.executable, str(root / 'basicsr' / 'train.py'), '-opt', str(opt_file), *flags],
                            cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _log_text(experiment: Path) -> str:
    return '\n'.join(path.read_text() for path in sorted(experiment.glob('train_*.log')))


def test_train_validate_and_auto_resume_on_cpu(tmp_path):
    (tmp_path / 'basicsr').mkdir()
    shutil.copy(REPO_ROOT / 'basicsr' / 'train.py', tmp_path / 'basicsr' / 'train.py')
    train_keys = [f'k{i:03d}' for i in range(6)]
    train_root = str(make_rank_set(tmp_path / 'rank' / 'train', storage='lmdb', keys=train_keys))
    val_root = str(make_rank_set(tmp_path / 'rank' / 'val', storage='folder', keys=['v000', 'v001', 'v002'], seed=1))

    _run_train(tmp_path, _tiny_ranker_options(train_root, val_root, total_iter=4))
    experiment = tmp_path / 'experiments' / 'tiny_ranker'
    models = experiment / 'models'
    assert (models / 'net_r_2.pth').is_file() and (models / 'net_r_4.pth').is_file()
    assert (models / 'net_r_latest.pth').is_file() and (models / 'net_r_best.pth').is_file()
    assert (experiment / 'training_states' / '4.state').is_file()
    assert (tmp_path / 'tb_logger' / 'tiny_ranker').is_dir()
    log = _log_text(experiment)
    sroccs = [float(v) for v in re.findall(r'# srocc: (\S+)', log)]
    pair_accs = [float(v) for v in re.findall(r'# pair_acc: (\S+)', log)]
    assert sroccs and all(math.isfinite(v) and -1 <= v <= 1 for v in sroccs)
    assert pair_accs and all(0 <= v <= 1 for v in pair_accs)
    assert 'l_rank' in log and 'pair_acc' in log

    _run_train(tmp_path, _tiny_ranker_options(train_root, val_root, total_iter=6), '--auto_resume')
    log = _log_text(experiment)
    assert re.search(r'Resuming training from epoch: \d+, iter: 4\.', log)
    assert re.search(r'Start training from epoch: \d+, iter: 4\b', log)
    assert (models / 'net_r_6.pth').is_file()
    assert (experiment / 'training_states' / '6.state').is_file()
