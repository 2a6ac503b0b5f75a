"""A BasicSR registry whose entries are keyed by the ``type`` name that option files use."""
from typing import Any, List, Optional

from basicsr.utils.registry import Registry


class TypeNameRegistry(Registry):
    """A :class:`basicsr.utils.registry.Registry` keyed by a given type name instead of ``__name__``.

    Option files name their entries by short type names (``type: niqe``, ``type: network``), so
    :meth:`register_as` registers an object under ``name``. As in BasicSR a name is taken once, unless
    ``replace`` is passed.
    """

    def register_as(self, name: str, obj: Optional[Any] = None, replace: bool = False) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does so."""
        def add(item: Any) -> Any:
            if replace:
                self._obj_map.pop(name, None)
            self._do_register(name, item)
            return item

        return add if obj is None else add(obj)

    def names(self) -> List[str]:
        """The registered names, in registration order."""
        return list(self.keys())

