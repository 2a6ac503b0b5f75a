"""A VGG-style discriminator for any input size (the paper trains on 296x296 GT patches)."""
import torch
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class VGGStyleDiscriminatorAnySize(VGGStyleDiscriminator):
    """BasicSR's VGGStyleDiscriminator (the SRGAN/ESRGAN discriminator) for any input size >= 32.

    Same layers and state_dict keys as BasicSR's 128-pixel version (five stride-2 stages), with
    ``linear1`` sized to the final feature map: 512 * 9 * 9 inputs for the paper's 296x296 patches,
    as in the original code's discriminator. BasicSR's class accepts only 128 or 256.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_feat (int): Channels of the first stage. Default: 64.
        input_size (int): Height and width of the input. Default: 296.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 296) -> None:
        if input_size < 32:
            raise ValueError(f'VGGStyleDiscriminatorAnySize needs input_size >= 32, got {input_size}.')
        super().__init__(num_in_ch, num_feat, input_size=128)
        self.input_size = input_size
        final_size = input_size
        for _ in range(5):  # each 4x4 stride-2 conv with padding 1 halves (floor) the size
            final_size //= 2
        self.linear1 = nn.Linear(num_feat * 8 * final_size * final_size, 100)
        # BasicSR's forward flattens with .view: channels_last features (train.channels_last) need NCHW order
        self.bn4_1.register_forward_hook(_contiguous_output)


def _contiguous_output(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()
