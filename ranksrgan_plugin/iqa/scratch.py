"""Reusable work buffers for the batched NIQE."""
import math
from typing import Dict, Optional, Tuple

import torch


class Scratch:
    """Work buffers reused from one group of images to the next within a call.

    Every fresh multi-megabyte CPU tensor costs page faults on first touch, about as much as the
    arithmetic done in it, so the large intermediates are views into buffers kept here.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: Dict[Tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def get(self, key: str, shape: Tuple[int, ...], dtype: torch.dtype = torch.float32,
            device: Optional[torch.device] = None) -> torch.Tensor:
        """A contiguous uninitialised tensor of ``shape``; valid until the next ``get`` with the same key."""
        device = device or self.device
        numel = math.prod(shape)
        buf = self._buffers.get((key, dtype, device))
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[(key, dtype, device)] = buf
        return buf[:numel].view(shape)


