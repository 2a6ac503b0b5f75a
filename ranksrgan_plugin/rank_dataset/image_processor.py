"""One source image through the pipeline: its levels' SR images, the kept patch locations (grid, sharpness
filter, gap filter, cap), their labels and splits, and the staged patches."""
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from basicsr.data.transforms import mod_crop

from .levels import SRLevel, matlab_bicubic
from .options import RankDatasetBuildError
from .patch_metrics import PatchMetric
from .patch_selection import choose_patches, crop, patch_grid, sharp_corners, stable_seed
from .sources import ImageSource, key_stem, patch_split


class ImageProcessor:
    """Turns one source image into its kept patch locations, their patches, labels and splits."""

    def __init__(self, cfg: Dict[str, Any], levels: Sequence[SRLevel], metric: PatchMetric,
                 hr_source: ImageSource, lr_source: Optional[ImageSource],
                 gap_metric: Optional[PatchMetric] = None) -> None:
        self.cfg, self.levels, self.metric, self.gap_metric = cfg, levels, metric, gap_metric
        self.hr_source, self.lr_source = hr_source, lr_source

    def load(self, stem: str) -> 'LoadedImage':
        """The stages before the labels: read the source image ``stem`` (mod-cropped HR and its LR), run the
        levels, and find the grid locations that pass the sharpness filter; or say why the image is skipped.

        Safe to run in another thread than :meth:`process` (the builder runs it ahead, one image at a time).
        """
        timer = StageTimer()
        try:
            hr = mod_crop(self.hr_source.read(stem), self.cfg['scale'])
        except RankDatasetBuildError as error:
            if not self.cfg['skip_unreadable']:
                raise
            return LoadedImage(stem, skip_reason=str(error))
        patch_size = self.cfg['patch_size']
        if min(hr.shape[:2]) < patch_size:
            return LoadedImage(stem, skip_reason=f'HR image {hr.shape[1]}x{hr.shape[0]} is smaller than a '
                                                 f'{patch_size}-pixel patch')
        lr = self._lr_image(stem, hr)
        timer.lap('read')
        srs = {}
        for level in self.levels:
            srs[level.name] = level(lr, hr, stem)
            timer.lap(f'level_{level.name}')
        reference = srs[self.cfg['sharpness_level']]
        corners = patch_grid(*reference.shape[:2], patch_size, self.cfg['stride'], self.cfg['grid'])
        sharp = sharp_corners(reference, corners, patch_size, self.cfg['sharpness_threshold'],
                              self.cfg['sharpness_block'], self.cfg['sharpness_measure'])
        timer.lap('sharpness')
        return LoadedImage(stem, srs, corners, sharp, timer.seconds)

    def process(self, stem: str, split: Optional[str], stage_patch: Callable[[str, str, np.ndarray], None],
                loaded: Optional['LoadedImage'] = None) -> Dict[str, Any]:
        """The record of one image; ``split`` is the image's split, or None to split by patch.

        ``loaded``: the image as :meth:`load` gave it (loaded here when None).
        """
        loaded = loaded or self.load(stem)
        timer = StageTimer()
        timer.seconds.update(loaded.seconds)
        record: Dict[str, Any] = {'stem': stem, 'split': split, 'status': 'ok', 'reason': None, 'keys': [],
                                  'splits': [], 'labels': {}, 'counts': {}, 'seconds': timer.seconds}
        if loaded.skip_reason is not None:
            return {**record, 'status': 'skipped', 'reason': loaded.skip_reason}
        srs, corners, sharp = loaded.srs, loaded.corners, loaded.sharp
        passed, labels = self._gap_filter(srs, sharp, timer)
        chosen = choose_patches(passed, self.cfg['max_patches_per_image'], self.cfg['max_patches_choice'],
                                stable_seed(self.cfg['seed'], 'patches', stem))
        kept = [sharp[i] for i in chosen]
        labels = self._kept_labels(srs, kept, chosen, labels)
        kept, labels, undefined = drop_undefined_labels(kept, labels)
        timer.lap('metric')
        grid_index = {corner: i for i, corner in enumerate(corners)}
        keys = [f'{key_stem(stem)}_s{grid_index[corner]:04d}' for corner in kept]
        for name, sr in srs.items():
            for corner, key in zip(kept, keys):
                stage_patch(name, key, crop(sr, corner, self.cfg['patch_size']))
        counts = {'grid': len(corners), 'sharp': len(sharp), 'gap': len(passed), 'kept': len(kept)}
        if undefined:
            counts['undefined_label'] = undefined
        record.update(keys=keys, splits=[split or patch_split(key, self.cfg['val_fraction'], self.cfg['seed'])
                                         for key in keys],
                      labels={name: [float(v) for v in values] for name, values in labels.items()}, counts=counts)
        return record

    def _lr_image(self, stem: str, hr: np.ndarray) -> np.ndarray:
        scale = self.cfg['scale']
        if self.lr_source is None:
            return matlab_bicubic(hr, 1 / scale)
        lr = self.lr_source.read(stem + self.cfg['lr_suffix'])
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            raise RankDatasetBuildError(
                f'LR image {self.lr_source.location(stem + self.cfg["lr_suffix"])} is {lr.shape[1]}x{lr.shape[0]}; '
                f'x{scale} of the (mod-cropped) HR image {hr.shape[1]}x{hr.shape[0]} needs '
                f'{hr.shape[1] // scale}x{hr.shape[0] // scale}.')
        return lr

    def _labels(self, srs: Mapping[str, np.ndarray], names: Sequence[str], corners: Sequence[Tuple[int, int]],
                metric: PatchMetric) -> Dict[str, np.ndarray]:
        """{level: scores of its patches at ``corners``} for the levels ``names``, in one call of ``metric``
        (an image has few patches per level; one batch over the levels keeps the metric's batches full)."""
        if not corners:
            return {name: np.zeros(0) for name in names}
        patches = np.stack([crop(srs[name], corner, self.cfg['patch_size']) for name in names for corner in corners])
        scores = np.asarray(metric(patches), dtype=np.float64).reshape(len(names), len(corners))
        return dict(zip(names, scores))

    def _gap_filter(self, srs: Mapping[str, np.ndarray], corners: Sequence[Tuple[int, int]],
                    timer: 'StageTimer') -> Tuple[List[int], Optional[Dict[str, np.ndarray]]]:
        """Indices of the corners whose gap levels differ by more than ``min_gap``, and the labels if computed.

        With a ``gap_metric`` only the two gap levels are scored (by it); without one, every level is
        labelled here and the labels decide.
        """
        min_gap = self.cfg['min_gap']
        if not min_gap:
            return list(range(len(corners))), None
        labels = None
        if self.gap_metric is None:
            labels = self._labels(srs, list(srs), corners, self.metric)
            first, second = (labels[name] for name in self.cfg['gap_levels'])
        else:
            gap_scores = self._labels(srs, self.cfg['gap_levels'], corners, self.gap_metric)
            first, second = (gap_scores[name] for name in self.cfg['gap_levels'])
        timer.lap('gap')
        return [i for i in range(len(corners)) if abs(first[i] - second[i]) > min_gap], labels

    def _kept_labels(self, srs: Mapping[str, np.ndarray], kept_corners: Sequence[Tuple[int, int]],
                     kept: Sequence[int], labels: Optional[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The labels of the kept locations: taken from the gap filter's when it computed them."""
        if labels is not None:
            return {name: values[list(kept)] for name, values in labels.items()}
        return self._labels(srs, list(srs), kept_corners, self.metric)


def drop_undefined_labels(corners: Sequence[Tuple[int, int]], labels: Mapping[str, np.ndarray]
                          ) -> Tuple[List[Tuple[int, int]], Dict[str, np.ndarray], int]:
    """The locations whose labels are finite at every level, their labels, and how many were dropped.

    A metric can be undefined on a patch (NIQE of a flat one is NaN); a NaN label would order nothing and
    the rank dataset's reader refuses it.
    """
    finite = np.ones(len(corners), dtype=bool)
    for values in labels.values():
        finite &= np.isfinite(values)
    if finite.all():
        return list(corners), dict(labels), 0
    kept = [corner for corner, ok in zip(corners, finite) if ok]
    return kept, {name: np.asarray(values)[finite] for name, values in labels.items()}, int((~finite).sum())


@dataclass
class LoadedImage:
    """A source image after :meth:`ImageProcessor.load`: its levels' SR images, the grid corners and those that
    pass the sharpness filter, the seconds per stage; or why it is skipped."""

    stem: str
    srs: Dict[str, np.ndarray] = field(default_factory=dict)
    corners: List[Tuple[int, int]] = field(default_factory=list)
    sharp: List[Tuple[int, int]] = field(default_factory=list)
    seconds: Dict[str, float] = field(default_factory=dict)
    skip_reason: Optional[str] = None


class StageTimer:
    """Seconds spent per stage of one image, accumulated lap by lap."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Add the time since the last lap to ``stage``."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
