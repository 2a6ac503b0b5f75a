"""The paper road's first step: every input checked before any hour of GPU time, all problems at once.

:func:`check_road` lists what is missing or does not fit, each with where it comes from and where it
goes, and the free disk the rank dataset needs. It reads and writes nothing else. Every file a stage
will load is loaded here as that stage loads it, with the safe loader: the level networks' weights and
the generator's initialisation strictly into the networks their options build (:func:`check_weights`),
the perceptual loss's VGG19 strictly into torchvision's VGG as BasicSR's ``VGGFeatureExtractor`` does
(:func:`check_vgg19`), Ma et al.'s ``model.mat`` with the metric's own reader (:func:`check_ma_model`).
A file that does not load is named with what it really is (an HTML page, a Git LFS pointer, a text
file, a zip of something else, a torch file cut short, another network's weights: :func:`describe_file`,
:func:`describe_weights`), and the check goes on to the next. Image files that are truncated, empty or
not images, and LR images of the wrong size: :func:`check_image_files`.
"""
import os
import os.path as osp
import shutil
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from basicsr.archs import build_network

from ..checkpoints import (
    TORCH_CHECKPOINT,
    CheckpointMismatchError,
    RefusedCheckpointError,
    arch_state_dict,
    describe_file,
    describe_weights,
    read_checkpoint,
)
from ..data.rank_dataset_format import IMAGE_EXTENSIONS
from ..utils.cores import usable_cores
from .image_check import check_files, size_mismatches
from .layout import REQUIRED_TEST_SET, SRRESNET_INIT, TEST_SETS, VGG19_FILE, RoadLayout

ORIGINAL_WEIGHTS = ('the authors\' file, linked from the original repository XPixelGroup/RankSRGAN '
                    '(datasets/generate_rankdataset/README.md: Google Drive / Baidu)')
SOURCES = {
    'DIV2K train HR': 'DIV2K_train_HR.zip (800 PNGs) from https://data.vision.ee.ethz.ch/cvl/DIV2K/, unzipped '
                      'into {data}/DIV2K/',
    'DIV2K train LR x4': 'DIV2K_train_LR_bicubic_X4.zip from https://data.vision.ee.ethz.ch/cvl/DIV2K/, unzipped '
                         'into {data}/DIV2K/ (DIV2K_train_LR_bicubic/X4/0001x4.png ...)',
    'Flickr2K HR': 'Flickr2K.tar (2,650 PNGs) from https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar, its '
                   'Flickr2K_HR/ into {data}/Flickr2K/',
    'PIRM_test': 'the PIRM 2018 SR challenge test set (100 images, https://pirm.github.io/): HR and x4 LR, the '
                 'same file names in both',
    'Set14': "BasicSR's benchmark layout (GTmod12 + LRbicx4), see BasicSR's docs/DatasetPreparation.md",
    'BSDS100': "BasicSR's benchmark layout (GTmod12 + LRbicx4), see BasicSR's docs/DatasetPreparation.md",
    VGG19_FILE: "torchvision's ImageNet VGG19, https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    'model.mat': "Ma et al.'s model, model.mat at the root of https://github.com/chaoma99/sr-metric",
}
PATCH_BYTES = 116 * 1024  # a 296x296 patch as the builder's PNG (docs/rank_dataset.md, PNG settings)
DIV2K_SIZE = (2040, 1356)  # assumed for an image whose header cannot be read


@dataclass
class Problem:
    """One input that is missing (``kind`` 'missing'), does not fit ('wrong') or lacks room ('disk')."""

    kind: str
    what: str
    path: str
    source: str = ''
    detail: str = ''

    def __str__(self) -> str:
        text = f'{self.kind.upper():8s}{self.what}: {self.path}'
        if self.detail:
            text += f'\n        {self.detail}'
        if self.source:
            text += f'\n        from: {self.source}'
        return text


def list_images(folder: str) -> List[str]:
    """The image file names of ``folder`` (none when it does not exist)."""
    if not osp.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS)


def _source(what: str, layout: RoadLayout) -> str:
    return SOURCES.get(what, ORIGINAL_WEIGHTS).format(data=layout.data)


def check_image_folder(what: str, folder: str, layout: RoadLayout) -> List[Problem]:
    if list_images(folder):
        return []
    detail = 'the folder holds no image' if osp.isdir(folder) else ''
    return [Problem('missing', what, folder, _source(what, layout), detail)]


def check_pairs(what: str, hr_folder: str, lr_folder: str, lr_name: str, layout: RoadLayout) -> List[Problem]:
    """The LR folder holds ``lr_name.format(stem)`` for every HR image (checked when both folders have images)."""
    hr, lr = list_images(hr_folder), set(list_images(lr_folder))
    if not hr or not lr:
        return []
    unpaired = [name for name in hr if lr_name.format(osp.splitext(name)[0]) not in lr]
    if not unpaired:
        return []
    shown = ', '.join(unpaired[:3]) + (' ...' if len(unpaired) > 3 else '')
    return [Problem('missing', what, lr_folder, _source(what, layout),
                    f'{len(unpaired)} of {len(hr)} HR images have no LR partner named as '
                    f'{lr_name.format("<stem>")}: {shown}')]


def road_image_folders(layout: RoadLayout) -> List[Tuple[str, str, Optional[Tuple[str, str]]]]:
    """(what, folder, (its HR folder, LR name pattern) or None) of every image folder the road reads: DIV2K
    train HR / LR, Flickr2K HR, and the test sets that are required, asked for or present."""
    folders = [('DIV2K train HR', layout.div2k_hr, None), ('Flickr2K HR', layout.flickr2k_hr, None),
               ('DIV2K train LR x4', layout.div2k_lr, (layout.div2k_hr, '{}x4.png'))]
    for name in TEST_SETS:
        hr, lr = layout.test_set_folders(name)
        if name == REQUIRED_TEST_SET or name in layout.test_sets or list_images(hr):
            folders += [(f'{name} HR', hr, None), (f'{name} LR', lr, (hr, '{}.png'))]
    return folders


def check_image_files(layout: RoadLayout, show_bar: bool = False) -> List[Problem]:
    """Every image of :func:`road_image_folders` read whole (see :mod:`.image_check`): one problem per file that
    is truncated, corrupt, empty or not an image, and per LR image that is not its HR image's size / 4."""
    folders = road_image_folders(layout)
    owner = {osp.join(folder, name): what for what, folder, _ in folders for name in list_images(folder)}
    results = check_files(sorted(owner), workers=max(2, min(8, usable_cores())), show_bar=show_bar)
    problems = [Problem('wrong', f'{owner[path]} image', path, _source(owner[path], layout),
                        problem) for path, (problem, _) in results.items() if problem]
    sizes = {path: size for path, (_, size) in results.items()}
    for what, folder, partner in folders:
        if partner:
            hr_folder, pattern = partner
            pairs = [(osp.join(hr_folder, name), osp.join(folder, pattern.format(osp.splitext(name)[0])))
                     for name in list_images(hr_folder)]
            problems += [Problem('wrong', f'{what} image', lr, _source(what, layout), detail)
                         for lr, detail in size_mismatches(pairs, sizes)]
    return problems


def _sample(items: Sequence[str], count: int = 3) -> str:
    return ', '.join(items[:count]) + (' ...' if len(items) > count else '')


def _network_name(network_opt: Mapping[str, Any]) -> str:
    return f"{network_opt.get('type')} ({', '.join(f'{k} {v}' for k, v in network_opt.items() if k != 'type')})"


def misfit(expected: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> str:
    """What keeps ``weights`` from a strict load into a network whose state_dict is ``expected`` ('' when nothing)."""
    missing = [key for key in expected if key not in weights]
    misshaped = [f'{key} {tuple(weights[key].shape)} instead of {tuple(value.shape)}' for key, value in expected.items()
                 if isinstance(weights.get(key), torch.Tensor) and weights[key].shape != value.shape]
    unexpected = [key for key, value in weights.items() if key not in expected and isinstance(value, torch.Tensor)]
    parts = []
    if missing:
        parts.append(f'{len(missing)} of its {len(expected)} weights are not in the file ({_sample(missing)})')
    if misshaped:
        parts.append(f'{len(misshaped)} have another shape ({_sample(misshaped, 2)})')
    if unexpected:
        parts.append(f'the file holds {len(unexpected)} weights the network does not have ({_sample(unexpected)})')
    return '; '.join(parts)


def _holding(checkpoint: Any) -> str:
    """'a torch file holding <what its keys say>'; torchvision's VGGs by their depth."""
    text = describe_weights(checkpoint)
    if isinstance(checkpoint, Mapping) and text.startswith("torchvision's VGG"):
        convs = sum(1 for key, value in checkpoint.items() if key.startswith('features.') and
                    isinstance(value, torch.Tensor) and value.dim() == 4)
        norm = '_bn' if any(key.endswith('running_mean') for key in checkpoint) else ''
        text = f"torchvision's VGG{convs + 3}{norm} ({convs} convolutions and 3 linear layers)"
    return f'a torch file holding {text}'


def _unreadable(path: str, error: BaseException) -> str:
    """What a file the safe loader could not read is (see :func:`describe_file`)."""
    kind = describe_file(path)
    if isinstance(error, RefusedCheckpointError):
        return f'it is {kind}, which the safe loader refuses: {error}'
    if not kind.startswith(TORCH_CHECKPOINT):
        return f'it is {kind}, not a torch checkpoint'
    if 'cut short' in kind:
        return f'it is {kind}'
    return f'it is {kind} that does not load ({type(error).__name__}: {error})'


def _read(path: str) -> Tuple[Any, Optional[str]]:
    """(the checkpoint, None), or (None, why it does not load): never an exception."""
    try:
        return read_checkpoint(path), None
    except Exception as error:  # whatever a bad file raises is a problem to list, not a traceback
        return None, _unreadable(path, error)


def _network_problem(network_opt: Mapping[str, Any], checkpoint: Any, path: str,
                     param_key: Optional[str] = None) -> Optional[str]:
    """Why ``checkpoint`` does not load strictly into the network of ``network_opt`` (official layouts converted,
    as the stages convert them: :func:`arch_state_dict`); None when it does."""
    held = _holding(checkpoint)
    if not isinstance(checkpoint, Mapping):
        return f'it is {held}, not weights'
    try:
        state_dict, _, _ = arch_state_dict(checkpoint, param_key, path)
    except CheckpointMismatchError as error:
        return f'it is {held}, which does not convert: {error}'
    with torch.device('meta'):  # names and shapes only: no random initialisation of a 23-block ESRGAN
        net = build_network(dict(network_opt))
    problem = misfit(net.state_dict(), state_dict)
    if problem:
        return f'it is {held}, not the weights of {_network_name(network_opt)}: {problem}'
    net.load_state_dict(state_dict, strict=True, assign=True)
    return None


def check_weights(what: str, path: str, network_opt: Dict[str, Any], option: str, layout: RoadLayout,
                  param_key: Optional[str] = None) -> List[Problem]:
    """The file exists and loads (safely) strictly into the network of ``network_opt`` (official layouts
    converted); else one problem naming ``option`` and what the file is."""
    if not osp.isfile(path):
        return [Problem('missing', what, path, _source(what, layout), f'named by {option}')]
    checkpoint, problem = _read(path)
    if problem is None:
        try:
            problem = _network_problem(network_opt, checkpoint, path, param_key)
        except Exception as error:  # e.g. a tensor of another dtype: named, not a traceback
            problem = f'it is {_holding(checkpoint)}, which does not load: {type(error).__name__}: {error}'
    return [Problem('wrong', what, path, _source(what, layout), f'named by {option}; {problem}')] if problem else []


def find_vgg19(layout: RoadLayout) -> Optional[str]:
    """The perceptual loss's ImageNet VGG19 in ``pretrained`` or torch's hub cache (never downloaded here)."""
    for candidate in (osp.join(layout.pretrained, VGG19_FILE),
                      osp.join(torch.hub.get_dir(), 'checkpoints', VGG19_FILE)):
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    return None


def needs_vgg19(gan_options: Mapping[str, Any]) -> bool:
    """Whether the RankSRGAN options' perceptual loss uses torchvision's ImageNet VGG weights."""
    perceptual = gan_options['train'].get('perceptual_opt') or {}
    return perceptual.get('type') in ('VGGPerceptualLoss', 'PerceptualLoss') and \
        perceptual.get('vgg_weights', 'imagenet') == 'imagenet'


def _vgg_problem(checkpoint: Any, vgg_type: str) -> Optional[str]:
    """Why ``checkpoint`` is not torchvision's ``vgg_type`` as BasicSR's ``VGGFeatureExtractor`` loads it (the
    file's mapping as it is, strictly: no wrapper, no prefix); None when it is."""
    import torchvision

    if not isinstance(checkpoint, Mapping):
        return f'it is {_holding(checkpoint)}, not a state_dict'
    with torch.device('meta'):  # names and shapes only: no 548 MB of random initialisation
        net = getattr(torchvision.models, vgg_type)(weights=None)
    problem = misfit(net.state_dict(), checkpoint)
    if problem:
        return (f"it is {_holding(checkpoint)}, not torchvision's ImageNet {vgg_type.upper()} weights (a bare "
                f'state_dict, which BasicSR\'s VGGFeatureExtractor loads strictly): {problem}')
    net.load_state_dict(checkpoint, strict=True, assign=True)
    return None


def check_vgg19(layout: RoadLayout, gan_options: Mapping[str, Any]) -> List[Problem]:
    """The perceptual loss's VGG19 (:func:`find_vgg19`) exists and loads, safely, strictly into torchvision's VGG."""
    hub = osp.join(torch.hub.get_dir(), 'checkpoints', VGG19_FILE)
    path = find_vgg19(layout)
    if path is None:
        return [Problem('missing', VGG19_FILE, osp.join(layout.pretrained, VGG19_FILE), _source(VGG19_FILE, layout),
                        f'or {hub} (the perceptual loss)')]
    checkpoint, problem = _read(path)
    if problem is None:
        vgg_type = gan_options['train']['perceptual_opt'].get('vgg_type', 'vgg19')
        try:
            problem = _vgg_problem(checkpoint, vgg_type)
        except Exception as error:  # named, not a traceback
            problem = f'it is {_holding(checkpoint)}, which does not load: {type(error).__name__}: {error}'
    if problem is None:
        return []
    return [Problem('wrong', VGG19_FILE, path, _source(VGG19_FILE, layout),
                    f'the perceptual loss\'s weights ({layout.variant.ranksrgan} train.perceptual_opt.vgg_weights: '
                    f'imagenet, found here); {problem}')]


def find_ma_model(layout: RoadLayout) -> Optional[str]:
    """Ma et al.'s ``model.mat``: ``ma_model``, ``$RANKSRGAN_MA_MODEL`` or the cache path."""
    from ..iqa.ma_model import _resolve_model_path

    try:
        return str(_resolve_model_path(layout.ma_model))
    except FileNotFoundError:
        return None


def _ma_model_origin(layout: RoadLayout) -> str:
    from ..iqa import ma_model

    if layout.ma_model:
        return 'named by --ma-model'
    if os.environ.get(ma_model.MODEL_ENV):
        return f'named by ${ma_model.MODEL_ENV}'
    return f'found at the default place {ma_model.DEFAULT_MODEL_PATH}'


def check_ma_model(layout: RoadLayout) -> List[Problem]:
    """Ma et al.'s ``model.mat`` (:func:`find_ma_model`) exists and the metric's reader takes it."""
    from ..iqa.ma_model import load_ma_model

    path = find_ma_model(layout)
    if path is None:
        return [Problem('missing', 'model.mat', layout.ma_model or '--ma-model <path>', _source('model.mat', layout),
                        'or $RANKSRGAN_MA_MODEL, or ~/.cache/ranksrgan_plugin/ma/model.mat '
                        f'(the {layout.variant.name} labels and validation)')]
    try:
        load_ma_model(path)
    except Exception as error:  # scipy's errors on a file that is not a .mat, the reader's on another .mat
        return [Problem('wrong', 'model.mat', path, _source('model.mat', layout),
                        f"{_ma_model_origin(layout)}; it is {describe_file(path)}, not Ma et al.'s model "
                        f'({type(error).__name__}: {error})')]
    return []


def rank_dataset_bytes(hr_folders: Iterable[str], options: Dict[str, Any]) -> int:
    """Peak disk of a rank-dataset build: every grid location of every image kept (at most
    ``max_patches_per_image``), one PNG per level, staged then packed (twice)."""
    from PIL import Image

    size, stride = options['patch_size'], options['stride']
    locations = 0
    for folder in hr_folders:
        for name in list_images(folder):
            try:
                with Image.open(osp.join(folder, name)) as img:
                    width, height = img.size
            except OSError:
                width, height = DIV2K_SIZE
            per_image = len(range(0, max(height - size, 0), stride)) * len(range(0, max(width - size, 0), stride))
            locations += min(per_image, options.get('max_patches_per_image') or per_image)
    return locations * len(options['levels']) * PATCH_BYTES * 2


def check_disk(need: int, folder: str) -> List[Problem]:
    existing = osp.abspath(folder)
    while not osp.isdir(existing):
        existing = osp.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free >= need:
        return []
    return [Problem('disk', 'free disk for the rank dataset', folder, '',
                    f'needs about {need / 2**30:.1f} GiB (every grid location kept, staged then packed), '
                    f'{free / 2**30:.1f} GiB free on {existing}')]


def check_road(layout: RoadLayout, rank_dataset_done: bool = False, show_bar: bool = False) -> List[Problem]:
    """Every problem of the road's inputs (empty when all is in place); see the module's docstring.
    ``show_bar``: a progress bar over the image files read."""
    problems: List[Problem] = []
    for what, folder in (('DIV2K train HR', layout.div2k_hr), ('DIV2K train LR x4', layout.div2k_lr),
                         ('Flickr2K HR', layout.flickr2k_hr)):
        problems += check_image_folder(what, folder, layout)
    problems += check_pairs('DIV2K train LR x4', layout.div2k_hr, layout.div2k_lr, '{}x4.png', layout)
    for name in TEST_SETS:
        hr, lr = layout.test_set_folders(name)
        if name == REQUIRED_TEST_SET or name in layout.test_sets:
            problems += check_image_folder(f'{name} HR', hr, layout) + check_image_folder(f'{name} LR', lr, layout)
            problems += check_pairs(f'{name} LR', hr, lr, '{}' + '.png', layout)
    problems += check_image_files(layout, show_bar)
    for problem in problems:
        if problem.what.startswith(tuple(TEST_SETS)):
            problem.source = _source(problem.what.split()[0], layout)
    rank_options = layout.read_options('rank_dataset')
    for level in rank_options['levels']:
        if level.get('type') == 'network':
            problems += check_weights(osp.basename(level['weights']), level['weights'], level['network'],
                                      f"{layout.variant.rank_dataset} levels[{level['name']}].weights", layout,
                                      level.get('param_key'))
    gan_options = layout.read_options('ranksrgan')
    init = osp.join(layout.pretrained, SRRESNET_INIT)
    init_option = f'the generator initialisation ({layout.variant.ranksrgan} network_g)'
    found = [p for p in problems if p.path == init]
    if found:  # the same file as a level's: one problem, both uses named
        found[0].detail = found[0].detail.replace('named by ', f'named by {init_option} and ', 1)
    else:
        problems += check_weights(SRRESNET_INIT, init, gan_options['network_g'], init_option, layout)
    if needs_vgg19(gan_options):
        problems += check_vgg19(layout, gan_options)
    if layout.variant.needs_ma:
        problems += check_ma_model(layout)
    if not rank_dataset_done and not any(p.kind == 'missing' and 'HR' in p.what for p in problems):
        need = rank_dataset_bytes((layout.div2k_hr, layout.flickr2k_hr), rank_options)
        problems += check_disk(need, rank_options['output'])
    return problems
