"""The shared core (the BasicSR side's own classes, not copies) registered into MMagic's MODELS."""
from mmagic.registry import MODELS

from ..archs.discriminator_arch import VGGStyleDiscriminatorAnySize
from ..archs.ranker_arch import RankerVGG
from ..archs.ranksrgan_generator_arch import RankSRGANGenerator
from ..losses.rank_content_loss import RankContentLoss
from ..losses.rank_loss import RankLoss, RankRegressionLoss

SHARED_MODULES = (RankerVGG, RankSRGANGenerator, VGGStyleDiscriminatorAnySize, RankLoss, RankRegressionLoss,
                  RankContentLoss)

for _module in SHARED_MODULES:
    MODELS.register_module(module=_module)  # registers the existing class under its own name
