"""Drive plugin metrics as the MMagic / mmengine validation loops do, with precomputed model outputs."""
from typing import Any, Dict, List, Sequence

import torch
from mmagic.registry import EVALUATORS, METRICS
from mmengine.evaluator import Evaluator as MMEngineEvaluator
from mmengine.model import BaseDataPreprocessor
from torch.utils.data import DataLoader


class _ReplayModel(torch.nn.Module):
    """A model whose ``val_step`` returns the precomputed outputs of the batch (the data_preprocessor is read by
    MMagic's metrics in ``prepare``)."""

    def __init__(self) -> None:
        super().__init__()
        self.data_preprocessor = BaseDataPreprocessor()

    def val_step(self, data_batch: Sequence[Any]) -> List[Any]:
        return list(data_batch)


def run_evaluator(kind: str, metrics: List[Dict[str, Any]], outputs: Sequence[Any], batch_size: int) -> Dict[str, Any]:
    """Evaluate ``outputs`` (one model output per dataset item) with ``metrics`` built from their configs.

    kind: 'mmagic': MMagic's ``Evaluator`` as ``MultiValLoop`` runs it (``prepare_metrics``,
    ``prepare_samplers``, ``process`` per batch of each metric group's sampler, ``evaluate()``);
    'mmengine': mmengine's ``Evaluator`` as ``ValLoop`` runs it (``process`` per batch, ``evaluate(size)``).
    """
    metrics = [METRICS.build(metric) for metric in metrics]  # mmagic's registry: no default scope needed
    loader = DataLoader(list(outputs), batch_size=batch_size, shuffle=False, collate_fn=list)
    model = _ReplayModel()
    if kind == 'mmagic':
        evaluator = EVALUATORS.build(dict(type='Evaluator', metrics=metrics))
        evaluator.prepare_metrics(model, loader)
        for group, sampler in evaluator.prepare_samplers(model, loader):
            for data_batch in sampler:
                evaluator.process(model.val_step(data_batch), data_batch, group)
        return evaluator.evaluate()
    assert kind == 'mmengine', kind
    evaluator = MMEngineEvaluator(metrics)
    for data_batch in loader:
        evaluator.process(data_samples=model.val_step(data_batch), data_batch=data_batch)
    return evaluator.evaluate(len(loader.dataset))
