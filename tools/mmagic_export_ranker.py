"""Write the Ranker of an MMagic checkpoint as a BasicSR checkpoint ``{'params': state_dict}``.

``python tools/mmagic_export_ranker.py work_dirs/<experiment>/best_SROCC_iter_<N>.pth
experiments/pretrained_models/Ranker_NIQE_mmagic.pth`` -> usable as ``path.pretrain_network_r`` of the
BasicSR options (and by ``ranksrgan_plugin.checkpoints.load_ranker``). MMagic's RankSRGAN configs take the
MMagic checkpoint as it is: no export needed there. The checkpoint's record of the Ranker's training (metric,
direction, rank set) goes along as ``ranker_record``. A missing or unfitting checkpoint is a one-paragraph
message and exit status 2.
"""
import argparse
import pickle
import sys
from typing import List, Optional

from ranksrgan_plugin.checkpoints import export_ranker_for_basicsr


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='MMagic (mmengine) checkpoint of a RankerModel')
    parser.add_argument('output', help='BasicSR checkpoint to write')
    parser.add_argument('--prefix', default='ranker.', help="prefix of the Ranker's keys (default: ranker.)")
    args = parser.parse_args(argv)
    try:
        written = export_ranker_for_basicsr(args.checkpoint, args.output, prefix=args.prefix)
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as error:  # a refused pickle is the last
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'mmagic_export_ranker: error: {args.checkpoint}: {message}', file=sys.stderr)
        return 2
    print(f'Wrote {written}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
