"""Train (and test) with BasicSR's own pipelines, plugin loaded: ``ranksrgan-train -opt options/<file>.yml``.

Same flags as ``basicsr/train.py`` (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``). Experiments and TensorBoard logs go under ``root_path`` (the working directory
for the console script; the repository root for the repository's ``basicsr/train.py``).
"""
import os
from typing import Optional

import ranksrgan_plugin  # noqa: F401  (applies the compat fixes, registers the plugin classes)
from ranksrgan_plugin.compat.basicsr import close_distributed, patch_basicsr_train


def train(root_path: Optional[str] = None) -> None:
    """Run ``basicsr.train.train_pipeline`` with the plugin registered, writing under ``root_path``."""
    patch_basicsr_train()
    from basicsr.train import train_pipeline

    train_pipeline(os.path.abspath(root_path or os.getcwd()))
    close_distributed()


def test(root_path: Optional[str] = None) -> None:
    """Run ``basicsr.test.test_pipeline`` with the plugin registered, writing under ``root_path``."""
    patch_basicsr_train()
    from basicsr.test import test_pipeline

    test_pipeline(os.path.abspath(root_path or os.getcwd()))
    close_distributed()


def main() -> None:
    train(os.getcwd())


if __name__ == '__main__':
    main()
