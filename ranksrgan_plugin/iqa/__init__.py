"""No-reference image quality metrics as plain functions: NIQE, Ma et al.'s metric and the Perceptual Index.

No registries here: :mod:`ranksrgan_plugin.metrics` registers thin BasicSR wrappers around these.
"""
from .image_prep import matlab_resize, matlab_resize_uint8, to_y_matlab
from .ma import ma_batch, ma_score, perceptual_index, pi_batch
from .ma_features import FEATURE_SIZES, GROUPS, ma_features, ma_features_batch
from .ma_model import MaModel, RegressionForest, load_ma_model
from .niqe import niqe_batch, niqe_score
from .niqe_processes import NiqeProcessPool

__all__ = ['FEATURE_SIZES', 'GROUPS', 'MaModel', 'NiqeProcessPool', 'RegressionForest', 'load_ma_model', 'ma_batch',
           'ma_features', 'ma_features_batch', 'ma_score', 'matlab_resize', 'matlab_resize_uint8', 'niqe_batch',
           'niqe_score', 'perceptual_index', 'pi_batch', 'to_y_matlab']
