"""Models, registered into BasicSR's MODEL_REGISTRY on import."""
from .ranker_model import RankerModel
from .ranksrgan_model import RankSRGANModel

__all__ = ['RankSRGANModel', 'RankerModel']
