"""Models, registered into BasicSR's MODEL_REGISTRY on import."""
from .ranker_model import RankerModel

__all__ = ['RankerModel']
