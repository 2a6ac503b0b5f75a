"""The validation metrics of a BasicSR options file, checked when the model is built rather than at the first
validation (thousands of iterations in)."""
from typing import Any, Dict

MA_METRICS = ('calculate_ma', 'calculate_pi')


def check_validation_metrics(opt: Dict[str, Any]) -> None:
    """Drop the metrics set to ``~`` (``--force_yml val:metrics:<name>=~``) and load Ma's ``model.mat`` now.

    BasicSR would call a ``None`` metric and crash at the first validation; Ma / PI without
    ``model.mat`` would fail there too. A missing ``model.mat`` raises ``FileNotFoundError`` saying
    where it comes from and how to train with NIQE-only validation instead.
    """
    metrics = (opt.get('val') or {}).get('metrics')
    if not metrics:
        return
    for name in [name for name, metric in metrics.items() if metric is None]:
        del metrics[name]
    from ..iqa import load_ma_model

    for name, metric in metrics.items():
        if metric.get('type') not in MA_METRICS:
            continue
        try:
            load_ma_model(metric.get('model_path'))
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"val.metrics.{name} ({metric['type']}) needs Ma et al.'s model.mat: {error} To train without it, "
                f'validate with PSNR and NIQE only: add --force_yml val:metrics:{name}=~ (a metric set to ~ is '
                'dropped), or delete the entry from a copy of the options file.') from None
