"""The offline rank-dataset pipeline (no MATLAB): SR levels -> aligned patches -> perceptual labels -> splits.

One concept per module: :mod:`.options` (defaults, validation, fingerprint), :mod:`.sources` (HR / LR
images, key stems, splits), :mod:`.levels` (the SR levels, by type in ``LEVEL_REGISTRY``),
:mod:`.patch_selection` (grid, sharpness filter, cap), :mod:`.patch_metrics` (the labels, by type in
``PATCH_METRIC_REGISTRY``), :mod:`.image_processor` (one source image), :mod:`.pipeline` (reading ahead, writing
patches in the background), :mod:`.builder` (a build or a shard of one), :mod:`.distributed` (one build over a
launcher's processes) and :mod:`.merge` (joining shards). Importing it registers the levels and patch metrics;
the on-disk format and the training dataset stay in :mod:`ranksrgan_plugin.data`.
"""
from .builder import RankDatasetBuilder
from .distributed import BuildProcesses, close_processes, launched_processes
from .levels import BUILTIN_UPSCALERS, LEVEL_REGISTRY, LevelError, SRLevel, build_level
from .merge import merge_rank_datasets
from .options import DEFAULT_CONFIG, RankDatasetBuildError, load_config
from .patch_metrics import PATCH_METRIC_REGISTRY, PatchMetric, build_patch_metric, register_patch_metric

__all__ = ['BUILTIN_UPSCALERS', 'BuildProcesses', 'DEFAULT_CONFIG', 'LEVEL_REGISTRY', 'LevelError',
           'PATCH_METRIC_REGISTRY', 'PatchMetric', 'RankDatasetBuildError', 'RankDatasetBuilder', 'SRLevel',
           'build_level', 'build_patch_metric', 'close_processes', 'launched_processes', 'load_config',
           'merge_rank_datasets', 'register_patch_metric']
