"""The offline demo's HR images: the colour photos bundled inside scikit-image's wheel."""
import os
import os.path as osp
from typing import List

import cv2
import numpy as np

# skimage.data functions returning RGB photos (no download needed: they ship in the wheel).
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field',
                  'retina', 'stereo_motorcycle')


def export_skimage_photos(folder: str) -> List[str]:
    """Write the bundled photos as BGR PNGs into ``folder`` (skipping existing files); returns their paths."""
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in SKIMAGE_PHOTOS:
        images = getattr(data, name)()
        named = ({'motorcycle_left': images[0], 'motorcycle_right': images[1]} if name == 'stereo_motorcycle'
                 else {name: images})
        for stem, rgb in named.items():
            path = osp.join(folder, f'{stem}.png')
            if not osp.isfile(path):
                cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, 2::-1]))
            paths.append(path)
    return paths
