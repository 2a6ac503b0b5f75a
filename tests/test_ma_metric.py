"""Ma et al.'s metric and PI: model.mat reading, forests, features (analytic cases), API and registration."""
import importlib
import json
import math

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from tool_loader import load_tool

from ranksrgan_plugin import iqa
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset
from ranksrgan_plugin.metrics import calculate_ma, calculate_pi
from ranksrgan_plugin.rank_dataset.patch_metrics import (
    PATCH_METRIC_REGISTRY,
    MaPatchMetric,
    PIPatchMetric,
    build_patch_metric,
)

# The modules themselves (the package exports a function named ma_features).
MF = importlib.import_module('ranksrgan_plugin.iqa.ma_features')
MM = importlib.import_module('ranksrgan_plugin.iqa.ma_model')

INTERIOR, LEAF = -3, -1
LINEAR = np.array([[1.5], [0.5], [-0.25], [2.0]])


def _forest(split_dim: int) -> dict:
    """Two trees: tree 1 splits x[split_dim] <= 0.5 -> 1.0 else 3.0; tree 2 is a single leaf 5.0."""
    ldau = np.array([[2, 0], [0, 0], [0, 0]], dtype=np.float64)
    rdau = np.array([[3, 0], [0, 0], [0, 0]], dtype=np.float64)
    status = np.array([[INTERIOR, LEAF], [LEAF, 0], [LEAF, 0]], dtype=np.float64)
    upper = np.array([[0.5, 0], [0, 0], [0, 0]])
    avnode = np.array([[0, 5.0], [1.0, 0], [3.0, 0]])
    mbest = np.array([[split_dim + 1, 0], [0, 0], [0, 0]], dtype=np.float64)
    return {'lDau': ldau, 'rDau': rdau, 'nodestatus': status, 'upper': upper, 'avnode': avnode, 'mbest': mbest,
            'ndtree': np.array([[3], [1]], dtype=np.float64), 'nrnodes': 3.0, 'ntree': 2.0}


def _write_model(path, linear: np.ndarray = LINEAR) -> str:
    rf = np.empty((3, 1), dtype=object)
    for i, dim in enumerate((2, 10, 24)):  # split on dct[2], gsm[10], svd[24]
        rf[i, 0] = _forest(dim)
    scipy.io.savemat(str(path), {'model': {'rf': rf, 'linear': linear}})
    return str(path)


@pytest.fixture()
def model_path(tmp_path):
    return _write_model(tmp_path / 'model.mat')


def _hand_score(feats):
    s = [((1.0 if feats[g][d] <= 0.5 else 3.0) + 5.0) / 2 for g, d in (('dct', 2), ('gsm', 10), ('svd', 24))]
    return float(LINEAR[0, 0] + LINEAR[1, 0] * s[0] + LINEAR[2, 0] * s[1] + LINEAR[3, 0] * s[2])


def _photo(h=128, w=128, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 8, (h, w))
    return np.clip(img, 0, 255).round()


# ------------------------------------------------------------------------------------------- model
def test_synthetic_model_loads_and_gives_hand_computed_scores(model_path):
    model = MM.load_ma_model(model_path)
    assert len(model.forests) == 3 and model.forests[0].ntree == 2
    np.testing.assert_array_equal(model.linear, LINEAR[:, 0])
    feats = {'dct': np.zeros(18), 'gsm': np.zeros(45), 'svd': np.zeros(75)}
    feats['dct'][2], feats['gsm'][10], feats['svd'][24] = 0.2, 0.9, 0.5  # left, right, left (<= is left)
    # forests: (1+5)/2 = 3, (3+5)/2 = 4, 3 -> 1.5 + 0.5*3 - 0.25*4 + 2*3 = 8.0
    assert model.predict(feats)[0] == pytest.approx(8.0)
    assert _hand_score(feats) == pytest.approx(8.0)
    batch = {k: np.stack([v, v + 1.0]) for k, v in feats.items()}  # second sample: all right -> 1.5+2-1+8 = 10.5
    np.testing.assert_allclose(model.predict(batch), [8.0, 10.5])


def test_a_model_with_other_linear_weights_is_flagged(tmp_path, model_path, caplog, monkeypatch):
    import logging

    from basicsr.utils import get_root_logger

    monkeypatch.setattr(get_root_logger(), 'propagate', True)  # BasicSR's logger does not propagate to caplog
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        MM.load_ma_model(model_path)
    assert "differs from the authors' model.mat" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        MM.load_ma_model(model_path)  # the same file again: loaded once, flagged once
    assert 'differs' not in caplog.text
    authors = _write_model(tmp_path / 'authors.mat', np.array(MM.AUTHORS_LINEAR)[:, None])
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        MM.load_ma_model(authors)
    assert 'differs' not in caplog.text


def test_forest_depth_and_mbest_indexing():
    # a depth-2 tree: x[0] <= 0 ? (x[1] <= 10 ? 7 : 8) : 9
    f = MM.RegressionForest(lDau=np.array([2, 4, 0, 0, 0]), rDau=np.array([3, 5, 0, 0, 0]),
                           nodestatus=np.array([INTERIOR, INTERIOR, LEAF, LEAF, LEAF]),
                           upper=np.array([0.0, 10.0, 0, 0, 0]), avnode=np.array([0, 0, 9.0, 7.0, 8.0]),
                           mbest=np.array([1, 2, 0, 0, 0]))
    x = np.array([[-1, 5], [-1, 11], [1, 0], [0, 10]], dtype=float)
    np.testing.assert_array_equal(f.predict(x), [7, 8, 9, 7])
    with pytest.raises(ValueError):
        f.predict(np.zeros((1, 1)))


def _as_matlab_char(status: np.ndarray) -> np.ndarray:
    """int8 statuses packed two per character in the first half of a char matrix, as the authors' training MEX
    leaves them in model.mat (the unused half is filled with spaces here: scipy cannot write NUL characters)."""
    raw = status.astype(np.int8).tobytes(order='F')
    raw += b' ' * (2 * status.size - len(raw))
    codes = np.frombuffer(raw, dtype='<u2').reshape(status.shape, order='F')
    return np.array([''.join(map(chr, row)) for row in codes])  # one string per row: a MATLAB char matrix


def test_real_model_layout_char_nodestatus_and_bias_correction(tmp_path):
    forest = _forest(2)
    forest['nodestatus'][1:, 1] = LEAF  # unused nodes as leaves: no zero byte pairs (NUL characters)
    forest['nodestatus'] = _as_matlab_char(forest['nodestatus'])
    corrected = dict(_forest(10), coef=np.array([[1.0], [2.0]]))  # y = 1 + 2 * mean over trees
    rf = np.empty((3, 1), dtype=object)
    rf[0, 0], rf[1, 0], rf[2, 0] = forest, corrected, dict(_forest(24), coef=np.zeros((2, 1)))
    path = tmp_path / 'model.mat'
    scipy.io.savemat(str(path), {'model': {'rf': rf, 'linear': LINEAR}})
    model = MM.load_ma_model(path)
    np.testing.assert_array_equal(model.forests[0].status[:, 0], [INTERIOR, LEAF, LEAF])
    np.testing.assert_array_equal(model.forests[0].status[:, 1], [LEAF, LEAF, LEAF])
    assert model.forests[0].predict(np.array([[0, 0, 0.2]]))[0] == pytest.approx((1.0 + 5.0) / 2)
    x = np.zeros((1, 45))
    assert model.forests[1].predict(x)[0] == pytest.approx(1 + 2 * (1.0 + 5.0) / 2)
    assert model.forests[2].coef is None
    # a status that contradicts the tree structure (leaf <=> lDau == 0) is reported, not used
    bad = _forest(2)
    bad['nodestatus'][0, 0] = LEAF
    rf[0, 0] = bad
    scipy.io.savemat(str(tmp_path / 'bad.mat'), {'model': {'rf': rf, 'linear': LINEAR}})
    with pytest.raises(ValueError, match='nodestatus does not match lDau'):
        MM.load_ma_model(tmp_path / 'bad.mat')


def test_ma_score_equals_forests_on_real_features(model_path):
    y = _photo()
    feats = MF.ma_features(y)
    assert iqa.ma_score(y, crop_border=0, model=model_path, input_order='HW') == pytest.approx(_hand_score(feats))


def test_missing_model_error_names_file_source_and_place(tmp_path, monkeypatch):
    monkeypatch.delenv(MM.MODEL_ENV, raising=False)
    monkeypatch.setattr(MM, 'DEFAULT_MODEL_PATH', tmp_path / 'nowhere' / 'model.mat')
    with pytest.raises(FileNotFoundError) as err:
        MM.load_ma_model()
    msg = str(err.value)
    assert 'model.mat' in msg and 'chaoma99/sr-metric' in msg and MM.MODEL_ENV in msg and 'nowhere' in msg
    with pytest.raises(FileNotFoundError, match='model.mat'):
        MM.load_ma_model(tmp_path / 'missing.mat')
    with pytest.raises(FileNotFoundError, match='sr-metric'):
        calculate_ma(np.zeros((64, 64, 3), np.uint8), crop_border=4)


def test_model_from_env_and_cache(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv(MM.MODEL_ENV, model_path)
    assert MM.load_ma_model().linear[0] == 1.5
    monkeypatch.delenv(MM.MODEL_ENV)
    cache = tmp_path / 'cache' / 'model.mat'
    cache.parent.mkdir()
    _write_model(cache)
    monkeypatch.setattr(MM, 'DEFAULT_MODEL_PATH', cache)
    assert MM.load_ma_model().path == str(cache.resolve())


# ---------------------------------------------------------------------------------------- features
def test_feature_sizes_per_group_and_scale():
    assert MF.FEATURE_SIZES == {'dct': 18, 'gsm': 45, 'svd': 75}
    for h, w in ((96, 96), (101, 77)):
        f = MF.ma_features(_photo(h, w))
        assert {k: v.shape for k, v in f.items()} == {'dct': (18,), 'gsm': (45,), 'svd': (75,)}
        assert all(np.isfinite(v).all() for v in f.values())
    pyr = MF.gauss_pyramid(torch.zeros(1, 101, 77))
    assert [tuple(p.shape[1:]) for p in pyr] == [(101, 77), (50, 38), (25, 19)]


def test_deterministic_and_batch_equals_single():
    imgs = np.stack([_photo(seed=1), _photo(seed=2)])
    a, b = MF.ma_features_batch(imgs), MF.ma_features_batch(imgs)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_allclose(a[k][1], MF.ma_features(imgs[1])[k], rtol=1e-9, atol=1e-9)


def test_batched_path_equals_one_image_at_a_time():
    # every step is batched over the images of a chunk (the CUDA default: the whole batch); on the CPU the default
    # chunk is one image. Chunks of 3 and 2 over 4 different images (the last chunk partial) give the per-image values.
    imgs = np.stack([_photo(100, 90, seed=s) for s in range(3)] + [_photo(100, 90, seed=9)[::-1].copy()])
    single = MF.ma_features_batch(imgs, chunk=1)
    for chunk in (3, 2):
        batched = MF.ma_features_batch(imgs, chunk=chunk)
        for k in single:
            np.testing.assert_allclose(batched[k], single[k], rtol=1e-11, atol=1e-13)
    for i in range(len(imgs)):
        for k in single:
            np.testing.assert_allclose(single[k][i], MF.ma_features(imgs[i])[k], rtol=1e-11, atol=1e-13)
    assert MF.default_chunk((8, 296, 296), torch.device('cpu')) == 1
    assert MF.default_chunk((8, 296, 296), torch.device('cuda')) >= 8


def test_gsm_normalisation_routes_agree():
    # the CPU's triangular solve (full-rank covariances) and the eigen-decomposition route (used on CUDA, and for
    # rank-deficient covariances) give the same normalised band
    y = torch.from_numpy(_photo(96, 96, seed=4))[None]
    _, levels = MF._steerable_pyramid(y)
    parents = MF._parents(levels)
    bands = list(levels[0].unbind(1))
    for parent in (parents[0][:, 0], None):
        tri = MF._normalise_band(bands[0], parent, bands[1:], 16, triangular=True)
        eig = MF._normalise_band(bands[0], parent, bands[1:], 16, triangular=False)
        np.testing.assert_allclose(tri.numpy(), eig.numpy(), rtol=1e-9, atol=1e-11)
    flat = torch.zeros(1, 40, 40, dtype=torch.float64)  # all-zero covariance: z = 0, output 0 on both routes
    for triangular in (True, False):
        assert float(MF._normalise_band(flat, None, [flat] * 5, 4, triangular=triangular).abs().max()) == 0


def test_gauss_pyramid_zero_padding_like_imfilter():
    # imfilter pads with zeros: a constant image stays constant inside, its last row/column (the kept pixels
    # 2:2:end reach the edge of an even-sized image) keeps the kernel's two inner rows, a + b, of its weight
    c = 100.0
    taps = np.exp(-np.arange(-1, 2) ** 2 / 0.5)
    a, b = taps[0] / taps.sum(), taps[1] / taps.sum()
    level = MF.gauss_pyramid(torch.full((1, 80, 80), c, dtype=torch.float64))[1][0].numpy()
    assert level.shape == (40, 40)
    np.testing.assert_allclose(level[:-1, :-1], c, rtol=1e-12)
    np.testing.assert_allclose(level[-1, :-1], c * (a + b), rtol=1e-12)
    assert level[-1, -1] == pytest.approx(c * (a + b) ** 2, rel=1e-12)


def test_svd_features_flat_and_rank_one():
    c = 100.0
    # constant image: every 5x5 patch is c/255 -> rank 1, sigma_1 = c/255 * 5 * sqrt(#patches)
    s0 = MF.svd_features(torch.full((1, 80, 80), c / 255, dtype=torch.float64))[0].numpy()
    assert s0[0] == pytest.approx(c / 255 * 5 * math.sqrt(256), rel=1e-9)
    assert np.abs(s0[1:]).max() < 1e-5
    # a periodic image whose every 5x5 patch is u v^T: one singular value |u||v| sqrt(#patches)
    u, v = np.arange(1, 6, dtype=float), np.array([2.0, 0, 1, 3, 1])
    img = np.tile(np.outer(u, v), (8, 8))
    s0 = MF.svd_features(torch.from_numpy(img)[None])[0].numpy()
    assert s0[0] == pytest.approx(np.linalg.norm(u) * np.linalg.norm(v) * 8, rel=1e-9)
    assert np.abs(s0[1:]).max() < 1e-5
    assert np.all(np.diff(s0) <= 1e-9)  # descending
    # im2col 'distinct' zero-pads a 7x7 image to 10x10: 4 patches, the constant 7x7 has sigma_1^2 = 49 c^2
    s0 = MF.svd_features(torch.full((1, 7, 7), 2.0, dtype=torch.float64))[0].numpy()
    assert (s0 ** 2).sum() == pytest.approx(49 * 4.0, rel=1e-9)  # Frobenius norm: the zeros add nothing


def test_dct_blocks_follow_blkproc():
    # blkproc(I, [3 3], [2 2], fun): ceil(h/3) x ceil(w/3) blocks of 7x7, a zero border of 2 around the image
    blocks = MF._dct_blocks(torch.ones(1, 10, 8, dtype=torch.float64))
    assert blocks.shape == (1, 4 * 3, 7, 7)
    first, last = blocks[0, 0].numpy(), blocks[0, -1].numpy()
    assert first[:2].sum() == 0 and first[:, :2].sum() == 0 and first[2:, 2:].min() == 1
    # the last block covers rows 9..15 and columns 6..12 of the padded image: image rows 7..9, columns 4..7
    assert last.sum() == 3 * 4 and last[:3, :4].min() == 1


def test_dct_features_black_image():
    # no AC energy in any block: GGD shape is the table's largest g (rho = 0 is nearest r(10)), cv and orientation 0
    f = MF.ma_features(np.zeros((64, 64)))['dct'].reshape(3, 6)
    np.testing.assert_allclose(f[:, :2], 10.0, atol=1e-9)
    np.testing.assert_allclose(f[:, 2:], 0, atol=1e-9)


def test_dct_features_white_gaussian_noise():
    # orthonormal DCT of i.i.d. Gaussian pixels: i.i.d. Gaussian AC coefficients of equal variance, so
    # std|x| / mean|x| = sqrt(pi/2 - 1) in every block and the three orientation groups agree
    noise = np.random.default_rng(0).normal(0, 1, (1, 400, 400))
    f = MF.dct_features(torch.from_numpy(noise))[0].numpy()
    assert f[3] == pytest.approx(math.sqrt(math.pi / 2 - 1), abs=0.01)
    assert f[5] < 0.05  # sample noise only (about 16 coefficients per group)
    xx = np.arange(400)[None, None, :]
    stripes = noise * 0.1 + np.cos(2 * np.pi * xx / 5.0)  # energy in the horizontal-frequency group only
    assert MF.dct_features(torch.from_numpy(stripes))[0, 5].item() > 10 * f[5]
    assert f[1] == pytest.approx(2.0, abs=0.35)  # GGD shape of Gaussian samples (48 per block: biased, noisy)


def test_ggd_shape_known_values_and_nearest_table_entry():
    rng = np.random.default_rng(0)
    gauss = torch.from_numpy(rng.normal(size=(1, 400_000)))
    lap = torch.from_numpy(rng.laplace(size=(1, 400_000)))
    assert MF.ggd_shape(gauss).item() == pytest.approx(2.0, abs=0.03)
    assert MF.ggd_shape(lap).item() == pytest.approx(1.0, abs=0.03)
    # gama_gen_gauss: [~, idx] = min(abs(r - rho)) over g = 0.03:0.001:10, checked against a brute-force search
    g, r = MF._ggd_table()
    samples = torch.from_numpy(np.concatenate([rng.standard_t(d, size=(40, 48)) for d in (1, 3, 30)]))
    rho = (samples.var(-1) / ((samples - samples.mean(-1, keepdim=True)).abs().mean(-1) ** 2 + 1e-7)).numpy()
    expected = g[np.abs(r[None, :] - rho[:, None]).argmin(1)]
    np.testing.assert_array_equal(MF.ggd_shape(samples).numpy(), expected)
    x = torch.tensor([[1.0, -3.0]], dtype=torch.float64)  # |x| = 1, 3: std (unbiased) sqrt(2), mean 2
    assert MF.coeff_variation(x).item() == pytest.approx(math.sqrt(2) / (2 + 1e-7), rel=1e-12)


def test_dct_orientation_masks_partition_and_symmetry():
    m = MF._orientation_masks()
    assert m.shape == (3, 7, 7) and not m[:, 0, 0].any()
    np.testing.assert_array_equal(m[2], m[0].T)
    assert not (m[0] & m[1]).any() and not (m[0] & m[2]).any() and not (m[1] & m[2]).any()
    assert m[1].sum() == 16 and m[0].sum() == 6 + 5 + 3 + 2
    ac = np.ones((7, 7), bool)
    ac[0, 0] = False
    np.testing.assert_array_equal(m.any(0), ac)  # the three groups partition the 48 AC coefficients


def test_dct_matrix_orthonormal():
    d = MF._dct_matrix(7)
    np.testing.assert_allclose(d @ d.T, np.eye(7), atol=1e-12)


def test_steerable_pyramid_flat_image_and_orientation():
    high, bands = MF.steerable_pyramid(torch.full((1, 64, 64), 50.0, dtype=torch.float64))
    assert float(high.abs().max()) < 1e-9 and all(float(b.abs().max()) < 1e-9 for lv in bands for b in lv)
    assert [tuple(b.shape[1:]) for b in bands[0]] == [(64, 64)] * 6 and tuple(bands[1][0].shape[1:]) == (32, 32)
    odd = MF.steerable_pyramid(torch.zeros(1, 63, 61, dtype=torch.float64))[1]
    assert tuple(odd[1][0].shape[1:]) == (32, 31)  # ceil((n - 0.5) / 2)
    # an oriented grating at a mid frequency: the band of its orientation dominates the finest scale
    yy, xx = np.mgrid[:64, :64]
    grating = torch.from_numpy(np.cos(2 * np.pi * 12 * xx / 64.0))[None]  # horizontal frequency, 0.375 of Nyquist
    _, bands = MF.steerable_pyramid(grating)
    energy = [float((b ** 2).sum()) for b in bands[0]]
    assert int(np.argmax(energy)) == 0 and energy[0] > 10 * energy[3]


def test_matlab_resize_matches_basicsr_imresize():
    from basicsr.utils.matlab_functions import imresize

    x = np.random.default_rng(0).uniform(0, 1, (9, 13))
    ours = iqa.matlab_resize(torch.from_numpy(x)[None], scale=2)[0].numpy()
    theirs = imresize(torch.from_numpy(x).float()[None], 2).numpy()[0]  # MATLAB bicubic, float32
    assert ours.shape == (18, 26)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    flat = torch.full((1, 5, 7), 3.0, dtype=torch.float64)
    np.testing.assert_allclose(iqa.matlab_resize(flat, size=(9, 14)).numpy(), 3.0, rtol=1e-12)


def test_contrast_structure_identical_independent_and_pairwise():
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 100, size=(2, 40, 40)))
    np.testing.assert_allclose(MF.contrast_structure(x, x).numpy(), 1.0, rtol=1e-12)
    other = torch.from_numpy(np.random.default_rng(1).normal(0, 100, size=(2, 40, 40)))
    assert abs(float(MF.contrast_structure(x, other)[0])) < 0.1  # independent noise: no structure in common
    stack = torch.stack([x, other, x * 0.5 + other], dim=1)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = [MF.contrast_structure(stack[:, i], stack[:, j]) for i, j in pairs]
    np.testing.assert_allclose(MF.pairwise_contrast_structure(stack, pairs).numpy(),
                               torch.stack(expected, 1).numpy(), rtol=1e-12)


def test_gsm_features_finite_and_bounded():
    f = MF.ma_features(_photo(112, 112))['gsm']
    assert np.isfinite(f).all()
    assert np.all((f[:18] >= 0.03) & (f[:18] <= 10))  # GGD shapes on the table
    assert np.all(np.abs(f[18:]) <= 1 + 1e-9)  # contrast-structure terms (Cauchy-Schwarz)


# Features of scikit-image's "chelsea" (RGB -> MATLAB rgb2ycbcr Y, uint8, 4-pixel shave: 292x443) as printed by
# the authors' MATLAB feature_all.m (chaoma99/sr-metric), run under GNU Octave with MATLAB-compatible imresize
# and blkproc; published as reference/octave_reference.txt of github.com/mxzhuang/parallel-perceptual-index.
CHELSEA_MATLAB = {
    'dct': [0.25575189524465736, 0.54301992553778133, 3.5401949046394225, 1.9206646788831754, 1.057154660299721,
            0.2736904147863703, 0.24950964187327859, 0.58908190843905217, 3.6397023976907756, 1.8879641366599591,
            0.97085243732301374, 0.24632779528760013, 0.26415053763440866, 0.57740756756756795,
            3.4990041905321285, 1.8601815501016892, 0.71892433672257861, 0.19524295523639085],
    'gsm': [1.503, 1.717, 1.944, 1.788, 1.939, 1.857, 1.463, 1.871, 2.172, 1.944, 1.963, 1.806, 0.546, 0.606, 0.655,
            0.607, 0.587, 0.572, 0.86943477604667108, 0.86923414745652161, 0.86792919512684108,
            0.86508430321465257, 0.8706319047965041, 0.87385370518385541, 0.7008461261223996,
            0.69647124898946033, 0.68179048957358357, 0.6569394635598963, 0.67265314501439233,
            0.69614797882416912, 0.98136624978508336, 0.9480617981299394, 0.92987752780023614,
            0.92940614927250209, 0.91218985878866432, 0.97652930509622649, 0.94235678229165043,
            0.93837915301340291, 0.9334283781204803, 0.97778983409130305, 0.951233689998492, 0.94023834364269421,
            0.97913220252646049, 0.94659847253995111, 0.97862917059349164],
    'svd_head': [170.17727773625978, 13.816837317706906, 11.696100510153716, 3.9226544484379025],  # scale 0
    'svd_scale1_head': [84.657464097115607, 7.3597801805730478, 6.6913217746821152, 3.3739229327573597],
    'svd_scale2_tail': [0.27264955527772972, 0.25913696154275867, 0.24755901701528035],
}


def test_features_match_the_official_matlab_output():
    from skimage import data

    bgr = data.chelsea()[..., ::-1].copy()
    y = iqa.to_y_matlab(bgr[None], 'HWC', crop_border=4)[0].numpy()
    assert y.shape == (292, 443)
    f = MF.ma_features(y)
    np.testing.assert_allclose(f['dct'], CHELSEA_MATLAB['dct'], rtol=1e-9)
    np.testing.assert_allclose(f['gsm'], CHELSEA_MATLAB['gsm'], rtol=1e-9)
    np.testing.assert_allclose(f['svd'][:4], CHELSEA_MATLAB['svd_head'], rtol=1e-9)
    np.testing.assert_allclose(f['svd'][25:29], CHELSEA_MATLAB['svd_scale1_head'], rtol=1e-9)
    np.testing.assert_allclose(f['svd'][-3:], CHELSEA_MATLAB['svd_scale2_tail'], rtol=1e-9)


# ------------------------------------------------------------------------------------- API and PI
def test_calculate_ma_and_pi_on_bgr(model_path):
    from ranksrgan_plugin.metrics import calculate_niqe_batched

    rng = np.random.default_rng(3)
    y = _photo(136, 136, seed=3)
    bgr = np.clip(np.stack([y, y + rng.normal(0, 3, y.shape), y], -1), 0, 255).astype(np.uint8)
    ma = calculate_ma(bgr, crop_border=4, model_path=model_path)
    y_mat = iqa.to_y_matlab(bgr[None], 'HWC', 4)[0].numpy()
    assert ma == pytest.approx(_hand_score(MF.ma_features(y_mat)))
    niqe = calculate_niqe_batched(bgr, crop_border=4)
    assert calculate_pi(bgr, crop_border=4, model_path=model_path) == pytest.approx(((10 - ma) + niqe) / 2)


def test_registered_in_basicsr_and_patch_metrics(model_path):
    from basicsr.utils.registry import METRIC_REGISTRY

    assert METRIC_REGISTRY.get('calculate_ma') is calculate_ma
    assert METRIC_REGISTRY.get('calculate_pi') is calculate_pi
    assert PATCH_METRIC_REGISTRY.get('ma') is MaPatchMetric and PATCH_METRIC_REGISTRY.get('pi') is PIPatchMetric
    ma = build_patch_metric({'type': 'ma', 'model_path': model_path}, device='cpu')
    pi = build_patch_metric({'type': 'pi', 'model_path': model_path})
    assert ma.higher_is_better is True and pi.higher_is_better is False
    assert ma.describe()['name'] == 'ma' and pi.describe()['higher_is_better'] is False
    patches = np.stack([np.repeat(_photo(104, 104, seed=s)[..., None], 3, -1) for s in (4, 5)]).astype(np.uint8)
    scores = ma(patches)
    assert scores.shape == (2,)
    assert scores[1] == pytest.approx(calculate_ma(patches[1], 4, model_path=model_path))
    assert pi(patches)[0] == pytest.approx(calculate_pi(patches[0], 4, model_path=model_path))


def test_explicit_missing_path_does_not_fall_back(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv(MM.MODEL_ENV, model_path)  # a valid model elsewhere must not hide a wrong explicit path
    with pytest.raises(FileNotFoundError, match='missing.mat'):
        MM.load_ma_model(tmp_path / 'missing.mat')


def test_patch_metrics_fail_at_build_without_model(tmp_path, monkeypatch):
    monkeypatch.delenv(MM.MODEL_ENV, raising=False)
    monkeypatch.setattr(MM, 'DEFAULT_MODEL_PATH', tmp_path / 'model.mat')
    for name in ('ma', 'pi'):
        with pytest.raises(FileNotFoundError, match='model.mat'):
            build_patch_metric({'type': name})


def test_input_orders_agree(model_path):
    y = _photo(100, 100, seed=7)
    bgr = np.stack([y, np.clip(y + 10, 0, 255), y], -1).astype(np.uint8)
    hwc = calculate_ma(bgr, 4, 'HWC', model_path=model_path)
    chw = calculate_ma(torch.from_numpy(bgr).permute(2, 0, 1), 4, 'CHW', model_path=model_path)
    assert hwc == pytest.approx(chw, abs=1e-12)
    y_only = iqa.to_y_matlab(bgr[None], 'HWC', 0)[0].numpy()
    assert iqa.ma_score(y_only, crop_border=4, model=model_path, input_order='HW') == pytest.approx(hwc, abs=1e-12)
    with pytest.raises(ValueError, match='input_order'):
        calculate_ma(bgr, 4, 'XYZ', model_path=model_path)
    with pytest.raises(ValueError, match='too small'):
        calculate_ma(bgr[:40, :40], 4, model_path=model_path)



def test_rank_dataset_tool_labels_with_ma(tmp_path, model_path):
    """`--metric ma` labels patches with Ma's score; the manifest says higher is better, the dataset negates."""
    hr = tmp_path / 'hr'
    hr.mkdir()
    images = {f'img{seed}': _photo(204, 404, seed) for seed in range(2)}  # the original grid: tops < 204 - 200
    for stem, img in images.items():
        cv2.imwrite(str(hr / f'{stem}.png'), img)
    output = tmp_path / 'rank_ma'
    tool = load_tool('make_rank_dataset')
    tool.main(['--hr', str(hr), '--output', str(output), '--levels', 'bicubic,hr', '--patch-size', '200',
               '--stride', '200', '--no-sharpness-filter', '--min-gap', '0', '--val-fraction', '0.5',
               '--metric', 'ma', '--ma-model', model_path, '--no-progress'])
    split = next(s for s in ('train', 'val') if 'img0_s0000' in (output / s / 'labels.txt').read_text())
    manifest = json.loads((output / split / 'manifest.json').read_text())
    assert manifest['metric'] == 'ma' and manifest['higher_is_better'] is True
    labels = {tuple(line.split()[:2]): float(line.split()[2])
              for line in (output / split / 'labels.txt').read_text().splitlines() if not line.startswith('#')}
    expected = iqa.ma_batch(images['img0'][None, :200, :200], crop_border=4, model=model_path)[0]
    assert labels[('img0_s0000', 'hr')] == pytest.approx(expected, abs=1e-6)
    dataset = RankPairDataset({'dataroot': str(output / split), 'phase': 'val', 'name': 'ma'})
    assert dataset.labels[('img0_s0000', 'hr')] == -labels[('img0_s0000', 'hr')]
