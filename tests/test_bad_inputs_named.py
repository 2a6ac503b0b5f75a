"""No silent wrong results: bad inputs are refused with a message naming the file and the option (or warned about).

A frozen Ranker checkpoint of the wrong kind (a VGG19, a Ranker of another depth, a generator, a discriminator)
on both toolboxes; a batch of one image with the batch-statistics Ranker BatchNorm (a warning, once); Ma / PI
validation without model.mat (at build time, saying how to validate with NIQE only); a rank dataset that keeps
nothing (which filter, which option); rank-set roots that are missing, a build's top folder, or stored otherwise
than io_backend says; images that are not BGR uint8 given to the upscalers (BasicSR and MMagic side); corrupt
images in rank sets and training sets (both toolboxes)."""
import warnings

import cv2
import numpy as np
import pytest
import torch
import torchvision
from rank_set_factory import make_rank_set
from test_make_rank_dataset import build, one_image, photos  # noqa: F401  (fixtures)
from test_mmagic_test_protocol import TEST_CONFIG, _tiny
from test_mmagic_training import _tiny_ranksrgan, sr_workspace  # noqa: F401  (fixture)
from test_ranksrgan_model import _build, tiny_options, workspace  # noqa: F401  (fixture)

from ranksrgan_plugin.archs import RankerVGG, RankSRGANGenerator
from ranksrgan_plugin.archs.discriminator_arch import VGGStyleDiscriminatorAnySize
from ranksrgan_plugin.archs.ranker_arch import SingleImageBatchNormWarning, freeze_ranker
from ranksrgan_plugin.checkpoints import CheckpointMismatchError
from ranksrgan_plugin.data.rank_dataset_format import RankDatasetError
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset
from ranksrgan_plugin.inference import GeneratorUpscaler
from ranksrgan_plugin.mmagic.inference import init_model, upscale_image
from ranksrgan_plugin.rank_dataset import RankDatasetBuildError
from ranksrgan_plugin.utils.upscaler import BadImageError

WRONG_FILES = {
    'vgg19': (lambda: torchvision.models.vgg19().state_dict(), "torchvision's VGG"),
    'other_depth': (lambda: {'params': RankerVGG(depth=16, num_feat=8, stage_widths=(8, 8, 16, 16),
                                                 num_hidden=8).state_dict()}, 'a Ranker'),
    'generator': (lambda: {'params': RankSRGANGenerator(num_feat=8, num_block=1).state_dict()},
                  'a RankSRGAN generator'),
    'discriminator': (lambda: {'params': VGGStyleDiscriminatorAnySize(3, 8, input_size=32).state_dict()},
                      'a VGG-style discriminator'),
}


@pytest.mark.parametrize('kind', WRONG_FILES)
def test_basicsr_ranksrgan_refuses_a_wrong_ranker_file(workspace, kind):  # noqa: F811
    make, described = WRONG_FILES[kind]
    path = workspace / f'{kind}.pth'
    torch.save(make(), path)
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_r'] = str(path)
    with pytest.raises(CheckpointMismatchError) as error:
        _build(options)
    message = str(error.value)
    assert str(path) in message and 'path.pretrain_network_r' in message and described in message


@pytest.mark.parametrize('kind', WRONG_FILES)
def test_mmagic_ranksrgan_refuses_a_wrong_ranker_file(sr_workspace, tmp_path, kind):  # noqa: F811
    make, described = WRONG_FILES[kind]
    path = tmp_path / f'{kind}.pth'
    torch.save(make(), path)
    with pytest.raises(CheckpointMismatchError) as error:
        _tiny_ranksrgan(sr_workspace, path)
    message = str(error.value)
    assert str(path) in message and 'model.ranker_checkpoint' in message and described in message


def test_a_fitting_ranker_still_loads(workspace):  # noqa: F811
    model = _build(tiny_options(workspace, perceptual=False))
    saved = torch.load(workspace / 'ranker.pth', weights_only=True)['params']
    assert all(torch.equal(value, saved[key]) for key, value in model.net_r.state_dict().items())


def test_single_image_batch_with_batch_statistics_warns_once():
    ranker = freeze_ranker(RankerVGG(depth=8, num_feat=8, stage_widths=(8, 8, 16, 16), num_hidden=8), 'batch')
    freeze_ranker(ranker, 'batch')  # refrozen by an owner's train(): still one warning
    with pytest.warns(SingleImageBatchNormWarning, match='ranker_batchnorm: running') as record:
        ranker(torch.rand(1, 3, 96, 96))
        ranker(torch.rand(1, 3, 96, 96))
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ranker(torch.rand(2, 3, 96, 96))
        freeze_ranker(RankerVGG(depth=8, num_feat=8, stage_widths=(8, 8, 16, 16), num_hidden=8), 'running')(
            torch.rand(1, 3, 96, 96))  # running statistics: one image is fine


@pytest.fixture
def no_ma_model(tmp_path, monkeypatch):
    monkeypatch.delenv('RANKSRGAN_MA_MODEL', raising=False)
    monkeypatch.setattr('ranksrgan_plugin.iqa.ma_model.DEFAULT_MODEL_PATH', tmp_path / 'absent' / 'model.mat')


def test_ma_validation_without_model_mat_fails_at_build_saying_how_to_validate_with_niqe(workspace, no_ma_model):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    options['val'] = {'val_freq': 2000, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4},
                                                    'ma': {'type': 'calculate_ma', 'crop_border': 4}}}
    with pytest.raises(FileNotFoundError, match=r'val\.metrics\.ma .*--force_yml val:metrics:ma=~'):
        _build(options)
    options['val']['metrics']['ma'] = None  # what --force_yml val:metrics:ma=~ sets
    model = _build(options)
    assert list(model.opt['val']['metrics']) == ['psnr']


def test_mmagic_ma_pi_metric_without_model_mat_says_how_to_validate_with_niqe(no_ma_model):
    from ranksrgan_plugin.mmagic.metrics import MaPI

    with pytest.raises(FileNotFoundError, match="chaoma99/sr-metric.*val_evaluator = dict"):
        MaPI()


def test_rank_dataset_keeping_nothing_says_which_filter_and_option(tmp_path, one_image):  # noqa: F811
    with pytest.raises(RankDatasetBuildError) as error:
        build(tmp_path, one_image, patch_size=200, sharpness_threshold=1000, sharpness_level='hr')
    message = str(error.value)
    assert 'sharpness_threshold 1000' in message and '296-pixel patches' in message
    assert 'a 200-pixel patch sums 9' in message and '--sharpness-threshold' in message
    with pytest.raises(RankDatasetBuildError, match='gap filter kept none.*--min-gap'):
        build(tmp_path / 'gap', one_image, min_gap=1000, gap_levels=['bicubic', 'hr'])


def test_rank_pair_dataset_roots_name_what_to_set(tmp_path):
    missing = tmp_path / 'rank_DF2K_niqe' / 'train'
    with pytest.raises(RankDatasetError, match=f"'rank_train': dataroot {missing} does not exist"):
        RankPairDataset({'name': 'rank_train', 'dataroot': str(missing), 'phase': 'train'})
    build_root = tmp_path / 'build'
    for split in ('train', 'val'):
        make_rank_set(build_root / split, storage='folder', split=split)
    (build_root / 'manifest.json').write_text('{"format": "ranksrgan_rank_dataset_build"}')
    with pytest.raises(RankDatasetError, match=f"a rank-dataset build, not one of its splits: set dataroot to "
                                               f"{build_root / 'train'} or {build_root / 'val'}"):
        RankPairDataset({'name': 'rank_train', 'dataroot': str(build_root), 'phase': 'train'})
    with pytest.raises(RankDatasetError, match=r"stored as folder .* io_backend type is 'lmdb': set io_backend: "
                                               r'\{type: disk\}'):
        RankPairDataset({'name': 'rank_train', 'dataroot': str(build_root / 'train'), 'phase': 'train',
                         'io_backend': {'type': 'lmdb'}})
    assert len(RankPairDataset({'name': 'rank_train', 'dataroot': str(build_root / 'train'), 'phase': 'train'})) > 0


BAD_IMAGES = {
    'none': (None, 'is None: cv2.imread returns None'),
    'gray': (np.zeros((16, 16), np.uint8), r'cv2.cvtColor\(img, cv2.COLOR_GRAY2BGR\)'),
    'gray_hw1': (np.zeros((16, 16, 1), np.uint8), r'cv2.cvtColor\(img, cv2.COLOR_GRAY2BGR\)'),
    'bgra': (np.zeros((16, 16, 4), np.uint8), r'cv2.cvtColor\(img, cv2.COLOR_BGRA2BGR\)'),
    'float01': (np.full((16, 16, 3), 0.5, np.float32), r'dtype float32.*\(img \* 255\)'),
    'uint16': (np.zeros((16, 16, 3), np.uint16), 'dtype uint16'),
}


@pytest.mark.parametrize('kind', BAD_IMAGES)
def test_upscalers_refuse_what_is_not_bgr_uint8(kind):
    image, message = BAD_IMAGES[kind]
    net = RankSRGANGenerator(num_feat=8, num_block=1).eval()
    with pytest.raises(BadImageError, match=message):
        GeneratorUpscaler(net, {'type': 'RankSRGANGenerator'}, device='cpu')(image)
    with pytest.raises(BadImageError, match=message):
        upscale_image(init_model(_tiny(TEST_CONFIG)), image)


@pytest.mark.parametrize('storage', ['folder', 'lmdb'])
def test_corrupt_rank_set_patch_is_named(tmp_path, storage):
    root = make_rank_set(tmp_path / 'train', storage=storage, split='train')
    if storage == 'folder':  # truncated: the header (read when the dataset is built) is intact
        patch = tmp_path / 'train' / 'srgan' / 'k001.png'
        patch.write_bytes(patch.read_bytes()[:60])
    else:
        import lmdb

        with lmdb.open(str(tmp_path / 'train' / 'srgan.lmdb'), map_size=2 ** 24) as env, env.begin(write=True) as txn:
            txn.put(b'k001', b'not a png')
    dataset = RankPairDataset({'name': 'rank_val', 'dataroot': root, 'phase': 'val'})
    index = dataset.keys.index('k001') * len(dataset.levels) + dataset.levels.index('srgan')
    with pytest.raises(RankDatasetError, match=r"'rank_val': key 'k001' of level 'srgan' \(.*srgan.*\) is not a "
                                               'decodable image'):
        dataset[index]


def test_corrupt_training_images_are_named_on_both_toolboxes(tmp_path):
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from mmagic.datasets.transforms import LoadImageFromFile

    from ranksrgan_plugin.compat import basicsr as basicsr_compat
    from ranksrgan_plugin.compat import mmagic as mmagic_compat

    for kind, size in (('gt', 64), ('lq', 16)):
        (tmp_path / kind).mkdir()
        cv2.imwrite(str(tmp_path / kind / '0001.png'), np.zeros((size, size, 3), np.uint8))
    corrupt = tmp_path / 'lq' / '0001.png'
    corrupt.write_bytes(corrupt.read_bytes()[:60])  # truncated
    loader = LoadImageFromFile(key='img', color_type='color', channel_order='rgb')
    with pytest.raises(mmagic_compat.UnreadableImageError, match=f"{corrupt} \\(LoadImageFromFile key 'img'\\)"):
        loader.transform({'img_path': str(corrupt)})
    basicsr_compat.name_unreadable_training_images()  # what the plugin's train / test entry points install
    dataset = PairedImageDataset({'name': 'DIV2K', 'dataroot_gt': str(tmp_path / 'gt'),
                                  'dataroot_lq': str(corrupt.parent), 'filename_tmpl': '{}',
                                  'io_backend': {'type': 'disk'}, 'phase': 'val', 'scale': 4})
    with pytest.raises(basicsr_compat.UnreadableImageError, match=f"'DIV2K': cannot decode {corrupt}"):
        dataset[0]


def test_basicsr_generator_init_of_another_network_is_refused_by_name(workspace):  # noqa: F811
    options = tiny_options(workspace, perceptual=False)
    options['path']['pretrain_network_g'] = str(workspace / 'ranker.pth')  # a Ranker where the generator goes
    with pytest.raises(CheckpointMismatchError) as error:
        _build(options)
    message = str(error.value)
    assert str(workspace / 'ranker.pth') in message and 'path.pretrain_network_g' in message
    assert 'does not fit RankSRGANGenerator' in message and 'a Ranker' in message
