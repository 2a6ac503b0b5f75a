"""Network architectures, registered into BasicSR's ARCH_REGISTRY on import (their checkpoints:
:mod:`ranksrgan_plugin.checkpoints`)."""
from .discriminator_arch import VGGStyleDiscriminatorAnySize
from .ranker_arch import RankerVGG
from .ranksrgan_generator_arch import RankSRGANGenerator

__all__ = ['RankSRGANGenerator', 'RankerVGG', 'VGGStyleDiscriminatorAnySize']
