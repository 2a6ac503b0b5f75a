"""The paper road rehearsed on the CPU: the paper's option files at the paper's sizes on a small layout.

A DIV2K-shaped layout made from the photos bundled in scikit-image (DIV2K train HR + X4 LR, Flickr2K
HR, PIRM test, Set14, BSDS100, their file-name schemes included), random-weight stand-ins of the
external files in the authors' layouts, and only the iteration counts changed (:func:`rehearsal_plan`):
patch 296, Ranker batch 16, RankSRGAN batch 8 and GT 296, the sum rank-content loss and the
batch-statistics Ranker stay as the paper's files set them. The RankSRGAN stage is killed once after
its first saved state and run again, as after a crash. With ``toolbox='mmagic'`` RankSRGAN is the MMagic
paper config trained by MMagic's Runner (:mod:`.mmagic_stages`), with the same iteration counts. The
numbers it reports say nothing of the method: they are random networks trained for two iterations.
"""
import os
import os.path as osp
from typing import Dict

import cv2
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.data.transforms import mod_crop

from ..archs.ranksrgan_generator_arch import RankSRGANGenerator
from ..checkpoints import to_release_layout
from ..demo_images import export_skimage_photos
from ..rank_dataset.levels import matlab_bicubic
from .layout import SRRESNET_INIT, VGG19_FILE
from .road import RoadPlan

# folder -> {file stem: (photo, crop (top, left, size) or None)}; LR made by MATLAB bicubic x1/4
PHOTOS: Dict[str, Dict[str, tuple]] = {
    'DIV2K/DIV2K_train_HR': {'0001': ('astronaut', None), '0002': ('coffee', None),
                             '0003': ('hubble_deep_field', None), '0004': ('motorcycle_left', None)},
    'Flickr2K/Flickr2K_HR': {'000001': ('rocket', None), '000002': ('immunohistochemistry', None),
                             '000003': ('motorcycle_right', None)},
    'PIRM/test/HR': {'1': ('chelsea', None), '2': ('retina', (500, 500, 400))},
    'Set14/GTmod12': {'baboon': ('retina', (200, 300, 256))},
    'BSDS100/GTmod12': {'101085': ('retina', (800, 700, 256))},
}
LR_FOLDERS = {'DIV2K/DIV2K_train_HR': ('DIV2K/DIV2K_train_LR_bicubic/X4', '{}x4'),
              'PIRM/test/HR': ('PIRM/test/LR', '{}'), 'Set14/GTmod12': ('Set14/LRbicx4', '{}'),
              'BSDS100/GTmod12': ('BSDS100/LRbicx4', '{}')}
# the authors' three level networks, in their release layout (model.N keys)
STAND_INS = {SRRESNET_INIT: 'generator_model', 'SRGAN.pth': 'generator_model', 'ESRGAN_SuperSR.pth': 'rrdbnet_model'}
# a random RRDBNet's output is smooth: x2 on its last conv lets the paper's sharpness filter keep patches
ESRGAN_OUTPUT_GAIN = 2.0


def make_rehearsal_data(data: str, photos_cache: str) -> None:
    """Write the layout under ``data`` (skipping files already there)."""
    export_skimage_photos(photos_cache)
    for folder, images in PHOTOS.items():
        for stem, (photo, crop) in images.items():
            hr_path = osp.join(data, folder, f'{stem}.png')
            if osp.isfile(hr_path):
                continue
            img = cv2.imread(osp.join(photos_cache, f'{photo}.png'))
            if crop:
                top, left, size = crop
                img = img[top:top + size, left:left + size]
            img = mod_crop(img, 4)
            os.makedirs(osp.dirname(hr_path), exist_ok=True)
            cv2.imwrite(hr_path, img)
            if folder in LR_FOLDERS:
                lr_folder, name = LR_FOLDERS[folder]
                os.makedirs(osp.join(data, lr_folder), exist_ok=True)
                cv2.imwrite(osp.join(data, lr_folder, name.format(stem) + '.png'), matlab_bicubic(img, 1 / 4))


def stand_in_state_dict(layout: str, seed: int) -> Dict[str, torch.Tensor]:
    """A freshly initialised (seeded) level network's weights in an authors' release layout."""
    torch.manual_seed(seed)
    if layout == 'generator_model':
        return to_release_layout(RankSRGANGenerator().state_dict(), layout)
    net = RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    with torch.no_grad():
        net.conv_last.weight.mul_(ESRGAN_OUTPUT_GAIN)
    return to_release_layout(net.state_dict(), layout)


def write_stand_ins(pretrained: str) -> None:
    """Random-weight stand-ins of the authors' level files and of torchvision's VGG19 (skipping existing ones)."""
    import torchvision

    os.makedirs(pretrained, exist_ok=True)
    for seed, (name, layout) in enumerate(STAND_INS.items()):
        if not osp.isfile(osp.join(pretrained, name)):
            torch.save(stand_in_state_dict(layout, seed), osp.join(pretrained, name))
    if not osp.isfile(osp.join(pretrained, VGG19_FILE)):
        torch.manual_seed(len(STAND_INS))
        torch.save(torchvision.models.vgg19(weights=None).state_dict(), osp.join(pretrained, VGG19_FILE))


# the MMagic road's RankSRGAN stage (mmagic_stages) in MMagic's config keys: three iterations, so that the run killed
# after its first checkpoint still has one to train after resuming when the kill lands an iteration late (the kill
# polls the checkpoint pointer; a tiny iteration can finish first)
MMAGIC_RANKSRGAN_OVERRIDES = {'train_cfg.max_iters': 3, 'train_cfg.val_interval': 3,
                              'default_hooks.checkpoint.interval': 1, 'default_hooks.checkpoint.max_keep_ckpts': 2,
                              'default_hooks.logger.interval': 1}
# two checkpoints kept (370 MB each), not one: mmengine 0.10.7's CheckpointHook deletes the oldest BEFORE it saves
# the new one, so with one kept a kill in between leaves last_checkpoint naming a deleted file and no resume
TOOLBOXES = ('basicsr', 'mmagic')


def rehearsal_plan(toolbox: str = 'basicsr') -> RoadPlan:
    """Two iterations per training stage (RankSRGAN in MMagic: three), every one logged and validated at the end;
    RankSRGAN killed once.

    ``toolbox``: which toolbox trains RankSRGAN (``'mmagic'``: the paper config through MMagic's Runner, its
    overrides in MMagic's config keys); the rank dataset and the Ranker are the BasicSR stages either way.
    """
    if toolbox not in TOOLBOXES:
        raise ValueError(f'toolbox {toolbox!r}: expected one of {", ".join(TOOLBOXES)}.')
    logged = {'logger.print_freq': 1, 'val.val_freq': 2}
    ranksrgan = (dict(MMAGIC_RANKSRGAN_OVERRIDES) if toolbox == 'mmagic' else
                 {'train.total_iter': 2, 'logger.save_checkpoint_freq': 1, **logged})
    trained_by = ('the paper\'s MMagic config (options/mmagic/ranksrgan-paper_*.py) through MMagic\'s Runner '
                  '(tools/mmagic_train.py), after the BasicSR rank dataset and Ranker stages'
                  if toolbox == 'mmagic' else 'BasicSR')
    three = ' (3 for RankSRGAN in MMagic)' if toolbox == 'mmagic' else ''
    return RoadPlan(
        overrides={'ranker': {'train.total_iter': 2, 'logger.save_checkpoint_freq': 2, **logged},
                   'ranksrgan': ranksrgan},
        kill_after={'ranksrgan': 1},
        notes=['REHEARSAL: the paper\'s option files at the paper\'s sizes on a small layout of scikit-image '
               'photos; the authors\' SRResNet / SRGAN / ESRGAN files and the VGG19 are random-weight stand-ins '
               f'(ESRGAN\'s last conv x{ESRGAN_OUTPUT_GAIN:g}); 2 iterations per training stage{three}; RankSRGAN '
               f'trained by {trained_by}, killed after its first saved state and resumed. The numbers say nothing '
               'about the method.'],
        rehearsal=True)
