"""The paper road's RankSRGAN stage in MMagic (``tools/reproduce.py --toolbox mmagic``).

The rank dataset and the Ranker are the BasicSR road's stages (:mod:`.stages`); RankSRGAN is the variant's
paper config (``options/mmagic/ranksrgan-paper_*.py``) trained by MMagic's Runner through
``tools/mmagic_train.py`` in a logged, resumable subprocess. The config as run,
``<output>/options/ranksrgan.py``, inherits the repository's config (``_base_``) and sets only what the road
sets: the data roots, the converted SRResNet initialisation, the Ranker stage's last checkpoint, the VGG19,
``model.mat``, the per-GPU batch, the work dir under the road's root, and the plan's overrides. The last
MMagic checkpoint's generator is exported as a BasicSR ``{'params': ...}`` file, so that the road's test stage
and report read it as they read the BasicSR road's ``net_g_latest.pth``.
"""
import os
import os.path as osp
import pprint
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..utils.atomic_files import save_torch_atomically
from ..utils.logged_process import KILLED, run_logged
from .layout import RoadLayout
from .preflight import find_ma_model, find_vgg19
from .stages import Echo, Outputs, StageFailed, convert_generator_init, python_command

TOOLBOX = 'mmagic'
CONFIG_DIR = osp.join('options', 'mmagic')
# variant -> the paper config of its RankSRGAN stage (relative to the repository's options/mmagic, or absolute)
PAPER_CONFIGS: Dict[str, str] = {
    name: f'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-{name}.py' for name in ('niqe', 'ma', 'pi', 'hr')}
PAPER_GENERATOR = 'RankSRGANGenerator'
_TRAIN_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/')
_RESUMED_LINE = re.compile(r'resumed epoch: \d+, iter: (\d+)')
_CHECKPOINT_NAME = re.compile(r'iter_(\d+)\.pth')


def config_file(layout: RoadLayout) -> str:
    """The repository's MMagic paper config of the layout's variant."""
    if layout.variant.name not in PAPER_CONFIGS:
        raise StageFailed(f'variant {layout.variant.name!r} has no MMagic paper config (options/mmagic/'
                          f'ranksrgan-paper_*.py: {", ".join(PAPER_CONFIGS)}); run it with --toolbox basicsr.')
    return osp.join(layout.repo, CONFIG_DIR, PAPER_CONFIGS[layout.variant.name])


def config_as_run(layout: RoadLayout) -> str:
    return osp.join(layout.output, 'options', 'ranksrgan.py')


def last_logged_iteration(log: str) -> int:
    """The iteration of the last ``Iter(train) [N/total]`` line of an mmengine log (0 before the first)."""
    if not osp.isfile(log):
        return 0
    with open(log, encoding='utf-8', errors='replace') as f:
        found = _TRAIN_LINE.findall(f.read())
    return int(found[-1]) if found else 0


def resumed_from(log: str) -> List[int]:
    """The iterations mmengine said it resumed from, in order (``resumed epoch: e, iter: i``)."""
    if not osp.isfile(log):
        return []
    with open(log, encoding='utf-8', errors='replace') as f:
        return [int(found) for found in _RESUMED_LINE.findall(f.read())]


def checkpoint_iteration(path: str) -> Optional[int]:
    match = _CHECKPOINT_NAME.fullmatch(osp.basename(path))
    return int(match.group(1)) if match else None


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names (mmengine writes it once the checkpoint is saved)."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8') as f:
            path = f.read().strip()
    except OSError:
        return None
    return path or None


def checkpoint_saved(work_dir: str, iteration: int, since: float) -> Callable[[], bool]:
    """True once a run started at ``since`` has saved the checkpoint of ``iteration`` (or a later one) whole."""
    pointer = osp.join(work_dir, 'last_checkpoint')

    def saved() -> bool:
        try:
            if osp.getmtime(pointer) < since:
                return False
        except OSError:
            return False
        path = last_checkpoint(work_dir)
        done = checkpoint_iteration(path) if path else None
        return done is not None and done >= iteration

    return saved


def nest(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Dotted keys (``model.ranker_checkpoint``) as the nested dicts a config file merges into its ``_base_``."""
    nested: Dict[str, Any] = {}
    for key, value in values.items():
        node = nested
        *parents, leaf = key.split('.')
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f'{key}: {part} is set to a value and has keys below it.')
        node[leaf] = value
    return nested


def write_config(base: str, values: Mapping[str, Any], path: str, title: str) -> str:
    """Write a config file that inherits ``base`` and sets ``values`` (dotted keys); its path."""
    lines = [f'# {title}', f'# set: {", ".join(values)}', f'_base_ = {osp.abspath(base)!r}', '']
    for key, value in nest(values).items():
        lines.append(f'{key} = {pprint.pformat(value, width=110, sort_dicts=False)}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def read_config(path: str) -> Any:
    """The config (mmengine ``Config``) of an MMagic config file, the plugin loaded."""
    from mmengine.config import Config

    from .. import mmagic  # noqa: F401  (what the configs' custom_imports load)

    return Config.fromfile(path)


def network_g(cfg: Any, config: str) -> Dict[str, Any]:
    """The BasicSR network option of the config's generator (the paper's RankSRGANGenerator, without init_cfg)."""
    generator = cfg.model.generator.to_dict()
    if generator.get('type') != PAPER_GENERATOR:
        raise StageFailed(f'{config}: model.generator is {generator.get("type")}, not the paper\'s '
                          f'{PAPER_GENERATOR}: the road tests the generator with the BasicSR side\'s class. Use an '
                          'options/mmagic/ranksrgan-paper_*.py config.')
    generator.pop('init_cfg', None)
    return generator


def road_values(layout: RoadLayout, cfg: Any, ranker_checkpoint: str, work_dir: str) -> Dict[str, Any]:
    """What the road sets in the paper config (dotted keys): its files, data, batch and work dir."""
    values = {'work_dir': work_dir,
              'default_hooks.checkpoint.out_dir': work_dir,  # not <cwd>/work_dirs/ (MMagic's save_dir)
              'model.generator.init_cfg.checkpoint': convert_generator_init(layout),
              'model.ranker_checkpoint': ranker_checkpoint,
              'train_dataloader.batch_size': layout.per_gpu_batch(cfg.train_dataloader.batch_size, 'RankSRGAN'),
              'train_dataloader.dataset.data_root': layout.relocate(cfg.train_dataloader.dataset.data_root),
              'val_dataloader.dataset.data_root': layout.relocate(cfg.val_dataloader.dataset.data_root)}
    if cfg.model.get('perceptual_loss') and find_vgg19(layout):
        values['model.perceptual_loss.pretrained'] = find_vgg19(layout)
    metrics = [dict(metric) for metric in cfg.val_evaluator.get('metrics', [])]
    if any(metric.get('type') == 'MaPI' for metric in metrics):
        values['val_evaluator.metrics'] = [{**metric, 'model_path': find_ma_model(layout)}
                                           if metric.get('type') == 'MaPI' else metric for metric in metrics]
    return values


def check_ranker(cfg: Any, ranker_checkpoint: str, config: str) -> None:
    """Refuse, before training, a Ranker checkpoint that does not fit the config's ``model.ranker``."""
    from mmagic.registry import MODELS

    from ..checkpoints import RefusedCheckpointError
    from ..mmagic.ranksrgan import build_frozen_ranker

    model = cfg.model
    try:
        build_frozen_ranker(model.ranker.to_dict(), ranker_checkpoint, model.get('ranker_batchnorm', 'batch'),
                            option=f'model.ranker_checkpoint of {config}',
                            rank_loss=MODELS.build(model.rank_loss.to_dict()))
    except (RuntimeError, ValueError, KeyError, OSError, RefusedCheckpointError) as error:
        raise StageFailed(f'the Ranker stage\'s checkpoint {ranker_checkpoint} cannot be the frozen Ranker of '
                          f'{config}: {error}\nThe Ranker stage trains the network_r of its options file; the '
                          f'config\'s model.ranker ({model.ranker.to_dict()}) must be the same network. Make them '
                          'agree, then rerun with --from ranker.') from None


def train_command(layout: RoadLayout, config: str, resume: bool) -> List[str]:
    args = [osp.join(layout.repo, 'tools', 'mmagic_train.py'), config]
    if layout.gpus > 1:
        args += ['--launcher', 'pytorch']
    return python_command(layout, args + (['--resume'] if resume else []))


def logged_run(command: List[str], layout: RoadLayout, log: str, config: str, total: int,
               stop_when: Optional[Callable[[], bool]], show_bars: bool) -> int:
    """``run_logged`` of the training command, locked on its config file (a second road on it is refused)."""
    return run_logged(command, layout.root, log, '  ranksrgan (MMagic)', total, lambda: last_logged_iteration(log),
                      stop_when, show_bar=show_bars, lock_key=config)


def archive(work_dir: str, echo: Echo) -> None:
    """Move a forced stage's old work dir aside (as BasicSR archives an experiment it starts again)."""
    if osp.isdir(work_dir):
        target = f'{work_dir}_archived_{time.strftime("%Y%m%d_%H%M%S")}'
        os.rename(work_dir, target)
        echo(f'  moved the earlier run to {target}')


def export_generator(checkpoint: str, network: Mapping[str, Any]) -> str:
    """The generator of an MMagic checkpoint as a BasicSR ``{'params': ...}`` file beside it (loaded strictly
    into ``network`` first); its path."""
    from basicsr.archs import build_network

    from ..checkpoints import read_mmengine_checkpoint, strip_module_prefix
    from ..mmagic.inference import generator_state_dict

    weights = strip_module_prefix(generator_state_dict(read_mmengine_checkpoint(checkpoint)))
    try:
        build_network(dict(network)).load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise StageFailed(f'{checkpoint}: its generator.* weights do not fit {dict(network)}: {error}') from None
    target = osp.join(osp.dirname(checkpoint), f'generator_{osp.splitext(osp.basename(checkpoint))[0]}_basicsr.pth')
    save_torch_atomically({'params': weights}, target)
    return target


def run_ranksrgan_mmagic(layout: RoadLayout, ranker_checkpoint: str, forced: bool, echo: Echo,
                         overrides: Mapping[str, Any], kill_after: Optional[int] = None,
                         show_bars: bool = True) -> Outputs:
    """Train the variant's MMagic paper config with the Ranker the previous stage wrote (see the module docstring).

    Resumes an unfinished run (``--resume``) unless ``forced`` (the old work dir is moved aside).
    ``overrides``: dotted config keys set last (the rehearsal's). ``kill_after``: kill the run once that
    iteration's checkpoint is saved, then run the same command again. Returns the outputs the test stage and the
    report read (``checkpoint``: the exported ``params`` file, ``network_g``) and ``toolbox``.
    """
    config = config_file(layout)
    cfg = read_config(config)
    network = network_g(cfg, config)
    check_ranker(cfg, ranker_checkpoint, config)
    experiment = (overrides.get('experiment_name') or cfg.get('experiment_name')
                  or osp.splitext(osp.basename(config))[0])
    work_dir = osp.join(layout.root, 'work_dirs', experiment)
    values = {**road_values(layout, cfg, ranker_checkpoint, work_dir), **overrides}
    as_run = write_config(config, values, config_as_run(layout),
                          f'{osp.relpath(config, layout.repo)} as tools/reproduce.py --toolbox mmagic runs it')
    log = layout.log_file('ranksrgan')
    if forced:
        archive(work_dir, echo)
        if osp.isfile(log):
            os.remove(log)
    os.makedirs(layout.root, exist_ok=True)
    total = int(values.get('train_cfg.max_iters', cfg.train_cfg.max_iters))
    runs: List[Dict[str, Any]] = []
    while True:
        stop_when = checkpoint_saved(work_dir, kill_after, time.time()) if kill_after else None
        status = logged_run(train_command(layout, as_run, resume=not forced or bool(runs)), layout, log, as_run,
                            total, stop_when, show_bars)
        saved = last_checkpoint(work_dir)
        runs.append({'status': 'killed' if status == KILLED else status, 'iteration': last_logged_iteration(log),
                     'checkpoint': checkpoint_iteration(saved) if saved else None})
        if status != KILLED:
            break
        echo(f'  killed at iteration {runs[-1]["iteration"]}, its last checkpoint at iteration '
             f'{runs[-1]["checkpoint"]} (rehearsal); running the same command again')
        kill_after = None
    if status:
        raise StageFailed(f'RankSRGAN training in MMagic failed (exit status {status}); see {log}')
    last = last_checkpoint(work_dir)
    if last is None or not osp.isfile(last):
        raise StageFailed(f'RankSRGAN training in MMagic ended without a checkpoint in {work_dir} (last_checkpoint '
                          f'names {last!r}); see {log}')
    echo(f'  MMagic checkpoint {last}')
    return {'toolbox': TOOLBOX, 'experiment': work_dir, 'options': as_run, 'runs': runs,
            'resumed_from': resumed_from(log), 'checkpoint': export_generator(last, network),
            'mmagic_checkpoint': last, 'ranker': ranker_checkpoint, 'network_g': network,
            'initialisation': values['model.generator.init_cfg.checkpoint']}
