"""What a checkpoint is: a file read off its first bytes (:func:`describe_file`), a loaded one off its keys
(:func:`describe_weights`); for messages that refuse a file found where another belongs.

A weights file that does not load is most often not a weights file at all: a web page saved by a
download that needed a click (Google Drive's virus-scan page), a Git LFS pointer checked out without
``git lfs pull``, an interrupted copy, a zip of the files. :func:`describe_file` names which, so the
message can say so instead of the unpickler's ``pop from empty list``. A file that loads but holds
other weights (another network, a training state) is named by :func:`describe_weights`: its wrapper
and the network its keys belong to.
"""
import json
import os
import re
import zipfile
from typing import Any, Iterable, List, Mapping, Optional

import torch

from .errors import UnknownCheckpointLayout
from .layout import detect_layout

_LAYOUT_NAMES = {  # detect_layout's names, as describe_weights says them
    'ranker_mmsr': "a Ranker (conv0_0 ... classifier.N: the plugin's RankerVGG or the official release)",
    'ranker_features': 'an official RankSRGAN Ranker, older release (features.N, classifier.N)',
    'generator_mmsr': "a RankSRGAN generator (conv_first, recon_trunk.N, LRconv: the plugin's or the official)",
    'generator_model': 'an official RankSRGAN / SRResNet / SRGAN generator, older release (model.N)',
    'rrdbnet_mmsr': 'an official ESRGAN RRDBNet (conv_first, RRDB_trunk.N)',
    'rrdbnet_model': 'an official ESRGAN RRDBNet, older release (model.N ... RDB1)',
}
# (keys that all appear, description), tried before the official layouts
_SIGNATURES = (
    (('features.0.weight', 'classifier.6.weight'), "torchvision's VGG (features.N, classifier.N)"),
    (('body.0.conv1.weight', 'upconv1.weight'), "BasicSR's MSRResNet generator (conv_first, body.N, upconv1)"),
    (('body.0.rdb1.conv1.weight',), "BasicSR's RRDBNet generator (conv_first, body.N.rdb1)"),
    (('trunk_net.0.conv1.weight',), "MMagic's MSRResNet generator without its 'generator.' prefix"),
    (('conv0_0.weight', 'linear1.weight'), 'a VGG-style discriminator (conv0_0 ... linear1, linear2)'),
)
TORCH_CHECKPOINT = 'a torch checkpoint'  # how every description of a torch file starts
_HEAD_BYTES = 4096
_LEGACY_TORCH = b'\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19'  # pickle protocol 2 of torch's magic number
_MAGIC = (  # (leading bytes, description); checked in order after the text-like kinds
    (b'\x89PNG\r\n\x1a\n', 'a PNG image'),
    (b'\xff\xd8\xff', 'a JPEG image'),
    (b'GIF8', 'a GIF image'),
    (b'II*\x00', 'a TIFF image'),
    (b'MM\x00*', 'a TIFF image'),
    (b'%PDF', 'a PDF document'),
    (b'\x1f\x8b', 'a gzip archive'),
    (b'BZh', 'a bzip2 archive'),
    (b'\xfd7zXZ\x00', 'an xz archive'),
    (b'7z\xbc\xaf\x27\x1c', 'a 7-Zip archive'),
    (b'Rar!\x1a\x07', 'a RAR archive'),
    (b'\x93NUMPY', 'a NumPy array file (.npy)'),
    (b'MATLAB 7.3 MAT-file', 'a MATLAB v7.3 .mat file (HDF5)'),
    (b'\x89HDF\r\n\x1a\n', 'an HDF5 file (Keras .h5, or a MATLAB v7.3 .mat)'),
)


def _size(count: int) -> str:
    for unit, factor in (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
        if count >= factor:
            return f'{count / factor:.1f} {unit}'
    return f'{count} byte' + ('' if count == 1 else 's')


def sample_names(names: Iterable[Any], count: int = 3) -> str:
    """The first ``count`` of ``names``, with `` ...`` when there are more (for messages)."""
    names = list(names)
    return ', '.join(names[:count]) + (' ...' if len(names) > count else '')


def _is_torch_archive(names: List[str]) -> bool:
    """torch's zip format: every entry under one folder, the pickle at ``<folder>/data.pkl``."""
    tops = {name.split('/', 1)[0] for name in names}
    return len(tops) == 1 and f'{tops.pop()}/data.pkl' in names


def _describe_zip(path: str, head: bytes, size: int) -> str:
    if not zipfile.is_zipfile(path):
        first = head[30:30 + int.from_bytes(head[26:28], 'little')].decode('utf-8', 'replace')
        what = TORCH_CHECKPOINT if first.endswith('/data.pkl') or '/' in first else 'a zip archive'
        return f'{what} cut short ({_size(size)}, its end is missing: an interrupted download or copy)'
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        return f'a damaged zip archive ({_size(size)}: {error})'
    if _is_torch_archive(names):
        return f'{TORCH_CHECKPOINT} (zip format, {_size(size)})'
    if names and all(name.endswith('.npy') for name in names):
        return f'a NumPy .npz archive ({_size(size)}, arrays {sample_names([n[:-4] for n in names])})'
    return f'a zip archive that is not a torch checkpoint ({_size(size)}, it holds {sample_names(names) or "nothing"})'


def _describe_mat(path: str, size: int) -> str:
    try:
        import scipy.io

        names = [name for name, _, _ in scipy.io.whosmat(path)]
    except Exception as error:  # a damaged header: say what scipy says
        return f'a MATLAB 5.0 .mat file that does not read ({_size(size)}: {error})'
    return f'a MATLAB 5.0 .mat file ({_size(size)}, variables {sample_names(names) or "none"})'


def _describe_pickle(head: bytes, size: int) -> Optional[str]:
    if head.startswith(_LEGACY_TORCH):
        return f'{TORCH_CHECKPOINT} (legacy, non-zip format, {_size(size)})'
    if len(head) > 1 and head[0] == 0x80 and 1 <= head[1] <= 5:
        return f'a Python pickle (protocol {head[1]}, {_size(size)}), not a torch file'
    if len(head) > 9 and head[8:10] == b'{"' and int.from_bytes(head[:8], 'little') < size:
        return f'a safetensors file ({_size(size)}), not a torch pickle'
    return None


def _describe_text(path: str, head: bytes, size: int) -> Optional[str]:
    """HTML page, Git LFS pointer, JSON, XML or plain text; None for binary data."""
    if b'\x00' in head:
        return None
    text = head.decode('utf-8', 'replace').lstrip('\ufeff \t\r\n')
    if text.count('\ufffd') > len(text) // 100 + 1:
        return None
    lower = text[:200].lower()
    if text.startswith('version https://git-lfs'):
        pointed = re.search(r'^size (\d+)', text, re.M)
        of = f' to a file of {_size(int(pointed.group(1)))}' if pointed else ''
        return f'a Git LFS pointer ({_size(size)}){of} that was never fetched (git lfs pull)'
    if lower.startswith(('<!doctype html', '<html')) or re.match(r'<(head|body|meta|script)\b', lower):
        title = re.search(r'<title[^>]*>([^<]*)</title>', text, re.I | re.S)
        named = f', title "{" ".join(title.group(1).split())[:80]}"' if title and title.group(1).strip() else ''
        return f'an HTML page ({_size(size)}{named}) saved in place of the file'
    if lower.startswith('<?xml'):
        return f'an XML file ({_size(size)})'
    if text[:1] in '{[' and size <= 2 ** 20:
        try:
            with open(path, encoding='utf-8') as f:
                json.load(f)
            return f'a JSON file ({_size(size)})'
        except (ValueError, OSError):
            pass
    start = ' '.join(text.split())[:40]
    return f'a text file ({_size(size)}, starting "{start}")'


def describe_file(path: str) -> str:
    """What ``path`` is, as a phrase that completes "it is ...": ``empty (0 bytes)``, ``an HTML page (...)``,
    ``a Git LFS pointer (...)``, ``a text file (...)``, ``a JSON file``, ``a torch checkpoint (zip format, ...)``,
    ``a torch checkpoint cut short (...)``, ``a zip archive that is not a torch checkpoint (...)``, ``a PNG
    image``, ``a MATLAB 5.0 .mat file (..., variables ...)`` ... or ``binary data ... (starting <hex>)``.
    A description of a torch file starts with :data:`TORCH_CHECKPOINT`."""
    if not os.path.exists(path):
        return 'missing (no such file)'
    if os.path.isdir(path):
        return 'a folder, not a file'
    size = os.path.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith((b'PK\x03\x04', b'PK\x05\x06')):
        return _describe_zip(path, head, size)
    if head.startswith(b'MATLAB 5.0 MAT-file'):
        return _describe_mat(path, size)
    for magic, description in _MAGIC:
        if head.startswith(magic):
            return f'{description} ({_size(size)})'
    if head[257:262] == b'ustar':
        return f'a tar archive ({_size(size)})'
    described = _describe_pickle(head, size) or _describe_text(path, head, size)
    if described:
        return described
    return f'binary data that is not a torch file ({_size(size)}, starting {head[:8].hex(" ")})'


def describe_weights(checkpoint: Any) -> str:
    """A short description of a loaded checkpoint: its wrapper and the network its keys belong to."""
    if not isinstance(checkpoint, Mapping):
        return f'not a state_dict but a {type(checkpoint).__name__}'
    for wrapper, who in (('params_ema', 'a BasicSR checkpoint'), ('params', 'a BasicSR checkpoint'),
                         ('state_dict', 'an mmengine (MMagic) checkpoint')):
        if isinstance(checkpoint.get(wrapper), Mapping):
            return f"{who} (weights under '{wrapper}') of {describe_weights(checkpoint[wrapper])}"
    if all(key in checkpoint for key in ('iter', 'optimizers', 'schedulers')):
        return f"a BasicSR training state (<iter>.state, iteration {checkpoint['iter']}), not weights"
    keys = [key for key, value in checkpoint.items() if isinstance(value, torch.Tensor)]
    if not keys:
        return f'a mapping without tensors (entries {sample_names(checkpoint, 4)})'
    tops = sorted({key.split('.')[0] for key in keys})
    if {'generator', 'discriminator'} & set(tops) or 'ranker' in tops:
        return f'a model with submodules {", ".join(tops)}'
    for signature, description in _SIGNATURES:
        if all(key in checkpoint for key in signature):
            return description
    try:
        return _LAYOUT_NAMES[detect_layout(checkpoint)]
    except UnknownCheckpointLayout:
        return f'a network with keys {sample_names(keys, 4)}'
