"""MMagic's MaPI metric: Ma and PI of SR outputs, equal to the library functions."""
import numpy as np
import pytest
import torch
from test_ma_metric import _photo, _write_model

import ranksrgan_plugin.mmagic  # noqa: F401  (registers MaPI)
from ranksrgan_plugin.iqa import ma_batch, niqe_batch


def test_ma_pi_metric_matches_library(tmp_path):
    from mmagic.registry import METRICS

    model_path = _write_model(tmp_path / 'model.mat')
    metric = METRICS.build(dict(type='MaPI', crop_border=4, model_path=model_path))
    images = [np.stack([_photo(200, 200, seed + c) for c in range(3)], axis=2).astype(np.uint8) for seed in range(2)]
    samples = [{'output': {'pred_img': torch.from_numpy(img.transpose(2, 0, 1).copy()).float()}} for img in images]
    metric.process({}, samples)
    result = metric.compute_metrics(metric.results)
    ma = ma_batch(np.stack(images), crop_border=4, model=model_path)
    niqe = niqe_batch(np.stack(images), crop_border=4)
    assert result['Ma'] == pytest.approx(ma.mean(), abs=1e-9)
    assert result['PI'] == pytest.approx((((10 - ma) + niqe) / 2).mean(), abs=1e-9)


def test_ma_pi_metric_needs_model(tmp_path, monkeypatch):
    from mmagic.registry import METRICS

    monkeypatch.setenv('RANKSRGAN_MA_MODEL', str(tmp_path / 'absent.mat'))
    with pytest.raises(FileNotFoundError, match='model.mat|absent.mat'):
        METRICS.build(dict(type='MaPI'))
