"""MMagic's MaPI metric: Ma and PI of SR outputs, equal to the library functions."""
import numpy as np
import pytest
import torch
from mmagic.structures import DataSample
from mmagic_evaluation import run_evaluator
from test_ma_metric import _photo, _write_model

import ranksrgan_plugin.mmagic  # noqa: F401  (registers MaPI)
from ranksrgan_plugin.iqa import ma_batch, niqe_batch


@pytest.mark.parametrize('kind', ['mmagic', 'mmengine'])
def test_ma_pi_metric_matches_library(tmp_path, kind):
    """Through MMagic's Evaluator (MultiValLoop, tools/test.py) and mmengine's, as the loops drive it."""
    model_path = _write_model(tmp_path / 'model.mat')
    images = [np.stack([_photo(200, 200, seed + c) for c in range(3)], axis=2).astype(np.uint8) for seed in range(3)]
    samples = [DataSample(output=DataSample(pred_img=torch.from_numpy(img.transpose(2, 0, 1).copy()).float()))
               for img in images]
    result = run_evaluator(kind, [dict(type='MaPI', crop_border=4, model_path=model_path)], samples, batch_size=2)
    assert set(result) == {'Ma', 'PI'}
    ma = ma_batch(np.stack(images), crop_border=4, model=model_path)
    niqe = niqe_batch(np.stack(images), crop_border=4)
    assert result['Ma'] == pytest.approx(ma.mean(), abs=1e-9)
    assert result['PI'] == pytest.approx((((10 - ma) + niqe) / 2).mean(), abs=1e-9)


def test_ma_pi_metric_needs_model(tmp_path, monkeypatch):
    from mmagic.registry import METRICS

    monkeypatch.setenv('RANKSRGAN_MA_MODEL', str(tmp_path / 'absent.mat'))
    with pytest.raises(FileNotFoundError, match='model.mat|absent.mat'):
        METRICS.build(dict(type='MaPI'))
