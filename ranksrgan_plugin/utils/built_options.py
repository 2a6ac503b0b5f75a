"""Checking a ``type: ...`` option block against the class it builds, before it is built.

BasicSR's ``build_loss`` / ``build_network`` and mmengine's ``Registry.build`` call ``cls(**options)``: a
misspelt key is then a bare ``TypeError: __init__() got an unexpected keyword argument`` naming neither the
block nor the option file, and an unknown ``type`` a registry ``KeyError`` naming no block.
:func:`check_built_options` refuses both by the block's name (``train.rank_opt``, ``model.rankers[1].ranker``)
with the closest valid name. It works with both toolboxes' registries.
"""
import inspect
from typing import Any, Iterable, List, Mapping, Optional, Set

from torch import nn

from .option_keys import UnknownOptionError, closest_key, refuse_unknown_keys

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def init_keywords(cls: type) -> Optional[Set[str]]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up the MRO; None when unknowable.

    A class whose ``__init__`` passes ``**kwargs`` on (a mixin) adds its own names to those of the next
    ``__init__`` up; the walk ends at the first ``__init__`` without ``**kwargs``. One that reaches
    ``nn.Module`` or ``object`` still taking ``**kwargs`` may read them itself: None (take any key).
    """
    names: Set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass in (nn.Module, object):
            return None
        parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
        names |= {parameter.name for parameter in parameters if parameter.kind in _NAMED}
        if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
            return names
    return None


def _registered(registry: Any, name: str) -> Optional[type]:
    if hasattr(registry, 'module_dict'):  # mmengine: get() searches the parent registries, None when absent
        return registry.get(name)
    return registry.get(name) if name in registry else None  # BasicSR: get() raises KeyError


def _registered_names(registry: Any) -> List[str]:
    return list(registry.module_dict) if hasattr(registry, 'module_dict') else list(registry.keys())


def check_built_options(options: Any, where: str, registry: Any, kind: str = 'loss',
                        example: str = 'RankContentLoss') -> type:
    """The class ``options['type']`` names in ``registry``, after refusing an unknown type or key by ``where``.

    Raises :class:`UnknownOptionError` (a ``ValueError``): ``train.rank_opt: unknown option 'margn' (did you mean
    'margin'?); it takes [...]``, ``train.rank_opt.type 'RankLos' is not a registered loss (did you mean
    'RankLoss'?)``.
    """
    if not isinstance(options, Mapping):
        raise UnknownOptionError(f'{where} must be a mapping with a type (e.g. type: {example}), got {options!r}.')
    loss_type = options.get('type')
    if not loss_type:
        raise UnknownOptionError(f'{where} needs a type (e.g. type: {example}); it has {sorted(options)}.')
    cls = loss_type if isinstance(loss_type, type) else _registered(registry, str(loss_type))
    if cls is None:
        guess = closest_key(loss_type, _registered_names(registry))
        hint = f' (did you mean {guess!r}?)' if guess else f' (e.g. {example})'
        raise UnknownOptionError(f'{where}.type {loss_type!r} is not a registered {kind}{hint}.')
    known: Optional[Iterable[str]] = init_keywords(cls) if inspect.isclass(cls) else None
    if known is not None:
        refuse_unknown_keys(options, set(known) | {'type'}, where)
    return cls
