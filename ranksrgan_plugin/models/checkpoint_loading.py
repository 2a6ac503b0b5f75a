"""BasicSR's ``load_network`` with the checkpoint checked against the network first, for the plugin's models."""
import os.path as osp
import re
from typing import Optional

from torch import nn

from ..checkpoints import basicsr_weights, check_weights_fit, read_checkpoint

NETWORK_ATTRIBUTES = ('net_g', 'net_d', 'net_r', 'net_g_ema')


class NamedCheckpointLoading:
    """Mixin for a BasicSR model: a strictly loaded checkpoint that does not fit its network is refused by name.

    Upstream's ``BaseModel.load_network`` ends in torch's raw key lists, naming neither the file nor
    the option. Here ``CheckpointMismatchError`` names the file, ``path.pretrain_network_<x>`` and what
    the file holds (e.g. "a BasicSR checkpoint ... of a Ranker") before upstream's loading runs; when
    BasicSR's resume set that option (to ``models/net_<x>_<iter>.pth``), the message says so and names the
    training state.
    """

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True,
                     param_key: Optional[str] = 'params') -> None:
        if strict:
            bare = self.get_bare_model(net)
            checkpoint = read_checkpoint(load_path)
            check_weights_fit(bare.state_dict(), basicsr_weights(checkpoint, param_key), load_path,
                              self._option_naming(net, load_path), checkpoint, type(bare).__name__)
        super().load_network(net, load_path, strict, param_key)

    def _option_naming(self, net: nn.Module, load_path: str) -> str:
        name = next((attr for attr in NETWORK_ATTRIBUTES if getattr(self, attr, None) is net), 'net_g')
        short = name[len('net_'):].replace('_ema', '')
        option = f'path.pretrain_network_{short}'
        paths = self.opt['path']
        if paths.get('resume_state') and osp.dirname(str(load_path)) == paths.get('models') and \
                re.fullmatch(rf'net_{short}_\d+\.pth', osp.basename(str(load_path))):
            from ..utils.training_state_fit import resume_source

            option += f", set by BasicSR's resume from {resume_source(self.opt)}"
        return option

