"""tools/plot_curves.py on synthetic BasicSR logs and an MMagic scalars.json."""
import json
import os.path as osp

import pytest
from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
plot_curves = load_tool('plot_curves')


def _train_line(it: int) -> str:
    return (f'2026-01-01 10:00:00,000 INFO: [RankS..][epoch:  0, iter:{it:8,d}, lr:(1.000e-04,)] '
            '[eta: 0:01:00, time (data): 0.1 (0.0)] l_g_pix: 1.0e-02 \n')


def _validation(name: str, psnr: float, niqe: float, best_iter: int) -> str:
    return (f'2026-01-01 10:00:01,000 INFO: Validation {name}\n'
            f'\t # psnr: {psnr:.4f}\tBest: {psnr:.4f} @ {best_iter} iter\n'
            f'\t # niqe: {niqe:.4f}\tBest: {niqe:.4f} @ {best_iter} iter\n\n')


def _write_log(folder, values, extra_val=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = '2026-01-01 10:00:00,000 INFO: Start training from epoch: 0, iter: 0\n'
    for it, psnr, niqe in values:
        text += _train_line(it - 500) + _train_line(it) + _validation('Set14', psnr, niqe, it)
        if extra_val:
            text += _validation(extra_val, psnr + 1, niqe + 1, it)
        text += '2026-01-01 10:00:02,000 INFO: Saving models and training states.\n'
    (folder / 'train_run_20260101_100000.log').write_text(text)


def test_basicsr_log_parsed(tmp_path):
    _write_log(tmp_path / 'srgan', [(1000, 25.5, 6.0), (2000, 26.0, 5.5)], extra_val='Set5')
    log = tmp_path / 'srgan' / 'train_run_20260101_100000.log'
    with open(log, 'a') as f:  # the end-of-training validation repeats the last iteration: the last value wins
        f.write(_validation('Set14', 26.5, 5.25, 2001))
    curves = plot_curves.load_run(str(tmp_path / 'srgan'))
    assert curves['Set14']['psnr'] == [(1000, 25.5), (2000, 26.5)]
    assert curves['Set14']['niqe'] == [(1000, 6.0), (2000, 5.25)]
    assert curves['Set5']['psnr'] == [(1000, 26.5), (2000, 27.0)]
    assert plot_curves.select(curves, 'PSNR', 'Set5', 'srgan') == [(1000, 26.5), (2000, 27.0)]


def test_mmagic_scalars_parsed(tmp_path):
    vis = tmp_path / 'work_dir' / '20260101_100000' / 'vis_data'
    vis.mkdir(parents=True)
    records = [{'loss_pix': 0.1, 'lr': 1e-4, 'iter': 100, 'step': 100},
               {'Set14/PSNR': 24.0, 'Set14/NIQE': 7.0, 'step': 100},
               {'loss_pix': 0.05, 'lr': 1e-4, 'iter': 200, 'step': 200},
               {'Set14/PSNR': 25.0, 'Set14/NIQE': 6.5, 'step': 200}]
    (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))
    curves = plot_curves.load_run(str(tmp_path / 'work_dir'))
    assert curves == {'Set14': {'psnr': [(100, 24.0), (200, 25.0)], 'niqe': [(100, 7.0), (200, 6.5)]}}


def test_cli_writes_png_of_several_runs(tmp_path):
    _write_log(tmp_path / 'SRGAN', [(1000, 25.5, 6.0), (2000, 26.0, 5.5)])
    _write_log(tmp_path / 'RankSRGAN', [(1000, 25.0, 4.0), (2000, 25.2, 3.5)])
    out = tmp_path / 'curves.png'
    rc = plot_curves.main(['--runs', str(tmp_path / 'SRGAN'), str(tmp_path / 'RankSRGAN'), '--output', str(out),
                           '--title', 'x4'])
    assert rc == 0
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000


def test_errors(tmp_path, capsys):
    _write_log(tmp_path / 'run', [(1000, 25.5, 6.0)])
    assert plot_curves.main(['--runs', str(tmp_path / 'run'), '--metrics', 'lpips', '--output',
                             str(tmp_path / 'x.png')]) == 2
    assert "no 'lpips' values" in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    with pytest.raises(plot_curves.CurveError, match='no BasicSR train_'):
        plot_curves.load_run(str(tmp_path / 'empty'))
    with pytest.raises(plot_curves.CurveError, match='does not exist'):
        plot_curves.load_run(str(tmp_path / 'missing'))
    assert not (tmp_path / 'x.png').exists()
