"""The import graph of a Python package, read from its source with :mod:`ast`, and its import circles.

An edge ``a -> b`` means module ``a`` imports module ``b`` of the same package: ``import p.b``,
``from p import b`` (``b`` a submodule), ``from p.b import name`` or their relative forms. Only the
module named is counted, not the packages above it (whose ``__init__`` Python also runs): that is
what a circle between two modules is about, and counting parents would tie every module to the
top package's ``__init__``. ``packages=True`` counts those too, but for the top package and the
importer's own packages (a stricter graph, closer to what an import runs). Imports of other packages
are left out.

Each edge has a *scope*: ``module`` (runs when the module is imported: at top level, in a class body,
under ``if`` / ``try``) or ``function`` (inside a function body: runs when the function is called, the
usual way to hide a circle). Imports under ``if TYPE_CHECKING:`` never run and are left out.
:func:`find_cycles` reports the circles of the module-level graph or of the whole graph.
"""
import ast
import os
import os.path as osp
from collections import deque
from typing import Dict, Iterable, List, NamedTuple, Optional, Set

MODULE_SCOPE, FUNCTION_SCOPE = 'module', 'function'
SCOPES = (MODULE_SCOPE, FUNCTION_SCOPE)


class ImportEdge(NamedTuple):
    """``importer`` imports ``imported`` at line ``line`` of its file, in ``scope`` (``module`` / ``function``)."""

    importer: str
    imported: str
    line: int
    scope: str


def package_modules(package_dir: str) -> Dict[str, str]:
    """``{dotted module name: file path}`` of every ``.py`` file under ``package_dir`` (a package's folder;
    a package is named by its ``__init__``'s dotted name, the top one by the folder's name)."""
    package_dir = osp.abspath(package_dir)
    root, top = osp.dirname(package_dir), osp.basename(package_dir)
    modules = {}
    for folder, subfolders, files in os.walk(package_dir):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(('.', '__pycache__')))
        for name in sorted(files):
            if not name.endswith('.py'):
                continue
            parts = osp.relpath(osp.join(folder, name), root)[:-len('.py')].split(os.sep)
            if parts[-1] == '__init__':
                parts.pop()
            modules['.'.join(parts)] = osp.join(folder, name)
    if top not in modules:
        raise ValueError(f'{package_dir} is not a package (no __init__.py).')
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or \
        (isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _imports(tree: ast.AST) -> Iterable[tuple]:
    """(import node, scope) of every import statement of a module, ``if TYPE_CHECKING:`` blocks left out."""
    stack = [(child, MODULE_SCOPE) for child in reversed(list(ast.iter_child_nodes(tree)))]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, scope
            continue
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = node.orelse
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            scope = FUNCTION_SCOPE
        stack.extend((child, scope) for child in reversed(children))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> Optional[str]:
    """The absolute module a ``from ... import`` statement reads from (None: above the top package)."""
    if not node.level:
        return node.module
    parts = module.split('.') if is_package else module.split('.')[:-1]
    if node.level - 1 > len(parts) - 1:
        return None
    parts = parts[:len(parts) - (node.level - 1)]
    return '.'.join(parts + ([node.module] if node.module else []))


def _targets(module: str, is_package: bool, node: ast.AST, modules: Set[str]) -> List[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = _base(module, is_package, node)
    if base is None:
        return []
    named = [f'{base}.{alias.name}' for alias in node.names if f'{base}.{alias.name}' in modules]
    plain = [alias for alias in node.names if f'{base}.{alias.name}' not in modules]
    return named + ([base] if plain and base in modules else [])


def _parent_packages(importer: str, imported: str, modules: Set[str]) -> List[str]:
    """The packages between the top one and ``imported`` whose ``__init__`` an import of it runs, less the
    importer's own (already running)."""
    parts = imported.split('.')
    parents = ['.'.join(parts[:end]) for end in range(2, len(parts))]
    return [name for name in parents if name in modules and not (importer + '.').startswith(name + '.')]


def import_edges(package_dir: str, packages: bool = False) -> List[ImportEdge]:
    """Every import of one module of the package by another (or itself), in file and line order; with
    ``packages``, also an edge to each package ``__init__`` the import runs on the way (see the module
    docstring)."""
    files = package_modules(package_dir)
    names = set(files)
    edges = []
    for module, path in files.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        is_package = osp.basename(path) == '__init__.py'
        for node, scope in _imports(tree):
            for target in _targets(module, is_package, node, names):
                parents = _parent_packages(module, target, names) if packages else []
                edges.extend(ImportEdge(module, name, node.lineno, scope) for name in parents + [target])
    return edges


def _graph(edges: Iterable[ImportEdge], scopes: Iterable[str]) -> Dict[str, List[str]]:
    graph: Dict[str, List[str]] = {}
    for edge in edges:
        if edge.scope in scopes and edge.imported not in graph.setdefault(edge.importer, []):
            graph[edge.importer].append(edge.imported)
        graph.setdefault(edge.imported, [])
    return graph


def _strongly_connected(graph: Dict[str, List[str]]) -> List[List[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _shortest_cycle(graph: Dict[str, List[str]], start: str, members: Set[str]) -> List[str]:
    """The shortest path ``start -> ... -> start`` inside ``members`` (breadth first)."""
    previous: Dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in graph[node]:
            if successor not in members:
                continue
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return list(reversed(path)) + [start]
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    return []


def find_cycles(edges: Iterable[ImportEdge], scopes: Iterable[str] = SCOPES) -> List[List[str]]:
    """One circle per group of modules that import each other (directly or through others), through the
    edges of ``scopes``: ``[a, b, ..., a]``, the shortest circle through the group's first module by name.

    ``scopes=('module',)``: the circles that run at import time; the default, every import.
    """
    graph = _graph(edges, tuple(scopes))
    cycles = []
    for component in _strongly_connected(graph):
        members = set(component)
        if len(component) > 1 or component[0] in graph[component[0]]:
            cycles.append(_shortest_cycle(graph, component[0], members))
    return sorted(cycles)


def cycle_edges(cycle: List[str], edges: Iterable[ImportEdge], scopes: Iterable[str] = SCOPES) -> List[ImportEdge]:
    """The first import (by line) of each step of ``cycle`` among ``edges`` of ``scopes``, for a report."""
    scopes = tuple(scopes)
    steps = list(zip(cycle, cycle[1:]))
    found = []
    for importer, imported in steps:
        matching = [edge for edge in edges if (edge.importer, edge.imported) == (importer, imported)
                    and edge.scope in scopes]
        found.append(min(matching, key=lambda edge: edge.line))
    return found
