"""Refusing unknown option keys with the closest valid name (``patch_szie`` -> ``patch_size``).

A misspelt key in a YAML file or a config dict is otherwise ignored and its default used without a word:
a run that looks configured is not. Every option block the plugin owns passes its keys through
:func:`refuse_unknown_keys`.
"""
import difflib
from typing import Iterable, Mapping, Type


class UnknownOptionError(ValueError):
    """An option block holds a key its reader does not know."""


def closest_key(key: str, known: Iterable[str]) -> str:
    """The known key nearest to ``key`` by spelling, or ``''`` when none is close."""
    matches = difflib.get_close_matches(str(key), [str(name) for name in known], n=1, cutoff=0.6)
    return matches[0] if matches else ''


def unknown_keys_message(unknown: Iterable[str], known: Iterable[str], where: str) -> str:
    """``<where>: unknown option 'patch_szie' (did you mean 'patch_size'?); it takes [...]``."""
    known = sorted(str(name) for name in known)
    parts = []
    for key in sorted(str(name) for name in unknown):
        guess = closest_key(key, known)
        parts.append(f'{key!r} (did you mean {guess!r}?)' if guess else repr(key))
    noun = 'option' if len(parts) == 1 else 'options'
    return f'{where}: unknown {noun} {", ".join(parts)}; it takes {known}.'


def refuse_unknown_keys(options: Mapping, known: Iterable[str], where: str,
                        error: Type[Exception] = UnknownOptionError) -> None:
    """Raise ``error`` naming ``where``, each unknown key of ``options`` and its closest valid name.

    ``known`` lists every key the reader takes; ``where`` names the block as the user wrote it
    (``datasets.train``, ``train.rank_opt``, ``rankers[1]``, ``model.ranker_monitor``).
    """
    known = set(known)
    unknown = [key for key in options if key not in known]
    if unknown:
        raise error(unknown_keys_message(unknown, known, where))
