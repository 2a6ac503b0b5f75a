"""The batched torch NIQE against BasicSR's ``calculate_niqe`` (natural and SR-like patches, CPU)."""
import ranksrgan_plugin  # noqa: F401  (compat alias before basicsr; registers the metric)

# isort: split
import importlib

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric
from basicsr.metrics.niqe import calculate_niqe
from basicsr.utils.registry import METRIC_REGISTRY
from skimage import data as skdata

from ranksrgan_plugin.iqa import niqe_batch
from ranksrgan_plugin.metrics import calculate_niqe_batched

# The modules themselves.
nb = importlib.import_module('ranksrgan_plugin.iqa.niqe')
sums = importlib.import_module('ranksrgan_plugin.iqa.numpy1_sums')

# Measured agreement is ~5e-6 (bit-identical features, see docs/niqe.md); 1e-4 still catches any
# drift in the float32 steps (e.g. a resize by matmul instead of BasicSR's mv calls gives ~2e-3).
TOL = 1e-4
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'camera')
DEGRADATIONS = ('none', 'bicubic', 'nearest', 'blur', 'noise', 'jpeg')
# (height, width, crop_border, count): the paper's 296x296 rank patches, other sizes, a single block.
CONFIGS = ((296, 296, 4, 12), (192, 192, 0, 4), (200, 300, 0, 4), (104, 104, 4, 2))


def _photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    return np.ascontiguousarray(img[..., ::-1])  # RGB -> BGR, like cv2 / BasicSR


def _degrade(patch: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """SR-like versions of a patch: x4 bicubic / x2 nearest re-upscaling, blur, noise, JPEG."""
    h, w = patch.shape[:2]
    if kind == 'bicubic':
        small = cv2.resize(patch, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if kind == 'nearest':
        small = cv2.resize(patch, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if kind == 'blur':
        return cv2.GaussianBlur(patch, (0, 0), 1.5)
    if kind == 'noise':
        return np.clip(patch + rng.normal(0, 8, patch.shape), 0, 255).astype(np.uint8)
    if kind == 'jpeg':
        return cv2.imdecode(cv2.imencode('.jpg', patch, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_COLOR)
    return patch


def _patches(h: int, w: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = _photo(PHOTOS[(seed + i) % len(PHOTOS)])
        y, x = rng.integers(0, img.shape[0] - h + 1), rng.integers(0, img.shape[1] - w + 1)
        out.append(_degrade(img[y:y + h, x:x + w], DEGRADATIONS[i % len(DEGRADATIONS)], rng))
    return np.stack(out)


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    """Scores do not depend on the thread count; one thread keeps the timing stable on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def cases():
    """[(uint8 BGR batch, crop_border, BasicSR scores)] for every configuration."""
    out = []
    for h, w, crop, count in CONFIGS:
        batch = _patches(h, w, count, seed=h + w)
        out.append((batch, crop, np.array([calculate_niqe(img, crop) for img in batch])))
    return out


def test_matches_basicsr(cases):
    for batch, crop, expected in cases:
        got = niqe_batch(batch, crop)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL, err_msg=f'{batch.shape}, crop_border={crop}')


def test_non_integer_float_input_matches_basicsr():
    batch = _patches(192, 288, 2, seed=7).astype(np.float64)
    batch = cv2.GaussianBlur(batch.reshape(-1, 288, 3), (0, 0), 0.8).reshape(batch.shape) * 0.9 + 7.3
    expected = [calculate_niqe(img, 0) for img in batch]
    np.testing.assert_allclose(niqe_batch(batch), expected, rtol=0, atol=TOL)


def test_exact_numpy_means_give_identical_features(cases, monkeypatch):
    """With every block's one-sided means taken from NumPy, the features are BasicSR's bit for bit."""
    monkeypatch.setattr(nb, '_RHATNORM_REL_TOL', 1.0)
    batch, crop, expected = cases[0]
    np.testing.assert_allclose(niqe_batch(batch[:3], crop), expected[:3], rtol=0, atol=1e-9)


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) >= '2.0.0', reason='emulates NumPy 1.x summation')
@pytest.mark.parametrize('n', [9216, 2304, 100, 7])
def test_float32_sums_follow_numpy(n):
    """The block means: NumPy's float32 pairwise summation order, full rows and sign-selected elements."""
    rng = np.random.default_rng(n)
    x = (rng.normal(size=(64, n)) * rng.uniform(0.1, 3, size=(64, 1)) + rng.normal(size=(64, 1))).astype(np.float32)
    x[0], x[1], x[2] = np.abs(x[0]), -np.abs(x[1]), 0  # no negatives, no positives, all zeros
    x[3, ::3] = 0
    mean_neg, mean_pos = sums.exact_one_sided_means(torch.from_numpy(x))
    with np.errstate(invalid='ignore'), pytest.warns(RuntimeWarning):
        expected = np.array([[np.mean(r[r < 0] ** 2), np.mean(r[r > 0] ** 2)] for r in x])
    np.testing.assert_array_equal(torch.stack([mean_neg, mean_pos], 1).numpy(), expected)
    if n in (9216, 2304):  # the block sizes of the two scales
        np.testing.assert_array_equal(sums.numpy_sum32(torch.from_numpy(x * x)).numpy(), np.add.reduce(x * x, axis=1))


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) >= '2.0.0', reason='emulates NumPy 1.x summation')
def test_torch_sums_follow_numpy():
    """The torch emulation of NumPy's float32 row sums (used off the CPU) against NumPy's own, per row."""
    rng = np.random.default_rng(3)
    for n in (9216, 2304):
        x = (rng.normal(size=(32, n)) * np.exp(rng.uniform(-6, 6, size=(32, n)))).astype(np.float32) ** 2
        expected = np.array([np.add.reduce(r) for r in x])
        np.testing.assert_array_equal(sums.numpy_sum32_torch(torch.from_numpy(x)).numpy(), expected)
        np.testing.assert_array_equal(sums.numpy_sum32(torch.from_numpy(x)).numpy(), expected)


def test_sign_counts_are_exact():
    """Counts of negative / positive values (the CPU's byte-lane sums), with zeros and negative zeros."""
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.normal(size=(8, 9216)).astype(np.float32))
    x[:, ::7] = 0
    x[1], x[2], x[3] = -0.0, 1, -1
    for rows in (x, x[:, :2304].contiguous(), x[:, :9215].contiguous()):
        neg, pos = nb._sign_counts(rows)
        np.testing.assert_array_equal(neg.numpy(), (rows < 0).sum(1).numpy())
        np.testing.assert_array_equal(pos.numpy(), (rows > 0).sum(1).numpy())


def test_layouts_and_dtypes_agree(cases):
    batch, crop, _ = cases[0]
    batch = batch[:4]
    ref = niqe_batch(batch, crop)
    chw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    variants = [
        niqe_batch(chw, crop, input_order='CHW'),
        niqe_batch(batch.astype(np.float32), crop),
        niqe_batch(batch.astype(np.float64), crop),
        niqe_batch(torch.from_numpy(batch), crop),
        niqe_batch(torch.from_numpy(chw).float(), crop, input_order='CHW'),
        niqe_batch(list(batch), crop),
    ]
    for got in variants:
        np.testing.assert_array_equal(got, ref)


def test_batch_equals_one_by_one(cases):
    batch, crop, _ = cases[0]
    batch = batch[:5]
    ref = niqe_batch(batch, crop)
    np.testing.assert_array_equal(np.concatenate([niqe_batch(img[None], crop) for img in batch]), ref)
    np.testing.assert_array_equal(niqe_batch(batch, crop, batch_size=2), ref)


def test_worker_threads_give_the_same_scores(cases):
    """With several torch threads the CPU path splits the batch over single-threaded worker threads."""
    batch, crop, _ = cases[0]
    ref = niqe_batch(batch, crop)  # one thread: no workers
    assert nb._cpu_tasks(len(batch), 64, 2) == [(0, 6), (6, 12)]
    torch.set_num_threads(2)
    try:
        np.testing.assert_array_equal(niqe_batch(batch, crop), ref)
        np.testing.assert_array_equal(niqe_batch(batch, crop, batch_size=5), ref)
        np.testing.assert_array_equal(niqe_batch(batch[:1], crop), ref[:1])  # one task, one worker
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_gray_and_single_channel_match_basicsr(cases):
    batch, crop, _ = cases[1]
    batch = batch[:2]
    expected = [calculate_niqe(img, crop, convert_to='gray') for img in batch]
    np.testing.assert_allclose(niqe_batch(batch, crop, convert_to='gray'), expected, rtol=0, atol=TOL)
    y = batch[..., 1]
    expected = [calculate_niqe(img, crop, input_order='HW') for img in y]
    np.testing.assert_allclose(niqe_batch(y, crop, input_order='HW'), expected, rtol=0, atol=TOL)


def test_registered_metric_matches_basicsr(cases):
    assert METRIC_REGISTRY.get('calculate_niqe_batched') is calculate_niqe_batched
    batch, crop, expected = cases[0]
    img = batch[1]
    got = calculate_metric({'img': img}, {'type': 'calculate_niqe_batched', 'crop_border': crop})
    assert isinstance(got, float)
    assert got == pytest.approx(expected[1], abs=TOL)
    chw = np.ascontiguousarray(img.transpose(2, 0, 1))
    assert calculate_niqe_batched(chw, crop, input_order='CHW') == got


@pytest.mark.parametrize('shape, crop', [((2, 100, 100, 3), 4), ((2, 95, 300, 3), 0), ((1, 300, 90, 3), 0)])
def test_too_small_raises(shape, crop):
    with pytest.raises(ValueError, match='too small'):
        niqe_batch(np.zeros(shape, dtype=np.uint8), crop)


def test_bad_inputs_raise():
    img = np.zeros((96, 96, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='equal shapes'):
        niqe_batch([img, np.zeros((96, 128, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match='input_order'):
        niqe_batch(img[None], input_order='NHWC')
    with pytest.raises(ValueError, match='convert_to'):
        niqe_batch(img[None], convert_to='rgb')
    with pytest.raises(ValueError, match='channels'):
        niqe_batch(np.zeros((1, 96, 96, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match='gray'):
        niqe_batch(np.zeros((1, 96, 96), dtype=np.uint8), convert_to='gray')
