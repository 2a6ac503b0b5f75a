"""The first release's training data (issue 33 item 2): ``ranksrgan_plugin/data/first_release_data.py`` and
``tools/make_first_release_data.py`` on tiny random images.

The sub-image grid is checked against the original's ``extract_subimgs_single.py`` rule (copied below), the LR
against BasicSR's MATLAB-bicubic port of each sub-image, the LMDBs through BasicSR's own ``PairedImageDataset``
built from the option file's train block; then the refusals and an interrupted build.
"""
import json
import os
import os.path as osp
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import yaml
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.matlab_functions import imresize
from tool_loader import load_tool

from ranksrgan_plugin.data import first_release_data as frd

REPO = Path(__file__).resolve().parents[1]
OPTION_FILE = REPO / 'options' / 'train_RankSRGAN_NIQE_first_release.yml'
SHAPES = {'0001': (600, 520), '0002': (530, 1000)}  # (h, w): 2 and 6 sub-images (the threshold adds 1 top / 1 left)
NUM_KEYS = 8


def original_grid(h, w, crop_sz=480, step=240, thres_sz=48):
    """extract_subimgs_single.py (first release), its loops verbatim: the (top, left) of each sub-image."""
    h_space = np.arange(0, h - crop_sz + 1, step)
    if h - (h_space[-1] + crop_sz) > thres_sz:
        h_space = np.append(h_space, h - crop_sz)
    w_space = np.arange(0, w - crop_sz + 1, step)
    if w - (w_space[-1] + crop_sz) > thres_sz:
        w_space = np.append(w_space, w - crop_sz)
    return [(int(x), int(y)) for x in h_space for y in w_space]


def write_images(folder: Path, shapes=None, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for stem, (h, w) in (shapes or SHAPES).items():
        images[stem] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f'{stem}.png'), images[stem])
    return images


def read_lmdb(path: str) -> dict:
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        items = {key.decode(): bytes(value) for key, value in txn.cursor()}
    env.close()
    return items


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def build(hr, out, **kwargs):
    return frd.build_first_release_data(str(hr), str(out), progress=False, **kwargs)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp('first_release')
    images = write_images(root / 'HR')
    summary = build(root / 'HR', root / 'out')
    return {'root': root, 'images': images, 'summary': summary}


# ------------------------------------------------------------------------------------------------
# The grid and the LR


@pytest.mark.parametrize('h, w', [(480, 480), (528, 529), (600, 520), (530, 1000), (1356, 2040), (2040, 1356),
                                  (721, 960), (1000, 1000)])
def test_grid_is_the_originals(h, w):
    assert frd.sub_image_grid(h, w) == original_grid(h, w)


def test_grid_threshold_adds_the_last_start_only_past_48_pixels():
    assert frd.grid_starts(528) == [0]  # 48 px left: not more than the threshold
    assert frd.grid_starts(529) == [0, 49]  # 49 px left: a last crop flush with the edge
    assert frd.grid_starts(1000) == [0, 240, 480]  # 40 px left
    assert frd.grid_starts(1356) == [0, 240, 480, 720, 876]  # a DIV2K height: 156 px left
    params = frd.SubImageParams(crop_size=96, step=48, threshold=8, scale=4)
    assert frd.sub_image_grid(150, 200, params) == original_grid(150, 200, 96, 48, 8)
    with pytest.raises(frd.FirstReleaseDataError, match='479 px is shorter than the crop size 480'):
        frd.grid_starts(479)


def test_keys_are_the_originals_names_row_major(built):
    img = built['images']['0002']
    subs = frd.extract_sub_images(img, '0002')
    assert [key for key, _ in subs] == [f'0002_s{i:03d}' for i in range(1, 7)]
    tops_lefts = original_grid(*img.shape[:2])
    assert tops_lefts == [(0, 0), (0, 240), (0, 480), (50, 0), (50, 240), (50, 480)]
    for (_, sub), (top, left) in zip(subs, tops_lefts):
        assert np.array_equal(sub, img[top:top + 480, left:left + 480])
    keys = sorted(read_lmdb(built['summary']['gt']))
    assert keys == sorted([f'0001_s{i:03d}' for i in (1, 2)] + [f'0002_s{i:03d}' for i in range(1, 7)])


def test_lr_is_matlab_bicubic_of_the_sub_image_rounded(built):
    stored = read_lmdb(built['summary']['lq'])
    gt = read_lmdb(built['summary']['gt'])
    for key, png in stored.items():
        sub = decode(gt[key])
        lr = decode(png)
        # imresize computes in float32; x 255 in float64 (a float32 product moves ~1 pixel in 10^5 by one level)
        expected = np.clip(np.round(imresize(sub.astype(np.float64) / 255.0, 1 / 4).astype(np.float64) * 255.0), 0, 255)
        assert lr.shape == (120, 120, 3) and lr.dtype == np.uint8
        assert np.array_equal(lr, expected.astype(np.uint8)), key
    # not OpenCV's bicubic (no antialiasing): the distinction is real
    sub = decode(gt['0001_s001'])
    assert not np.array_equal(decode(stored['0001_s001']), cv2.resize(sub, (120, 120), interpolation=cv2.INTER_CUBIC))


def test_lr_is_the_sub_images_own_not_a_crop_of_the_whole_images_lr(built):
    img = built['images']['0002']  # 530 x 1000; sub-image s002 at (0, 240)
    sub_lr = frd.bicubic_lr(img[0:480, 240:720])
    whole_lr = frd.bicubic_lr(img)  # modcrop 528 x 1000 -> 132 x 250
    crop_of_whole = whole_lr[0:120, 60:180]
    diff = np.abs(sub_lr.astype(int) - crop_of_whole.astype(int))
    assert diff[3:-3, 3:-3].max() <= 1  # the inside: the same pixels
    for border in (diff[:, 0], diff[:, -1], diff[-1, 3:-3]):  # the cut borders (left, right, bottom) differ
        assert (border > 0).mean() > 0.8 and border.mean() > 2
    assert diff[0, 3:-3].max() <= 1  # the top border is the image's own in both
    stored = decode(read_lmdb(built['summary']['lq'])['0002_s002'])
    assert np.array_equal(stored, sub_lr) and not np.array_equal(stored, crop_of_whole)


# ------------------------------------------------------------------------------------------------
# BasicSR reads them


def _train_block(gt: str, lq: str) -> dict:
    with open(OPTION_FILE, encoding='utf-8') as f:
        opt = dict(yaml.safe_load(f)['datasets']['train'])
    opt.update(dataroot_gt=gt, dataroot_lq=lq, gt_size=96, phase='train', scale=4)
    return opt


def _to_uint8(tensor) -> np.ndarray:
    return np.round(tensor.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)


def _transforms():
    """augment()'s 8 results: hflip, then vflip, then transpose, each on or off."""
    for hflip in (False, True):
        for vflip in (False, True):
            for rot90 in (False, True):
                def apply(img, hflip=hflip, vflip=vflip, rot90=rot90):
                    img = img[:, ::-1] if hflip else img
                    img = img[::-1] if vflip else img
                    return img.transpose(1, 0, 2) if rot90 else img
                yield apply


def _locate(gt: np.ndarray, lq: np.ndarray, sub: np.ndarray, sub_lr: np.ndarray) -> list:
    """(transform, y, x) where lq is sub_lr's patch at (y, x) and gt sub's patch at (4y, 4x), both transformed."""
    found = []
    for index, transform in enumerate(_transforms()):
        big, small = transform(sub), transform(sub_lr)
        windows = np.lib.stride_tricks.sliding_window_view(small, lq.shape)[:, :, 0]
        for y, x in zip(*np.nonzero((windows == lq).all(axis=(2, 3, 4)))):
            if np.array_equal(big[4 * y:4 * y + gt.shape[0], 4 * x:4 * x + gt.shape[1]], gt):
                found.append((index, int(y), int(x)))
    return found


def test_paired_image_dataset_reads_them_with_the_lmdb_backend(built):
    summary = built['summary']
    dataset = PairedImageDataset(_train_block(summary['gt'], summary['lq']))
    assert len(dataset) == NUM_KEYS
    gt_db = read_lmdb(summary['gt'])
    for index in (0, 5):
        item = dataset[index]
        assert item['gt'].shape == (3, 96, 96) and item['lq'].shape == (3, 24, 24)
        key = item['gt_path']
        assert item['lq_path'] == key and key in gt_db
        gt, lq = _to_uint8(item['gt']), _to_uint8(item['lq'])
        sub = decode(gt_db[key])
        stem, number = key.split('_s')
        top, left = original_grid(*SHAPES[stem])[int(number) - 1]
        assert np.array_equal(sub, built['images'][stem][top:top + 480, left:left + 480])
        assert _locate(gt, lq, sub, frd.bicubic_lr(sub)), key  # LQ = the bicubic of the GT crop's sub-image
        whole_lr = frd.bicubic_lr(built['images'][stem])[top // 4:top // 4 + 120, left // 4:left // 4 + 120]
        if left or top:  # a cut border: the whole image's LR is not what is stored
            assert not np.array_equal(whole_lr, frd.bicubic_lr(sub))


def test_the_option_file_trains_on_the_two_lmdbs():
    text = OPTION_FILE.read_text(encoding='utf-8')
    train = yaml.safe_load(text)['datasets']['train']
    assert train['type'] == 'PairedImageDataset' and train['io_backend'] == {'type': 'lmdb'}
    args = load_tool('make_first_release_data').build_parser().parse_args([])
    assert train['dataroot_gt'] == osp.join(args.out, 'DIV2K800_sub.lmdb') == 'datasets/DIV2K/DIV2K800_sub.lmdb'
    assert train['dataroot_lq'] == osp.join(args.out, frd.lq_lmdb_name(4)) == \
        'datasets/DIV2K/DIV2K800_sub_bicLRx4.lmdb'
    assert 'filename_tmpl' not in train
    assert (train['gt_size'], train['batch_size_per_gpu'], train['use_hflip'], train['use_rot']) == (296, 8, True, True)
    header = [line for line in text.splitlines() if line.startswith('#')]
    assert any(line.strip('# ') == f'python tools/make_first_release_data.py --hr {args.hr} --out {args.out}'
               for line in header)


def test_the_cli_with_two_workers_writes_the_same_databases(built, tmp_path, capsys):
    tool = load_tool('make_first_release_data')
    summary = tool.main(['--hr', str(built['root'] / 'HR'), '--out', str(tmp_path), '--workers', '2',
                         '--no-progress'])
    assert f'{NUM_KEYS} sub-images of 2 images' in capsys.readouterr().out
    for role in ('gt', 'lq'):
        assert read_lmdb(summary[role]) == read_lmdb(built['summary'][role])
        with open(osp.join(summary[role], 'meta_info.txt')) as f, \
                open(osp.join(built['summary'][role], 'meta_info.txt')) as g:
            assert f.read() == g.read()
    assert frd.pair_is_complete(summary['gt'], summary['lq'])
    assert not osp.exists(summary['gt'] + '.partial')


# ------------------------------------------------------------------------------------------------
# Refusals


def test_refuses_a_missing_or_empty_hr_folder(tmp_path, capsys):
    with pytest.raises(frd.FirstReleaseDataError, match=f'HR folder not found: {tmp_path / "nope"}'):
        build(tmp_path / 'nope', tmp_path / 'out')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(frd.FirstReleaseDataError, match=rf'no images .*: {tmp_path / "empty"} \(it is empty\)'):
        build(tmp_path / 'empty', tmp_path / 'out')
    with pytest.raises(SystemExit) as exit_info:
        load_tool('make_first_release_data').main(['--hr', str(tmp_path / 'nope'), '--out', str(tmp_path / 'out')])
    assert exit_info.value.code == 2
    assert f'make_first_release_data: error: HR folder not found: {tmp_path / "nope"}' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_refuses_an_image_that_cannot_be_decoded(tmp_path):
    write_images(tmp_path / 'HR', {'0001': (480, 480)})
    (tmp_path / 'HR' / '0002.png').write_bytes(b'not a png')
    with pytest.raises(frd.FirstReleaseDataError, match=f'cannot decode 1 image.*{tmp_path / "HR" / "0002.png"}'):
        build(tmp_path / 'HR', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()  # refused before anything is written


def test_a_truncated_image_fails_the_build_without_a_complete_database(tmp_path):
    write_images(tmp_path / 'HR', {'0001': (480, 480), '0002': (480, 480)})
    data = (tmp_path / 'HR' / '0002.png').read_bytes()
    (tmp_path / 'HR' / '0002.png').write_bytes(data[:len(data) // 2])  # the header is intact: PIL opens it
    out = tmp_path / 'out'
    with pytest.raises(frd.FirstReleaseDataError, match=f'cannot decode image: {tmp_path / "HR" / "0002.png"}'):
        build(tmp_path / 'HR', out)
    assert sorted(os.listdir(out)) == ['DIV2K800_sub.lmdb.partial']


def test_refuses_an_image_smaller_than_the_crop(tmp_path):
    write_images(tmp_path / 'HR', {'0001': (600, 600), '0002': (479, 800), '0003': (800, 300)})
    with pytest.raises(frd.FirstReleaseDataError) as error:
        build(tmp_path / 'HR', tmp_path / 'out')
    message = str(error.value)
    assert '2 image(s) have a side shorter than the crop size 480' in message
    assert f'{tmp_path / "HR" / "0002.png"} (800x479)' in message and f'{tmp_path / "HR" / "0003.png"}' in message
    assert '0001.png' not in message and not (tmp_path / 'out').exists()


def test_refuses_names_that_are_not_lmdb_keys_and_bad_parameters(tmp_path):
    write_images(tmp_path / 'HR', {'0001.x4': (480, 480)})
    with pytest.raises(frd.FirstReleaseDataError, match=f'unusable as LMDB keys.*{tmp_path / "HR" / "0001.x4.png"}'):
        build(tmp_path / 'HR', tmp_path / 'out')
    with pytest.raises(frd.FirstReleaseDataError, match='crop_size 482 is not a multiple of scale 4'):
        build(tmp_path / 'HR', tmp_path / 'out', params=frd.SubImageParams(crop_size=482))


def test_refuses_a_complete_output_unless_overwrite(tmp_path):
    write_images(tmp_path / 'HR', {'0001': (480, 530)})
    first = build(tmp_path / 'HR', tmp_path / 'out')
    assert first['num_keys'] == 2 and frd.pair_is_complete(first['gt'], first['lq'])
    with pytest.raises(frd.FirstReleaseDataError, match=f'already built: {first["gt"]} and {first["lq"]}; '
                                                        'pass --overwrite'):
        build(tmp_path / 'HR', tmp_path / 'out')
    old_id = frd.lmdb_build_info(first['gt'])['build_id']
    second = build(tmp_path / 'HR', tmp_path / 'out', overwrite=True)
    assert frd.pair_is_complete(second['gt'], second['lq'])
    assert frd.lmdb_build_info(second['gt'])['build_id'] != old_id


def test_refuses_a_database_of_that_name_it_did_not_make(tmp_path):
    write_images(tmp_path / 'HR', {'0001': (480, 480)})
    foreign = tmp_path / 'out' / 'DIV2K800_sub.lmdb'
    foreign.mkdir(parents=True)
    (foreign / 'meta_info.txt').write_text('0001.png (2040,1356,3) 1\n')
    with pytest.raises(frd.FirstReleaseDataError, match=f'{foreign} already exist.*not a complete build'):
        build(tmp_path / 'HR', tmp_path / 'out')
    assert (foreign / 'meta_info.txt').exists()
    assert build(tmp_path / 'HR', tmp_path / 'out', overwrite=True)['num_keys'] == 1


# ------------------------------------------------------------------------------------------------
# Interrupted builds


def test_a_killed_build_leaves_no_database_that_passes_as_complete(tmp_path, monkeypatch):
    write_images(tmp_path / 'HR', {'0001': (480, 480), '0002': (480, 600), '0003': (480, 480)})
    out = tmp_path / 'out'
    records = frd.hr_image_records
    calls = []

    def killed_at_the_third_image(path, params=frd.ORIGINAL):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill: nothing after this line runs
        return records(path, params)

    monkeypatch.setattr(frd, 'hr_image_records', killed_at_the_third_image)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / 'HR', out)
    assert sorted(os.listdir(out)) == ['DIV2K800_sub.lmdb.partial']  # nothing under the names training reads
    staged = out / 'DIV2K800_sub.lmdb.partial'
    assert sorted(os.listdir(staged)) == ['DIV2K800_sub.lmdb', 'DIV2K800_sub_bicLRx4.lmdb']
    assert frd.lmdb_build_info(str(staged / 'DIV2K800_sub.lmdb')) is None  # not complete, even there
    assert not frd.pair_is_complete(str(staged / 'DIV2K800_sub.lmdb'), str(staged / 'DIV2K800_sub_bicLRx4.lmdb'))

    monkeypatch.setattr(frd, 'hr_image_records', records)
    summary = build(tmp_path / 'HR', out)  # the same command again: the leftover is replaced, no --overwrite
    assert summary['num_keys'] == 4 and frd.pair_is_complete(summary['gt'], summary['lq'])
    assert sorted(os.listdir(out)) == ['DIV2K800_sub.lmdb', 'DIV2K800_sub_bicLRx4.lmdb']


def test_a_build_killed_between_the_two_renames_is_rebuilt(tmp_path, monkeypatch):
    write_images(tmp_path / 'HR', {'0001': (480, 480)})
    out = tmp_path / 'out'
    replace = os.replace

    def killed_after_the_first_rename(src, dst):
        replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(frd.os, 'replace', killed_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / 'HR', out)
    monkeypatch.setattr(frd.os, 'replace', replace)
    gt, lq = str(out / 'DIV2K800_sub.lmdb'), str(out / 'DIV2K800_sub_bicLRx4.lmdb')
    assert osp.exists(lq) and not osp.exists(gt) and not frd.pair_is_complete(gt, lq)
    with open(osp.join(lq, frd.BUILD_INFO)) as f:
        old_id = json.load(f)['build_id']
    summary = build(tmp_path / 'HR', out)  # no --overwrite needed: the orphan is this tool's
    assert frd.pair_is_complete(summary['gt'], summary['lq'])
    assert frd.lmdb_build_info(lq)['build_id'] != old_id
