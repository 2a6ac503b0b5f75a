"""``python basicsr/train.py -opt options/<file>.yml`` from the repository root, plugin loaded.

This folder has no ``__init__.py`` on purpose: ``import basicsr`` still finds the installed
BasicSR package, and experiments/ and tb_logger/ are written under the repository root (upstream's
own ``basicsr/train.py`` would write them into site-packages).
"""
import os.path as osp

from ranksrgan_plugin.train import train

if __name__ == '__main__':
    train(osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))
