"""The paper road's trained stages (rank dataset, Ranker, RankSRGAN), each a resumable subprocess.

Each stage writes the options it runs (``<output>/options/<stage>.yml``: the repository's file,
relocated, with only the values the road sets), appends the command's output to
``<output>/logs/<stage>.log`` behind a progress bar, and returns its outputs, which the next stage
reads: no path is carried by hand. A stage run again after a kill continues (the builder's
records, BasicSR's ``--auto_resume``); a *forced* stage (``--from``) starts over.
"""
import json
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..checkpoints import arch_state_dict, read_checkpoint
from ..data.rank_dataset_format import MANIFEST_FILE
from ..rank_dataset import load_config
from ..rank_dataset.builder import WORK_DIR
from ..rank_dataset.options import config_fingerprint
from ..utils.atomic_files import save_torch_atomically
from ..utils.logged_process import KILLED, last_logged_iteration, run_logged
from ..utils.options import write_options
from ..utils.training_state import read_training_state
from .layout import SRRESNET_INIT, RoadLayout
from .preflight import find_ma_model, find_vgg19, list_images, needs_vgg19

Outputs = Dict[str, Any]
Echo = Callable[[str], None]


class StageFailed(RuntimeError):
    """A stage's command failed or its inputs are not as the road expects (the message says what to do)."""


def python_command(layout: RoadLayout, args: List[str]) -> List[str]:
    """``python <args>``, or torch's launcher with one process per GPU when ``gpus`` > 1."""
    if layout.gpus > 1:
        return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={layout.gpus}', *args]
    return [sys.executable, *args]


# ---------------------------------------------------------------------------------------------
# rank dataset


def ensure_df2k(hr_folder: str, layout: RoadLayout, echo: Echo) -> None:
    """DIV2K train HR + Flickr2K HR linked into the rank dataset's ``hr`` folder when it holds no image."""
    if list_images(hr_folder):
        return
    os.makedirs(hr_folder, exist_ok=True)
    linked = 0
    for folder in (layout.div2k_hr, layout.flickr2k_hr):
        for name in list_images(folder):
            target = osp.join(hr_folder, name)
            if not osp.lexists(target):
                os.symlink(osp.abspath(osp.join(folder, name)), target)
                linked += 1
    echo(f'  linked {linked} HR images (DIV2K train + Flickr2K) into {hr_folder}')


def rank_dataset_options(layout: RoadLayout) -> Dict[str, Any]:
    options = layout.read_options('rank_dataset')
    if layout.variant.needs_ma:
        options['metric']['model_path'] = find_ma_model(layout)
    return options


def finished_rank_dataset(options: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The manifest of a finished build in ``options['output']`` made with these options, else None.

    Raises:
        StageFailed: the folder holds a finished build with other options.
    """
    path = osp.join(options['output'], MANIFEST_FILE)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        manifest = json.load(f)
    if config_fingerprint(manifest['options']) != config_fingerprint(load_config(dict(options))):
        raise StageFailed(f"{options['output']} holds a rank dataset built with other options; rerun with "
                          '--from rank_dataset to rebuild it there (it is replaced), or move it away.')
    return manifest


def run_rank_dataset(layout: RoadLayout, forced: bool, echo: Echo, show_bars: bool = True) -> Outputs:
    """Build (or resume) the rank dataset of the variant's options file; its folder and manifest."""
    options = rank_dataset_options(layout)
    ensure_df2k(options['hr'], layout, echo)
    output = options['output']
    if not forced and (manifest := finished_rank_dataset(options)) is not None:
        echo(f'  {output} already holds this rank dataset')
    else:
        yml = write_options(options, {}, layout.options_as_run('rank_dataset'),
                            f'{layout.variant.rank_dataset} as tools/reproduce.py runs it (paths relocated)')
        command = python_command(layout, [osp.join(layout.repo, 'tools', 'make_rank_dataset.py'), '-opt', yml,
                                          '--no-progress'] + (['--overwrite'] if forced else []))
        records, total = osp.join(output, WORK_DIR, 'images'), len(list_images(options['hr']))

        def done() -> int:  # the builder's per-image records, removed once the manifest is written
            if osp.isfile(osp.join(output, MANIFEST_FILE)):
                return total
            return len(os.listdir(records)) if osp.isdir(records) else 0

        status = run_logged(command, layout.repo, layout.log_file('rank_dataset'), '  rank dataset', total, done,
                            unit='image', show_bar=show_bars, lock_key=yml)
        if status:
            raise StageFailed(f'the rank-dataset build failed (exit status {status}); see '
                              f"{layout.log_file('rank_dataset')}")
        manifest = finished_rank_dataset(options)
    return {'rank_dataset': output, 'counts': manifest['counts'], 'splits': manifest['splits'],
            'options': layout.options_as_run('rank_dataset')}


# ---------------------------------------------------------------------------------------------
# training (BasicSR's train_pipeline through the plugin's entry point)


def train_command(layout: RoadLayout, yml: str, resume: bool) -> List[str]:
    args = ['-m', 'ranksrgan_plugin.train'] if layout.gpus == 1 else ['--module', 'ranksrgan_plugin.train']
    args += ['-opt', yml]
    if layout.gpus > 1:
        args += ['--launcher', 'pytorch']
    return python_command(layout, args + (['--auto_resume'] if resume else []))


def state_saved(experiment: str, iteration: int) -> Callable[[], bool]:
    """True once ``<iteration>.state`` of the experiment is written completely (it loads)."""
    path = osp.join(experiment, 'training_states', f'{iteration}.state')

    def saved() -> bool:
        if not osp.isfile(path):
            return False
        try:
            read_training_state(path)
        except Exception:  # still being written
            return False
        return True

    return saved


def train(layout: RoadLayout, stage: str, options: Dict[str, Any], values: Mapping[str, Any], forced: bool,
          echo: Echo, kill_after: Optional[int] = None, show_bars: bool = True) -> Outputs:
    """Train with ``options`` + ``values`` under ``layout.root``; resumes an unfinished run unless ``forced``.

    ``kill_after``: kill the run once that iteration's training state is saved, then run the same
    command again (the rehearsal of a crash). Returns the experiment folder and what the runs did.
    """
    name = values.get('name', options['name'])
    yml = write_options(options, values, layout.options_as_run(stage),
                        f'{getattr(layout.variant, stage)} as tools/reproduce.py runs it (set: {", ".join(values)})')
    experiment = osp.join(layout.root, 'experiments', name)
    os.makedirs(layout.root, exist_ok=True)
    log = layout.log_file(stage)
    if forced and osp.isfile(log):
        os.remove(log)
    total = int(values.get('train.total_iter', options['train']['total_iter']))
    runs = []
    while True:
        stop_when = state_saved(experiment, kill_after) if kill_after else None
        status = run_logged(train_command(layout, yml, resume=not forced or bool(runs)), layout.root, log,
                            f'  {stage}', total, lambda: last_logged_iteration(log), stop_when, show_bar=show_bars,
                            lock_key=yml)
        runs.append({'status': 'killed' if status == KILLED else status, 'iteration': last_logged_iteration(log)})
        if status != KILLED:
            break
        echo(f'  killed at iteration {runs[-1]["iteration"]} (rehearsal); running the same command again')
        kill_after = None
    if status:
        raise StageFailed(f'{stage} training failed (exit status {status}); see {log}')
    return {'experiment': experiment, 'options': yml, 'runs': runs, 'resumed_from': resumed_from(log)}


def resumed_from(log: str) -> List[int]:
    """The iterations BasicSR said it resumed from, in order (``Resuming training from epoch: e, iter: i.``)."""
    with open(log, encoding='utf-8', errors='replace') as f:
        return [int(line.rsplit('iter:', 1)[1].strip(' .\n').replace(',', ''))
                for line in f if 'Resuming training from' in line]


def run_ranker(layout: RoadLayout, rank_dataset: str, forced: bool, echo: Echo, overrides: Mapping[str, Any],
               kill_after: Optional[int] = None, show_bars: bool = True) -> Outputs:
    """Train the variant's Ranker on the rank dataset the previous stage wrote."""
    options = layout.read_options('ranker')
    values = {**layout.variant.ranker_values,
              'datasets.train.dataroot': osp.join(rank_dataset, 'train'),
              'datasets.val.dataroot': osp.join(rank_dataset, 'val'),
              'datasets.train.batch_size_per_gpu': layout.per_gpu_batch(
                  options['datasets']['train']['batch_size_per_gpu'], 'Ranker'),
              **overrides}
    outputs = train(layout, 'ranker', options, values, forced, echo, kill_after, show_bars)
    models = osp.join(outputs['experiment'], 'models')
    # the original selected no checkpoint: the road uses the last; the best-SROCC one is reported beside it
    outputs.update(checkpoint=osp.join(models, 'net_r_latest.pth'), best=osp.join(models, 'net_r_best.pth'),
                   network_r=options['network_r'])
    return outputs


def convert_generator_init(layout: RoadLayout) -> str:
    """The authors' ``SRResNet_bicx4_in3nf64nb16.pth`` as a BasicSR ``params`` file (the generator's start)."""
    source = osp.join(layout.pretrained, SRRESNET_INIT)
    target = osp.join(layout.output, 'pretrained', SRRESNET_INIT.replace('.pth', '_basicsr.pth'))
    if not osp.isfile(target) or osp.getmtime(target) < osp.getmtime(source):
        state_dict, _, _ = arch_state_dict(read_checkpoint(source), None, source)
        os.makedirs(osp.dirname(target), exist_ok=True)
        save_torch_atomically({'params': state_dict}, target)
    return target


def run_ranksrgan(layout: RoadLayout, ranker_checkpoint: str, forced: bool, echo: Echo,
                  overrides: Mapping[str, Any], kill_after: Optional[int] = None, show_bars: bool = True) -> Outputs:
    """Train RankSRGAN with the Ranker the previous stage wrote."""
    options = layout.read_options('ranksrgan')
    values = {'path.pretrain_network_g': convert_generator_init(layout),
              'path.pretrain_network_r': ranker_checkpoint,
              'datasets.train.batch_size_per_gpu': layout.per_gpu_batch(
                  options['datasets']['train']['batch_size_per_gpu'], 'RankSRGAN')}
    if needs_vgg19(options):
        values['train.perceptual_opt.vgg_weights'] = find_vgg19(layout)
    for metric in ('ma', 'pi'):
        if metric in options['val']['metrics']:
            values[f'val.metrics.{metric}.model_path'] = find_ma_model(layout)
    values.update(overrides)
    outputs = train(layout, 'ranksrgan', options, values, forced, echo, kill_after, show_bars)
    outputs.update(checkpoint=osp.join(outputs['experiment'], 'models', 'net_g_latest.pth'),
                   ranker=ranker_checkpoint, network_g=options['network_g'],
                   initialisation=values['path.pretrain_network_g'])
    return outputs
