"""The paper road's test stage: the Ranker on the held-out rank set, the generator on the test sets.

The Ranker: SROCC and pair accuracy of the checkpoint the RankSRGAN stage used, on the rank dataset's
val split (the paper's Table 1-2 measure), and its score histograms (supplementary Figure 3). The
generator: every present test set upscaled with the final ``net_g_latest.pth``, then NIQE / PSNR /
SSIM on the Y channel and on RGB (gray NIQE) with a 4-pixel shave (Ma and PI when the variant has
``model.mat``), as :mod:`ranksrgan_plugin.evaluation` measures them.
"""
import os
import os.path as osp
from typing import Any, Dict, Mapping, Optional

import cv2
from basicsr.archs import build_network

from ..checkpoints import load_ranker
from ..evaluation import evaluate_folders, mean_metrics
from ..inference import GeneratorUpscaler, load_generator, upscale_folder
from ..metrics.ranker_evaluation import evaluate_ranker
from ..metrics.ranker_plots import plot_ranker_histograms
from .layout import REQUIRED_TEST_SET, TEST_SETS, RoadLayout
from .preflight import find_ma_model, list_images


def measure_ranker(network_r: Mapping[str, Any], checkpoint: str, val_root: str, histograms: str,
                   metric: str, note: Optional[str] = None) -> Dict[str, float]:
    """SROCC and pair accuracy of a Ranker checkpoint on a rank-set split, with the sample each was measured on.

    Its histograms are written to ``histograms``, ``note`` (a rehearsal's mark, :func:`.report.rehearsal_mark`)
    drawn on them. ``patches``: the split's patches (SROCC's sample); ``pairs``: the level pairs of one
    location with distinct labels (pair accuracy's sample); ``pairs_tied``: the pairs left out.
    """
    result = evaluate_ranker(load_ranker(build_network(dict(network_r)), checkpoint), val_root)
    os.makedirs(osp.dirname(osp.abspath(histograms)), exist_ok=True)
    plot_ranker_histograms({'Ranker': result}, histograms, metric,
                           title=f'Ranker {osp.basename(checkpoint)} on {val_root}', note=note)
    return {'srocc': float(result['srocc']), 'pair_accuracy': float(result['pair_accuracy']),
            'patches': len(result['scores']), 'pairs': int(result['pairs_measured']),
            'pairs_tied': int(result['pairs_tied'])}


def hr_matching_sr(hr_folder: str, sr_folder: str, cropped_folder: str) -> str:
    """``hr_folder``, or copies of its images cropped to their SR images' size (HR not a multiple of the scale)."""
    from PIL import Image

    def sizes(folder: str) -> Dict[str, tuple]:  # (width, height) from the headers: no decoding
        out = {}
        for name in list_images(folder):
            with Image.open(osp.join(folder, name)) as img:
                out[osp.splitext(name)[0]] = img.size
        return out

    sr_sizes, hr_sizes = sizes(sr_folder), sizes(hr_folder)
    if all(sr_sizes.get(stem) == size for stem, size in hr_sizes.items()):
        return hr_folder
    os.makedirs(cropped_folder, exist_ok=True)
    for name in list_images(hr_folder):
        stem = osp.splitext(name)[0]
        width, height = sr_sizes[stem]
        cv2.imwrite(osp.join(cropped_folder, stem + '.png'), cv2.imread(osp.join(hr_folder, name))[:height, :width])
    return cropped_folder


def present_test_sets(layout: RoadLayout) -> Dict[str, tuple]:
    """The test sets to run: PIRM test always (the original's validation set), the others when present."""
    present = {}
    for name in TEST_SETS:
        hr, lr = layout.test_set_folders(name)
        if name == REQUIRED_TEST_SET or name in layout.test_sets or (list_images(hr) and list_images(lr)):
            present[name] = (hr, lr)
    return present


def measure_generator(layout: RoadLayout, network_g: Mapping[str, Any], checkpoint: str,
                      progress: bool = True) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{test set: {'y': means, 'rgb': means}}`` of the generator ``checkpoint``; SR images under the output."""
    net, options = load_generator(checkpoint, network_g, 'params')
    upscaler = GeneratorUpscaler(net, options, weights=checkpoint)
    ma_model: Optional[str] = find_ma_model(layout) if layout.variant.needs_ma else None
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, (hr, lr) in present_test_sets(layout).items():
        sr = osp.join(layout.output, 'sr', name)
        upscale_folder(lr, sr, upscaler, progress=progress)
        hr = hr_matching_sr(hr, sr, osp.join(layout.output, 'hr_cropped', name))
        results[name] = {}
        for channel, y in (('y', True), ('rgb', False)):
            out = evaluate_folders([sr], hr, osp.join(layout.output, 'eval', f'{name}_{channel}'), names=[name],
                                   test_y_channel=y, ma_model=ma_model if y else None, progress=progress)
            rows = out['results'][name]
            results[name][channel] = {**mean_metrics(rows), 'images': len(rows)}
    return results
