"""Mixed precision, channels_last and the non-finite guard of the plugin's BasicSR models (``train.*`` options).

Options (defaults: the original's fp32 training, unchanged):
    train.precision: ``fp32`` | ``bf16`` | ``fp16``: autocast over every forward pass of the step
        (generator, discriminator, perceptual VGG, Ranker); the losses are computed on fp32 values; fp16
        adds one gradient scaler per optimiser, saved in and restored from the training state.
    train.channels_last: ``true`` puts the step's networks and inputs in channels-last memory format. The
        trained networks are converted before BasicSR's ``model_to_device`` wraps them in DDP (DDP's gradient
        buckets take the parameters' strides when it wraps); BasicSR's own ``VGGStyleDiscriminator`` gets
        :func:`~ranksrgan_plugin.compat.basicsr.flatten_channels_last_features`.
    train.nonfinite_limit: the non-finite guard (default 10; ``null`` or ``false``: off). An iteration whose
        losses or gradients are not finite steps no optimiser at all (the generator's and the discriminator's
        steps are decided together, after both backward passes) and leaves every trained network exactly as
        before its forward passes: weights, BatchNorm buffers (copied on the device before the first forward:
        buffers only) and optimiser state; EMA is not updated. Skipped iterations are counted in the log as
        ``nonfinite_steps``; after ``nonfinite_limit`` of them in a row training stops with
        :class:`NonFiniteTrainingError`. The counts (total, current run) are kept in the training state, so a
        resumed run goes on counting. fp16: the check reads each scaler's own found-inf after ``unscale_``; while
        a scaler has not yet made a step (it starts at 2**16 and halves on each overflow) its back-offs with
        finite losses are the scale search, logged as ``fp16_scale_search_steps`` and not counted (down to a
        scale of 1: below that an overflow is not the scale's doing).
    train.compile: ``false`` | ``true`` | a ``torch.compile`` mode (e.g. ``max-autotune``) | a dict of its
        arguments: the forward of every network of the step is compiled (the modules are not wrapped, so
        checkpoints, EMA and resume keep their keys).
    train.fused_optimizers: ``true`` gives Adam (the only optimiser basicsr 1.4.2's ``get_optimizer`` builds)
        ``fused=True`` on CUDA, ``foreach=True`` elsewhere; an ``optim_*`` block that sets ``fused`` or
        ``foreach`` itself is left as it is (Adam refuses both together).

The guard's cost: one device synchronisation per iteration (the losses' and every optimiser's gradient check are
read together, ``.tolist()`` of one small tensor; under DDP one all-reduce of it first, so that every rank takes
the same decision), a norm over the gradients (fp32 / bf16; fp16 reuses the scaler's found-inf) and a copy of the
trained networks' BatchNorm buffers. On a GPU the synchronisation stops the host from queueing the next
iteration's kernels ahead; measured on the CPU (2-core box, the tiny RankSRGAN step of
``tests/test_gpu_trust_precision.py``, 200 steps): 28.85 ms per step with the guard, 28.61 ms with
``nonfinite_limit: null`` (+0.8%, within noise). Without the guard, a non-finite step is applied as in BasicSR
(fp16: the scaler still skips overflowing steps itself).

A misspelt key (``precison``, ``channel_last``, ``nonfinite_limt``) would leave its default in force without a
word, so the plugin's models refuse any ``train`` key they do not read (:func:`check_train_options`): their
``train`` block is read only by BasicSR 1.4.2 (``basicsr/train.py``: ``total_iter``, ``warmup_iter``;
``BaseModel``: ``scheduler``; ``SRModel`` / ``SRGANModel`` for RankSRGAN) and the plugin, so the list is closed.
"""
import contextlib
from typing import Any, ContextManager, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..utils.option_keys import refuse_unknown_keys

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PRECISION_OPTIONS = ('precision', 'channels_last', 'nonfinite_limit', 'compile', 'fused_optimizers')
BASICSR_TRAIN_OPTIONS = ('total_iter', 'warmup_iter', 'scheduler')  # basicsr/train.py, BaseModel.setup_schedulers
GUARD_STATE_KEY = 'nonfinite_guard'  # the guard's counts in a training state (older states lack it: zeros)
SCALE_SEARCH = 'fp16 scale search'
Steps = Sequence[Tuple[torch.optim.Optimizer, str]]


def check_train_options(opt: Mapping[str, Any], model_options: Iterable[str], model: str) -> None:
    """Refuse a key of a training run's ``train`` block that neither BasicSR nor ``model`` reads, with the closest
    valid name (``train (RankSRGANModel): unknown option 'precison' (did you mean 'precision'?); it takes [...]``).
    """
    train_opt = opt.get('train')
    if opt.get('is_train') and isinstance(train_opt, Mapping):
        known = {*BASICSR_TRAIN_OPTIONS, *PRECISION_OPTIONS, *model_options}
        refuse_unknown_keys(train_opt, known, f'train ({model})')


def channels_last_option(train_opt: Mapping[str, Any]) -> bool:
    """``train.channels_last``, refused unless true or false (a quoted ``'false'`` is truthy)."""
    value = train_opt.get('channels_last', False)
    if not isinstance(value, bool):
        raise ValueError(f'train.channels_last must be true or false, got {value!r}.')
    return value


def nonfinite_limit_option(train_opt: Mapping[str, Any]) -> Optional[int]:
    """``train.nonfinite_limit``: a whole number >= 1 (default 10), or None (``null`` / ``false``: guard off)."""
    value = train_opt.get('nonfinite_limit', 10)
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'train.nonfinite_limit must be a whole number >= 1, got {value!r} (null turns the '
                         'non-finite guard off).')
    return value


def fused_optimizer_kwargs(optim_type: str, kwargs: Mapping[str, Any], device_type: str) -> Dict[str, Any]:
    """``kwargs`` of an Adam with ``train.fused_optimizers``: ``fused`` on CUDA, ``foreach`` elsewhere, unless the
    ``optim_*`` block sets either itself (then both are left as the user set them)."""
    kwargs = dict(kwargs)
    if optim_type == 'Adam' and 'fused' not in kwargs and 'foreach' not in kwargs:
        kwargs['fused' if device_type == 'cuda' else 'foreach'] = True
    return kwargs


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` in channels-last memory format (its 4-D parameters and buffers), ready for BasicSR's flatten."""
    from ..compat.basicsr import flatten_channels_last_features

    if not all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4):
        net.to(memory_format=torch.channels_last)
    return flatten_channels_last_features(net)


class NonFiniteTrainingError(RuntimeError):
    """Training produced non-finite losses or gradients for ``train.nonfinite_limit`` iterations in a row."""


class TrainingPrecision:
    """Mixin for a BasicSR model (before BasicSR's classes in its bases): the options above, read in ``__init__``.

    Every attribute is set in ``__init__``, from the ``train`` options of a training run (fp32, no channels_last, no
    guard otherwise), before BasicSR's ``__init__`` builds any network, so no method depends on another having run
    first. A model names its optimisers (:attr:`optimizer_names`: the names ``backward`` and ``step_optimizers`` take,
    one fp16 scaler each) and its trained networks (:meth:`trained_networks`: the guard restores their BatchNorm
    buffers), and passes every network of its step to :meth:`prepare_networks` once it has built them.
    """

    optimizer_names: Tuple[str, ...] = ()

    def __init__(self, opt: Dict[str, Any]) -> None:
        training = bool(opt.get('is_train')) and isinstance(opt.get('train'), Mapping)
        train_opt = opt['train'] if training else {}
        self.precision = train_opt.get('precision', 'fp32')
        if self.precision not in PRECISIONS:
            raise ValueError(f'train.precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}.')
        self.channels_last = channels_last_option(train_opt)
        self.nonfinite_limit = nonfinite_limit_option(train_opt) if training else None
        self.compile_options = compile_arguments(train_opt.get('compile', False))
        self.nonfinite_steps, self._nonfinite_run, self.scale_search_steps = 0, 0, 0
        self._scales_found: set = set()
        self._buffer_snapshot: List[Tuple[torch.Tensor, torch.Tensor]] = []
        self.scalers: Dict[str, Any] = {}  # fp16: one per optimiser, on the device BaseModel sets
        super().__init__(opt)
        if self.precision == 'fp16':
            self.scalers = {name: torch.amp.GradScaler(self.device.type) for name in self.optimizer_names}

    def trained_networks(self) -> Sequence[nn.Module]:
        """The networks the optimisers update (the non-finite guard restores their BatchNorm buffers)."""
        return ()

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """BasicSR's ``model_to_device`` (DDP / DataParallel wrapping), the network put in channels-last format
        first when ``train.channels_last`` is set: DDP sizes its gradient buckets on the strides it finds."""
        if self.channels_last:
            net = to_channels_last(net.to(self.device))
        return super().model_to_device(net)

    def prepare_networks(self, networks: Iterable[nn.Module]) -> None:
        """Every network of the step (trained or not) in the step's memory format (``train.channels_last``: the
        DDP-wrapped ones were converted before wrapping, in ``model_to_device``) and compiled (``train.compile``)."""
        networks = [self.get_bare_model(net) for net in networks]
        if self.channels_last:
            for net in networks:
                to_channels_last(net)
        if self.compile_options is not None:
            for net in networks:
                net.forward = torch.compile(net.forward, **self.compile_options)

    def get_optimizer(self, optim_type: str, params: Any, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
        """BasicSR's optimiser, fused (CUDA) or foreach (elsewhere) with ``train.fused_optimizers``
        (:func:`fused_optimizer_kwargs`)."""
        if self.opt['train'].get('fused_optimizers'):
            kwargs = fused_optimizer_kwargs(optim_type, kwargs, self.device.type)
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    def autocast(self) -> ContextManager:
        """The step's autocast context (nothing in fp32)."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the step's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def backward(self, loss: torch.Tensor, name: str) -> None:
        """``loss.backward()``, scaled by optimiser ``name``'s scaler in fp16."""
        scaler = self._scaler(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def _scaler(self, name: str) -> Any:
        scaler = self.scalers.get(name)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def _guard_on(self) -> bool:
        return self.nonfinite_limit is not None

    def snapshot_buffers(self) -> None:
        """Before an iteration's first forward pass (guard on): a device copy of the trained networks' buffers."""
        if self._guard_on():
            self._buffer_snapshot = [(buffer, buffer.clone()) for net in self.trained_networks()
                                     for buffer in self.get_bare_model(net).buffers()]

    def restore_buffers(self) -> None:
        """The buffers of the last :meth:`snapshot_buffers` put back (a skipped iteration's BatchNorm statistics)."""
        with torch.no_grad():
            for buffer, saved in self._buffer_snapshot:
                buffer.copy_(saved)

    def step_optimizers(self, steps: Steps, losses: Mapping[str, torch.Tensor]) -> str:
        """Step every optimiser of ``steps`` (``(optimizer, scaler name)``, after their backward passes) when
        ``losses`` and all their gradients are finite, none otherwise (buffers restored, scalers backed off).

        Returns ``''`` when they stepped, else why not: ``'losses'``, ``'gradients'`` or :data:`SCALE_SEARCH`.
        With the guard off, each steps as in BasicSR (fp16: through its scaler).
        """
        if not self._guard_on():
            for optimizer, name in steps:
                scaler = self._scaler(name)
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)
                    scaler.update()
            return ''
        reason = self._check_finite(steps, losses)
        if reason:
            self.restore_buffers()
        for optimizer, name in steps:
            if not reason:
                optimizer.step()  # fp16: the scaler's unscale_ already ran, and its found-inf was read
            scaler = self._scaler(name)
            if scaler is not None:
                scaler.update()
                if not reason:
                    self._scales_found.add(name)
        return reason

    def _check_finite(self, steps: Steps, losses: Mapping[str, torch.Tensor]) -> str:
        """Why the step must be skipped (``''``: it must not); one device synchronisation (see the module's doc)."""
        flags, scales = [], []
        for optimizer, name in steps:
            scaler = self._scaler(name)
            if scaler is None:
                flags.append(_nonfinite_gradients(optimizer, self.device))
            else:
                scaler.unscale_(optimizer)  # records its found-inf: the flag, with no second check
                found = scaler._per_optimizer_states[id(optimizer)]['found_inf_per_device'].values()
                flags.append(sum((value.to(self.device) for value in found), torch.zeros((), device=self.device)))
                scales.append(scaler._scale.to(self.device).reshape(()))
        values = torch.stack([loss.detach().float().reshape(()) for loss in losses.values()])
        flags.append((~torch.isfinite(values)).any().float())
        reading = torch.stack([flag.float() for flag in flags] + [scale.float() for scale in scales])
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:  # every rank takes the same decision
            torch.distributed.all_reduce(reading, op=torch.distributed.ReduceOp.MAX)
        values = reading.tolist()  # the one synchronisation
        *grad_flags, loss_flag = values[:len(flags)]
        if not any(grad_flags):
            return 'losses' if loss_flag else ''
        scale_of = dict(zip([name for _, name in steps if self._scaler(name) is not None], values[len(flags):]))
        searching = [name in scale_of and name not in self._scales_found and scale_of[name] > 1
                     for (_, name), bad in zip(steps, grad_flags) if bad]
        return SCALE_SEARCH if all(searching) and not loss_flag else 'gradients'

    def count_nonfinite(self, skipped: str, losses: Mapping[str, Any], current_iter: int) -> None:
        """Count a skipped iteration (``skipped``: :meth:`step_optimizers`' reason; ``''``: it stepped) and log the
        counts; stop after ``nonfinite_limit`` in a row. fp16's scale search is counted apart, not towards it."""
        if not skipped:
            self._nonfinite_run = 0
        elif skipped == SCALE_SEARCH:
            self.scale_search_steps += 1
        else:
            self.nonfinite_steps += 1
            self._nonfinite_run += 1
            if self._nonfinite_run >= self.nonfinite_limit:
                values = ', '.join(f'{key} {float(torch.as_tensor(value).detach()):.4g}'
                                   for key, value in losses.items())
                raise NonFiniteTrainingError(
                    f'Iteration {current_iter}: non-finite {skipped} for {self._nonfinite_run} iterations in a row '
                    f'(train.nonfinite_limit {self.nonfinite_limit}, precision {self.precision}); losses: {values}. '
                    'Each of them was skipped (no optimiser step, networks as before it); look for non-finite '
                    'pixels in the training data, or lower the learning rate.')

    def log_guard(self, log_dict: Dict[str, Any]) -> None:
        """The guard's counts in ``log_dict`` once they are not zero."""
        if self.nonfinite_steps:
            log_dict['nonfinite_steps'] = float(self.nonfinite_steps)
        if self.scale_search_steps:
            log_dict['fp16_scale_search_steps'] = float(self.scale_search_steps)

    def guard_state(self) -> Dict[str, Any]:
        """The guard's counts as kept in a training state (plain data)."""
        return {'skipped': self.nonfinite_steps, 'run': self._nonfinite_run, 'scale_search': self.scale_search_steps,
                'scales_found': sorted(self._scales_found)}

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state with the record of what wrote it (``written_by``: see
        :func:`~ranksrgan_plugin.utils.training_state.training_state`), the guard's counts (:data:`GUARD_STATE_KEY`)
        and, in fp16, the gradient scalers."""
        from basicsr.utils.dist_util import get_dist_info

        from ..utils.training_state import training_state, write_training_state

        if current_iter == -1 or get_dist_info()[0] != 0:
            return
        state = training_state(self, epoch, current_iter)
        state[GUARD_STATE_KEY] = self.guard_state()
        if self.scalers:
            state['scalers'] = {name: scaler.state_dict() for name, scaler in self.scalers.items()}
        write_training_state(self.opt, state)

    def resume_training(self, resume_state: Mapping[str, Any]) -> None:
        """BasicSR's resume, plus the gradient scalers of an fp16 run and the guard's counts (zeros when the state
        predates them)."""
        super().resume_training(resume_state)
        for name, state in (resume_state.get('scalers') or {}).items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(state)
        guard = resume_state.get(GUARD_STATE_KEY) or {}
        self.nonfinite_steps = int(guard.get('skipped', 0))
        self._nonfinite_run = int(guard.get('run', 0))
        self.scale_search_steps = int(guard.get('scale_search', 0))
        self._scales_found = set(guard.get('scales_found', ()))


def _nonfinite_gradients(optimizer: torch.optim.Optimizer, device: torch.device) -> torch.Tensor:
    """1.0 (a device tensor, not read) when a gradient of ``optimizer`` holds inf or nan, else 0.0."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    if hasattr(torch.nn.utils, 'get_total_norm'):  # torch >= 2.6
        norm = torch.nn.utils.get_total_norm(grads)
    else:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return (~torch.isfinite(norm)).float().to(device)


def compile_arguments(option: Any) -> Any:
    """``torch.compile`` keyword arguments of ``train.compile`` (None: no compilation)."""
    if option in (False, None, 'false'):
        return None
    if option is True:
        return {}
    if isinstance(option, str):
        return {'mode': option}
    if isinstance(option, Mapping):
        return dict(option)
    raise ValueError(f'train.compile must be false, true, a torch.compile mode or a dict of its arguments, got '
                     f'{option!r}.')
