"""HR images from a BasicSR LMDB give the same rank dataset as the same images in a folder."""
import cv2
from basicsr.utils.lmdb_util import LmdbMaker

from ranksrgan_plugin.demo_images import export_skimage_photos
from ranksrgan_plugin.rank_dataset import RankDatasetBuilder, load_config


def _photos(folder, names=('astronaut', 'coffee')):
    paths = export_skimage_photos(str(folder / 'all'))
    images = {}
    for path in paths:
        stem = path.rsplit('/', 1)[-1][:-4]
        if stem in names:
            images[stem] = cv2.imread(path)[:200, :400]
    return images


def _build(hr: str, output: str) -> None:
    cfg = load_config({
        'hr': hr, 'output': output, 'levels': [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'hr', 'type': 'hr'}],
        'patch_size': 200, 'stride': 100, 'sharpness_threshold': None, 'min_gap': 0, 'val_fraction': 0.5,
        'grid': 'full',
        'device': 'cpu',
    })
    RankDatasetBuilder(cfg, progress=False).run()


def test_hr_lmdb_input_equals_folder_input(tmp_path):
    images = _photos(tmp_path)
    folder = tmp_path / 'hr'
    folder.mkdir()
    maker = LmdbMaker(str(tmp_path / 'hr.lmdb'))
    for stem, img in sorted(images.items()):
        cv2.imwrite(str(folder / f'{stem}.png'), img)
        maker.put(cv2.imencode('.png', img)[1].tobytes(), stem, img.shape)
    maker.close()

    _build(str(folder), str(tmp_path / 'out_folder'))
    _build(str(tmp_path / 'hr.lmdb'), str(tmp_path / 'out_lmdb'))
    for split in ('train', 'val'):
        folder_labels = (tmp_path / 'out_folder' / split / 'labels.txt').read_bytes()
        assert folder_labels.count(b'\n') > 2
        assert (tmp_path / 'out_lmdb' / split / 'labels.txt').read_bytes() == folder_labels
