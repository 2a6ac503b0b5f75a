"""The authors' releases: their checkpoints converted to the plugin's architectures, and written back.

Supported layouts (detected from the keys by :func:`~.layout.detect_layout`; anything else is refused
with a clear message):

- ``ranker_mmsr``: Ranker with ``conv0_0``, ``bn0_1``, ..., ``classifier.N`` (Ranker_NIQE.pth,
  Ranker_Ma.pth, Ranker_PI.pth, mmsr_Ranker_NIQE.pth) -> :class:`RankerVGG`, same keys;
- ``ranker_features``: the older Ranker release, ``features.N`` / ``classifier.N`` in layer order;
- ``generator_mmsr``: SRResNet with ``conv_first``, ``recon_trunk.N.conv1/conv2``, ``LRconv``,
  ``upconv1/2``, ``HRconv``, ``conv_last`` -> :class:`RankSRGANGenerator`, same keys;
- ``generator_model``: the older SRResNet release, ``model.0``, ``model.1.sub.N.res.0/.res.2``,
  ``model.1.sub.<num_block>`` (LRconv), ``model.2``, ``model.5``, ``model.8``, ``model.10``
  (RankSRGAN_NIQE.pth, RankSRGAN_Ma.pth, RankSRGAN_PI.pth, SRResNet_bicx4_in3nf64nb16.pth, SRGAN.pth);
- ``rrdbnet_mmsr``: ESRGAN's RRDBNet x4 with ``conv_first``, ``RRDB_trunk.N.RDB1..3.conv1..5``,
  ``trunk_conv``, ``upconv1/2``, ``HRconv``, ``conv_last`` (the RankSRGAN code's RRDBNet_arch.py)
  -> BasicSR's :class:`RRDBNet` (``body.N.rdb1.conv1``, ``conv_body``, ``conv_up1/2``, ``conv_hr``);
- ``rrdbnet_model``: the older ESRGAN release, ``model.0``, ``model.1.sub.N.RDB1.conv1.0`` ...,
  ``model.1.sub.<num_block>`` (trunk conv), ``model.3``, ``model.6``, ``model.8``, ``model.10``
  (ESRGAN_SuperSR.pth, RRDB_ESRGAN_x4.pth) -> BasicSR's :class:`RRDBNet`.

The architecture options (depth, widths, blocks) are read off the weights' shapes, the converted
state_dict is loaded into the built network with ``strict=True`` before it is returned.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Tuple

import torch
from basicsr.archs.rrdbnet_arch import RRDBNet

from ..archs.ranker_arch import _STRIDE1_CONVS_PER_STAGE, RankerVGG
from ..archs.ranksrgan_generator_arch import RankSRGANGenerator
from .errors import UnknownCheckpointLayout
from .layout import StateDict, detect_layout, unwrap_state_dict
from .ranker import ranker_state_dict

_OLD_GENERATOR_TAIL = {'model.2': 'upconv1', 'model.5': 'upconv2', 'model.8': 'HRconv', 'model.10': 'conv_last'}
_MMSR_RRDB_NAMES = {'conv_first': 'conv_first', 'trunk_conv': 'conv_body', 'upconv1': 'conv_up1',
                    'upconv2': 'conv_up2', 'HRconv': 'conv_hr', 'conv_last': 'conv_last'}
_OLD_RRDB_NAMES = {'model.0': 'conv_first', 'model.3': 'conv_up1', 'model.6': 'conv_up2', 'model.8': 'conv_hr',
                   'model.10': 'conv_last'}


def _ranker_options(conv_shapes: List[torch.Size], hidden: int) -> Dict[str, Any]:
    """RankerVGG options from the ordered conv weight shapes (stage 0 has two convs)."""
    stage_convs = len(conv_shapes) - 2
    per_stage = stage_convs // 4
    depth = {n + 1: d for d, n in _STRIDE1_CONVS_PER_STAGE.items()}.get(per_stage)
    if depth is None or stage_convs % 4:
        raise UnknownCheckpointLayout(f'A Ranker with {len(conv_shapes)} convs is not VGG-8/12/16.')
    widths = tuple(conv_shapes[2 + per_stage * (s + 1) - 1][0] for s in range(4))
    return {'type': 'RankerVGG', 'depth': depth, 'num_in_ch': conv_shapes[0][1], 'num_feat': conv_shapes[0][0],
            'stage_widths': list(widths), 'num_hidden': hidden}


def _ranker_conv_shapes(state_dict: StateDict, layout: str) -> List[torch.Size]:
    if layout == 'ranker_features':
        weights = [(int(k.split('.')[1]), v.shape) for k, v in state_dict.items()
                   if k.startswith('features.') and k.endswith('.weight') and v.dim() == 4]
        return [shape for _, shape in sorted(weights)]
    convs = [(tuple(map(int, re.match(r'conv(\d+)_(\d+)\.weight', k).groups())), v.shape)
             for k, v in state_dict.items() if re.match(r'conv\d+_\d+\.weight$', k)]
    return [shape for _, shape in sorted(convs)]


def convert_ranker(state_dict: StateDict, layout: str) -> Tuple[Dict[str, Any], RankerVGG]:
    options = _ranker_options(_ranker_conv_shapes(state_dict, layout), state_dict['classifier.0.weight'].shape[0])
    net = RankerVGG(**{k: v for k, v in options.items() if k != 'type'})
    net.load_state_dict(ranker_state_dict(state_dict, net, param_key=None), strict=True)
    return options, net


def convert_old_generator_keys(state_dict: StateDict) -> StateDict:
    """``model.N`` (older release) -> RankSRGANGenerator key names."""
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r'model\.1\.sub\.(\d+)\.res\.', k))}
    lr_conv_index = max(blocks) + 1
    converted: StateDict = OrderedDict()
    for key, value in state_dict.items():
        name, param = key.rsplit('.', 1)
        if name == 'model.0':
            new = 'conv_first'
        elif match := re.match(r'model\.1\.sub\.(\d+)\.res\.([02])$', name):
            new = f'recon_trunk.{match.group(1)}.conv{1 if match.group(2) == "0" else 2}'
        elif name == f'model.1.sub.{lr_conv_index}':
            new = 'LRconv'
        elif name in _OLD_GENERATOR_TAIL:
            new = _OLD_GENERATOR_TAIL[name]
        else:
            raise UnknownCheckpointLayout(f'Unexpected key {key!r} in a model.N generator checkpoint.')
        converted[f'{new}.{param}'] = value
    return converted


def convert_generator(state_dict: StateDict, layout: str) -> Tuple[Dict[str, Any], RankSRGANGenerator]:
    if layout == 'generator_model':
        state_dict = convert_old_generator_keys(state_dict)
    num_block = len({k.split('.')[1] for k in state_dict if k.startswith('recon_trunk.')})
    shuffle_channels = state_dict['upconv1.weight'].shape[0] // state_dict['conv_first.weight'].shape[0]
    upscale = 4 if 'upconv2.weight' in state_dict else (3 if shuffle_channels == 9 else 2)
    options = {'type': 'RankSRGANGenerator', 'num_in_ch': state_dict['conv_first.weight'].shape[1],
               'num_out_ch': state_dict['conv_last.weight'].shape[0],
               'num_feat': state_dict['conv_first.weight'].shape[0], 'num_block': num_block, 'upscale': upscale}
    net = RankSRGANGenerator(**{k: v for k, v in options.items() if k != 'type'})
    net.load_state_dict(state_dict, strict=True)
    return options, net


def _rrdb_trunk_name(match: re.Match) -> str:
    """``<block>.RDB<i>.conv<j>`` -> BasicSR's ``body.<block>.rdb<i>.conv<j>``."""
    block, rdb, conv = match.groups()
    return f'body.{block}.rdb{rdb}.conv{conv}'


def convert_rrdb_keys(state_dict: StateDict, layout: str) -> StateDict:
    """``rrdbnet_mmsr`` / ``rrdbnet_model`` key names -> BasicSR RRDBNet key names."""
    if layout == 'rrdbnet_mmsr':
        trunk, names = r'RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])$', dict(_MMSR_RRDB_NAMES)
    else:
        trunk, names = r'model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0$', dict(_OLD_RRDB_NAMES)
        blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r'model\.1\.sub\.(\d+)\.RDB', k))}
        names[f'model.1.sub.{max(blocks) + 1}'] = 'conv_body'
    converted: StateDict = OrderedDict()
    for key, value in state_dict.items():
        name, param = key.rsplit('.', 1)
        match = re.match(trunk, name)
        if not match and name not in names:
            raise UnknownCheckpointLayout(f'Unexpected key {key!r} in a {layout} checkpoint (ESRGAN x4 RRDBNet).')
        converted[f'{_rrdb_trunk_name(match) if match else names[name]}.{param}'] = value
    return converted


def convert_rrdbnet(state_dict: StateDict, layout: str) -> Tuple[Dict[str, Any], RRDBNet]:
    """BasicSR RRDBNet options and network of an ESRGAN checkpoint (x4, as both layouts are)."""
    state_dict = convert_rrdb_keys(state_dict, layout)
    if 'conv_up2.weight' not in state_dict:
        raise UnknownCheckpointLayout(f'A {layout} checkpoint without the second upsampling conv is not x4.')
    options = {'type': 'RRDBNet', 'num_in_ch': state_dict['conv_first.weight'].shape[1],
               'num_out_ch': state_dict['conv_last.weight'].shape[0], 'scale': 4,
               'num_feat': state_dict['conv_first.weight'].shape[0],
               'num_block': len({k.split('.')[1] for k in state_dict if k.startswith('body.')}),
               'num_grow_ch': state_dict['body.0.rdb1.conv1.weight'].shape[0]}
    net = RRDBNet(**{k: v for k, v in options.items() if k != 'type'})
    net.load_state_dict(state_dict, strict=True)
    return options, net


def convert_official_checkpoint(checkpoint: Mapping[str, Any]) -> Tuple[str, Dict[str, Any], torch.nn.Module]:
    """(layout, architecture options, network with the weights loaded strictly) of an official checkpoint."""
    state_dict = unwrap_state_dict(checkpoint)
    layout = detect_layout(state_dict)
    convert = {'ranker': convert_ranker, 'generator': convert_generator, 'rrdbnet': convert_rrdbnet}
    options, net = convert[layout.split('_')[0]](state_dict, layout)
    return layout, options, net


def to_release_layout(state_dict: StateDict, layout: str) -> StateDict:
    """The inverse of the conversion: plugin / BasicSR keys under an official release's key names.

    ``layout`` is ``generator_model`` (a :class:`RankSRGANGenerator` state_dict as the authors'
    ``SRResNet_bicx4_in3nf64nb16.pth`` / ``SRGAN.pth`` store it) or ``rrdbnet_model`` (a BasicSR
    :class:`RRDBNet` state_dict as ``ESRGAN_SuperSR.pth`` stores it). Used to write stand-ins of the
    authors' files (the paper road's rehearsal); :func:`convert_official_checkpoint` reads them back.
    """
    if layout == 'generator_model':
        tail = {new: old for old, new in _OLD_GENERATOR_TAIL.items()}
        blocks = {k.split('.')[1] for k in state_dict if k.startswith('recon_trunk.')}
        tail.update(conv_first='model.0', LRconv=f'model.1.sub.{len(blocks)}')
        trunk = re.compile(r'recon_trunk\.(\d+)\.conv([12])$')
        rename = lambda m: f'model.1.sub.{m.group(1)}.res.{0 if m.group(2) == "1" else 2}'  # noqa: E731
    elif layout == 'rrdbnet_model':
        tail = {new: old for old, new in _OLD_RRDB_NAMES.items()}
        blocks = {k.split('.')[1] for k in state_dict if k.startswith('body.')}
        tail['conv_body'] = f'model.1.sub.{len(blocks)}'
        trunk = re.compile(r'body\.(\d+)\.rdb([123])\.conv([1-5])$')
        rename = lambda m: f'model.1.sub.{m.group(1)}.RDB{m.group(2)}.conv{m.group(3)}.0'  # noqa: E731
    else:
        raise UnknownCheckpointLayout(f'No writer for layout {layout!r}; supported: generator_model, rrdbnet_model.')
    released: StateDict = OrderedDict()
    for key, value in state_dict.items():
        name, param = key.rsplit('.', 1)
        match = trunk.match(name)
        if not match and name not in tail:
            raise UnknownCheckpointLayout(f'Unexpected key {key!r} for the {layout} layout.')
        released[f'{rename(match) if match else tail[name]}.{param}'] = value
    return released
