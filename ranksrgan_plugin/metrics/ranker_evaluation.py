"""Score a rank set with a Ranker and measure it as the paper does (SROCC, pair accuracy)."""
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.rank_pair_dataset import RankPairDataset
from .rank_metrics import calculate_pair_accuracy, calculate_srocc, pair_accuracy_counts


@torch.no_grad()
def evaluate_ranker(net: nn.Module, dataroot: str, device: Optional[str] = None, batch_size: int = 16,
                    **dataset_opt: Any) -> Dict[str, Any]:
    """Ranker scores of every (key, level) of a rank-set split, with SROCC and pair accuracy.

    Returns ``{'srocc', 'pair_accuracy', 'pairs_measured', 'pairs_tied', 'scores', 'labels', 'keys',
    'levels'}`` (lists aligned by item): the pair accuracy is over the ``pairs_measured`` level pairs
    whose labels differ; ``pairs_tied`` pairs have equal labels and carry no order. ``dataset_opt``
    goes to :class:`RankPairDataset` (e.g. ``levels``, ``io_backend``; an unknown key is refused).
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dataset = RankPairDataset({'name': f'evaluate_ranker({dataroot!r})', 'dataroot': dataroot, 'phase': 'val',
                               **dataset_opt})
    net = net.to(device).eval()
    result: Dict[str, Any] = {'scores': [], 'labels': [], 'keys': [], 'levels': []}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        result['scores'] += net(batch['img'].to(device)).reshape(-1).cpu().tolist()
        result['labels'] += [float(v) for v in batch['label']]
        result['keys'] += list(batch['key'])
        result['levels'] += list(batch['level'])
    result['srocc'] = calculate_srocc(result['scores'], result['labels'])
    result['pair_accuracy'] = calculate_pair_accuracy(result['scores'], result['labels'], result['keys'])
    _, result['pairs_measured'], result['pairs_tied'] = pair_accuracy_counts(
        result['scores'], result['labels'], result['keys'])
    return result
