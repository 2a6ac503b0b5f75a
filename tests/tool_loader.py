"""Import a script of ``tools/`` as a module, so that tests call its ``main()`` in-process (fast)."""
import importlib.util
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a fresh module named ``<name>_tool``."""
    spec = importlib.util.spec_from_file_location(f'{name}_tool', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
