"""Checkpoints: every rule about a weights file, in one place that the rest of the plugin calls.

=========================  ==========================================================================
module                     what it holds
=========================  ==========================================================================
:mod:`.errors`             the errors a checkpoint raises (unreadable, refused, a missing entry, an
                           unknown layout, weights that do not fit), each naming the file
:mod:`.read`               the one reader (the safe loader, allowlists: mmengine's), bare state_dicts
:mod:`.layout`             where the weights are (BasicSR / mmengine wrappers, ``module.``, prefixes)
                           and which of the authors' key layouts they are in
:mod:`.describe`           what a file is (off its bytes) and what a loaded checkpoint holds
:mod:`.fit`                whether weights fit the network they go into, as a named error
:mod:`.official`           the authors' releases converted to the plugin's / BasicSR's classes, and back
:mod:`.network_weights`    any BasicSR network's weights from a BasicSR or official file
:mod:`.ranker`             Ranker files of every layout (BasicSR, official, mmengine), loading and export
=========================  ==========================================================================

Import the names from this package (``from ranksrgan_plugin.checkpoints import read_checkpoint``);
the modules above import one another directly, never this package.
"""
from .describe import TORCH_CHECKPOINT, describe_file, describe_weights
from .errors import (
    CheckpointKeyError,
    CheckpointMismatchError,
    RefusedCheckpointError,
    UnknownCheckpointLayout,
    UnreadableCheckpointError,
)
from .fit import check_weights_fit
from .layout import (
    BASICSR_WRAPPERS,
    OFFICIAL_LAYOUTS,
    WRAPPER_KEYS,
    StateDict,
    basicsr_weights,
    basicsr_wrapper,
    detect_layout,
    is_mmengine_checkpoint,
    strip_module_prefix,
    unwrap_state_dict,
    weights_under,
)
from .network_weights import arch_state_dict, load_network_weights
from .official import (
    convert_generator,
    convert_official_checkpoint,
    convert_old_generator_keys,
    convert_ranker,
    convert_rrdb_keys,
    convert_rrdbnet,
    to_release_layout,
)
from .ranker import (
    MMENGINE_RANKER_PREFIX,
    check_ranker_checkpoint,
    checked_ranker_weights,
    convert_features_state_dict,
    export_ranker_for_basicsr,
    load_ranker,
    load_ranker_checkpoint,
    ranker_state_dict,
    ranker_weights,
    read_ranker_file,
)
from .read import load_state_dict, mmengine_checkpoint_globals, read_checkpoint, read_mmengine_checkpoint

__all__ = [
    'BASICSR_WRAPPERS', 'MMENGINE_RANKER_PREFIX', 'OFFICIAL_LAYOUTS', 'TORCH_CHECKPOINT', 'WRAPPER_KEYS',
    'CheckpointKeyError', 'CheckpointMismatchError', 'RefusedCheckpointError', 'StateDict', 'UnknownCheckpointLayout',
    'UnreadableCheckpointError', 'arch_state_dict', 'basicsr_weights', 'basicsr_wrapper', 'check_ranker_checkpoint',
    'check_weights_fit', 'checked_ranker_weights', 'convert_features_state_dict', 'convert_generator',
    'convert_official_checkpoint', 'convert_old_generator_keys', 'convert_ranker', 'convert_rrdb_keys',
    'convert_rrdbnet', 'describe_file', 'describe_weights', 'detect_layout', 'export_ranker_for_basicsr',
    'is_mmengine_checkpoint', 'load_network_weights', 'load_ranker', 'load_ranker_checkpoint', 'load_state_dict',
    'mmengine_checkpoint_globals', 'ranker_state_dict', 'ranker_weights', 'read_checkpoint', 'read_mmengine_checkpoint',
    'read_ranker_file', 'strip_module_prefix', 'to_release_layout', 'unwrap_state_dict', 'weights_under',
]
