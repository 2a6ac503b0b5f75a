"""RankSRGAN (Zhang et al., ICCV 2019) as a BasicSR / MMagic plugin.

Importing this package first applies the import-time BasicSR workarounds (importing
:mod:`ranksrgan_plugin.compat` aliases torchvision's ``functional_tensor`` before any ``import basicsr``),
then registers every plugin class into BasicSR's registries (ARCH, LOSS, DATASET, METRIC, MODEL) and the
rank-dataset tool's levels and patch metrics into its own (:mod:`ranksrgan_plugin.rank_dataset`). numpy's
error state around that first ``import basicsr`` is recorded, for the MMagic side to give back
(:func:`ranksrgan_plugin.compat.basicsr.undo_basicsr_seterr`).
"""
from . import compat  # noqa: F401  (first: applies the BasicSR import fix)

# isort: split
with compat.basicsr.note_numpy_errstate_of_basicsr_import():
    from . import archs, data, losses, metrics, models, rank_dataset  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'archs', 'data', 'losses', 'metrics', 'models', 'rank_dataset']
