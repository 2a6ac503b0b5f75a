"""No import circle in ranksrgan_plugin (issue 32), and the circle finder finds circles where there are some."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ranksrgan_plugin.utils.import_graph import (
    FUNCTION_SCOPE,
    MODULE_SCOPE,
    find_cycles,
    import_edges,
    package_modules,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'ranksrgan_plugin'


def write_package(root: Path, files: dict) -> Path:
    """A package ``pkg`` under ``root`` from ``{relative path: source}``."""
    for name, source in files.items():
        path = root / 'pkg' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / 'pkg'


@pytest.mark.parametrize('scope', ['all', 'module'])
def test_ranksrgan_plugin_has_no_import_circle(scope):
    scopes = (MODULE_SCOPE,) if scope == 'module' else (MODULE_SCOPE, FUNCTION_SCOPE)
    assert find_cycles(import_edges(str(PACKAGE)), scopes) == []


def test_no_module_level_circle_through_package_inits_either():
    """What ``import`` really runs: a sub-package's ``__init__`` too (the top package's is left out)."""
    assert find_cycles(import_edges(str(PACKAGE), packages=True), (MODULE_SCOPE,)) == []


def test_the_checkpoint_rules_live_in_one_package():
    modules = package_modules(str(PACKAGE))
    assert {'ranksrgan_plugin.checkpoints.read', 'ranksrgan_plugin.checkpoints.fit',
            'ranksrgan_plugin.checkpoints.official'} <= set(modules)
    gone = ['ranksrgan_plugin.utils.checkpoint', 'ranksrgan_plugin.utils.checkpoint_fit',
            'ranksrgan_plugin.utils.file_kind', 'ranksrgan_plugin.archs.official_weights',
            'ranksrgan_plugin.mmagic.checkpoints']
    assert [name for name in gone if name in modules] == []


def test_a_module_level_circle_is_found(tmp_path):
    package = write_package(tmp_path, {
        '__init__.py': '',
        'a.py': 'from . import b\n',
        'b.py': 'from .c import thing\n',
        'c.py': 'import pkg.a\nthing = 1\n',
        'd.py': 'from .a import b\n',  # imports into the circle, is not in it
    })
    edges = import_edges(str(package))
    assert find_cycles(edges) == [['pkg.a', 'pkg.b', 'pkg.c', 'pkg.a']]
    assert find_cycles(edges, (MODULE_SCOPE,)) == [['pkg.a', 'pkg.b', 'pkg.c', 'pkg.a']]


def test_a_circle_through_a_function_level_import_counts_only_in_the_whole_graph(tmp_path):
    package = write_package(tmp_path, {
        '__init__.py': '',
        'sub/__init__.py': '',
        'sub/x.py': 'from ..y import f\n',
        'y.py': '''
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .sub import x  # never runs: not an edge
            def f():
                from .sub.x import g
                return g
            ''',
    })
    edges = import_edges(str(package))
    assert {(e.importer, e.imported, e.scope) for e in edges} == {
        ('pkg.sub.x', 'pkg.y', MODULE_SCOPE), ('pkg.y', 'pkg.sub.x', FUNCTION_SCOPE)}
    assert find_cycles(edges) == [['pkg.sub.x', 'pkg.y', 'pkg.sub.x']]
    assert find_cycles(edges, (MODULE_SCOPE,)) == []


def test_a_circle_through_a_package_init_counts_only_with_packages(tmp_path):
    package = write_package(tmp_path, {
        '__init__.py': '',
        'sub/__init__.py': 'from . import x\n',
        'sub/x.py': 'from ..y import f\n',
        'sub/z.py': 'from . import w\n',  # its own package: no edge to pkg.sub
        'sub/w.py': '',
        'y.py': 'from .sub.z import g\n',
    })
    assert find_cycles(import_edges(str(package))) == []
    edges = import_edges(str(package), packages=True)
    assert ('pkg.sub.z', 'pkg.sub') not in {(e.importer, e.imported) for e in edges}
    assert find_cycles(edges) == [['pkg.sub', 'pkg.sub.x', 'pkg.y', 'pkg.sub']]


def test_a_self_import_and_two_separate_circles(tmp_path):
    package = write_package(tmp_path, {
        '__init__.py': 'from . import a\n',
        'a.py': 'import pkg\n',
        'b.py': 'from pkg import b\n',
    })
    assert find_cycles(import_edges(str(package))) == [['pkg', 'pkg.a', 'pkg'], ['pkg.b', 'pkg.b']]


def test_the_tool_exits_1_and_prints_the_circle(tmp_path):
    package = write_package(tmp_path, {'__init__.py': '', 'a.py': 'from . import b\n', 'b.py': 'from . import a\n'})
    tool = [sys.executable, str(REPO / 'tools' / 'import_cycles.py')]
    found = subprocess.run(tool + [str(package)], capture_output=True, text=True)
    assert found.returncode == 1
    assert 'pkg.a -> pkg.b -> pkg.a' in found.stdout
    assert 'pkg.a line 1 (module-level) imports pkg.b' in found.stdout
    clean = subprocess.run(tool, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    assert clean.stdout.startswith('0 import circle(s) in ranksrgan_plugin')
