"""The networks a BasicSR model only loads: declared by its class, left alone by BasicSR's resume.

The agreement: a model class registered in BasicSR's ``MODEL_REGISTRY`` may list, in its class attribute
``frozen_networks``, the ``network_<x>`` option names of the networks it loads from
``path.pretrain_network_<x>`` and never trains or saves (:class:`~.ranksrgan_model.RankSRGANModel`:
``('network_r',)``, its Ranker). A class without the attribute has none.

On resume, basicsr 1.4.2's ``check_resume`` points ``path.pretrain_network_<x>`` of every ``network_<x>``
at ``models/net_<x>_<iter>.pth``, unless ``path.ignore_resume_networks`` lists it: a frozen network, never
saved there, would then fail to load. :func:`keep_frozen_network_paths` lists the frozen networks there
before ``check_resume`` runs (the plugin's resume does: :mod:`ranksrgan_plugin.compat.basicsr`), so a
user need not.
"""
from typing import Any, Dict, Tuple

FROZEN_NETWORKS_ATTRIBUTE = 'frozen_networks'


def frozen_networks(model_type: Any) -> Tuple[str, ...]:
    """The ``network_<x>`` names the registered model class ``model_type`` declares frozen; () when it is not
    registered or declares none."""
    from basicsr.utils.registry import MODEL_REGISTRY

    if model_type not in MODEL_REGISTRY:
        return ()
    return tuple(getattr(MODEL_REGISTRY.get(model_type), FROZEN_NETWORKS_ATTRIBUTE, ()))


def keep_frozen_network_paths(opt: Dict[str, Any]) -> None:
    """Append the options' model's :func:`frozen_networks` to ``path.ignore_resume_networks`` (those not there
    yet), so that ``check_resume`` keeps their pretrained paths. Options of a model without frozen networks are
    left as they are; idempotent."""
    ignored = list(opt['path'].get('ignore_resume_networks') or [])
    missing = [name for name in frozen_networks(opt.get('model_type')) if name not in ignored]
    if missing:
        opt['path']['ignore_resume_networks'] = ignored + missing
