"""Mixed precision, channels_last and the non-finite guard of the plugin's BasicSR models (``train.*`` options).

Options (defaults: the original's fp32 training, unchanged):
    train.precision: ``fp32`` | ``bf16`` | ``fp16``: autocast over every forward pass of the step
        (generator, discriminator, perceptual VGG, Ranker); the losses are computed on fp32 values; fp16
        adds one gradient scaler per optimiser, saved in and restored from the training state.
    train.channels_last: ``true`` puts the step's networks and inputs in channels-last memory format.
    train.nonfinite_limit: a step whose gradients are not finite is skipped (no optimiser step; fp16:
        the scaler backs off), counted in the log as ``nonfinite_steps``; after this many skipped
        iterations in a row (default 10) training stops with :class:`NonFiniteTrainingError`. fp16's
        scaler starts at 2**16 and skips its first overflowing steps while it finds its scale: counted too.
    train.compile: ``false`` | ``true`` | a ``torch.compile`` mode (e.g. ``max-autotune``) | a dict of its
        arguments: the forward of every network of the step is compiled (the modules are not wrapped, so
        checkpoints, EMA and resume keep their keys).
    train.fused_optimizers: ``true`` gives Adam / AdamW ``fused=True`` on CUDA, ``foreach=True`` elsewhere.

A misspelt key (``precison``, ``channel_last``, ``nonfinite_limt``) would leave its default in force without a
word, so the plugin's models refuse any ``train`` key they do not read (:func:`check_train_options`): their
``train`` block is read only by BasicSR 1.4.2 (``basicsr/train.py``: ``total_iter``, ``warmup_iter``;
``BaseModel``: ``scheduler``; ``SRModel`` / ``SRGANModel`` for RankSRGAN) and the plugin, so the list is closed.
"""
import contextlib
from typing import Any, ContextManager, Dict, Iterable, Mapping

import torch
from torch import nn

from ..utils.option_keys import refuse_unknown_keys

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PRECISION_OPTIONS = ('precision', 'channels_last', 'nonfinite_limit', 'compile', 'fused_optimizers')
BASICSR_TRAIN_OPTIONS = ('total_iter', 'warmup_iter', 'scheduler')  # basicsr/train.py, BaseModel.setup_schedulers


def check_train_options(opt: Mapping[str, Any], model_options: Iterable[str], model: str) -> None:
    """Refuse a key of a training run's ``train`` block that neither BasicSR nor ``model`` reads, with the closest
    valid name (``train (RankSRGANModel): unknown option 'precison' (did you mean 'precision'?); it takes [...]``).
    """
    train_opt = opt.get('train')
    if opt.get('is_train') and isinstance(train_opt, Mapping):
        known = {*BASICSR_TRAIN_OPTIONS, *PRECISION_OPTIONS, *model_options}
        refuse_unknown_keys(train_opt, known, f'train ({model})')


class NonFiniteTrainingError(RuntimeError):
    """Training produced non-finite gradients for ``train.nonfinite_limit`` iterations in a row."""


class TrainingPrecision:
    """Mixin for a BasicSR model; call :meth:`setup_precision` once its networks and optimisers exist."""

    def setup_precision(self, train_opt: Mapping[str, Any], networks: Iterable[nn.Module],
                        optimizer_names: Iterable[str]) -> None:
        self.precision = train_opt.get('precision', 'fp32')
        if self.precision not in PRECISIONS:
            raise ValueError(f'train.precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}.')
        self.channels_last = train_opt.get('channels_last', False)
        self.nonfinite_limit = train_opt.get('nonfinite_limit', 10)
        if not isinstance(self.channels_last, bool):  # a quoted 'false' is truthy
            raise ValueError(f'train.channels_last must be true or false, got {self.channels_last!r}.')
        if isinstance(self.nonfinite_limit, bool) or not isinstance(self.nonfinite_limit, int) \
                or self.nonfinite_limit < 1:
            raise ValueError(f'train.nonfinite_limit must be a whole number >= 1, got {self.nonfinite_limit!r}.')
        self.nonfinite_steps, self._nonfinite_run = 0, 0
        self.scalers: Dict[str, Any] = {}
        if self.precision == 'fp16':
            self.scalers = {name: torch.amp.GradScaler(self.device.type) for name in optimizer_names}
        networks = [self.get_bare_model(net) for net in networks]
        if self.channels_last:
            for net in networks:
                net.to(memory_format=torch.channels_last)
        compile_options = compile_arguments(train_opt.get('compile', False))
        if compile_options is not None:
            for net in networks:
                net.forward = torch.compile(net.forward, **compile_options)

    def get_optimizer(self, optim_type: str, params: Any, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
        """BasicSR's optimiser, fused (CUDA) or foreach (elsewhere) with ``train.fused_optimizers``."""
        if self.opt['train'].get('fused_optimizers') and optim_type in ('Adam', 'AdamW'):
            kwargs.setdefault('fused' if self.device.type == 'cuda' else 'foreach', True)
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    def autocast(self) -> ContextManager:
        """The step's autocast context (nothing in fp32)."""
        dtype = PRECISIONS[getattr(self, 'precision', 'fp32')]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the step's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if getattr(self, 'channels_last', False) else x

    def backward(self, loss: torch.Tensor, name: str) -> None:
        """``loss.backward()``, scaled by optimiser ``name``'s scaler in fp16."""
        scaler = getattr(self, 'scalers', {}).get(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer, name: str) -> bool:
        """Step ``optimizer`` when its gradients are finite; False (and no step) when they are not."""
        scaler = getattr(self, 'scalers', {}).get(name)
        if scaler is not None:
            scaler.unscale_(optimizer)
        grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
        finite = not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        if scaler is not None:
            scaler.step(optimizer)  # skips the step itself when the unscaled gradients hold inf / nan
            scaler.update()
        elif finite:
            optimizer.step()
        return finite

    def count_nonfinite(self, finite: bool, losses: Mapping[str, Any], current_iter: int) -> None:
        """Count a skipped iteration (logged as ``nonfinite_steps``); stop after ``nonfinite_limit`` in a row."""
        if finite:
            self._nonfinite_run = 0
            return
        self.nonfinite_steps += 1
        self._nonfinite_run += 1
        if self._nonfinite_run >= self.nonfinite_limit:
            values = ', '.join(f'{key} {float(value):.4g}' for key, value in losses.items())
            raise NonFiniteTrainingError(
                f'Iteration {current_iter}: non-finite gradients for {self._nonfinite_run} iterations in a row '
                f'(train.nonfinite_limit {self.nonfinite_limit}, precision {self.precision}); losses: {values}.')

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state with the record of what wrote it (``written_by``: see
        :func:`~ranksrgan_plugin.compat.basicsr.training_state`), plus the gradient scalers in fp16."""
        if not getattr(self, 'scalers', None) or current_iter == -1:
            super().save_training_state(epoch, current_iter)
            return
        from basicsr.utils.dist_util import get_dist_info

        from ..compat.basicsr import training_state, write_training_state

        if get_dist_info()[0] != 0:
            return
        state = training_state(self, epoch, current_iter)
        state['scalers'] = {name: scaler.state_dict() for name, scaler in self.scalers.items()}
        write_training_state(self.opt, state)

    def resume_training(self, resume_state: Mapping[str, Any]) -> None:
        """BasicSR's resume, plus the gradient scalers of an fp16 run."""
        super().resume_training(resume_state)
        for name, state in (resume_state.get('scalers') or {}).items():
            if name in getattr(self, 'scalers', {}):
                self.scalers[name].load_state_dict(state)


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
