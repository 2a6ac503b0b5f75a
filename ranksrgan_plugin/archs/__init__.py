"""Network architectures, registered into BasicSR's ARCH_REGISTRY on import."""
from .discriminator_arch import VGGStyleDiscriminatorAnySize
from .ranker_arch import RankerVGG, load_ranker, ranker_state_dict
from .ranksrgan_generator_arch import RankSRGANGenerator

__all__ = ['RankSRGANGenerator', 'RankerVGG', 'VGGStyleDiscriminatorAnySize', 'load_ranker', 'ranker_state_dict']
