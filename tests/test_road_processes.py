"""The road owns the processes of its stages (issue 30): a stop signal to the road, the road's death (even
``kill -9`` of its process group), a scheduler's kill of the whole job or the rehearsal's crash leave no process
of a stage running; a rerun refuses while a trainer of the same stage still runs, and resumes once it is gone.

Real processes (Linux /proc): each test waits for the processes to vanish, with generous timeouts.
"""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import torch
import yaml
from process_tree import tree_command
from road_launcher import road_layout
from test_reproduce import TINY_RANKER, tiny_layout

from ranksrgan_plugin.archs.ranker_arch import RankerVGG
from ranksrgan_plugin.rank_dataset.builder import WORK_DIR
from ranksrgan_plugin.reproduce import PaperRoad
from ranksrgan_plugin.utils.live_processes import LiveStageError, live_processes
from ranksrgan_plugin.utils.logged_process import KILLED, last_logged_iteration, run_logged

pytestmark = pytest.mark.skipif(not osp.isdir('/proc/self'), reason='finds processes through Linux /proc')
HERE = osp.dirname(osp.abspath(__file__))
TOKEN = 'RANKSRGAN_TEST_PROCESS_TOKEN'
TIMEOUT = 60


# ------------------------------------------------------------------------------------------------
# helpers


def marked(token):
    """The live processes started with ``TOKEN=token`` in their environment (zombies have none)."""
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open(f'/proc/{name}/environ', 'rb') as f:
                    if f'{TOKEN}={token}'.encode() in f.read().split(b'\0'):
                        found.append(int(name))
            except OSError:
                pass
    return found


def wait_for(condition, what, timeout=TIMEOUT, poll=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def survivors(token, timeout=TIMEOUT):
    """The marked processes still running after ``timeout`` (an empty list as soon as none runs)."""
    deadline = time.monotonic() + timeout
    while (left := marked(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [f'{pid}: {describe(pid)}' for pid in left]


def describe(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return '(gone)'


def kill_marked(token):
    for pid in marked(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def token():
    """A fresh marker; every process still carrying it is killed at the end (a failed test leaves nothing)."""
    value = uuid.uuid4().hex
    yield value
    kill_marked(value)


def start(command, token, **kwargs):
    """``command`` in a session of its own (its group is not pytest's), marked with ``token``."""
    return subprocess.Popen(command, env={**os.environ, TOKEN: token}, start_new_session=True, **kwargs)


def alive(pid):
    return osp.isdir(f'/proc/{pid}') and describe(pid) != ''


# ------------------------------------------------------------------------------------------------
# run_logged on a tree of processes (tests/process_tree.py), its parent stopped or killed


def start_parent(tmp_path, token):
    ready, log = str(tmp_path / 'ready'), str(tmp_path / 'tree.log')
    parent = start([sys.executable, osp.join(HERE, 'process_tree.py'), 'parent', ready, log], token)
    wait_for(lambda: osp.isfile(ready) or parent.poll() is not None, 'the tree of processes')
    assert parent.poll() is None, open(log).read() if osp.isfile(log) else 'no log'
    with open(ready) as f:
        pids = [int(pid) for pid in f.read().split()]
    assert len(pids) == 5 and all(alive(pid) for pid in pids)
    return parent, log


@pytest.mark.parametrize('how', ['SIGTERM', 'SIGHUP', 'SIGINT', 'kill -9 of its group', 'SIGKILL'])
def test_stopping_or_killing_the_parent_leaves_no_descendant(tmp_path, token, how):
    parent, log = start_parent(tmp_path, token)
    if how == 'kill -9 of its group':
        os.killpg(parent.pid, signal.SIGKILL)
    else:
        parent.send_signal(getattr(signal, how))
    status = parent.wait(TIMEOUT)
    assert survivors(token) == []
    with open(log) as f:
        said = f.read()
    assert 'SIGTERM received: SIGTERM to' in said  # the guard: from run_logged, or its parent-death signal
    assert 'SIGKILL to pids' in said  # the process that ignores SIGTERM needed the grace's end
    if how.startswith('SIG') and how != 'SIGKILL':
        assert status == 128 + getattr(signal, how)  # run_logged raised Stopped with the signal's number
    else:
        assert status == -signal.SIGKILL


def test_a_schedulers_kill_of_the_whole_job_leaves_nothing(tmp_path, token):
    """As slurm cancels a job: SIGTERM to every process of it at once, SIGKILL to what is left after KillWait."""
    parent, log = start_parent(tmp_path, token)
    for pid in marked(token):
        os.kill(pid, signal.SIGTERM)
    left = survivors(token, timeout=30)  # slurm's default KillWait
    kill_marked(token)
    assert left == []  # all ended by themselves: the one that ignores SIGTERM by the guard's SIGKILL
    assert parent.wait(TIMEOUT) == 128 + signal.SIGTERM


def test_stop_when_kills_the_whole_tree_at_once(tmp_path, token, monkeypatch):
    ready, log = str(tmp_path / 'ready'), str(tmp_path / 'tree.log')
    monkeypatch.setenv(TOKEN, token)
    handler = signal.getsignal(signal.SIGTERM)
    started = []

    def stop_when():
        if osp.isfile(ready) and not started:
            started.append(time.monotonic())
        return bool(started)

    status = run_logged(tree_command(ready), str(tmp_path), log, 'tree', stop_when=stop_when, show_bar=False,
                        stop_grace=60)
    assert status == KILLED
    assert time.monotonic() - started[0] < 30  # SIGKILL at once: no 60 s grace
    assert survivors(token, timeout=10) == []
    with open(log) as f:
        assert 'SIGTERM' not in f.read()
    assert signal.getsignal(signal.SIGTERM) is handler  # run_logged's handlers undone


def test_a_live_process_holding_the_key_is_refused_by_pid_and_nothing_starts(tmp_path, token):
    options = tmp_path / 'options'
    options.mkdir()
    key = str(options / 'ranker.yml')
    marker, log = tmp_path / 'started', str(tmp_path / 'logs' / 'ranker.log')
    command = [sys.executable, '-c', f'open({str(marker)!r}, "w").close()']
    # an orphan of an older road: the options file on its command line, here relative to its directory
    holder = start([sys.executable, '-c', 'import time; time.sleep(600)', '-opt', 'options/ranker.yml'], token,
                   cwd=str(tmp_path))
    wait_for(lambda: holder.pid in live_processes(), 'the holder')
    with pytest.raises(LiveStageError) as refused:
        run_logged(command, str(tmp_path), log, '  ranker', show_bar=False, lock_key=key)
    message = str(refused.value)
    assert f'pid {holder.pid}: ' in message and 'time.sleep(600) -opt options/ranker.yml' in message
    assert key in message and f'kill {holder.pid}' in message and 'Not starting ranker' in message
    assert not marker.exists() and not osp.exists(log)
    assert run_logged(command, str(tmp_path), log, 'other', show_bar=False, lock_key=str(tmp_path / 'gan.yml')) == 0
    marker.unlink()
    holder.kill()
    holder.wait()
    assert run_logged(command, str(tmp_path), log, '  ranker', show_bar=False, lock_key=key) == 0
    assert marker.exists()


# ------------------------------------------------------------------------------------------------
# the road itself (tests/road_launcher.py on test_reproduce's tiny layout), killed in each stage

LONG = 10 ** 6  # iterations: the killed stage is still training when the kill comes
EXTRA_HR_COPIES = 6  # the rank-dataset build: 7 x 7 images, many seconds after the first one's record


def long_options(source, target):
    """The tiny options with training stages that would run for hours, with two DataLoader workers each."""
    os.makedirs(target, exist_ok=True)
    for name in ('rank.yml', 'ranker.yml', 'gan.yml'):
        with open(osp.join(source, name), encoding='utf-8') as f:
            options = yaml.safe_load(f)
        if name != 'rank.yml':
            options['train']['total_iter'] = LONG
            options['datasets']['train']['num_worker_per_gpu'] = 2
            options['logger']['save_checkpoint_freq'] = 2
        with open(osp.join(target, name), 'w', encoding='utf-8') as f:
            yaml.safe_dump(options, f)
    return target


@pytest.fixture(scope='module')
def roads(tmp_path_factory):
    """A tiny layout whose rank dataset is built once; state.json after it, and with a Ranker marked done.

    The Ranker is a tiny RankerVGG's initial weights: RankSRGAN only loads it (a trained one would cost a
    training process here).
    """
    folder = str(tmp_path_factory.mktemp('layout'))
    layout = tiny_layout(folder)
    base = road_layout(folder, osp.join(folder, 'options'), folder)
    assert (base.output, base.root, base.variant.ranker) == (layout.output, layout.root, layout.variant.ranker)
    assert PaperRoad(base, echo=lambda line: None, show_bars=False).run(until='rank_dataset') == 0
    states = {'rank_dataset': shutil.copy(base.state_file, osp.join(folder, 'state_rank_dataset.json'))}
    ranker = osp.join(folder, 'net_r_latest.pth')
    torch.save({'params': RankerVGG(**{k: v for k, v in TINY_RANKER.items() if k != 'type'}).state_dict()}, ranker)
    with open(base.state_file, encoding='utf-8') as f:
        state = json.load(f)
    state['stages']['ranker'] = {'status': 'done', 'seconds': 0.0, 'attempts': 1, 'outputs': {'checkpoint': ranker}}
    states['ranker'] = osp.join(folder, 'state_ranker.json')
    with open(states['ranker'], 'w', encoding='utf-8') as f:
        json.dump(state, f)
    return folder, states


def launch_road(folder, output, token, until, start_stage=None):
    command = [sys.executable, osp.join(HERE, 'road_launcher.py'), '--layout', folder, '--options',
               osp.join(output, 'options_src'), '--output', output, '--until', until]
    return start(command + (['--from', start_stage] if start_stage else []), token, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, text=True)


def holders(yml):
    return [p.pid for p in live_processes().values() if yml in p.argv]


def working(layout, stage, road, wanted):
    """True once the stage's trainer runs with its workers and ``wanted(layout)`` holds."""
    assert road.poll() is None, road.stdout.read()
    yml = layout.options_as_run(stage)
    processes = holders(yml)
    workers = 1 if stage == 'rank_dataset' else 2  # the guard and the builder / the trainer and its workers
    return len(processes) >= 1 + workers and wanted(layout)


def trained_past(iteration, stage):
    def past(layout):
        return last_logged_iteration(layout.log_file(stage)) >= iteration
    return past


def built_one_image(layout):
    records = osp.join(layout.read_options('rank_dataset')['output'], WORK_DIR, 'images')
    return osp.isdir(records) and len(os.listdir(records)) >= 1


def kill_road(road, how):
    if how == 'SIGTERM':
        road.send_signal(signal.SIGTERM)
    else:
        os.killpg(road.pid, signal.SIGKILL)  # the road's process group, as `kill -9 -- -<pgid>`
    status = road.wait(TIMEOUT)
    return status, road.stdout.read()


def assert_nothing_left(layout, stage, token, status, how, said):
    yml = layout.options_as_run(stage)
    assert survivors(token) == [] and holders(yml) == [], said
    if how == 'SIGTERM':
        assert status == 128 + signal.SIGTERM, said  # Stopped reached the road's top
        with open(layout.state_file, encoding='utf-8') as f:
            record = json.load(f)['stages'][stage]
        assert record['status'] == 'running' and record['seconds'] > 0  # the road's finally ran
    else:
        assert status == -signal.SIGKILL


def prepared(folder, output, state=None):
    long_options(osp.join(folder, 'options'), osp.join(output, 'options_src'))
    layout = road_layout(folder, osp.join(output, 'options_src'), output)
    if state:
        os.makedirs(layout.output)
        shutil.copy(state, layout.state_file)
    return layout


@pytest.mark.parametrize('how', ['SIGTERM', 'kill -9 of its group'])
def test_killing_the_road_while_it_builds_the_rank_dataset_leaves_nothing(tmp_path, token, how):
    folder = str(tmp_path / 'layout')
    tiny_layout(folder)
    layout = prepared(folder, str(tmp_path))
    hr = layout.read_options('rank_dataset')['hr']
    os.makedirs(hr)
    for folder_of_images in (layout.div2k_hr, layout.flickr2k_hr):
        for name in os.listdir(folder_of_images):
            for copy in range(EXTRA_HR_COPIES + 1):
                os.symlink(osp.join(folder_of_images, name), osp.join(hr, f'{copy}_{name}'))
    road = launch_road(folder, str(tmp_path), token, 'rank_dataset')
    wait_for(lambda: working(layout, 'rank_dataset', road, built_one_image), 'the rank-dataset build')
    status, said = kill_road(road, how)
    assert not osp.isfile(osp.join(layout.read_options('rank_dataset')['output'], 'manifest.json'))  # mid-build
    assert_nothing_left(layout, 'rank_dataset', token, status, how, said)


def test_killing_the_road_in_the_ranker_leaves_nothing_and_the_rerun_resumes(roads, tmp_path, token):
    folder, states = roads
    output = str(tmp_path)
    layout = prepared(folder, output, states['rank_dataset'])
    road = launch_road(folder, output, token, 'ranker')
    wait_for(lambda: working(layout, 'ranker', road, trained_past(3, 'ranker')), 'the Ranker training')
    status, said = kill_road(road, 'kill -9 of its group')
    assert_nothing_left(layout, 'ranker', token, status, 'kill -9', said)
    killed = last_logged_iteration(layout.log_file('ranker'))
    # the same road again: not refused (the trainer is gone), and it resumes from a state the killed one saved
    road = launch_road(folder, output, token, 'ranker')
    with open(layout.log_file('ranker'), encoding='utf-8') as f:
        killed_at = len(f.read())

    def resumed(layout):
        with open(layout.log_file('ranker'), encoding='utf-8') as f:
            return 'Resuming training from' in f.read()[killed_at:] and trained_past(killed + 1, 'ranker')(layout)

    wait_for(lambda: working(layout, 'ranker', road, resumed), 'the resumed Ranker training')
    status, said = kill_road(road, 'SIGTERM')
    assert 'LiveStageError' not in said and 'Not starting' not in said
    assert_nothing_left(layout, 'ranker', token, status, 'SIGTERM', said)


@pytest.mark.parametrize('how', ['SIGTERM', 'kill -9 of its group'])
def test_killing_the_road_in_ranksrgan_leaves_nothing(roads, tmp_path, token, how):
    folder, states = roads
    layout = prepared(folder, str(tmp_path), states['ranker'])
    road = launch_road(folder, str(tmp_path), token, 'ranksrgan')
    wait_for(lambda: working(layout, 'ranksrgan', road, trained_past(1, 'ranksrgan')), 'the RankSRGAN training')
    status, said = kill_road(road, how)
    assert_nothing_left(layout, 'ranksrgan', token, status, how, said)
