"""Print the import circles of a package (default: ranksrgan_plugin); exit status 1 when there is one.

    python tools/import_cycles.py                  # every import, function-level ones included
    python tools/import_cycles.py --scope module   # only the imports that run when a module is imported
    python tools/import_cycles.py --packages       # also the package __init__s an import runs on the way

The graph is read from the source with ``ast`` (nothing of the package is imported, so this runs in a second
without torch): see :mod:`ranksrgan_plugin.utils.import_graph`. Each circle is printed as ``a -> b -> a``,
with the file line and scope of each of its imports.
"""
import argparse
import importlib.util
import os.path as osp
import sys
from typing import List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_PACKAGE = osp.join(REPO, 'ranksrgan_plugin')


def _import_graph():
    """``ranksrgan_plugin/utils/import_graph.py`` loaded by path: importing the package would import torch and
    both toolboxes."""
    spec = importlib.util.spec_from_file_location(
        'import_graph', osp.join(DEFAULT_PACKAGE, 'utils', 'import_graph.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: Optional[List[str]] = None) -> int:
    """Report the circles; 0 when there is none, 1 otherwise."""
    graph = _import_graph()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('package', nargs='?', default=DEFAULT_PACKAGE, help='the package folder (default: %(default)s)')
    parser.add_argument('--scope', choices=('all', graph.MODULE_SCOPE), default='all',
                        help='all: every import (default); module: only module-level imports')
    parser.add_argument('--packages', action='store_true',
                        help="also count the sub-package __init__s an import runs (not the top package's)")
    args = parser.parse_args(argv)
    scopes = (graph.MODULE_SCOPE,) if args.scope == graph.MODULE_SCOPE else graph.SCOPES
    edges = graph.import_edges(args.package, args.packages)
    cycles = graph.find_cycles(edges, scopes)
    for cycle in cycles:
        print(' -> '.join(cycle))
        for edge in graph.cycle_edges(cycle, edges, scopes):
            print(f'    {edge.importer} line {edge.line} ({edge.scope}-level) imports {edge.imported}')
    counted = [edge for edge in edges if edge.scope in scopes]
    print(f'{len(cycles)} import circle(s) in {osp.basename(osp.normpath(args.package))} '
          f'({len(graph.package_modules(args.package))} modules, {len(counted)} imports, scope: {args.scope}'
          f'{", package __init__s counted" if args.packages else ""})')
    return 1 if cycles else 0


if __name__ == '__main__':
    sys.exit(main())
