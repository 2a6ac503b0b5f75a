"""BasicSR's ``PairedImageDataset`` reading every image from an uncompressed copy decoded once.

The paper's RankSRGAN loader crops 296 x 296 from whole DIV2K images (fidelity row S6), so upstream
decodes a 2K PNG (and its LR) for every crop: about 45 ms per sample on one core, 8 per step. Here
each image is decoded once into ``raw_cache`` (one ``.npy`` per image, BGR uint8, written atomically,
redone when the source's size or time changes, or its bytes with ``raw_cache_verify``; see
:mod:`.raw_cache`: built once per node, old versions pruned) and memory-mapped: a crop reads only its rows,
and every worker and process on the node shares the pages. DIV2K train HR + X4 LR take about 7.1 GB
(6.6 + 0.4); in ``/dev/shm`` that is RAM. The crops are upstream's: the same random calls in the
same order (``paired_random_crop`` on the LR, then ``augment``), on the same pixel values.
"""
import os.path as osp
from typing import Any, Dict

import numpy as np
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import bgr2ycbcr, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from .rank_dataset_format import RankDatasetError
from .raw_cache import RawImageCache, build_once


@DATASET_REGISTRY.register()
class RawPairedImageDataset(PairedImageDataset):
    """BasicSR's ``PairedImageDataset`` (the paper's whole-image crops) with images decoded once (module docstring).

    Options: those of ``PairedImageDataset`` (``io_backend: disk``), plus ``raw_cache``: the folder of the
    decoded copies (made on first use, with a progress bar; it may be shared with other datasets), and
    ``raw_cache_verify`` (default false): key the copies on the images' bytes, not only on their size and
    modification time, which a copy that keeps both (``cp -p``, ``rsync -a``, ``tar``) leaves unchanged
    while the pixels differ; it costs reading every image file whenever the dataset is made.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        verify = opt.get('raw_cache_verify', False)
        if not isinstance(verify, bool):  # a quoted 'false' is truthy
            raise RankDatasetError(f"RawPairedImageDataset {opt.get('name')!r}: option `raw_cache_verify` is true or "
                                   f'false, got {verify!r}.')
        super().__init__(opt)
        if opt['io_backend']['type'] != 'disk':
            raise RankDatasetError(f"RawPairedImageDataset {opt.get('name')!r}: io_backend must be disk (it decodes "
                                   'the image files once into raw_cache).')
        self.cache = RawImageCache(opt['raw_cache'], verify)
        self.desc = f'raw cache {osp.basename(osp.normpath(self.cache.folder))}'
        sources = [item[key] for item in self.paths for key in ('gt_path', 'lq_path')]
        self.raw = build_once(self.cache, sources, self.desc)

    def _image(self, path: str) -> np.ndarray:
        try:
            return np.load(self.raw[path], mmap_mode='r')
        except FileNotFoundError:  # pruned by a later build after its source changed: map the current one
            self.raw[path] = self.cache.build([path], self.desc)[path]
            return np.load(self.raw[path], mmap_mode='r')

    def __getitem__(self, index: int) -> Dict[str, Any]:
        scale = self.opt['scale']
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        img_gt, img_lq = self._image(gt_path), self._image(lq_path)
        if self.opt['phase'] == 'train':  # crop the uint8 maps first: only the crop is read and converted
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
        img_gt, img_lq = img_gt.astype(np.float32) / 255., img_lq.astype(np.float32) / 255.
        if self.opt['phase'] == 'train':
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        if self.opt.get('color') == 'y':
            img_gt, img_lq = bgr2ycbcr(img_gt, y_only=True)[..., None], bgr2ycbcr(img_lq, y_only=True)[..., None]
        if self.opt['phase'] != 'train':
            img_gt = img_gt[0:img_lq.shape[0] * scale, 0:img_lq.shape[1] * scale, :]
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}
