"""Tiled inference of an SR network: cut the LR input into tiles with real context, run equal-shape
tiles in batches, stitch the kept parts (one helper, as Real-ESRGAN's ``RealESRGANer.tile_process``).

With ``tile_pad`` at least the network's receptive-field radius
(:func:`~ranksrgan_plugin.utils.receptive_field.receptive_field`) the output equals the untiled one
(up to the float kernels' last-bit rounding); :func:`resolve_tiling` checks the options against it.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .receptive_field import ReceptiveField, UnboundedReceptiveField, receptive_field

_Job = Tuple[torch.Tensor, Tuple[int, int, int, int]]


class TilingError(ValueError):
    """Tiling options that are invalid for the network (the message starts with what is tiled)."""


@dataclass(frozen=True)
class Tiling:
    """Checked tiling options: ``tile`` (0: untiled), ``tile_pad`` and the network's ``receptive_radius``."""

    tile: int
    tile_pad: int
    receptive_radius: int


def _cut_tiles(x: torch.Tensor, th: int, tw: int, pad: int) -> Dict[Tuple[int, ...], List[_Job]]:
    """Tiles of ``x`` (1, C, H, W) grouped by shape, each with (top, left, offset of the kept part)."""
    _, _, h, w = x.shape
    groups: Dict[Tuple[int, ...], List[_Job]] = {}
    for top in range(0, h, th):
        for left in range(0, w, tw):
            y0, x0 = max(top - pad, 0), max(left - pad, 0)
            tile = x[0, :, y0:min(top + th + pad, h), x0:min(left + tw + pad, w)]
            keep = (top, left, top - y0, left - x0)  # output position, offset of the kept part in the tile
            groups.setdefault(tuple(tile.shape), []).append((tile, keep))
    return groups


def tiled_forward(net: nn.Module, x: torch.Tensor, scale: int, tile: int, tile_pad: int, batch_size: int = 4,
                  device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """``net(x)`` of a (1, C, H, W) input computed tile by tile; the output is on the CPU.

    Tiles carry ``tile_pad`` pixels of real context (clipped at the image edge, where the network's own
    zero padding applies as in an untiled run); tiles of equal shape run ``batch_size`` at a time on
    ``device`` (default: ``x``'s). A side no longer than ``tile + 2 * tile_pad`` (the largest padded
    tile) is not cut: one tile spans it.
    """
    _, _, h, w = x.shape
    th, tw = (side if side <= tile + 2 * tile_pad else tile for side in (h, w))
    device = x.device if device is None else device
    out: Optional[torch.Tensor] = None
    for jobs in _cut_tiles(x, th, tw, tile_pad).values():
        for start in range(0, len(jobs), max(1, batch_size)):
            chunk = jobs[start:start + max(1, batch_size)]
            batch = torch.stack([tile for tile, _ in chunk])
            results = net(batch.to(device)).cpu()
            _check_tile_output(batch.shape, results.shape, scale)
            if out is None:
                out = results.new_zeros(1, results.shape[1], h * scale, w * scale)
            for result, (top, left, dy, dx) in zip(results, (keep for _, keep in chunk)):
                kh, kw = min(th, h - top), min(tw, w - left)
                out[0, :, top * scale:(top + kh) * scale, left * scale:(left + kw) * scale] = \
                    result[:, dy * scale:(dy + kh) * scale, dx * scale:(dx + kw) * scale]
    return out


def _check_tile_output(tiles: torch.Size, results: torch.Size, scale: int) -> None:
    """A network whose output is not its tiles upscaled ``scale`` times would stitch a patchwork: refuse it."""
    expected = (tiles[2] * scale, tiles[3] * scale)
    if len(results) != 4 or tuple(results[2:]) != expected:
        raise TilingError(f'The network maps {tiles[2]}x{tiles[3]} tiles to {tuple(results)[2:]}, not to the '
                          f'{expected[0]}x{expected[1]} of the scale {scale} given for stitching: give the scale '
                          'the network has (leave it out to measure it).')


def non_negative(value: Any, what: str, name: str) -> int:
    """``value`` when it is a pixel count >= 0 (``tile``: 0 = untiled; ``tile_pad``: or ``auto``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        hint = '0 (untiled) or a positive pixel count' if what == 'tile' else '`auto` or a pixel count >= 0'
        raise TilingError(f'{name}: {what} must be {hint}, got {value!r}.')
    return value


def _field(net: nn.Module, num_in_ch: int, tile: int, name: str) -> ReceptiveField:
    """The network's receptive field; an unbounded one (global pooling) is an error when tiling only."""
    try:
        return receptive_field(net, num_in_ch)
    except UnboundedReceptiveField as err:
        if tile:
            raise TilingError(f'{name}: {err}; run it untiled (tile: 0).') from err
        return ReceptiveField(radius=0)  # untiled: no pad is used


def _aligned(value: int, what: str, alignment: int, name: str) -> int:
    """``value`` when it is a multiple of the network's downsampling (tiles keep the image's grid)."""
    if value % alignment:
        raise TilingError(f'{name}: {what} {value} is not a multiple of {alignment}, the '
                          'network\'s downsampling; tiles would not see the untiled pixel grid.')
    return value


def resolve_tiling(net: nn.Module, tile: int, tile_pad: Union[int, str], name: str,
                   on_small_pad: Callable[[int, int], None], num_in_ch: int = 3) -> Tiling:
    """Checked tiling options of ``net``; :class:`TilingError` messages start with ``name``.

    ``tile_pad='auto'`` is the receptive-field radius; an explicit pad below it while tiling calls
    ``on_small_pad(tile_pad, radius)`` (which raises or warns: the caller's policy). ``tile`` and an
    explicit pad must be multiples of the network's downsampling when tiling.
    """
    tile = non_negative(tile, 'tile', name)
    field = _field(net, num_in_ch, tile, name)
    _aligned(tile, 'tile', field.alignment, name)
    if tile_pad == 'auto':
        return Tiling(tile, field.radius, field.radius)
    tile_pad = non_negative(tile_pad, 'tile_pad', name)
    if tile and tile_pad < field.radius:
        on_small_pad(tile_pad, field.radius)
    if tile:
        _aligned(tile_pad, 'tile_pad', field.alignment, name)
    return Tiling(tile, tile_pad, field.radius)
