"""Network architectures, registered into BasicSR's ARCH_REGISTRY on import."""
from .ranker_arch import RankerVGG, load_ranker, ranker_state_dict

__all__ = ['RankerVGG', 'load_ranker', 'ranker_state_dict']
