"""BasicSR model that trains the Ranker (paper Sec. 3.2, "Ranker")."""
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from tqdm import tqdm

from ..archs.ghost_batchnorm import group_batchnorms
from ..archs.ranker_arch import PAIR_FORWARDS, score_pairs
from ..checkpoints import strip_module_prefix
from ..losses.loss_options import check_ranker_loss_options
from ..metrics.rank_metrics import batch_pair_accuracy
from ..rank_content.ranker_record import RECORD_KEY, ranker_record
from ..utils.atomic_files import save_torch_atomically
from ..utils.built_options import check_built_options
from .checkpoint_loading import NamedCheckpointLoading
from .training_precision import TrainingPrecision, check_train_options


@MODEL_REGISTRY.register()
class RankerModel(TrainingPrecision, NamedCheckpointLoading, BaseModel):
    """Trains the *Ranker* (``network_r``) on pairs of SR levels with a rank or regression loss.

    Options beyond BasicSR's usual ones:
        network_r: the Ranker (e.g. ``type: RankerVGG``); saved as ``net_r_<iter>.pth``.
        path.pretrain_network_r / param_key_r / strict_load_r: optional initial weights.
        train.rank_opt: the loss (``RankLoss`` or ``RankRegressionLoss``).
        train.pair_forward: ``separate`` (default, the original's: one forward pass per side of the
            pairs, BatchNorm statistics per side) or ``joint`` (one pass over both sides).
        train.batchnorm_group: the images per BatchNorm statistics (the original's per-GPU share of a side:
            8 of 16 on its 2 GPUs; the paper files set 8); null (default): each process's batch
            (:mod:`ranksrgan_plugin.archs.ghost_batchnorm`).
        train.optim_r, train.scheduler: as for any BasicSR model.
        train.precision / channels_last / nonfinite_limit: see :mod:`.training_precision` (default fp32).
        val.metrics: whole-split metrics (``calculate_srocc``, ``calculate_pair_accuracy``);
        val.best_metric: the metric whose best value saves ``net_r_best.pth``
        (default: the first ``calculate_srocc`` metric).

    The training log has ``l_rank`` (the loss) and ``pair_acc`` (share of the batch's pairs the
    scores order as the labels). Every ``net_r_*.pth`` carries, beside ``params``, the ``ranker_record`` of the
    training set (metric, direction, manifest digest: :mod:`~ranksrgan_plugin.rank_content.ranker_record`), which
    RankSRGAN checks its rank-content loss against. ``network_r``, ``train.rank_opt`` and ``train`` refuse keys they
    do not know.
    """

    # the train.* keys read beside BasicSR's own (training_precision.BASICSR_TRAIN_OPTIONS) and the precision family
    train_options = ('optim_r', 'rank_opt', 'pair_forward', 'batchnorm_group')
    optimizer_names = ('r',)  # the optimiser's name in backward / step_optimizers (and its fp16 scaler)

    def __init__(self, opt: Dict[str, Any]) -> None:
        check_train_options(opt, self.train_options, type(self).__name__)
        check_built_options(opt.get('network_r'), 'network_r', ARCH_REGISTRY, 'network', 'RankerVGG')
        super().__init__(opt)
        self.net_r = self.model_to_device(build_network(opt['network_r']))
        self.print_network(self.net_r)
        load_path = self.opt['path'].get('pretrain_network_r')
        if load_path is not None:
            param_key = self.opt['path'].get('param_key_r', 'params')
            self.load_network(self.net_r, load_path, self.opt['path'].get('strict_load_r', True), param_key)
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self) -> None:
        self.net_r.train()
        train_opt = self.opt['train']
        if not train_opt.get('rank_opt'):
            raise ValueError('RankerModel needs train.rank_opt (e.g. type: RankLoss).')
        check_ranker_loss_options(train_opt['rank_opt'], 'train.rank_opt', LOSS_REGISTRY,
                                  'datasets.train.higher_is_better')
        self.cri_rank = build_loss(train_opt['rank_opt']).to(self.device)
        self.ranker_record = self._training_set_record()
        self.pair_forward = train_opt.get('pair_forward', 'separate')
        if self.pair_forward not in PAIR_FORWARDS:
            raise ValueError(f'train.pair_forward must be one of {PAIR_FORWARDS}, got {self.pair_forward!r}.')
        get_root_logger().info(group_batchnorms({'network_r': self.get_bare_model(self.net_r)},
                                                train_opt.get('batchnorm_group'), 'train.batchnorm_group'))
        self.setup_optimizers()
        self.setup_schedulers()
        self.prepare_networks([self.net_r])

    def trained_networks(self) -> Sequence[torch.nn.Module]:
        return (self.net_r,)

    def setup_optimizers(self) -> None:
        optim_opt = dict(self.opt['train']['optim_r'])
        optim_type = optim_opt.pop('type')
        params = [p for p in self.net_r.parameters() if p.requires_grad]
        self.optimizer_r = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_r)

    def feed_data(self, data: Dict[str, Any]) -> None:
        """A training pair batch (``img_a``/``img_b``) or a validation batch (``img``)."""
        if 'img_a' in data:
            self.img_a = data['img_a'].to(self.device)
            self.img_b = data['img_b'].to(self.device)
            self.label_a = data['label_a'].to(self.device, torch.float32)
            self.label_b = data['label_b'].to(self.device, torch.float32)
        else:
            self.img = data['img'].to(self.device)

    def optimize_parameters(self, current_iter: int) -> None:
        self.snapshot_buffers()  # the non-finite guard's (see .training_precision)
        self.optimizer_r.zero_grad()
        with self.autocast():
            score_a, score_b = score_pairs(self.net_r, self.memory_format(self.img_a),
                                           self.memory_format(self.img_b), self.pair_forward)
        score_a, score_b = score_a.float(), score_b.float()  # the loss on fp32 values
        l_rank = self.cri_rank(score_a, score_b, self.label_a, self.label_b)
        self.backward(l_rank, 'r')
        skipped = self.step_optimizers([(self.optimizer_r, 'r')], {'l_rank': l_rank})
        self.count_nonfinite(skipped, {'l_rank': l_rank}, current_iter)
        pair_acc = batch_pair_accuracy(score_a, score_b, self.label_a, self.label_b)
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_rank=l_rank, pair_acc=pair_acc))
        self.log_guard(self.log_dict)

    def test(self) -> None:
        """Scores of the fed validation batch, in eval mode, as ``self.scores`` (N,).

        Through the bare network: validation runs on rank 0 only, and a DistributedDataParallel forward
        would broadcast the BatchNorm buffers, a collective the other ranks never join (a crash or a hang).
        """
        net = self.get_bare_model(self.net_r)
        net.eval()
        with torch.no_grad():
            self.scores = net(self.img).reshape(-1)
        net.train()

    def dist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        if self.opt['rank'] == 0:  # as SRModel: the whole split on rank 0
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        """Score every (key, level) of the split, then the whole-split metrics of ``val.metrics``."""
        dataset_name = dataloader.dataset.opt['name']
        scores, labels, keys = self.score_dataset(dataloader, use_pbar=self.opt['val'].get('pbar', False))
        metrics = self.opt['val'].get('metrics')
        if not metrics:
            return
        self._initialize_best_metric_results(dataset_name)
        data = {'scores': scores, 'labels': labels, 'keys': keys}
        self.metric_results = {name: calculate_metric(data, metric_opt) for name, metric_opt in metrics.items()}
        best_metric = self._best_metric_name()
        for name, value in self.metric_results.items():
            previous_best = self.best_metric_results[dataset_name][name]['iter']
            self._update_best_metric_result(dataset_name, name, value, current_iter)
            improved = self.best_metric_results[dataset_name][name]['iter'] != previous_best
            if name == best_metric and improved and self.opt['is_train']:
                self.save_network(self.net_r, 'net_r', 'best')
        SRModel._log_validation_metric_values(self, current_iter, dataset_name, tb_logger)

    def score_dataset(self, dataloader, use_pbar: bool = False):
        """Ranker scores, labels and keys of every item of a validation dataloader."""
        scores: List[float] = []
        labels: List[float] = []
        keys: List[str] = []
        for batch in tqdm(dataloader, unit='patch', desc='Ranker validation', disable=not use_pbar):
            self.feed_data(batch)
            self.test()
            scores += self.scores.cpu().tolist()
            labels += [float(v) for v in batch['label']]
            keys += list(batch['key'])
        return scores, labels, keys

    def _best_metric_name(self) -> Optional[str]:
        metrics = self.opt['val'].get('metrics') or {}
        if self.opt['val'].get('best_metric'):
            return self.opt['val']['best_metric']
        return next((name for name, opt in metrics.items() if opt.get('type') == 'calculate_srocc'), None)

    def get_current_visuals(self) -> Dict[str, torch.Tensor]:
        return OrderedDict(scores=self.scores.detach().cpu())

    def _training_set_record(self) -> Optional[Dict[str, Any]]:
        """The record of the training split (``datasets.train``) that every saved Ranker carries."""
        dataset_opt = (self.opt.get('datasets') or {}).get('train') or {}
        direction = dataset_opt['higher_is_better'] if 'higher_is_better' in dataset_opt else None
        record = ranker_record(dataset_opt.get('dataroot'), None if direction is None else bool(direction))
        if record is not None:
            get_root_logger().info(
                f"Ranker record: {record['metric'] or 'unnamed'} labels, higher_is_better {record['higher_is_better']}"
                f"{'' if record['manifest'] is None else ' from ' + record['manifest']}; saved in every net_r file.")
        return record

    @master_only
    def save_network(self, net: Any, net_label: str, current_iter: Any, param_key: Any = 'params') -> None:
        """BasicSR's ``{param_key: state_dict}`` file, plus ``ranker_record`` for the Ranker (when known)."""
        if self.ranker_record is None or net is not self.net_r or param_key != 'params':
            super().save_network(net, net_label, current_iter, param_key)
            return
        current_iter = 'latest' if current_iter == -1 else current_iter
        weights = OrderedDict((key, value.cpu()) for key, value in
                              strip_module_prefix(self.get_bare_model(net).state_dict()).items())
        save_torch_atomically({'params': weights, RECORD_KEY: dict(self.ranker_record)},
                              osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))

    def save(self, epoch: int, current_iter: int) -> None:
        self.save_network(self.net_r, 'net_r', current_iter)
        self.save_training_state(epoch, current_iter)

