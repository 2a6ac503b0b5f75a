"""``python basicsr/test.py -opt options/<file>.yml`` from the repository root, plugin loaded.

As ``basicsr/train.py`` here: BasicSR's own test pipeline, results written under the repository.
"""
import os.path as osp

from ranksrgan_plugin.train import test

if __name__ == '__main__':
    test(osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))
