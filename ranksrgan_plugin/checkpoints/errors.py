"""The errors a checkpoint can raise: unreadable, refused, lacking an entry, of an unknown layout, not fitting.

Each message names the file (and, where one named it, the option), so a caller passes it on as it is.
"""
import pickle
from typing import Optional, Sequence


class CheckpointKeyError(KeyError):
    """A checkpoint lacks the entry asked for (the message names the file and the entries it has)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RefusedCheckpointError(pickle.UnpicklingError):
    """The safe loader refused a checkpoint: it holds a type outside the allowlist (the message names both).

    ``refused`` is that type's dotted name as pickled (e.g. ``posix.system``), or None when torch did not say.
    """

    def __init__(self, path: str, refused: Optional[str], allowed: Sequence[str]) -> None:
        self.path, self.refused = path, refused
        what = f'the type {refused}' if refused else 'an object'
        allowed_text = f' (allowed besides tensors and plain Python data: {", ".join(allowed)})' if allowed else ''
        super().__init__(
            f'Refusing to load {path}: it holds {what}, which the safe loader (weights_only=True) does not '
            f'allow{allowed_text}. Unpickling it could run code; load only files from a trusted source.')


class UnreadableCheckpointError(RuntimeError):
    """A file that is not a whole torch checkpoint: empty, cut short, or not one at all (the message says which).

    A RuntimeError, as torch's own error for a corrupt archive, so that callers catching that still do.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f'Cannot read {path} as a checkpoint: {problem}.')


class UnknownCheckpointLayout(ValueError):
    """The checkpoint is not one of the supported official layouts."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the network they were given to (the message names file and option)."""
