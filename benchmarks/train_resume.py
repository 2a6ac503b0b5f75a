"""The paper's RankSRGAN options with the road's ``--fast`` settings, killed after their first saved state and
resumed: 3 iterations through BasicSR's own pipeline (``python -m ranksrgan_plugin.train``) on tiny generated data.

Two runs, one row each, printed as each ends:

- ``fast``: ``options/train_RankSRGAN_NIQE.yml`` with ``ranksrgan_plugin.reproduce.fast``'s settings (bf16,
  channels_last, torch.compile on CUDA only, fused Adam, ``RawPairedImageDataset`` + ``raw_cache``);
- ``fp16``: the same with ``train.precision: fp16`` (its gradient scalers) and no compile (CUDA only: fp16 on the
  CPU takes minutes per iteration; a row says it was skipped).

Each run is killed (SIGKILL, from inside, right after ``1.state`` is written: as a crash, but at a known point)
and resumed with ``--auto_resume`` up to iteration 3, then validated as the options say. Between the two runs the
guard's counts (``nonfinite_guard``) and each fp16 scaler's scale in ``1.state`` are set to marked values; the row
says whether ``3.state`` (written after the resume) carries them on: a resume that dropped them starts again from
zero counts and a 2**16 scale. Only the sizes and the paths change from the paper's file (``--gt-size``,
``--batch``; data, pretrained stand-ins with random weights, the perceptual VGG unpretrained); exit status 1 when a
run fails or a check does not hold.

    python benchmarks/train_resume.py --work /tmp/train_resume [--device cuda] [--gt-size 296] [--batch 8]
"""
import argparse
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS = osp.join(REPO, 'options', 'train_RankSRGAN_NIQE.yml')
ITERATIONS = 3
KILL_AFTER = 1
MARKED_GUARD = {'skipped': 5, 'run': 0, 'scale_search': 3}  # counts a fresh start would not have
MARKED_SCALE = 256.0  # an fp16 scaler starts at 2**16 and only halves in 2 iterations: 3.state <= 256 iff restored
VAL_SIZE = 200  # GT side of the validation images: NIQE needs two 96-pixel blocks after the 4-pixel shave
RUNS = ('fast', 'fp16')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work', required=True, help='folder for the data and the experiments (emptied first)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--gt-size', type=int, default=296)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--workers', type=int, default=None, help="loader workers (default: the options file's)")
    parser.add_argument('--runs', nargs='+', choices=RUNS, default=list(RUNS))
    parser.add_argument('--budget', type=float, default=None, help='seconds for all runs (each stops at the rest)')
    parser.add_argument('--child-options', help=argparse.SUPPRESS)  # internal: the run that kills itself
    return parser


# ---------------------------------------------------------------------------------------------
# data and stand-ins


def synthetic_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured BGR uint8 image (waves of random frequencies plus noise): detail for NIQE, nothing flat."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(2, 24, 2).tolist() + [rng.uniform(0, 6.28)]
        channels.append(np.sin(2 * np.pi * (fx * xx + fy * yy) + phase) * 60 + 128)
    image = np.stack(channels, axis=2) + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_pairs(folder: str, names: List[str], size: int, lq_template: str, seed: int) -> Tuple[str, str]:
    """GT images of ``size`` and their x4 bicubic LR under ``folder/{gt,lq}``; returns the two folders."""
    rng = np.random.default_rng(seed)
    gt_folder, lq_folder = osp.join(folder, 'gt'), osp.join(folder, 'lq')
    for path in (gt_folder, lq_folder):
        os.makedirs(path, exist_ok=True)
    for name in names:
        image = synthetic_image(rng, size)
        cv2.imwrite(osp.join(gt_folder, f'{name}.png'), image)
        lq = cv2.resize(image, (size // 4, size // 4), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(osp.join(lq_folder, lq_template.format(name) + '.png'), lq)
    return gt_folder, lq_folder


def write_stand_ins(folder: str) -> Dict[str, str]:
    """Random-weight generator and Ranker files in BasicSR's ``params`` layout (the paper's pretrained paths)."""
    from ranksrgan_plugin.archs import RankerVGG
    from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    paths = {'g': osp.join(folder, 'srresnet_random.pth'), 'r': osp.join(folder, 'ranker_random.pth')}
    torch.save({'params': RankSRGANGenerator().state_dict()}, paths['g'])
    torch.save({'params': RankerVGG(depth=12).state_dict()}, paths['r'])
    return paths


def run_values(run: str, args: argparse.Namespace, data: Dict[str, str], weights: Dict[str, str]) -> Dict[str, Any]:
    """The dotted ``options`` values a run sets on the paper's file."""
    from ranksrgan_plugin.reproduce.fast import basicsr_fast_values

    cuda = args.device == 'cuda'
    values: Dict[str, Any] = {
        'name': f'RankSRGAN_x4_NIQE_gpu_check_{run}', 'num_gpu': 1 if cuda else 0, **basicsr_fast_values(cuda),
        'datasets.train.type': 'RawPairedImageDataset', 'datasets.train.raw_cache': data['raw_cache'],
        'datasets.train.dataroot_gt': data['train_gt'], 'datasets.train.dataroot_lq': data['train_lq'],
        'datasets.train.gt_size': args.gt_size, 'datasets.train.batch_size_per_gpu': args.batch,
        'datasets.val.dataroot_gt': data['val_gt'], 'datasets.val.dataroot_lq': data['val_lq'],
        'network_d.input_size': args.gt_size,
        'path.pretrain_network_g': weights['g'], 'path.pretrain_network_r': weights['r'],
        'train.perceptual_opt.vgg_weights': None, 'train.total_iter': ITERATIONS,
        'logger.save_checkpoint_freq': 1, 'logger.print_freq': 1}
    if args.workers is not None:
        values['datasets.train.num_worker_per_gpu'] = args.workers
    if run == 'fp16':
        values.update({'train.precision': 'fp16', 'train.compile': False})
    return values


def settings(values: Dict[str, Any]) -> str:
    """The row's settings, as the options set them."""
    parts = [values['train.precision'], 'channels_last' if values['train.channels_last'] else '',
             'compile' if values['train.compile'] else 'no compile', 'fused Adam' if values['num_gpu'] else
             'foreach Adam (fused: CUDA)', 'raw cache']
    return ', '.join(part for part in parts if part)


# ---------------------------------------------------------------------------------------------
# the runs


def kill_after_saving(kill_after: int) -> None:
    """Make this process SIGKILL itself right after the training state of iteration ``kill_after`` is written."""
    from ranksrgan_plugin.models.training_precision import TrainingPrecision

    save = TrainingPrecision.save_training_state

    def save_then_die(self: Any, epoch: int, current_iter: int) -> None:
        save(self, epoch, current_iter)
        if current_iter == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    TrainingPrecision.save_training_state = save_then_die


def child_main(options: str) -> None:
    """The first run: BasicSR's pipeline with the plugin (as ``python -m ranksrgan_plugin.train``), killed."""
    from ranksrgan_plugin.train import train

    kill_after_saving(KILL_AFTER)
    sys.argv = [sys.argv[0], '-opt', options]
    train(os.getcwd())


def run_logged(command: List[str], cwd: str, log: str, timeout: Optional[float]) -> Tuple[int, float]:
    """Run ``command`` (own process group) with its output in ``log``; (exit status, seconds); -1 on timeout."""
    start = time.perf_counter()
    with open(log, 'w', encoding='utf-8') as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = -1
        finally:  # also when this process is stopped (SIGTERM: see main): its loader and compile workers too
            end_group(process)
    return status, time.perf_counter() - start


def end_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of ``process``'s group (a killed run's loader or compile workers), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone
        pass
    process.wait()


def read_state(path: str) -> Dict[str, Any]:
    """A BasicSR training state, read as the plugin's resume reads it (safe loader, BasicSR's allowlist)."""
    from ranksrgan_plugin.utils.training_state import read_training_state

    return read_training_state(path)


def write_options(values: Dict[str, Any], output: str) -> str:
    """:data:`OPTIONS` with ``values`` (dotted keys) set, written to ``output``."""
    from ranksrgan_plugin.utils.options import write_options_with

    return write_options_with(OPTIONS, values, output, f'{osp.basename(OPTIONS)} as benchmarks/train_resume.py runs '
                              f'it (set: {", ".join(values)})')


def mark_state(path: str) -> Dict[str, Any]:
    """Set the guard's counts and the fp16 scalers' scale of the training state ``path`` to the marked values."""
    from ranksrgan_plugin.models.training_precision import GUARD_STATE_KEY

    state = read_state(path)
    state[GUARD_STATE_KEY] = {**state.get(GUARD_STATE_KEY, {}), **MARKED_GUARD}
    for scaler in (state.get('scalers') or {}).values():
        scaler['scale'] = MARKED_SCALE
    torch.save(state, path)
    return state


def restored(path: str) -> Tuple[bool, str]:
    """Whether the state ``path`` (written after the resume) carries the marked guard counts and scales on."""
    from ranksrgan_plugin.models.training_precision import GUARD_STATE_KEY

    state = read_state(path)
    guard = state.get(GUARD_STATE_KEY) or {}
    guard_ok = all(guard.get(key, 0) >= value for key, value in MARKED_GUARD.items() if value)
    scales = [float(scaler['scale']) for scaler in (state.get('scalers') or {}).values()]
    scales_ok = all(scale <= MARKED_SCALE for scale in scales)
    scale_text = (f"scales {', '.join(f'{scale:g}' for scale in scales)} (marked {MARKED_SCALE:g})" if scales
                  else 'no scalers (bf16 / fp32 need none)')
    text = (f"guard skipped {guard.get('skipped')}, scale search {guard.get('scale_search')} (marked "
            f"{MARKED_GUARD['skipped']}, {MARKED_GUARD['scale_search']}); {scale_text}")
    return guard_ok and scales_ok, text


def resumed_from(log: str) -> str:
    """The iteration BasicSR said it resumed from (``Resuming training from epoch: e, iter: i.``), or '-'."""
    with open(log, encoding='utf-8', errors='replace') as f:
        found = [line.rsplit('iter:', 1)[1].strip(' .\n') for line in f if 'Resuming training from' in line]
    return found[-1] if found else '-'


def log_tail(log: str, lines: int = 15) -> str:
    with open(log, encoding='utf-8', errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


class Runner:
    """The runs of one invocation: shared data, stand-ins and time budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = osp.abspath(args.work)
        self.deadline = None if args.budget is None else time.monotonic() + args.budget
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        size = (args.gt_size + 24) // 4 * 4  # room for the random crop
        data: Dict[str, str] = {'raw_cache': osp.join(self.root, 'raw_cache')}
        data['train_gt'], data['train_lq'] = write_pairs(osp.join(self.root, 'train'), ['0001', '0002'], size,
                                                         '{}x4', seed=1)
        data['val_gt'], data['val_lq'] = write_pairs(osp.join(self.root, 'val'), ['1'], VAL_SIZE, '{}', seed=2)
        self.data, self.weights = data, write_stand_ins(osp.join(self.root, 'pretrained'))

    def remaining(self) -> Optional[float]:
        return None if self.deadline is None else max(1.0, self.deadline - time.monotonic())

    def run(self, name: str) -> Tuple[bool, str]:
        """One run killed and resumed; (passed, its table row)."""
        values = run_values(name, self.args, self.data, self.weights)
        yml = write_options(values, osp.join(self.root, f'{name}.yml'))
        states = osp.join(self.root, 'experiments', values['name'], 'training_states')
        logs = [osp.join(self.root, f'{name}_run{index}.log') for index in (1, 2)]
        first, first_s = run_logged([sys.executable, osp.abspath(__file__), '--work', self.root, '--child-options',
                                     yml], self.root, logs[0], self.remaining())
        cells = [name, settings(values)]
        if first != -signal.SIGKILL or not osp.isfile(osp.join(states, f'{KILL_AFTER}.state')):
            why = 'timed out' if first == -1 else f'exit status {first}, no {KILL_AFTER}.state'
            return False, row(cells + [f'not killed as planned ({why})', '-', '-', '-', f'{first_s:.1f}'], logs[0])
        mark_state(osp.join(states, f'{KILL_AFTER}.state'))
        second, second_s = run_logged([sys.executable, '-m', 'ranksrgan_plugin.train', '-opt', yml, '--auto_resume'],
                                      self.root, logs[1], self.remaining())
        final = osp.join(states, f'{ITERATIONS}.state')
        cells += [f'SIGKILL after {KILL_AFTER}.state', resumed_from(logs[1])]
        seconds = f'{first_s:.1f} + {second_s:.1f}'
        if second != 0 or not osp.isfile(final):
            why = 'timed out' if second == -1 else f'exit status {second}'
            return False, row(cells + [f'resumed run failed ({why})', '-', seconds], logs[1])
        ok, text = restored(final)
        passed = ok and resumed_from(logs[1]) == str(KILL_AFTER)
        return passed, row(cells + [str(ITERATIONS), ('yes: ' if ok else 'NO: ') + text, seconds], None)


def row(cells: List[str], log: Optional[str]) -> str:
    """A table row, followed by the end of ``log`` when the run failed."""
    line = '| ' + ' | '.join(cells) + ' |'
    return line if log is None else f'{line}\nend of {log}:\n{log_tail(log)}'


HEADER = ['| run | settings | first run | resumed from | last iteration | state restored (3.state) | s (run 1 + 2) |',
          '|---|---|---|---|---|---|---|']


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

    if args.child_options:
        child_main(args.child_options)
        return 0
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # a timeout: end the runs too
    runner = Runner(args)
    print(f'{osp.basename(OPTIONS)}, {ITERATIONS} iterations on {args.device}, GT {args.gt_size}, batch '
          f'{args.batch}, tiny generated data; killed after {KILL_AFTER}.state, resumed with --auto_resume '
          f'(logs: {runner.root})', flush=True)
    print('\n'.join(HEADER), flush=True)
    failures = 0
    for name in args.runs:
        if name == 'fp16' and args.device == 'cpu':
            print(row([name, 'fp16, channels_last, no compile, foreach Adam, raw cache',
                       'skipped on CPU: fp16 autocast has no fast CPU kernels (minutes per iteration here)',
                       '-', '-', '-', '-'], None), flush=True)
            continue
        passed, line = runner.run(name)
        failures += not passed
        print(line, flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
