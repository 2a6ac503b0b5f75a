"""The shared core (the BasicSR side's own classes, not copies) registered into MMagic's MODELS; the CPU-capable
AMP optimiser wrapper (``compat.mmagic.any_device_amp_optim_wrapper``) into its OPTIM_WRAPPERS."""
from mmagic.registry import MODELS, OPTIM_WRAPPERS

from ..archs.discriminator_arch import VGGStyleDiscriminatorAnySize
from ..archs.ranker_arch import RankerVGG
from ..archs.ranksrgan_generator_arch import RankSRGANGenerator
from ..compat.mmagic import any_device_amp_optim_wrapper
from ..losses.rank_content_loss import RankContentLoss
from ..losses.rank_loss import RankLoss, RankRegressionLoss

SHARED_MODULES = (RankerVGG, RankSRGANGenerator, VGGStyleDiscriminatorAnySize, RankLoss, RankRegressionLoss,
                  RankContentLoss)

for _module in SHARED_MODULES:
    MODELS.register_module(module=_module)  # registers the existing class under its own name

OPTIM_WRAPPERS.register_module(name='AnyDeviceAmpOptimWrapper', module=any_device_amp_optim_wrapper())
