"""The trained model of Ma et al.'s metric: the authors' ``model.mat``, read into three regression forests.

``model.mat`` (github.com/chaoma99/sr-metric) holds one regression forest per feature group (dct, gsm,
svd; MATLAB ``randomforest-matlab`` layout) and the 4-vector ``linear``: Ma = [1, s1, s2, s3] @ linear.
``docs/ma_metric.md`` says where the model comes from and how its file is laid out.
"""
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from basicsr.utils import get_root_logger

from .ma_features import GROUPS

__all__ = ['MaModel', 'RegressionForest', 'decode_nodestatus', 'load_ma_model', 'DEFAULT_MODEL_PATH', 'MODEL_ENV',
           'AUTHORS_LINEAR']

MODEL_ENV = 'RANKSRGAN_MA_MODEL'
DEFAULT_MODEL_PATH = Path('~/.cache/ranksrgan_plugin/ma/model.mat')
# model.linear of the authors' model.mat, implied exactly (to 1e-13) by the official Ma and forest outputs of seven
# reference images (docs/ma_metric.md): a file with other weights is not theirs and gives other scores
AUTHORS_LINEAR = (-0.308778059772, 0.165572373359, 0.376563724761, 0.523687089553)


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
    """Where model.mat comes from, where to put it, and the paths that were ``tried``."""
    return ("Ma's metric needs its trained model 'model.mat' (regression forests + linear weights) from the "
            "authors' MIT-licensed repository https://github.com/chaoma99/sr-metric (file model.mat at its root). "
            'It is not shipped with this package and cannot be downloaded here. Put it at '
            f'{DEFAULT_MODEL_PATH}, or set the environment variable {MODEL_ENV} to its path, or pass '
            f"model_path=... . Looked at: {', '.join(tried) or '(nothing)'}.")


def _resolve_model_path(path: Optional[Union[str, os.PathLike]]) -> Path:
    """The first existing file of ``path``, ``$RANKSRGAN_MA_MODEL``, the cache path (an explicit path must exist)."""
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
    """Field ``name`` of a loadmat struct, unwrapped from its 1x1 object arrays."""
    value = struct[name]
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _unwrap_struct(obj: Any) -> Any:
    """The struct record inside loadmat's nested 1x1 arrays."""
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
    """One forest of ``model.rf``, checked for the randomforest-matlab layout."""
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
    """Read ``path`` once per (path, mtime); warns when its ``linear`` is not the authors'."""
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


