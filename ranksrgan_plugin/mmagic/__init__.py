"""RankSRGAN in MMagic: importing this package registers the plugin into MMagic's own registries.

A config loads it with ``custom_imports = dict(imports=['ranksrgan_plugin.mmagic'], allow_failed_imports=False)``.
The MMagic workarounds (``ranksrgan_plugin.compat.mmagic.apply``: ``mmagic.models`` imported with the
mmcv ops placeholders, which are removed again afterwards; mmengine's checkpoint loader; numpy's error
state given back as it was before the plugin imported BasicSR) go in first; with full mmcv the
placeholders touch nothing.

Registered (``mmagic.registry``):
    MODELS: ``RankerVGG``, ``RankSRGANGenerator``, ``VGGStyleDiscriminatorAnySize``, ``RankLoss``,
    ``RankRegressionLoss``, ``RankContentLoss`` (the BasicSR side's own classes), ``RankSRGAN``, ``RankESRGAN``,
    ``RankerModel``, ``StrictEditModel``;
    DATASETS: ``RankPairDataset``; METRICS: ``SROCC``, ``PairAccuracy``, ``BatchedNIQE``, ``MaPI``;
    OPTIM_WRAPPERS: ``AnyDeviceAmpOptimWrapper``; mmengine's WEIGHT_INITIALIZERS (which ``init_cfg`` builds
    from): ``StrictPretrained``.
"""
from ..compat import mmagic as mmagic_compat

mmagic_compat.apply()

from . import registry  # noqa: E402  (registers the shared classes first: the models below build them)
from .metrics import SROCC, BatchedNIQE, MaPI, PairAccuracy  # noqa: E402
from .rank_pair_dataset import RankPairDataset  # noqa: E402
from .ranker_model import RankerModel  # noqa: E402
from .ranksrgan import RankESRGAN, RankSRGAN  # noqa: E402

__all__ = [
    'BatchedNIQE', 'MaPI', 'PairAccuracy', 'RankESRGAN', 'RankPairDataset', 'RankSRGAN', 'RankerModel', 'SROCC',
    'registry',
]
