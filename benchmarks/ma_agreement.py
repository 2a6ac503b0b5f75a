"""Agreement of our Ma features (and scores, given model.mat) with outputs of the official MATLAB code.

The reference file has one line per image, as the MATLAB loop below writes it (``%.17g``, space separated):

    name ma niqe s1 s2 s3 18 f1(1..18) 45 f2(1..45) 75 f3(1..75)

    [f1, f2, f3] = feature_all(im);          % sr-metric's feature code on the uint8 Y image
    s1 = regRF_predict(f1(:)', model.rf{1}); % ... s2, s3 likewise
    ma = [1 s1 s2 s3] * model.linear;  nq = computequality(im, 96, 96, 0, 0, mu_prisparam, cov_prisparam);

``--images`` holds the Y images by those names; ``--skimage DIR`` first writes the PIRM-form Y images of
scikit-image's samples there (MATLAB ``rgb2ycbcr`` Y, rounded, 4-pixel shave; ``*_x4bicubic`` are PIL bicubic
down/up by 4), the inputs of the reference in docs/ma_metric.md. Prints the
largest relative deviation per feature group and image, our NIQE (BasicSR's definition) next to MATLAB's,
and, with ``--model``, our Ma next to MATLAB's; from >= 4 lines also the ``model.linear`` that the reference
scores imply (least squares of Ma on [1 s1 s2 s3]).

    python benchmarks/ma_agreement.py --reference octave_reference.txt --skimage /tmp/pirm_y [--model model.mat]
"""
import argparse
from pathlib import Path
from typing import Dict

import cv2
import numpy as np

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
from ranksrgan_plugin import iqa


def read_reference(path: str) -> Dict[str, dict]:
    """{image name: {'ma', 'niqe', 's' (3,), 'dct', 'gsm', 'svd'}} from the reference file."""
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, *values = line.split()
        v = np.array(values, dtype=np.float64)
        entry, i = {'ma': v[0], 'niqe': v[1], 's': v[2:5]}, 5
        for group in iqa.GROUPS:
            size = int(v[i])
            if size != iqa.FEATURE_SIZES[group] or len(v) < i + 1 + size:
                raise ValueError(f'{path}:{number}: expected {iqa.FEATURE_SIZES[group]} {group} features, got {size}')
            entry[group], i = v[i + 1:i + 1 + size], i + 1 + size
        out[name] = entry
    return out


def write_skimage_images(folder: Path) -> None:
    """PIRM-form Y images (uint8 MATLAB rgb2ycbcr Y, 4-pixel shave) of scikit-image samples."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    sources = {name: getattr(data, name)() for name in ('astronaut', 'coffee', 'chelsea', 'rocket')}
    for name in ('coffee', 'astronaut'):
        im = Image.fromarray(sources[name])
        w, h = im.size
        small = im.resize((w // 4, h // 4), Image.BICUBIC)
        sources[f'{name}_x4bicubic'] = np.asarray(small.resize((w // 4 * 4, h // 4 * 4), Image.BICUBIC))
    for name, rgb in sources.items():
        y = iqa.to_y_matlab(np.ascontiguousarray(rgb[None, ..., ::-1]), 'HWC', 4)[0].numpy().astype(np.uint8)
        cv2.imwrite(str(folder / f'{name}_y.png'), y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reference', required=True)
    ap.add_argument('--images', default=None, help='folder of the Y images named in the reference file')
    ap.add_argument('--skimage', default=None, help='write the scikit-image PIRM-form Y images here and use them')
    ap.add_argument('--model', default=None, help="the authors' model.mat: also compare forest outputs and Ma")
    args = ap.parse_args()
    if args.skimage:
        write_skimage_images(Path(args.skimage))
    folder = Path(args.skimage or args.images or '.')
    reference = read_reference(args.reference)
    model = iqa.load_ma_model(args.model) if args.model else None
    print('| image | size | dct max rel | gsm max rel | svd max rel | NIQE ours (BasicSR) | NIQE MATLAB |'
          + (' Ma ours | Ma MATLAB |' if model else ''))
    print('|---|---|---|---|---|---|---|' + ('---|---|' if model else ''))
    for name, ref in reference.items():
        path = folder / name
        y = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if y is None:
            print(f'| {name} | (missing: {path}) | | | |')
            continue
        feats = iqa.ma_features(y.astype(np.float64))
        errs = [np.max(np.abs(feats[g] - ref[g]) / np.maximum(np.abs(ref[g]), 1e-12)) for g in iqa.GROUPS]
        niqe = iqa.niqe_batch(y[None].astype(np.float64), crop_border=0, input_order='HW')[0]
        cells = f'| {name} | {y.shape[0]}x{y.shape[1]} | ' + ' | '.join(f'{e:.1e}' for e in errs)
        cells += f' | {niqe:.4f} | {ref["niqe"]:.4f} |'
        if model:
            cells += f' {model.predict(feats)[0]:.6f} | {ref["ma"]:.6f} |'
        print(cells)
    if len(reference) >= 4:
        rows = np.array([[1.0, *r['s']] for r in reference.values()])
        linear, *_ = np.linalg.lstsq(rows, np.array([r['ma'] for r in reference.values()]), rcond=None)
        print(f'\nmodel.linear implied by the reference scores: {np.array2string(linear, precision=8)}')


if __name__ == '__main__':
    main()
