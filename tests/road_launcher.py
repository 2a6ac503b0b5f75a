"""The paper road on a tiny layout, run as its own process by tests/test_road_processes.py (to be killed).

    python tests/road_launcher.py --layout FOLDER --options OPTIONS --output OUT --until ranker [--from ranker]

``FOLDER`` holds a tiny layout's data and weights (tests/test_reproduce.py's ``tiny_layout``), ``OPTIONS``
the variant's three options files (rank.yml, ranker.yml, gan.yml); the road's own files and experiments
go under ``OUT``. Exits 128 + the signal's number when a stop signal stopped the road (``Stopped``), 3 when
a live stage refused it (``LiveStageError``).
"""
import argparse
import os.path as osp
import sys

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
from ranksrgan_plugin.reproduce import PaperRoad, RoadLayout, Variant
from ranksrgan_plugin.reproduce.variants import VARIANTS
from ranksrgan_plugin.utils.live_processes import LiveStageError
from ranksrgan_plugin.utils.logged_process import Stopped

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def road_layout(layout_folder: str, options: str, output: str) -> RoadLayout:
    """The tiny layout of ``layout_folder`` (its data and weights) with the options of ``options``, writing under
    ``output``."""
    variant = Variant('niqe', osp.join(options, 'rank.yml'), osp.join(options, 'ranker.yml'),
                      osp.join(options, 'gan.yml'), paper=dict(VARIANTS['niqe'].paper))
    return RoadLayout(repo=REPO, variant=variant, data=osp.join(layout_folder, 'data'),
                      pretrained=osp.join(layout_folder, 'pretrained'), output=osp.join(output, 'out', 'niqe'),
                      root=osp.join(output, 'root'))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--layout', required=True)
    parser.add_argument('--options', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--until', required=True)
    parser.add_argument('--from', dest='start')
    args = parser.parse_args()
    road = PaperRoad(road_layout(args.layout, args.options, args.output), echo=lambda line: print(line, flush=True),
                     show_bars=False)
    try:
        return road.run(args.start, args.until)
    except Stopped as stopped:
        print(f'road_launcher: {stopped}', flush=True)
        return 128 + stopped.signum
    except LiveStageError as error:
        print(f'road_launcher: {error}', flush=True)
        return 3


if __name__ == '__main__':
    sys.exit(main())
