"""No-reference perceptual metrics that label rank-dataset patches, behind one small interface.

A patch metric maps a batch of equal-size BGR uint8 patches (N, H, W, 3) to N scores and says
whether higher scores are better. The rank-dataset tool asks for one by its ``type`` name in
:data:`PATCH_METRIC_REGISTRY`: ``niqe``, ``ma`` and ``pi`` here; more plug in through
:func:`register_patch_metric`.
"""
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from ..iqa import load_ma_model, ma_batch, niqe_batch, pi_batch
from ..iqa.ma_features import MIN_SIZE as MA_MIN_SIZE
from ..iqa.niqe import BLOCK_SIZE as NIQE_BLOCK_SIZE
from ..utils.registry import TypeNameRegistry

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), for R, G, B.
MATLAB_GRAY_WEIGHTS_RGB = (0.298936021293775, 0.587043074451121, 0.114020904255103)
NIQE_CONVERSIONS = ('y', 'gray', 'gray_uint8')

PATCH_METRIC_REGISTRY = TypeNameRegistry('patch_metric')


def rgb2gray_uint8(bgr: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of uint8 images: BGR (..., H, W, 3) in [0, 255] -> uint8 (..., H, W).

    The weighted sum (MATLAB's weights, in double) is rounded half away from zero and saturated,
    as MATLAB's cast to uint8 does; OpenCV's BGR2GRAY (weights 0.299/0.587/0.114) is not this.
    """
    if bgr.ndim < 3 or bgr.shape[-1] != 3:
        raise ValueError(f'rgb2gray_uint8 needs BGR images (..., H, W, 3), got shape {bgr.shape}')
    pixels = bgr.astype(np.float64)
    red, green, blue = MATLAB_GRAY_WEIGHTS_RGB
    gray = pixels[..., 2] * red + pixels[..., 1] * green + pixels[..., 0] * blue
    return np.clip(np.floor(gray + 0.5), 0, 255).astype(np.uint8)


class PatchMetric:
    """A no-reference metric over batches of patches.

    Args:
        name (str): Name recorded in the rank dataset's manifest.
        higher_is_better (bool): Whether higher scores mean better images.
    """

    name = 'metric'
    higher_is_better = False
    size_note = ''  # why patches need min_patch_size pixels, for the message refusing smaller ones

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def min_patch_size(cls, opt: Mapping[str, Any]) -> int:
        """The smallest patch side the metric, built with the options ``opt``, is defined on."""
        return 1

    def describe(self) -> Dict[str, Any]:
        """What the manifest records about the metric."""
        return {'name': self.name, 'higher_is_better': self.higher_is_better}


@PATCH_METRIC_REGISTRY.register_as('niqe')
class NIQEPatchMetric(PatchMetric):
    """NIQE (Mittal et al. 2013), BasicSR's definition, batched: the paper's rank-dataset label.

    Args:
        crop_border (int): Pixels shaved off each side. Default: 4 (paper).
        convert_to (str): 'y' (BT.601 Y channel, as MATLAB), 'gray' (BasicSR's: OpenCV BGR2GRAY) or
            'gray_uint8' (MATLAB ``rgb2gray`` of the uint8 patch, rounded to uint8: what the original
            rank-dataset script's gap filter, ``calc_NIQE``, computes on). Default: 'y'.
        device (str | None): Torch device. Default: CUDA when available, else CPU.
        batch_size (int): Patches per batch. Default: 64.
    """

    name = 'niqe'
    higher_is_better = False
    size_note = (f'NIQE fits a Gaussian to the features of its {NIQE_BLOCK_SIZE}x{NIQE_BLOCK_SIZE} blocks and needs '
                 f'at least two full blocks (a square patch: two per side) after the crop_border shave (with one, '
                 "BasicSR's covariance is that of a single sample: undefined)")

    @classmethod
    def min_patch_size(cls, opt: Mapping[str, Any]) -> int:
        return 2 * NIQE_BLOCK_SIZE + 2 * opt.get('crop_border', 4)

    def __init__(self, crop_border: int = 4, convert_to: str = 'y', device: Optional[str] = None,
                 batch_size: int = 64) -> None:
        if convert_to not in NIQE_CONVERSIONS:
            raise ValueError(f'NIQE convert_to must be one of {NIQE_CONVERSIONS}, got {convert_to!r}.')
        self.crop_border, self.convert_to, self.batch_size = crop_border, convert_to, batch_size
        self.device = device

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        if self.convert_to == 'gray_uint8':  # gray patches go in as they are ('HW' ignores convert_to)
            return niqe_batch(rgb2gray_uint8(np.asarray(patches)), crop_border=self.crop_border, input_order='HW',
                              device=self.device, batch_size=self.batch_size)
        return niqe_batch(patches, crop_border=self.crop_border, input_order='HWC', convert_to=self.convert_to,
                          device=self.device, batch_size=self.batch_size)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'crop_border': self.crop_border, 'convert_to': self.convert_to}


@PATCH_METRIC_REGISTRY.register_as('ma')
class MaPatchMetric(PatchMetric):
    """Ma's score for the rank-dataset tool (higher is better)."""

    name = 'ma'
    higher_is_better = True
    size_note = (f"Ma's features need {MA_MIN_SIZE}x{MA_MIN_SIZE} pixels after the crop_border shave (steerable "
                 'pyramid guard band and SSIM window)')

    @classmethod
    def min_patch_size(cls, opt: Mapping[str, Any]) -> int:
        return MA_MIN_SIZE + 2 * opt.get('crop_border', 4)

    def __init__(self, crop_border: int = 4, model_path: Optional[str] = None, device: Optional[str] = None,
                 batch_size: Optional[int] = None) -> None:
        self.crop_border, self.model_path, self.device, self.batch_size = crop_border, model_path, device, batch_size
        self.model = load_ma_model(model_path)  # fail at build time, before any patch is cut

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return ma_batch(patches, self.crop_border, 'HWC', self.model, self.device, self.batch_size)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'crop_border': self.crop_border, 'model': self.model.path}


@PATCH_METRIC_REGISTRY.register_as('pi')
class PIPatchMetric(MaPatchMetric):
    """Perceptual Index for the rank-dataset tool (lower is better)."""

    name = 'pi'
    higher_is_better = False
    size_note = f'PI = ((10 - Ma) + NIQE) / 2, and {NIQEPatchMetric.size_note}'

    @classmethod
    def min_patch_size(cls, opt: Mapping[str, Any]) -> int:
        return max(MaPatchMetric.min_patch_size(opt), NIQEPatchMetric.min_patch_size(opt))

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return pi_batch(patches, self.crop_border, 'HWC', self.model, self.device)


def register_patch_metric(name: str, factory: Callable[..., PatchMetric]) -> None:
    """Make a metric available to the rank-dataset tool under ``name`` (replacing one of that name)."""
    PATCH_METRIC_REGISTRY.register_as(name, factory, replace=True)


def build_patch_metric(opt: Dict[str, Any], device: Optional[str] = None) -> PatchMetric:
    """A patch metric from ``{type: <name>, **kwargs}``."""
    opt = dict(opt)
    name = opt.pop('type', None)
    if name not in PATCH_METRIC_REGISTRY:
        raise ValueError(f'Unknown rank-dataset metric {name!r}; available: {sorted(PATCH_METRIC_REGISTRY.names())}.')
    if device is not None:
        opt.setdefault('device', device)
    return PATCH_METRIC_REGISTRY.get(name)(**opt)
