"""The demo's own helpers: seed aggregation, tables, progress parsing, the comparison figure."""
import json

import numpy as np
import pytest

from ranksrgan_plugin import demo
from ranksrgan_plugin.utils.logged_process import last_logged_iteration


def test_aggregate_means_and_std_over_seeds():
    per_seed = [{'srgan': {'niqe': 8.0, 'psnr': 30.0}}, {'srgan': {'niqe': 6.0, 'psnr': 32.0}}]
    merged = demo.aggregate(per_seed)
    assert merged == {'srgan': {'niqe': 7.0, 'niqe_std': 1.0, 'psnr': 31.0, 'psnr_std': 1.0}}
    assert demo.aggregate(per_seed[:1]) == per_seed[0]  # one seed: no std


def test_markdown_table_shows_std_when_present():
    table = demo.markdown_table('T', {'niqe': 'NIQE'}, {'a': {'niqe': 7.0, 'niqe_std': 1.0}, 'b': {'niqe': 2.5}})
    assert '| a | 7.000 +- 1.000 |' in table and '| b | 2.500 |' in table


def test_last_iteration_reads_basicsr_log_lines(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text('INFO: [RankS..][epoch:  0, iter:      20, lr:(1.000e-04,)] l_g_pix: 1\n'
                   'INFO: [RankS..][epoch:  1, iter:   1,040, lr:(1.000e-04,)] l_g_pix: 1\n')
    assert last_logged_iteration(str(log)) == 1040
    log.write_text('train:\n  total_iter: 400000\nno iterations yet\n')  # the options dump is not a log line
    assert last_logged_iteration(str(log)) == 0


def test_comparison_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    hr = {'a.png': rng.integers(0, 256, (200, 210, 3), dtype=np.uint8)}
    runs = {'bicubic': {'a.png': hr['a.png'] // 2}, 'RankSRGAN': {'a.png': hr['a.png']}}
    path = demo.plot_comparison(runs, hr, str(tmp_path / 'comparison.png'), crop=96)
    assert (tmp_path / 'comparison.png').stat().st_size > 1000 and path.endswith('comparison.png')


def test_training_failure_names_the_log(tmp_path):
    options = tmp_path / 'broken.yml'
    options.write_text(json.dumps({'name': 'broken_demo_run', 'train': {'total_iter': 1}}))
    (tmp_path / 'basicsr').mkdir()
    (tmp_path / 'basicsr' / 'train.py').write_text('import sys\nprint("iter: 0")\nsys.exit(3)\n')
    with pytest.raises(RuntimeError, match='broken_demo_run.log'):
        demo.train_with_basicsr(str(options), str(tmp_path), 'broken', str(tmp_path / 'logs'))


def test_detailed_crop_finds_the_textured_corner():
    flat = np.full((256, 256, 3), 128, np.uint8)
    flat[160:224, 32:96] = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    top, left = demo.detailed_crop(flat, 64)
    assert (top, left) == (160, 32)
