"""Whether a BasicSR training state (``<iter>.state``) can resume the model the options build, and what wrote it.

BasicSR 1.4.2 resumes whatever file ``path.resume_state`` (or ``--auto_resume``) names: another model's
state ends in ``AssertionError: Wrong lengths of optimizers``, a state of another network in torch's
size errors at the first optimiser step, a state of another experiment in a missing ``net_g_<iter>.pth``.
Here each is a :class:`ResumeStateMismatchError` naming the file, the option that named it and what
wrote the file: the record the plugin's entry points put in every state (:func:`training_state_record`),
else what its optimizers say (:func:`describe_training_state`).
"""
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

RECORD_KEY = 'written_by'
STATE_KEYS = ('iter', 'optimizers', 'schedulers')
# model types whose optimizers are known: the networks they train, in the order of ``model.optimizers``
KNOWN_OPTIMIZERS: Dict[str, Sequence[str]] = {
    'SRModel': ('network_g',), 'SRGANModel': ('network_g', 'network_d'), 'ESRGANModel': ('network_g', 'network_d'),
    'RankSRGANModel': ('network_g', 'network_d'), 'RankerModel': ('network_r',),
}
OPTIMIZER_ATTRIBUTES = {'optimizer_g': 'network_g', 'optimizer_d': 'network_d', 'optimizer_r': 'network_r'}


class ResumeStateMismatchError(ValueError):
    """A training state that cannot resume this run (the message names the file, the option and what wrote it)."""


def resume_source(opt: Mapping[str, Any], path: Optional[str] = None) -> str:
    """The state file and what named it: ``path.resume_state`` or ``--auto_resume``'s pick."""
    path = path or opt['path'].get('resume_state')
    if opt.get('auto_resume'):
        return f"{path} (--auto_resume's pick: the newest state in {opt['path']['training_states']})"
    return f'{path} (named by path.resume_state)'


def training_state_record(opt: Mapping[str, Any]) -> Dict[str, Any]:
    """What the plugin records in a training state about the run that wrote it (plain data, safe to load)."""
    networks = {key: (value or {}).get('type') for key, value in opt.items()
                if key.startswith('network_') and isinstance(value, Mapping)}
    return {'model_type': opt.get('model_type'), 'name': opt.get('name'), 'networks': networks}


def _optimizer_parameters(optimizer_state: Mapping[str, Any]) -> int:
    return sum(len(group.get('params', ())) for group in optimizer_state.get('param_groups', ()))


def _has_matrices(optimizer_state: Mapping[str, Any]) -> bool:
    """Whether the optimizer's state holds 2-D tensors (fully connected layers: a Ranker, a discriminator)."""
    return any(isinstance(value, torch.Tensor) and value.dim() == 2
               for state in optimizer_state.get('state', {}).values() for value in state.values())


def _optimizers(count: int) -> str:
    return f'{count} optimizer' + ('' if count == 1 else 's')


def describe_training_state(state: Mapping[str, Any]) -> str:
    """What wrote ``state``: its record, else what its optimizers suggest."""
    optimizers = state.get('optimizers') or []
    sizes = ' and '.join(str(_optimizer_parameters(o)) for o in optimizers if isinstance(o, Mapping))
    counted = f'{_optimizers(len(optimizers))} over {sizes or 0} parameter tensors'
    record = state.get(RECORD_KEY)
    if isinstance(record, Mapping):
        networks = ', '.join(f'{key} {value}' for key, value in (record.get('networks') or {}).items())
        return f"a state written by {record.get('model_type')} for experiment {record.get('name')!r} ({networks}; " \
               f'{counted})'

    if len(optimizers) == 2:
        guess = "a GAN's (generator and discriminator: RankSRGANModel, SRGANModel, ESRGANModel ...)"
    elif len(optimizers) == 1 and not (isinstance(optimizers[0], Mapping) and optimizers[0].get('state')):
        guess = "a one-network model's (RankerModel, SRModel ...)"
    elif len(optimizers) == 1 and _has_matrices(optimizers[0]):
        guess = "a Ranker's (RankerModel: one network with fully connected layers)"
    elif len(optimizers) == 1:
        guess = "a generator-only model's (SRModel: one convolutional network)"
    else:
        guess = 'of an unknown model'
    return f'a state without the plugin\'s record of what wrote it: {counted}, by its optimizers {guess}'


def check_is_training_state(state: Any, source: str) -> None:
    """Refuse a file that is not a BasicSR training state (a weights file given as ``path.resume_state``)."""
    if isinstance(state, Mapping) and all(key in state for key in STATE_KEYS):
        return
    from ..checkpoints import describe_weights

    raise ResumeStateMismatchError(
        f'{source} is not a BasicSR training state (a <iter>.state file with {", ".join(STATE_KEYS)}): it is '
        f'{describe_weights(state)}. A weights file goes in path.pretrain_network_<x>; path.resume_state takes '
        "an experiment's training_states/<iter>.state.")


def _advice(opt: Mapping[str, Any]) -> str:
    return (f"Resume from a state this experiment wrote ({opt['path'].get('training_states')}), or start a new run "
            "without path.resume_state / --auto_resume and with path.pretrain_network_<x> set to the other run's "
            'models/net_<x>_<iter>.pth to start from its weights.')


def check_state_fits_options(state: Mapping[str, Any], opt: Mapping[str, Any], source: str) -> None:
    """Before the model is built: the state's model type (recorded, or by its optimizer count) must be the options'."""
    model_type = opt.get('model_type')
    record = state.get(RECORD_KEY)
    expected = KNOWN_OPTIMIZERS.get(model_type)
    if isinstance(record, Mapping):
        wrong = record.get('model_type') != model_type
    else:
        wrong = expected is not None and len(state['optimizers']) != len(expected)
    if wrong:
        raise ResumeStateMismatchError(
            f'{source} cannot resume this {model_type} run: it is {describe_training_state(state)}'
            + (f'; a {model_type} has {_optimizers(len(expected))} ({", ".join(expected)})' if expected else '')
            + f'. {_advice(opt)}')


def check_resumed_networks_exist(opt: Mapping[str, Any], source: str, resume_iter: int) -> None:
    """After BasicSR's ``check_resume``: the ``net_<x>_<iter>.pth`` files it points the networks at must exist."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    missing = [f"{opt['path'].get(f'pretrain_{key}')} (path.pretrain_{key})" for key in opt
               if key.startswith('network_') and key not in ignored
               and not osp.isfile(str(opt['path'].get(f'pretrain_{key}')))]
    if missing:
        raise ResumeStateMismatchError(
            f'{source} is the state of iteration {resume_iter}, but BasicSR resumes the networks from this '
            f"experiment's models folder and {', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not "
            'exist: the state belongs to another '
            f'experiment, or those weights were deleted. {_advice(opt)}')


def _optimizer_networks(model: Any) -> List[str]:
    names = {id(getattr(model, attr)): network for attr, network in OPTIMIZER_ATTRIBUTES.items()
             if getattr(model, attr, None) is not None}
    return [names.get(id(optimizer), f'optimizer {index}') for index, optimizer in enumerate(model.optimizers)]


def _shape_mismatches(saved: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> List[str]:
    """Where a saved optimizer state_dict does not fit ``optimizer``: group sizes, then state tensor shapes."""
    groups = saved.get('param_groups', [])
    if len(groups) != len(optimizer.param_groups):
        return [f'{len(groups)} parameter groups instead of {len(optimizer.param_groups)}']
    sizes = [(len(group['params']), len(own['params'])) for group, own in zip(groups, optimizer.param_groups)]
    if any(theirs != ours for theirs, ours in sizes):
        return [f'{sum(t for t, _ in sizes)} parameter tensors instead of {sum(o for _, o in sizes)}']
    problems = []
    for group, own in zip(groups, optimizer.param_groups):
        for index, param in zip(group['params'], own['params']):
            for name, value in saved.get('state', {}).get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    problems.append(f'{name} of tensor {index}: {tuple(value.shape)} instead of {tuple(param.shape)}')
                    break
    return problems


def check_state_fits_model(model: Any, state: Mapping[str, Any], source: str) -> None:
    """After the model is built: the state's optimizers and schedulers must fit the model's, tensor by tensor."""
    opt, model_type = model.opt, type(model).__name__
    counts = [(what, len(state[what]), len(getattr(model, what))) for what in ('optimizers', 'schedulers')]
    problems = [f'{theirs} {what} where this {model_type} has {ours}'
                for what, theirs, ours in counts if theirs != ours]
    if not problems:
        for network, saved, optimizer in zip(_optimizer_networks(model), state['optimizers'], model.optimizers):
            mismatches = _shape_mismatches(saved, optimizer)
            if mismatches:
                more = len(mismatches) - 2
                shown = '; '.join(mismatches[:2]) + (f' (and {more} more)' if more > 0 else '')
                problems.append(f"the optimizer of {network} ({opt.get(network, {}).get('type', '?')}) holds {shown}")
    if problems:
        raise ResumeStateMismatchError(
            f'{source} does not fit this {model_type}: {"; ".join(problems)}. The file is '
            f'{describe_training_state(state)}. {_advice(opt)}')
