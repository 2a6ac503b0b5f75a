"""RankSRGAN (Zhang et al., ICCV 2019) as a BasicSR / MMagic plugin.

Importing this package applies the upstream workarounds of :mod:`ranksrgan_plugin.compat` and
registers every plugin class into BasicSR's registries (ARCH, LOSS, DATASET, METRIC, MODEL).
"""
from . import compat

compat.apply()

from . import archs, data, losses, metrics, models  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'archs', 'data', 'losses', 'metrics', 'models']
