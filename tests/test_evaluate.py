"""tools/evaluate.py and ranksrgan_plugin.evaluation on tiny images made here."""
import csv
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from basicsr.metrics import calculate_psnr, calculate_ssim
from test_ma_metric import _write_model
from tool_loader import load_tool

from ranksrgan_plugin.evaluation import EvaluationError, evaluate_folder, evaluate_folders, summary_table
from ranksrgan_plugin.metrics import calculate_ma, calculate_niqe_batched, calculate_pi

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZE = (104, 200)  # H, W: two 96x96 NIQE blocks after the 4-pixel shave, the fewest NIQE takes


def _hr(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    base = 128 + 60 * np.sin(xx / (5.0 + seed)) * np.cos(yy / 9.0)
    img = np.stack([base, base * 0.8 + 20, 255 - base], axis=-1) + rng.normal(0, 6, SIZE + (3, ))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _degrade(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma) if sigma else img.astype(np.float32)
    out = blurred + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    """HR folder with two images; SR folder 'blur' (plain names) and 'sharp' (``_rlt`` suffix)."""
    hr, blur, sharp = tmp_path / 'HR', tmp_path / 'blur', tmp_path / 'sharp'
    for d in (hr, blur, sharp):
        d.mkdir()
    images = {}
    for i, stem in enumerate(('img_a', 'img_b')):
        images[stem] = (_hr(i), _degrade(_hr(i), 3.0, i), _degrade(_hr(i), 0.0, 10 + i))
        cv2.imwrite(str(hr / f'{stem}.png'), images[stem][0])
        cv2.imwrite(str(blur / f'{stem}.png'), images[stem][1])
        cv2.imwrite(str(sharp / f'{stem}_rlt.png'), images[stem][2])
    return {'hr': str(hr), 'blur': str(blur), 'sharp': str(sharp), 'images': images, 'tmp': tmp_path}


def _direct(sr, hr):
    return {'niqe': calculate_niqe_batched(sr, 4, input_order='HWC', convert_to='y'),
            'psnr': calculate_psnr(sr, hr, 4, input_order='HWC', test_y_channel=True),
            'ssim': calculate_ssim(sr, hr, 4, input_order='HWC', test_y_channel=True)}


def test_values_equal_metric_functions_and_files_written(folders):
    out = evaluate_folders([folders['blur'], folders['sharp']], folders['hr'], str(folders['tmp'] / 'eval'),
                           suffixes=['', '_rlt'], progress=False)
    assert list(out['results']) == ['blur', 'sharp']
    for name, column in (('blur', 1), ('sharp', 2)):
        rows = out['results'][name]
        assert [r['name'] for r in rows] == ['img_a', 'img_b']
        expected = [_direct(folders['images'][r['name']][column], folders['images'][r['name']][0]) for r in rows]
        for row, exp in zip(rows, expected):
            for metric, value in exp.items():
                assert row[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), (name, row['name'], metric)
        with open(out['csv'][name]) as f:
            table = list(csv.reader(f))
        assert table[0] == ['name', 'niqe', 'psnr', 'ssim']
        assert [t[0] for t in table[1:]] == ['img_a', 'img_b', 'mean']
        for metric_index, metric in enumerate(('niqe', 'psnr', 'ssim'), start=1):
            assert float(table[1][metric_index]) == pytest.approx(expected[0][metric], rel=1e-12)
            mean = np.mean([e[metric] for e in expected])
            assert float(table[3][metric_index]) == pytest.approx(mean, rel=1e-12)
            summary_line = [ln for ln in out['table'].splitlines() if ln.startswith(f'| {name} |')][0]
            assert f'{mean:.4f}' in summary_line.split('|')[2 + metric_index]
    with open(out['summary']) as f:
        assert f.read() == out['table']
    # the blurrier folder is worse on PSNR: the table compares folders, not one folder twice
    means = {n: np.mean([r['psnr'] for r in rows]) for n, rows in out['results'].items()}
    assert means['sharp'] > means['blur']


def test_ma_and_pi_columns_equal_metric_functions(folders):
    model = _write_model(folders['tmp'] / 'model.mat')
    rows = evaluate_folder(folders['blur'], folders['hr'], ma_model=model, progress=False)
    sr = folders['images']['img_a'][1]
    assert rows[0]['ma'] == pytest.approx(calculate_ma(sr, 4, model_path=model), rel=1e-9)
    assert rows[0]['pi'] == pytest.approx(calculate_pi(sr, 4, model_path=model), rel=1e-9)
    assert '| Ma ↑ | PI ↓ |' in summary_table({'blur': rows})


def test_missing_hr_image_names_the_file(folders):
    cv2.imwrite(osp.join(folders['blur'], 'extra.png'), folders['images']['img_a'][1])
    with pytest.raises(EvaluationError, match=r'No HR image .*blur.extra\.png'):
        evaluate_folder(folders['blur'], folders['hr'], progress=False)


def test_size_mismatch_names_both_files(folders):
    cv2.imwrite(osp.join(folders['blur'], 'img_b.png'), folders['images']['img_b'][1][:100])
    with pytest.raises(EvaluationError, match=r'Size mismatch: .*blur.img_b\.png .*HR.img_b\.png'):
        evaluate_folder(folders['blur'], folders['hr'], progress=False)


def test_missing_and_empty_folders(folders):
    empty = folders['tmp'] / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(EvaluationError, match=r'empty holds no image'):
        evaluate_folders([str(empty)], folders['hr'], str(folders['tmp'] / 'eval'), progress=False)
    with pytest.raises(EvaluationError, match=r'nowhere does not exist'):
        evaluate_folders([folders['blur']], str(folders['tmp'] / 'nowhere'), str(folders['tmp'] / 'e'),
                         progress=False)
    with pytest.raises(EvaluationError, match=r"ending with '_x'|ends with '_x'"):
        evaluate_folder(folders['sharp'], folders['hr'], suffix='_x', progress=False)


def test_cli(folders):
    out_dir = folders['tmp'] / 'cli'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'evaluate.py'), '--hr', folders['hr'], '--sr', folders['blur'],
           folders['sharp'], '--suffix', '', '_rlt', '--names', 'Blur', 'Sharp', '--output', str(out_dir),
           '--no-progress']
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '| Blur | 2 |' in done.stdout and '| Sharp | 2 |' in done.stdout
    assert (out_dir / 'Blur.csv').is_file() and (out_dir / 'summary.md').is_file()


def test_cli_error_exit_status(folders, capsys):
    rc = load_tool('evaluate').main(['--hr', str(folders['tmp'] / 'nope'), '--sr', folders['blur'], '--output',
                    str(folders['tmp'] / 'out'), '--no-progress'])
    assert rc == 2 and 'nope does not exist' in capsys.readouterr().err
