"""Ma et al.'s no-reference SR metric ("Learning a no-reference quality metric for single-image
super-resolution", CVIU 2017) and the PIRM 2018 Perceptual Index, on batches of BGR images.

The 138 features (:mod:`~ranksrgan_plugin.iqa.ma_features`, on the Y channel as MATLAB's ``rgb2ycbcr``)
feed the forests of the authors' ``model.mat`` (:mod:`~ranksrgan_plugin.iqa.ma_model`). PI combines Ma
with NIQE: PI = ((10 - Ma) + NIQE) / 2. ``docs/ma_metric.md`` has the definition and how close this code is
to the official MATLAB output.
"""
import os
from typing import Optional, TypeVar, Union

import numpy as np
import torch

from .image_prep import ImageBatch, as_batch, to_y_matlab
from .ma_features import ma_features_batch
from .ma_model import MaModel, load_ma_model
from .niqe import niqe_batch

__all__ = ['perceptual_index', 'ma_batch', 'ma_score', 'pi_batch']

ModelSpec = Optional[Union[MaModel, str, os.PathLike]]
Score = TypeVar('Score', float, np.ndarray)


def perceptual_index(ma: Score, niqe: Score) -> Score:
    """The PIRM 2018 Perceptual Index ((10 - Ma) + NIQE) / 2 (lower is better), of scalars or arrays."""
    return ((10.0 - ma) + niqe) / 2.0


def _get_model(model: ModelSpec) -> MaModel:
    """``model`` itself, or the model.mat it names (None: the default places, see :func:`load_ma_model`)."""
    return model if isinstance(model, MaModel) else load_ma_model(model)


def ma_batch(imgs: ImageBatch, crop_border: int = 4, input_order: str = 'HWC', model: ModelSpec = None,
             device: Optional[Union[str, torch.device]] = None, batch_size: Optional[int] = None) -> np.ndarray:
    """Ma scores (N,) of equal-size BGR images in [0, 255] (N, H, W, 3) for 'HWC' (or (N, H, W) for 'HW').

    ``batch_size``: images per feature call (default all; the features chunk them per device themselves).
    """
    m = _get_model(model)
    y = to_y_matlab(imgs, input_order, crop_border)
    step = batch_size or max(1, y.shape[0])
    out = [m.predict(ma_features_batch(y[i:i + step], device)) for i in range(0, y.shape[0], step)]
    return np.concatenate(out) if out else np.zeros(0)


def ma_score(img: Union[np.ndarray, torch.Tensor], crop_border: int = 4, model: ModelSpec = None,
             input_order: str = 'HWC') -> float:
    """Ma score of one image (higher is better, about 0..10)."""
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(ma_batch(t.unsqueeze(0), crop_border, input_order, model)[0])


def pi_batch(imgs: ImageBatch, crop_border: int = 4, input_order: str = 'HWC', model: ModelSpec = None,
             device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """PI per image (lower is better): Ma and NIQE (``niqe_batch``) on the Y channel."""
    t = as_batch(imgs, 'pi_batch')
    ma = ma_batch(t, crop_border, input_order, model, device)
    niqe = niqe_batch(t, crop_border=crop_border, input_order=input_order, convert_to='y', device=device)
    return perceptual_index(ma, niqe)
