"""The generator of the original RankSRGAN code: an SRResNet variant."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F


class _ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity skip (no BN, no residual scaling)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


@ARCH_REGISTRY.register()
class RankSRGANGenerator(nn.Module):
    """The paper's generator (SRResNet, as in the original RankSRGAN code), x2, x3 or x4.

    Differs from BasicSR's MSRResNet: an extra conv (``LRconv``) after the residual trunk, a long
    skip from the first features around trunk + LRconv, ReLU everywhere, no activation after the
    first conv and no bilinear residual. Keys are the original mmsr ones (``conv_first``,
    ``recon_trunk.N.conv1/conv2``, ``LRconv``, ``upconv1``, ``upconv2``, ``HRconv``,
    ``conv_last``), so official RankSRGAN / SRResNet weights load after
    ``tools/convert_official_weights.py`` (which also maps the older ``model.N`` layout).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Residual blocks. Default: 16.
        upscale (int): 2, 3 or 4. Default: 4.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f'RankSRGANGenerator supports upscale 2, 3 or 4, got {upscale}.')
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.recon_trunk = nn.Sequential(*[_ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        self.LRconv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        shuffle = 3 if upscale == 3 else 2
        self.upconv1 = nn.Conv2d(num_feat, num_feat * shuffle * shuffle, 3, 1, 1)
        if upscale == 4:
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.HRconv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.LRconv(self.recon_trunk(feat))
        feat = F.relu(F.pixel_shuffle(self.upconv1(feat), 3 if self.upscale == 3 else 2))
        if self.upscale == 4:
            feat = F.relu(F.pixel_shuffle(self.upconv2(feat), 2))
        return self.conv_last(F.relu(self.HRconv(feat)))
