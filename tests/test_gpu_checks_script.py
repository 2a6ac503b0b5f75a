"""benchmarks/gpu_checks.sh, cheaply (its --plan, no section run): timeouts within the 9-minute call, at most 8 result
files, every benchmark flag known to that benchmark's parser; and train_step.py's rows printed as they are measured."""
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import List, Tuple

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'benchmarks' / 'gpu_checks.sh'
MODES = {'gpu': [], 'dry': ['--dry']}
TOTAL_LIMIT = 540  # seconds: the whole check under 9 minutes
MAX_FILES = 8  # what one device call brings back
FILE_NAME = re.compile(r'^[A-Za-z0-9._-]+$')

Section = Tuple[str, int, str, str]  # name, timeout, result file, command


def plan(mode: str) -> List[Section]:
    """The script's sections as ``--plan`` prints them (nothing runs)."""
    output = subprocess.run(['bash', str(SCRIPT), '--plan', *MODES[mode]], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    sections = []
    for line in output.splitlines():
        name, timeout, file, command = line.split('\t')
        sections.append((name, int(timeout), file, command))
    return sections


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a fresh module (``sys.path`` and a benchmark's helper imports put back after)."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location(f'{name}_benchmark', REPO / 'benchmarks' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for added in {'rank_dataset'} - saved_modules:  # data_loader.py's helper from benchmarks/
            sys.modules.pop(added, None)
    return module


@pytest.mark.parametrize('mode', MODES)
def test_timeouts_add_up_to_under_nine_minutes(mode):
    grace = int(re.search(r'^KILL_GRACE=(\d+)', SCRIPT.read_text(), re.M).group(1))
    sections = plan(mode)
    assert sum(timeout for _, timeout, _, _ in sections) + grace * len(sections) < TOTAL_LIMIT
    assert all(timeout > 0 for name, timeout, _, _ in sections if name != 'summary')


@pytest.mark.parametrize('mode', MODES)
def test_at_most_eight_result_files_with_plain_names(mode):
    files = [file for _, _, file, _ in plan(mode)]
    assert len(files) == len(set(files)) <= MAX_FILES
    assert all(FILE_NAME.match(file) for file in files)


def test_the_dry_run_has_the_same_sections_and_files():
    gpu, dry = plan('gpu'), plan('dry')
    assert [(name, file) for name, _, file, _ in gpu] == [(name, file) for name, _, file, _ in dry]
    assert [name for name, *_ in gpu][:3] == ['setup', 'train_step', 'train_resume']  # the priority order


@pytest.mark.parametrize('mode', MODES)
def test_every_benchmark_flag_exists_in_its_parser(mode):
    checked = 0
    for name, _, _, command in plan(mode):
        words = shlex.split(command)
        scripts = [index for index, word in enumerate(words) if word.startswith('benchmarks/')]
        if name in ('setup', 'summary'):
            assert not scripts
            continue
        assert len(scripts) == 1, command
        script = Path(words[scripts[0]]).stem
        args = load_benchmark(script).build_parser().parse_args(words[scripts[0] + 1:])  # SystemExit if unknown
        if mode == 'dry':
            assert getattr(args, 'device', 'cpu') in ('cpu', ['cpu'])
        checked += 1
    assert checked == 5


def test_train_step_prints_its_header_and_first_row_before_measuring_the_next(monkeypatch, capsys):
    """The second configuration fails when it starts: by then the header and the first row must be printed."""
    module = load_benchmark('train_step')
    measure, printed = module.measure_configuration, []

    def measure_then_fail(*args, **kwargs):
        if printed:
            printed.append(capsys.readouterr().out)
            raise RuntimeError('forced failure of the second configuration')
        printed.append('')
        return measure(*args, **kwargs)

    monkeypatch.setattr(module, 'measure_configuration', measure_then_fail)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # process-wide: given back, or later tests sum in another order
    try:
        status = module.main(['--device', 'cpu', '--precision', 'fp32', 'bf16', '--compile', '--gt-size', '32',
                              '--batch', '2', '--ranker-batch', '2', '--steps', '3'])
    finally:
        torch.set_num_threads(threads)
    before_second = printed[1].splitlines()
    assert any(line.startswith('| configuration | RankSRGAN s / step |') for line in before_second)
    assert re.match(r'^\| fp32 \| \d+\.\d{3} \| 1\.00x \| [\d.]+ \| \d+\.\d{3} \| 1\.00x \| [\d.]+ \| [\d.]+ \|$',
                    before_second[-1])
    after = capsys.readouterr().out.splitlines()
    assert after[0].startswith('| bf16 | failed: RuntimeError: forced failure')
    assert after[1].startswith('| bf16 + compile | skipped on CPU: ')
    assert status == 1


def test_train_resume_tells_a_restored_state_from_a_fresh_one(tmp_path):
    module = load_benchmark('train_resume')
    guard_key = 'nonfinite_guard'
    fresh = {'iter': 3, guard_key: {'skipped': 0, 'run': 0, 'scale_search': 0}, 'scalers': {'g': {'scale': 65536.0}}}
    carried = {'iter': 3, guard_key: {**module.MARKED_GUARD}, 'scalers': {'g': {'scale': module.MARKED_SCALE / 2}}}
    results = {}
    for name, state in (('fresh', fresh), ('carried', carried)):
        torch.save(state, tmp_path / f'{name}.state')
        results[name] = module.restored(str(tmp_path / f'{name}.state'))[0]
    assert results == {'fresh': False, 'carried': True}
