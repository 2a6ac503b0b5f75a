"""Ma et al.'s no-reference SR metric ("Learning a no-reference quality metric for single-image
super-resolution", CVIU 2017) and the PIRM 2018 Perceptual Index, in NumPy/torch.

Three feature groups on the Y channel (BT.601, MATLAB ``rgb2ycbcr``), each fed to one regression forest
of the authors' ``model.mat`` (MATLAB ``randomforest-matlab`` layout), then ``score = [1, s1, s2, s3] @ linear``:

(a) ``dct`` (18 = 3 scales x 6): local frequency statistics of overlapping 7x7 blocks (stride 3) of a
    3-level Gaussian pyramid: GGD shape of the AC coefficients, coefficient of variation of |AC|, and the
    variance over three orientation groups of that coefficient of variation, each pooled over the blocks by
    the mean of the extreme 10% and the mean of all blocks;
(b) ``gsm`` (45): global statistics of a 2-scale, 6-orientation steerable pyramid after divisive
    (Gaussian-scale-mixture) normalisation: GGD shape per subband (12), per orientation across scales (6),
    SSIM of each subband with the high-pass residual (12), SSIM between orientations of the finest scale (15);
(c) ``svd`` (75 = 3 scales x 25): singular values of the matrix of the non-overlapping 5x5 patches.

Everything runs batched over images of equal size (torch, float64, CPU or CUDA). ``docs/ma_metric.md`` lists
every interpretation this implementation had to choose; the definitions follow the authors' MIT-licensed
MATLAB code (github.com/chaoma99/sr-metric), written anew.
"""
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.utils.registry import METRIC_REGISTRY

from .patch_metrics import PatchMetric, register_patch_metric

__all__ = ['MaModel', 'RegressionForest', 'load_ma_model', 'ma_features', 'ma_features_batch', 'ma_score',
           'ma_batch', 'pi_batch', 'calculate_ma', 'calculate_pi', 'MaPatchMetric', 'PIPatchMetric',
           'FEATURE_SIZES', 'DEFAULT_MODEL_PATH', 'MODEL_ENV']

MODEL_ENV = 'RANKSRGAN_MA_MODEL'
DEFAULT_MODEL_PATH = Path('~/.cache/ranksrgan_plugin/ma/model.mat')
NUM_SCALES = 3
DCT_BLOCK, DCT_STRIDE = 7, 3
SVD_PATCH = 5
PYR_SCALES, PYR_BANDS = 2, 6
GUARDBAND = 16
FEATURE_SIZES = {'dct': 6 * NUM_SCALES,
                 'gsm': PYR_SCALES * PYR_BANDS * 2 + PYR_BANDS + PYR_BANDS * (PYR_BANDS - 1) // 2,
                 'svd': SVD_PATCH * SVD_PATCH * NUM_SCALES}
GROUPS = ('dct', 'gsm', 'svd')
_EPS = 1e-7
_DCT_ROUNDOFF = 1e-10  # |DCT coefficient| below this (float round-off on [0, 1] data) counts as 0
_Y_WEIGHTS_BGR = (24.966, 128.553, 65.481)  # BT.601 luma weights for B, G, R in [0, 1] (MATLAB rgb2ycbcr)

Images = Union[np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------------------------- model
class RegressionForest:
    """One regression forest in the randomforest-matlab (``regRF_train``) layout.

    Arrays are (nrnodes, ntree), node indices 1-based as in MATLAB; a node with ``nodestatus == -1`` is a
    leaf (its prediction is ``avnode``); an internal node sends ``x[mbest - 1] <= upper`` to ``lDau`` and the
    rest to ``rDau``. The forest predicts the mean over its ``ntree`` trees.
    """

    def __init__(self, lDau: np.ndarray, rDau: np.ndarray, nodestatus: np.ndarray, upper: np.ndarray,
                 avnode: np.ndarray, mbest: np.ndarray, ndtree: Optional[np.ndarray] = None) -> None:
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
        return self.avnode[node, trees].mean(axis=1)


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


@lru_cache(maxsize=4)
def _load_model_cached(path: str, mtime: float) -> MaModel:
    import scipy.io

    mat = scipy.io.loadmat(path)
    if 'model' not in mat:
        raise ValueError(f"{path}: no variable 'model' (expected the sr-metric model.mat with model.rf, model.linear)")
    model = _unwrap_struct(mat['model'])
    rf_cell = np.asarray(model['rf']).reshape(-1)
    while rf_cell.size == 1 and rf_cell.dtype == object:
        rf_cell = np.asarray(rf_cell[0]).reshape(-1)
    forests = []
    for entry in rf_cell:
        rf = _unwrap_struct(entry)
        fields = {k: np.asarray(_field(rf, k)) for k in ('lDau', 'rDau', 'nodestatus', 'upper', 'avnode', 'mbest')}
        ndtree = np.asarray(_field(rf, 'ndtree')) if 'ndtree' in rf.dtype.names else None
        forests.append(RegressionForest(**fields, ndtree=ndtree))
    return MaModel(forests, np.asarray(_field(model, 'linear')), path)


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
            w = torch.tensor(_Y_WEIGHTS_BGR, dtype=torch.float64, device=planes.device).view(1, 3, 1, 1)
            y = torch.round((planes / 255.0 * w).sum(1) + 16.0)
        else:
            raise ValueError(f'expected 1 or 3 channels (BGR), got shape {tuple(t.shape)}')
    else:
        raise ValueError(f'expected a batch (N, H, W) or (N, H, W, C)/(N, C, H, W), got shape {tuple(t.shape)}')
    if crop_border:
        y = y[:, crop_border:y.shape[1] - crop_border, crop_border:y.shape[2] - crop_border]
    if min(y.shape[1:]) < 2 * GUARDBAND + 16:
        raise ValueError(f"Ma's metric: image too small after cropping ({tuple(y.shape[1:])}); needs >= 48x48")
    return y


# --------------------------------------------------------------------------------------- shared stats
@lru_cache(maxsize=1)
def _ggd_table() -> Tuple[np.ndarray, np.ndarray]:
    from scipy.special import gammaln

    gam = np.arange(0.03, 10 + 1e-9, 0.001)
    ratio = np.exp(gammaln(1 / gam) + gammaln(3 / gam) - 2 * gammaln(2 / gam))  # decreasing in gam
    return gam, ratio


def ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """GGD shape by moment matching along the last dim: var / E|x - mean|^2 against r(g) = G(1/g)G(3/g)/G(2/g)^2.

    The grid is 0.03:0.001:10 (nearest grid value). A constant sample (ratio 0) gives the largest grid value.
    """
    gam, ratio = _ggd_table()
    mean = x.mean(-1, keepdim=True)
    rho = x.var(-1, unbiased=True) / ((x - mean).abs().mean(-1) ** 2 + _EPS)
    asc = torch.from_numpy(ratio[::-1].copy()).to(x)  # ascending ratio <-> descending gamma
    pos = torch.searchsorted(asc, rho.contiguous()).clamp(1, len(asc) - 1)
    lo, hi = asc[pos - 1], asc[pos]
    idx_asc = torch.where((rho - lo).abs() <= (hi - rho).abs(), pos - 1, pos)
    gam_desc = torch.from_numpy(gam[::-1].copy()).to(x)
    return gam_desc[idx_asc]


def coeff_variation(x: torch.Tensor) -> torch.Tensor:
    """std(|x|) / mean(|x|) along the last dim (unbiased std; 0 for all-zero samples)."""
    a = x.abs()
    return a.std(-1, unbiased=True) / (a.mean(-1) + _EPS)


# ------------------------------------------------------------------------------------------ (a) DCT
@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d  # orthonormal DCT-II (MATLAB dct / dct2)


@lru_cache(maxsize=1)
def _orientation_masks() -> np.ndarray:
    """Three (7, 7) boolean masks of AC coefficients: near-horizontal, diagonal, near-vertical frequencies."""
    m = np.zeros((3, DCT_BLOCK, DCT_BLOCK), dtype=bool)
    for row, start in ((0, 1), (1, 2), (2, 4), (3, 5)):
        m[0, row, start:] = True
    for row, (a, b) in ((1, (1, 2)), (2, (2, 4)), (3, (2, 5)), (4, (3, 7)), (5, (4, 7)), (6, (4, 7))):
        m[1, row, a:b] = True
    m[2] = m[0].T
    return m


def _pool(values: torch.Tensor, low: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean of the extreme ~10%, mean of all) over the last dim; ``low`` picks the lowest ceil(0.1 n) + 1."""
    v, n = torch.sort(values, dim=-1).values, values.shape[-1]
    part = v[..., :min(n, math.ceil(0.1 * n) + 1)] if low else v[..., math.floor(0.9 * n):]
    return part.mean(-1), v.mean(-1)


def _dct_scale_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 6) DCT features of one pyramid level (N, H, W) in [0, 1]."""
    blocks = img.unfold(1, DCT_BLOCK, DCT_STRIDE).unfold(2, DCT_BLOCK, DCT_STRIDE)  # N, bh, bw, 7, 7
    n = img.shape[0]
    blocks = blocks.reshape(n, -1, DCT_BLOCK, DCT_BLOCK)
    d = torch.from_numpy(_dct_matrix(DCT_BLOCK)).to(img)
    coef = d @ blocks @ d.T
    coef = torch.where(coef.abs() < _DCT_ROUNDOFF, torch.zeros_like(coef), coef)  # flat blocks: exact zeros
    ac = coef.reshape(n, coef.shape[1], -1)[..., 1:]
    gamma = ggd_shape(ac)
    cv = coeff_variation(ac)
    masks = torch.from_numpy(_orientation_masks()).to(img.device)
    ori = torch.stack([coeff_variation(coef[..., m]) for m in masks], dim=-1).var(-1, unbiased=True)
    feats = [*_pool(gamma, low=True), *_pool(cv, low=False), *_pool(ori, low=False)]
    return torch.stack(feats, dim=1)


# ------------------------------------------------------------------------------------------ (c) SVD
def _svd_scale_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 25) singular values (descending) of the (patches x 25) matrix of distinct 5x5 patches, zero-padded."""
    n, h, w = img.shape
    ph, pw = -h % SVD_PATCH, -w % SVD_PATCH
    x = F.pad(img, (0, pw, 0, ph)) if ph or pw else img
    cols = x.unfold(1, SVD_PATCH, SVD_PATCH).unfold(2, SVD_PATCH, SVD_PATCH).reshape(n, -1, SVD_PATCH ** 2)
    gram = cols.transpose(1, 2) @ cols  # 25x25: its eigenvalues are the squared singular values
    ev = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0)
    return ev.sqrt()


# ---------------------------------------------------------------------------- Gaussian pyramid (3 levels)
def _gauss_pyramid(img: torch.Tensor, levels: int = NUM_SCALES) -> List[torch.Tensor]:
    """[img, down1, down2]: 3x3 Gaussian (sigma 0.5), symmetric padding, keep pixels (1::2, 1::2)."""
    ax = np.arange(-1, 2)
    g = np.exp(-ax ** 2 / (2 * 0.5 ** 2))
    g /= g.sum()
    k = torch.from_numpy(np.outer(g, g)).to(img).view(1, 1, 3, 3)
    pyr = [img]
    for _ in range(levels - 1):
        x = F.pad(pyr[-1].unsqueeze(1), (1, 1, 1, 1), mode='replicate')
        pyr.append(F.conv2d(x, k)[:, 0, 1::2, 1::2])
    return pyr


# ------------------------------------------------------------------------------ (b) steerable pyramid GSM
def _radial_angle(h: int, w: int, device: torch.device,
                  dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype) * 2  # Nyquist = 1
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype) * 2
    yy, xx = torch.meshgrid(fy, fx, indexing='ij')
    r = torch.sqrt(xx ** 2 + yy ** 2)
    return torch.log2(r.clamp_min(1e-12)), torch.atan2(yy, xx)


def _hi_lo(log_r: torch.Tensor, edge: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Raised-cosine radial split, transition over log2 r in [edge - 1, edge]; hi^2 + lo^2 = 1."""
    t = (edge - log_r).clamp(0, 1)
    return torch.cos(math.pi / 2 * t), torch.sin(math.pi / 2 * t)


def steerable_pyramid(img: torch.Tensor, scales: int = PYR_SCALES,
                      bands: int = PYR_BANDS) -> Tuple[torch.Tensor, List[List[torch.Tensor]]]:
    """Real steerable pyramid in the Fourier domain (Simoncelli/Portilla construction, tight frame).

    Returns the high-pass residual (N, H, W) and ``scales`` lists of ``bands`` oriented real bands; scale s
    has size ceil(H / 2^s) x ceil(W / 2^s). The constant (DC) part of the image reaches no band.
    """
    n, h, w = img.shape
    spec = torch.fft.fft2(img)
    log_r, ang = _radial_angle(h, w, img.device, img.dtype)
    hi0, lo0 = _hi_lo(log_r, 0.0)
    hi0[0, 0] = 0.0  # exact zero at DC (cos(pi/2) is not 0 in floating point)
    high = torch.fft.ifft2(spec * hi0).real
    lo = spec * lo0
    order = bands - 1
    alpha = 2 ** order * math.factorial(order) / math.sqrt(bands * math.factorial(2 * order))
    out: List[List[torch.Tensor]] = []
    for _ in range(scales):
        hh, ww = lo.shape[-2:]
        log_r, ang = _radial_angle(hh, ww, img.device, img.dtype)
        hi_m, lo_m = _hi_lo(log_r, -1.0)
        hi_m[0, 0] = 0.0
        level = []
        for b in range(bands):
            a = torch.cos(ang - math.pi * b / bands).abs() ** order * alpha
            level.append(torch.fft.ifft2(lo * (hi_m * a)).real)
        out.append(level)
        lo = lo * lo_m
        # keep the central half of the spectrum: a 2x downsampled low-pass
        lo = torch.fft.fftshift(lo, dim=(-2, -1))
        ch, cw = (hh + 1) // 2, (ww + 1) // 2
        y0, x0 = hh // 2 - ch // 2, ww // 2 - cw // 2
        lo = torch.fft.ifftshift(lo[..., y0:y0 + ch, x0:x0 + cw], dim=(-2, -1)) / 4
    return high, out


def _resize(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.unsqueeze(1), size=size, mode='bicubic', align_corners=False)[:, 0]


def _gsm_normalise(pyr: List[List[torch.Tensor]]) -> List[torch.Tensor]:
    """Divisive normalisation of each band by its GSM multiplier estimated from a 3x3 neighbourhood, the
    parent (next coarser band, same orientation, resized) and the other orientations at the same spot."""
    out = []
    for s, level in enumerate(pyr):
        for b, band in enumerate(level):
            n, h, w = band.shape
            nb = F.unfold(band.unsqueeze(1), 3).transpose(1, 2)  # N, (h-2)(w-2), 9
            extra = []
            if s + 1 < len(pyr):
                extra.append(_resize(pyr[s + 1][b], (h, w))[:, 1:-1, 1:-1])
            extra += [level[o][:, 1:-1, 1:-1] for o in range(len(level)) if o != b]
            vec = torch.cat([nb] + [e.reshape(n, -1, 1) for e in extra], dim=2)
            dim = vec.shape[2]
            cov = vec.transpose(1, 2) @ vec / vec.shape[1]
            ev, q = torch.linalg.eigh(cov)
            pos = ev.clamp_min(0)
            ev = pos * ev.sum(-1, keepdim=True) / torch.where(pos.sum(-1, keepdim=True) > 0,
                                                              pos.sum(-1, keepdim=True), torch.ones_like(pos[:, :1]))
            inv = torch.linalg.pinv(q @ torch.diag_embed(ev) @ q.transpose(1, 2), hermitian=True)
            z = torch.sqrt(((vec @ inv) * vec).sum(-1) / dim)
            centre = band[:, 1:-1, 1:-1].reshape(n, -1)
            centre = centre - centre.mean(1, keepdim=True)
            g = torch.where(z > 0, centre / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(z))
            g = g.reshape(n, h - 2, w - 2)
            gb = GUARDBAND // 2 ** s
            g = g[:, gb:g.shape[1] - gb, gb:g.shape[2] - gb]
            out.append(g - g.mean(dim=(1, 2), keepdim=True))
    return out


@lru_cache(maxsize=2)
def _ssim_taps() -> np.ndarray:
    ax = np.arange(11) - 5
    g = np.exp(-ax ** 2 / (2 * 1.5 ** 2))
    return g / g.sum()


def _gauss_filter(x: torch.Tensor) -> torch.Tensor:
    """Valid 11x11 Gaussian (sigma 1.5) filtering of (..., H, W) in float32: two 1-D passes of shifted sums
    (faster than ``conv2d`` with a 1-D kernel on the CPU)."""
    taps = [float(t) for t in _ssim_taps()]
    x = x.float()
    h, w = x.shape[-2:]
    y = x[..., 0:h - 10, :] * taps[0]
    for k in range(1, 11):
        y.add_(x[..., k:h - 10 + k, :], alpha=taps[k])
    z = y[..., 0:w - 10] * taps[0]
    for k in range(1, 11):
        z.add_(y[..., k:w - 10 + k], alpha=taps[k])
    return z


def ssim_batch(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, K = 0.01 / 0.03, valid region).

    ``a`` (N, K, H, W) or (N, H, W); ``b`` broadcastable to it (its moments are computed once): returns (N, K)
    or (N,). The Gaussian is separable and applied in float32 (two 1-D passes).
    """
    squeeze = a.ndim == 3
    if squeeze:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mb = _gauss_filter(torch.stack([b, b * b], dim=0))
    ma = _gauss_filter(torch.stack([a, a * a, a * b], dim=0))
    mx, my = ma[0], mb[0]
    sxx, syy, sxy = ma[1] - mx ** 2, mb[1] - my ** 2, ma[2] - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    s = s.mean(dim=(-2, -1))
    return s[:, 0] if squeeze else s


def _gsm_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 45) steerable-pyramid GSM features of (N, H, W) Y in [0, 255]."""
    n = img.shape[0]
    high, pyr = steerable_pyramid(img)
    sub = _gsm_normalise(pyr)
    feats = [ggd_shape(s.reshape(n, -1)) for s in sub]
    for b in range(PYR_BANDS):
        feats.append(ggd_shape(torch.cat([sub[b].reshape(n, -1), sub[b + PYR_BANDS].reshape(n, -1)], dim=1)))
    size = tuple(high.shape[-2:])
    resized = torch.stack([_resize(s, size) for s in sub], dim=1)  # N, 12, H, W
    feats += list(ssim_batch(resized, high.unsqueeze(1)).unbind(1))
    pairs = [(i, j) for i in range(PYR_BANDS) for j in range(i + 1, PYR_BANDS)]
    first = torch.stack([sub[i] for i, _ in pairs], dim=1)
    second = torch.stack([sub[j] for _, j in pairs], dim=1)
    feats += list(ssim_batch(first, second).unbind(1))
    return torch.stack(feats, dim=1)


# ------------------------------------------------------------------------------------------ public API
def ma_features_batch(y: Images, device: Optional[Union[str, torch.device]] = None) -> Dict[str, np.ndarray]:
    """Features of a batch of Y images (N, H, W) in [0, 255]: {'dct': (N, 18), 'gsm': (N, 45), 'svd': (N, 75)}."""
    t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(y))
    t = t.to(device=device if device is not None else t.device, dtype=torch.float64)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    with torch.inference_mode():
        pyr = _gauss_pyramid(t / 255.0)
        dct = torch.cat([_dct_scale_features(p) for p in pyr], dim=1)
        svd = torch.cat([_svd_scale_features(p) for p in pyr], dim=1)
        # float32 for speed, one image at a time so that a score never depends on the batch it is in
        gsm = torch.cat([_gsm_features(t[i:i + 1].float()) for i in range(t.shape[0])]).double()
    return {'dct': dct.cpu().numpy(), 'gsm': gsm.cpu().numpy(), 'svd': svd.cpu().numpy()}


def ma_features(y: Images) -> Dict[str, np.ndarray]:
    """Features of one Y image (H, W) in [0, 255]: {'dct': (18,), 'gsm': (45,), 'svd': (75,)}."""
    feats = ma_features_batch(np.asarray(y)[None] if isinstance(y, np.ndarray) else y.unsqueeze(0))
    return {k: v[0] for k, v in feats.items()}


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
