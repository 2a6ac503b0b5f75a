"""Train with MMagic (RankSRGAN plugin loaded): ``python tools/mmagic_train.py <config> [--launcher pytorch] ...``.

See ``ranksrgan_plugin/mmagic/train.py`` and docs/mmagic.md. Under torchrun:
``torchrun --nproc_per_node=2 tools/mmagic_train.py <config> --launcher pytorch`` (gloo on a CPU-only machine).
"""
from ranksrgan_plugin.mmagic.train import main

if __name__ == '__main__':
    main()
