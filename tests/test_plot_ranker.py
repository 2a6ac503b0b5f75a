"""tools/plot_ranker.py: the paper's Figure 3/4 for a Ranker (and a regression Ranker) on a rank-set split."""

import numpy as np
import pytest
import torch
from rank_set_factory import make_rank_set
from tool_loader import load_tool

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.metrics.ranker_plots import per_level

RANKER = {'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 16, 16], 'num_hidden': 8}


def test_per_level_groups_in_order():
    groups = per_level([1.0, 2.0, 3.0, 4.0], ['a', 'b', 'a', 'b'])
    assert list(groups) == ['a', 'b']
    np.testing.assert_array_equal(groups['a'], [1.0, 3.0])


def test_plot_ranker_writes_png_and_prints_metrics(tmp_path, capsys):
    split = make_rank_set(tmp_path / 'val', storage='folder', keys=[f'v{i:03d}' for i in range(4)])
    opt = tmp_path / 'opt.yml'
    opt.write_text('network_r: {type: RankerVGG, depth: 8, num_feat: 8, stage_widths: [8, 8, 16, 16], '
                   'num_hidden: 8}\n')
    paths = []
    for seed in range(2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f'ranker{seed}.pth')
        torch.save({'params': RankerVGG(**RANKER).state_dict()}, paths[-1])
    output = tmp_path / 'hist.png'
    tool = load_tool('plot_ranker')
    tool.main(['--dataroot', split, '--weights', str(paths[0]), '--weights-regression', str(paths[1]),
               '--opt', str(opt), '--output', str(output), '--device', 'cpu'])
    printed = capsys.readouterr().out
    assert 'Ranker: SROCC' in printed and 'regression Ranker: SROCC' in printed and '(12 items)' in printed
    assert output.is_file() and output.stat().st_size > 5000
    assert output.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_plot_ranker_missing_checkpoint(tmp_path):
    split = make_rank_set(tmp_path / 'val', storage='folder', keys=['v000', 'v001'])
    with pytest.raises(FileNotFoundError):
        load_tool('plot_ranker').main(['--dataroot', split, '--weights', str(tmp_path / 'absent.pth'),
                                       '--output', str(tmp_path / 'x.png')])
