"""Write the Ranker of an MMagic checkpoint as a BasicSR checkpoint ``{'params': state_dict}``.

``python tools/mmagic_export_ranker.py work_dirs/<experiment>/best_SROCC_iter_<N>.pth
experiments/pretrained_models/Ranker_NIQE_mmagic.pth`` -> usable as ``path.pretrain_network_r`` of the
BasicSR options (and by ``ranksrgan_plugin.archs.load_ranker``). MMagic's RankSRGAN configs take the
MMagic checkpoint as it is: no export needed there.
"""
import argparse
from typing import List, Optional

from ranksrgan_plugin.mmagic.checkpoints import export_ranker_for_basicsr


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='MMagic (mmengine) checkpoint of a RankerModel')
    parser.add_argument('output', help='BasicSR checkpoint to write')
    parser.add_argument('--prefix', default='ranker.', help="prefix of the Ranker's keys (default: ranker.)")
    args = parser.parse_args(argv)
    print(f'Wrote {export_ranker_for_basicsr(args.checkpoint, args.output, prefix=args.prefix)}')


if __name__ == '__main__':
    main()
