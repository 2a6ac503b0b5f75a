"""Ma et al.'s no-reference SR metric ("Learning a no-reference quality metric for single-image
super-resolution", CVIU 2017) and the PIRM 2018 Perceptual Index: the trained model, scores and registration.

The 138 features (``ma_features``: dct 18, gsm 45, svd 75 on the Y channel) feed one regression forest each
of the authors' ``model.mat`` (MATLAB ``randomforest-matlab`` layout); ``Ma = [1, s1, s2, s3] @ linear``.
PI = ((10 - Ma) + NIQE) / 2. ``docs/ma_metric.md`` has the definition, where the model comes from and how
close this code is to the official MATLAB output.
"""
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY

from .ma_features import FEATURE_SIZES, GROUPS, ma_features, ma_features_batch
from .patch_metrics import PatchMetric, register_patch_metric

__all__ = ['MaModel', 'RegressionForest', 'decode_nodestatus', 'load_ma_model', 'ma_features', 'ma_features_batch',
           'ma_score', 'ma_batch', 'pi_batch', 'calculate_ma', 'calculate_pi', 'MaPatchMetric', 'PIPatchMetric',
           'FEATURE_SIZES', 'DEFAULT_MODEL_PATH', 'MODEL_ENV', 'AUTHORS_LINEAR']

MODEL_ENV = 'RANKSRGAN_MA_MODEL'
DEFAULT_MODEL_PATH = Path('~/.cache/ranksrgan_plugin/ma/model.mat')
# model.linear of the authors' model.mat, implied exactly (to 1e-13) by the official Ma and forest outputs of seven
# reference images (docs/ma_metric.md): a file with other weights is not theirs and gives other scores
AUTHORS_LINEAR = (-0.308778059772, 0.165572373359, 0.376563724761, 0.523687089553)
_Y_WEIGHTS_RGB = (65.481 / 255, 128.553 / 255, 24.966 / 255)  # MATLAB rgb2ycbcr on uint8: R, G, B weights

Images = Union[np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------------------------- model
class RegressionForest:
    """One regression forest in the randomforest-matlab (``regRF_train``) layout.

    Arrays are (nrnodes, ntree), node indices 1-based as in MATLAB; a node with ``nodestatus == -1`` is a
    leaf (its prediction is ``avnode``); an internal node sends ``x[mbest - 1] <= upper`` to ``lDau`` and the
    rest to ``rDau``. The forest predicts the mean over its ``ntree`` trees, then ``coef[0] + coef[1] * mean``
    when the forest was trained with bias correction (``coef`` not all zero).
    """

    def __init__(self, lDau: np.ndarray, rDau: np.ndarray, nodestatus: np.ndarray, upper: np.ndarray,
                 avnode: np.ndarray, mbest: np.ndarray, ndtree: Optional[np.ndarray] = None,
                 coef: Optional[np.ndarray] = None) -> None:
        def col(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a)
            return a.reshape(-1, 1) if a.ndim == 1 else a

        self.ldau = col(lDau).astype(np.int64)
        self.rdau = col(rDau).astype(np.int64)
        self.status = col(nodestatus).astype(np.int64)
        self.upper = col(upper).astype(np.float64)
        self.avnode = col(avnode).astype(np.float64)
        self.mbest = col(mbest).astype(np.int64)
        shapes = {a.shape for a in (self.ldau, self.rdau, self.status, self.upper, self.avnode, self.mbest)}
        if len(shapes) != 1:
            raise ValueError(f'RegressionForest: node arrays must share one (nrnodes, ntree) shape, got {shapes}')
        self.ntree = self.ldau.shape[1]
        self.ndtree = (np.full(self.ntree, self.ldau.shape[0]) if ndtree is None
                       else np.asarray(ndtree).reshape(-1).astype(np.int64))
        coef = np.zeros(2) if coef is None else np.asarray(coef, dtype=np.float64).reshape(-1)
        self.coef = coef if coef.size == 2 and coef.any() else None

    @property
    def num_features_used(self) -> int:
        """1 + the largest feature index any split uses (the feature vector must be at least this long)."""
        internal = self.status != -1
        return int(self.mbest[internal].max()) if internal.any() else 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions (N,) for features (N, D): all samples and all trees descend together."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] < self.num_features_used:
            raise ValueError(f'RegressionForest: features have {x.shape[1]} dims, the forest splits on dim '
                             f'{self.num_features_used}')
        n, t = x.shape[0], self.ntree
        trees = np.broadcast_to(np.arange(t), (n, t))
        rows = np.broadcast_to(np.arange(n)[:, None], (n, t))
        node = np.zeros((n, t), dtype=np.int64)  # 0-based current node
        for _ in range(self.ldau.shape[0]):
            active = self.status[node, trees] != -1
            if not active.any():
                break
            var = np.where(active, self.mbest[node, trees] - 1, 0)
            go_left = x[rows, var] <= self.upper[node, trees]
            nxt = np.where(go_left, self.ldau[node, trees], self.rdau[node, trees]) - 1
            node = np.where(active & (nxt >= 0), nxt, node)
        pred = self.avnode[node, trees].mean(axis=1)
        return pred if self.coef is None else self.coef[0] + self.coef[1] * pred


class MaModel:
    """The three forests (dct, gsm, svd) and the 4-vector ``linear``: score = [1, s1, s2, s3] @ linear."""

    def __init__(self, forests: Sequence[RegressionForest], linear: np.ndarray, path: Optional[str] = None) -> None:
        if len(forests) != 3:
            raise ValueError(f'MaModel: expected 3 forests (dct, gsm, svd), got {len(forests)}')
        self.forests = list(forests)
        self.linear = np.asarray(linear, dtype=np.float64).reshape(-1)
        if self.linear.shape != (4,):
            raise ValueError(f'MaModel: linear must have 4 entries (intercept + 3 weights), got {self.linear.shape}')
        self.path = path

    def predict(self, feats: Dict[str, np.ndarray]) -> np.ndarray:
        """Scores (N,) for per-group features, each (N, D_group) or (D_group,)."""
        preds = [forest.predict(np.atleast_2d(feats[g])) for forest, g in zip(self.forests, GROUPS)]
        design = np.column_stack([np.ones_like(preds[0])] + preds)
        return design @ self.linear


def _missing_model_message(tried: List[str]) -> str:
    return ("Ma's metric needs its trained model 'model.mat' (regression forests + linear weights) from the "
            "authors' MIT-licensed repository https://github.com/chaoma99/sr-metric (file model.mat at its root). "
            'It is not shipped with this package and cannot be downloaded here. Put it at '
            f'{DEFAULT_MODEL_PATH}, or set the environment variable {MODEL_ENV} to its path, or pass '
            f"model_path=... . Looked at: {', '.join(tried) or '(nothing)'}.")


def _resolve_model_path(path: Optional[Union[str, os.PathLike]]) -> Path:
    tried = []
    for candidate in (path, os.environ.get(MODEL_ENV), DEFAULT_MODEL_PATH):
        if candidate in (None, ''):
            continue
        p = Path(candidate).expanduser()
        tried.append(str(p))
        if p.is_file():
            return p
        if path is not None:  # an explicit path that does not exist is an error, not a fall-through
            break
    raise FileNotFoundError(_missing_model_message(tried))


def _field(struct: Any, name: str) -> Any:
    value = struct[name]
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _unwrap_struct(obj: Any) -> Any:
    while isinstance(obj, np.ndarray) and obj.size == 1 and obj.dtype.names is None:
        obj = obj.reshape(-1)[0]
    if isinstance(obj, np.ndarray) and obj.dtype.names is not None:
        return obj.reshape(-1)[0]
    return obj


def decode_nodestatus(status: np.ndarray, shape: tuple) -> np.ndarray:
    """Node status as int8 (nrnodes, ntree) from the form ``model.mat`` stores it.

    The authors' training MEX returns the status as 1-byte values inside a MATLAB *char* array (2 bytes per
    character), so the real file holds the statuses packed two per character in the first half of the
    buffer (column-major). Numeric arrays (a re-saved or synthetic model) are returned as they are.
    """
    status = np.asarray(status)
    if status.dtype.kind != 'U':
        return status.astype(np.int64)
    codes = status.view(np.uint32).astype('<u2')  # one UTF-16 code unit per MATLAB character
    raw = np.frombuffer(codes.flatten(order='F').tobytes(), dtype=np.int8)
    count = int(np.prod(shape))
    if raw.size < count:
        raise ValueError(f'nodestatus: {raw.size} bytes for {shape} nodes')
    return raw[:count].reshape(shape, order='F').astype(np.int64)


def _check_leaves(forest: RegressionForest, path: str, index: int) -> None:
    """A node is a leaf exactly when it has no left daughter: catches a misread ``nodestatus``."""
    for t in range(forest.ntree):
        n = forest.ndtree[t]
        if not np.array_equal(forest.status[:n, t] == -1, forest.ldau[:n, t] == 0):
            raise ValueError(f'{path}: forest {index + 1}, tree {t + 1}: nodestatus does not match lDau '
                             '(leaf <=> lDau == 0); the file is not a randomforest-matlab regression forest')


def _read_forest(entry: Any, path: str, index: int) -> RegressionForest:
    rf = _unwrap_struct(entry)
    names = rf.dtype.names
    missing = [k for k in ('lDau', 'rDau', 'nodestatus', 'upper', 'avnode', 'mbest') if k not in names]
    if missing:
        raise ValueError(f'{path}: forest {index + 1} lacks {missing} (expected the randomforest-matlab layout)')
    fields = {k: np.asarray(_field(rf, k)) for k in ('lDau', 'rDau', 'upper', 'avnode', 'mbest')}
    ldau = fields['lDau']
    shape = ldau.shape if ldau.ndim == 2 else (ldau.size, 1)
    fields['nodestatus'] = decode_nodestatus(_field(rf, 'nodestatus'), shape)
    optional = {k: np.asarray(_field(rf, k)) for k in ('ndtree', 'coef') if k in names}
    forest = RegressionForest(**fields, **optional)
    _check_leaves(forest, path, index)
    return forest


@lru_cache(maxsize=4)
def _load_model_cached(path: str, mtime: float) -> MaModel:
    import scipy.io

    mat = scipy.io.loadmat(path, chars_as_strings=False)
    if 'model' not in mat:
        raise ValueError(f"{path}: no variable 'model' (expected the sr-metric model.mat with model.rf, model.linear)")
    model = _unwrap_struct(mat['model'])
    rf_cell = np.asarray(model['rf']).reshape(-1)
    while rf_cell.size == 1 and rf_cell.dtype == object:
        rf_cell = np.asarray(rf_cell[0]).reshape(-1)
    forests = [_read_forest(entry, path, i) for i, entry in enumerate(rf_cell)]
    result = MaModel(forests, np.asarray(_field(model, 'linear')), path)
    if not np.allclose(result.linear, AUTHORS_LINEAR, rtol=0, atol=1e-9):  # once per file: this load is cached
        get_root_logger().warning(
            f"{path}: model.linear {np.array2string(result.linear, precision=6)} differs from the authors' model.mat "
            f'({AUTHORS_LINEAR}); its Ma scores are not comparable with published ones (fine for a model of your own)')
    return result


def load_ma_model(path: Optional[Union[str, os.PathLike]] = None) -> MaModel:
    """The authors' ``model.mat``: ``path``, else ``$RANKSRGAN_MA_MODEL``, else ``~/.cache/ranksrgan_plugin/ma/``.

    Raises:
        FileNotFoundError: no model.mat found; the message says where it comes from and where to put it.
    """
    p = _resolve_model_path(path)
    return _load_model_cached(str(p.resolve()), p.stat().st_mtime)


# -------------------------------------------------------------------------------------- image handling
def _to_y_batch(imgs: Images, input_order: str = 'HWC', crop_border: int = 0) -> torch.Tensor:
    """(N, H, W) float64 Y in [0, 255], rounded like MATLAB's uint8 rgb2ycbcr, cropped."""
    t = imgs if isinstance(imgs, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(imgs))
    t = t.to(torch.float64)
    if input_order not in ('HWC', 'CHW', 'HW'):
        raise ValueError(f"input_order must be 'HWC', 'CHW' or 'HW', got {input_order!r}")
    if t.ndim == 3:  # (N, H, W): already one channel
        y = t
    elif t.ndim == 4 and input_order != 'HW':
        planes = t.movedim(3, 1) if input_order == 'HWC' else t
        if planes.shape[1] == 1:
            y = planes[:, 0]
        elif planes.shape[1] == 3:
            # MATLAB's order of operations (w_r R + w_g G + w_b B + 16, then round half away from zero): a
            # different order moves values near .5 to the other integer
            r, g, b = planes[:, 2], planes[:, 1], planes[:, 0]
            y = torch.floor(_Y_WEIGHTS_RGB[0] * r + _Y_WEIGHTS_RGB[1] * g + _Y_WEIGHTS_RGB[2] * b + 16 + 0.5)
        else:
            raise ValueError(f'expected 1 or 3 channels (BGR), got shape {tuple(t.shape)}')
    else:
        raise ValueError(f'expected a batch (N, H, W) or (N, H, W, C)/(N, C, H, W), got shape {tuple(t.shape)}')
    if crop_border:
        y = y[:, crop_border:y.shape[1] - crop_border, crop_border:y.shape[2] - crop_border]
    return y


def _get_model(model: Optional[Union[MaModel, str, os.PathLike]]) -> MaModel:
    return model if isinstance(model, MaModel) else load_ma_model(model)


def ma_batch(imgs: Images, crop_border: int = 4, input_order: str = 'HWC',
             model: Optional[Union[MaModel, str, os.PathLike]] = None,
             device: Optional[Union[str, torch.device]] = None, batch_size: int = 16) -> np.ndarray:
    """Ma scores (N,) of equal-size BGR images in [0, 255] (N, H, W, 3) for 'HWC' (or (N, H, W) for 'HW')."""
    m = _get_model(model)
    y = _to_y_batch(imgs, input_order, crop_border)
    out = []
    for i in range(0, y.shape[0], batch_size):
        out.append(m.predict(ma_features_batch(y[i:i + batch_size], device)))
    return np.concatenate(out) if out else np.zeros(0)


def ma_score(img: Images, crop_border: int = 4, model: Optional[Union[MaModel, str, os.PathLike]] = None,
             input_order: str = 'HWC') -> float:
    """Ma score of one image (higher is better, about 0..10)."""
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(ma_batch(t.unsqueeze(0), crop_border, input_order, model)[0])


def pi_batch(imgs: Images, crop_border: int = 4, input_order: str = 'HWC',
             model: Optional[Union[MaModel, str, os.PathLike]] = None,
             device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """PI = ((10 - Ma) + NIQE) / 2 per image (lower is better); Y channel; NIQE by ``niqe_batch``."""
    from .niqe_batch import niqe_batch

    t = imgs if isinstance(imgs, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(imgs))
    ma = ma_batch(t, crop_border, input_order, model, device)
    niqe = niqe_batch(t, crop_border=crop_border, input_order=input_order, convert_to='y', device=device)
    return ((10.0 - ma) + niqe) / 2.0


@METRIC_REGISTRY.register()
def calculate_ma(img: Images, crop_border: int, input_order: str = 'HWC', **kwargs: Any) -> float:
    """Ma et al.'s score (higher is better); BasicSR ``val.metrics.<name>.type: calculate_ma``.

    kwargs: ``model_path`` (else $RANKSRGAN_MA_MODEL, else ~/.cache/ranksrgan_plugin/ma/model.mat); others ignored.
    """
    return ma_score(img, crop_border, kwargs.get('model_path'), input_order)


@METRIC_REGISTRY.register()
def calculate_pi(img: Images, crop_border: int, input_order: str = 'HWC', **kwargs: Any) -> float:
    """Perceptual Index ((10 - Ma) + NIQE) / 2 (lower is better); BasicSR ``type: calculate_pi``."""
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(pi_batch(t.unsqueeze(0), crop_border, input_order, kwargs.get('model_path'),
                          kwargs.get('device'))[0])


class MaPatchMetric(PatchMetric):
    """Ma's score for the rank-dataset tool (higher is better)."""

    name = 'ma'
    higher_is_better = True

    def __init__(self, crop_border: int = 4, model_path: Optional[str] = None, device: Optional[str] = None,
                 batch_size: int = 16) -> None:
        self.crop_border, self.model_path, self.device, self.batch_size = crop_border, model_path, device, batch_size
        self.model = load_ma_model(model_path)  # fail at build time, before any patch is cut

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return ma_batch(patches, self.crop_border, 'HWC', self.model, self.device, self.batch_size)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'crop_border': self.crop_border, 'model': self.model.path}


class PIPatchMetric(MaPatchMetric):
    """Perceptual Index for the rank-dataset tool (lower is better)."""

    name = 'pi'
    higher_is_better = False

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return pi_batch(patches, self.crop_border, 'HWC', self.model, self.device)


register_patch_metric('ma', MaPatchMetric)
register_patch_metric('pi', PIPatchMetric)
