"""A VGG-style discriminator for any input size (the paper trains on 296x296 GT patches)."""
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..compat.basicsr import flatten_channels_last_features


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
        conv_bias (bool): Biases on the convolutions followed by BatchNorm too. Default: False (the mmsr
            version's, as BasicSR's); True: the first release's ``Discriminator_VGG_128`` (``conv_block``).
        init (str): ``pytorch`` (default: PyTorch's initialisation, as the mmsr version's ``define_D``) or
            ``kaiming`` (the first release's ``init_weights(netD, 'kaiming', scale=1)``: kaiming-normal
            fan-in convolution and linear weights, zero biases, BatchNorm weight 1 and bias 0).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 296, conv_bias: bool = False,
                 init: str = 'pytorch') -> None:
        if input_size < 32:
            raise ValueError(f'VGGStyleDiscriminatorAnySize needs input_size >= 32, got {input_size}.')
        super().__init__(num_in_ch, num_feat, input_size=128)
        self.input_size = input_size
        final_size = input_size
        for _ in range(5):  # each 4x4 stride-2 conv with padding 1 halves (floor) the size
            final_size //= 2
        self.linear1 = nn.Linear(num_feat * 8 * final_size * final_size, 100)
        if conv_bias:
            for name, conv in list(self.named_children()):
                if isinstance(conv, nn.Conv2d) and conv.bias is None:
                    setattr(self, name, nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                                  conv.stride, conv.padding, bias=True))
        if init == 'kaiming':
            kaiming_init(self)
        elif init != 'pytorch':
            raise ValueError(f"VGGStyleDiscriminatorAnySize init must be 'pytorch' or 'kaiming', got {init!r}.")
        # BasicSR's forward flattens with .view: channels_last features (train.channels_last) need NCHW order
        flatten_channels_last_features(self)


def kaiming_init(net: nn.Module) -> nn.Module:
    """The first release's ``init_weights(net, 'kaiming', scale=1)``: kaiming-normal (fan-in, a=0) weights of
    convolutions and linear layers, zero biases; BatchNorm weight 1, bias 0."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=0, mode='fan_in')
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return net
