"""Metrics for MMagic's evaluators: the Ranker's whole-split SROCC and pair accuracy, NIQE and Ma / PI of SR outputs.

All four derive from MMagic's ``BaseSampleWiseMetric`` (as MMagic's own PSNR / NIQE do), so MMagic's
``Evaluator`` / ``MultiValLoop`` drive them (``prepare`` notes the split size, ``get_metric_sampler``
gives the dataloader, ``evaluate()``); mmengine's own ``Evaluator`` / ``ValLoop`` (``evaluate(size)``)
work as well. Results of every rank are gathered before ``compute_metrics`` (mmengine's
``BaseMetric.evaluate``), so a DDP validation still scores the whole split at once.
"""
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..iqa import load_ma_model, ma_batch, niqe_batch, perceptual_index
from ..metrics.rank_metrics import calculate_pair_accuracy, calculate_srocc


class _SampleWiseMetric(BaseSampleWiseMetric):
    """MMagic's sample-wise metric base; ``evaluate`` also takes mmengine's ``size`` (mmengine's Evaluator)."""

    def __init__(self, pred_key: str = 'pred_img', device: Optional[str] = 'cpu', collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(pred_key=pred_key, device=device, collect_device=collect_device, prefix=prefix)

    def evaluate(self, size: Optional[int] = None) -> Dict[str, Any]:
        if size is None:  # MMagic's Evaluator: the size noted by prepare()
            return super().evaluate()
        return BaseMetric.evaluate(self, size)


class _RankMetric(_SampleWiseMetric):
    """Collects (score, label, key) of every Ranker output (``RankerModel`` in ``predict`` mode)."""

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: Any, data_samples: Sequence[Dict[str, Any]]) -> None:
        for sample in data_samples:
            self.results.append((float(sample['score']), float(sample['label']), str(sample['key'])))

    @staticmethod
    def _columns(results: List[Tuple[float, float, str]]) -> Tuple[List[float], List[float], List[str]]:
        scores, labels, keys = zip(*results)
        return list(scores), list(labels), list(keys)


@METRICS.register_module()
class SROCC(_RankMetric):
    """Spearman rank-order correlation between Ranker scores and labels over the whole split (paper Table 1-2).

    Args:
        collect_device (str): 'cpu' or 'gpu', where DDP results are gathered. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric name. Default: None (the name is ``SROCC``).
    """

    metric = 'SROCC'

    def compute_metrics(self, results: List[Tuple[float, float, str]]) -> Dict[str, float]:
        scores, labels, _ = self._columns(results)
        return {'SROCC': calculate_srocc(scores, labels)}


@METRICS.register_module()
class PairAccuracy(_RankMetric):
    """The original code's aligned *pair accuracy*: share of level pairs of one key ordered as their labels.

    Args:
        collect_device (str): 'cpu' or 'gpu', where DDP results are gathered. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric name. Default: None (the name is ``PairAccuracy``).
    """

    metric = 'PairAccuracy'

    def compute_metrics(self, results: List[Tuple[float, float, str]]) -> Dict[str, float]:
        scores, labels, keys = self._columns(results)
        return {'PairAccuracy': calculate_pair_accuracy(scores, labels, keys)}


@METRICS.register_module()
class BatchedNIQE(_SampleWiseMetric):
    """NIQE of SR outputs, BasicSR's definition (the paper's validation measure), computed in batches.

    Reads ``output.<key>`` of each data sample as MMagic's own NIQE metric does: MMagic's
    ``BaseEditModel`` stores predictions as CHW tensors in [0, 255], BGR after the data
    preprocessor's ``destruct``, which is what ``niqe_batch`` expects. Images of the same size are
    buffered and scored ``batch_size`` at a time (``niqe_batch``); the rest is scored before the
    results of all ranks are gathered. The result is the mean over images; images whose NIQE is
    undefined (NaN, e.g. flat) are left out with a warning.

    Args:
        key (str): Output field to score. Default: 'pred_img'.
        crop_border (int): Pixels cropped from each edge. Default: 0 (the paper: 4).
        convert_to (str): 'y' (the paper, BasicSR) or 'gray'. Default: 'y'.
        batch_size (int): Images per ``niqe_batch`` call. Default: 16.
        device (str, optional): Where NIQE runs. Default: where the images are (CPU in MMagic).
        collect_device (str): 'cpu' or 'gpu', where DDP results are gathered. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric name. Default: None (the name is ``NIQE``).
    """

    metric = 'NIQE'

    def __init__(self, key: str = 'pred_img', crop_border: int = 0, convert_to: str = 'y', batch_size: int = 16,
                 device: Optional[str] = None, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(pred_key=key, device=device, collect_device=collect_device, prefix=prefix)
        self.key, self.crop_border, self.convert_to = key, crop_border, convert_to
        self.batch_size = batch_size
        self._pending: Dict[Tuple[int, ...], List[Tuple[torch.Tensor, Dict[str, float]]]] = defaultdict(list)

    def process(self, data_batch: Any, data_samples: Sequence[Dict[str, Any]]) -> None:
        for sample in data_samples:
            image = torch.as_tensor(sample['output'][self.key]).detach()
            slot = {'NIQE': float('nan')}  # filled when its group is scored; keeps the results in sample order
            self.results.append(slot)
            group = self._pending[tuple(image.shape)]
            group.append((image, slot))
            if len(group) >= self.batch_size:
                self._score(tuple(image.shape))

    def _score(self, shape: Tuple[int, ...]) -> None:
        group = self._pending.pop(shape)
        images = torch.stack([image for image, _ in group]).float()
        if images.shape[1] == 1:  # single-channel CHW -> (N, H, W)
            images, order = images[:, 0], 'HW'
        else:
            order = 'CHW'
        values = niqe_batch(images, crop_border=self.crop_border, input_order=order, convert_to=self.convert_to,
                            device=self.device, batch_size=self.batch_size)
        for (_, slot), value in zip(group, values):
            slot['NIQE'] = float(value)

    def evaluate(self, size: Optional[int] = None) -> Dict[str, Any]:
        for shape in list(self._pending):
            self._score(shape)
        return super().evaluate(size)

    def compute_metrics(self, results: List[Dict[str, float]]) -> Dict[str, float]:
        values = np.array([result['NIQE'] for result in results], dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            print_log(f'BatchedNIQE: NIQE is undefined for {int((~finite).sum())} of {len(values)} images '
                      '(e.g. flat images); they are left out of the mean.', logger='current', level=30)
        return {'NIQE': float(values[finite].mean()) if finite.any() else float('nan')}


@METRICS.register_module()
class MaPI(_SampleWiseMetric):
    """Ma et al.'s no-reference score and the *Perceptual Index* of SR outputs (RankSRGAN-M / -PI validation).

    Reads ``output.<key>`` as :class:`BatchedNIQE` does (CHW, [0, 255], BGR) and scores each image
    on the Y channel; PI = ((10 - Ma) + NIQE) / 2 (:func:`~ranksrgan_plugin.iqa.perceptual_index`) with
    BasicSR's NIQE. Needs the authors' ``model.mat`` (``model_path``, else ``$RANKSRGAN_MA_MODEL`` or
    ``~/.cache/ranksrgan_plugin/ma/model.mat``).

    Args:
        key (str): Output field to score. Default: 'pred_img'.
        crop_border (int): Pixels cropped from each edge. Default: 4 (the PIRM protocol).
        model_path (str, optional): Ma's ``model.mat``.
        collect_device (str): 'cpu' or 'gpu', where DDP results are gathered. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric names (``Ma``, ``PI``). Default: None.
    """

    metric = 'PI'

    def __init__(self, key: str = 'pred_img', crop_border: int = 4, model_path: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(pred_key=key, collect_device=collect_device, prefix=prefix)
        self.key, self.crop_border = key, crop_border
        try:
            self.model = load_ma_model(model_path)  # a missing model.mat fails when the metric is built
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"The MaPI metric needs Ma et al.'s model.mat: {error} To train without it, validate with PSNR and "
                'NIQE only: a config that inherits this one and sets val_evaluator = dict(_delete_=True, '
                "type='Evaluator', metrics=[dict(type='PSNR', crop_border=4), dict(type='BatchedNIQE', "
                "crop_border=4, convert_to='y')]) (the -N config's, without MAE / SSIM).") from None

    def process(self, data_batch: Any, data_samples: Sequence[Dict[str, Any]]) -> None:
        for sample in data_samples:
            image = torch.as_tensor(sample['output'][self.key]).detach().float().cpu()[None]
            order = 'CHW' if image.shape[1] in (1, 3) else 'HW'
            ma = float(ma_batch(image, self.crop_border, order, self.model)[0])
            niqe = float(niqe_batch(image, crop_border=self.crop_border, input_order=order, convert_to='y')[0])
            self.results.append({'Ma': ma, 'PI': perceptual_index(ma, niqe)})

    def compute_metrics(self, results: List[Dict[str, float]]) -> Dict[str, float]:
        return {name: float(np.mean([result[name] for result in results])) for name in ('Ma', 'PI')}
