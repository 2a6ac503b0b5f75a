"""tools/reproduce.py's arguments are checked before anything runs (--gpus against the original's total batches,
a file where a folder goes, --from a stage whose earlier outputs are missing), a failed start changes nothing on
disk, a killed attempt's time is counted, and --toolbox mmagic keeps its own state. No stage runs here: the
check and the stages are replaced where a road would run (seconds)."""
import json
import os
import os.path as osp
import signal
import sys
import time
import types

import pytest
from tool_loader import load_tool

from ranksrgan_plugin.reproduce import PaperRoad, RoadLayout, RoadPlan, StageFailed
from ranksrgan_plugin.reproduce.variants import STAGES, VARIANTS
from ranksrgan_plugin.utils.live_processes import LiveStageError
from ranksrgan_plugin.utils.logged_process import Stopped

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAINED = ('rank_dataset', 'ranker', 'ranksrgan', 'test', 'report')


@pytest.fixture
def no_external_files(tmp_path, monkeypatch):
    """No VGG19 in torch's hub cache and no model.mat anywhere the lookup goes."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('RANKSRGAN_MA_MODEL', raising=False)
    monkeypatch.setattr('ranksrgan_plugin.iqa.ma_model.DEFAULT_MODEL_PATH', tmp_path / 'no' / 'model.mat')


@pytest.fixture
def stages_replaced(monkeypatch):
    """The road's check passes and its stages only record their calls (no data, no training)."""
    calls = []
    monkeypatch.setattr(PaperRoad, 'check', lambda self: True)
    for name in TRAINED:
        def stage(self, forced, name=name):
            calls.append(name)
            return {'checkpoint': osp.join(self.layout.output, f'{name}.pth'), 'rank_dataset': self.layout.output}
        monkeypatch.setattr(PaperRoad, f'_stage_{name}', stage)
    return calls


def empty_folder(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir(exist_ok=True)
    return str(empty)


def tool_args(tmp_path, *args):
    empty = empty_folder(tmp_path)
    return ['--data', empty, '--pretrained', empty, '--output', str(tmp_path / 'out'), *args]


def refused(tmp_path, capsys, *args):
    """The tool's argparse-style refusal (exit status 2, SystemExit): its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        load_tool('reproduce').main(tool_args(tmp_path, *args))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert 'MISSING' not in captured.out  # refused before the check of the inputs
    return captured.err


def layout_for(tmp_path, **kwargs):
    return RoadLayout(repo=REPO, variant=VARIANTS['niqe'], data=str(tmp_path / 'data'),
                      pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out' / 'niqe'),
                      root=str(tmp_path / 'root'), **kwargs)


def finished_state(tmp_path, layout, until='report'):
    """A state.json whose stages up to ``until`` are done, their outputs on disk; its bytes."""
    os.makedirs(layout.output, exist_ok=True)
    stages = {'check': {'status': 'done', 'seconds': 1.0, 'attempts': 0}}
    for name in TRAINED[:TRAINED.index(until) + 1]:
        output = osp.join(str(tmp_path), 'made', f'{name}.pth')
        os.makedirs(osp.dirname(output), exist_ok=True)
        open(output, 'wb').close()
        stages[name] = {'status': 'done', 'seconds': 10.0, 'attempts': 1,
                        'outputs': {'checkpoint': output, 'rank_dataset': output}}
    with open(layout.state_file, 'w', encoding='utf-8') as f:
        json.dump({'variant': 'niqe', 'toolbox': layout.toolbox, 'rehearsal': False, 'stages': stages}, f, indent=2)
    with open(layout.state_file, 'rb') as f:
        return f.read()


def tree(folder):
    return sorted(osp.join(root, name) for root, dirs, files in os.walk(folder) for name in dirs + files)


# ------------------------------------------------------------------------------------------------
# --gpus, paths


@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('gpus', ['0', '-1', '3'])
def test_gpus_that_cannot_keep_the_total_batch_are_refused_first(tmp_path, capsys, no_external_files, gpus, check):
    err = refused(tmp_path, capsys, '--gpus', gpus, *(['--check'] if check else []))
    assert f'reproduce: error: argument --gpus: {gpus} ' in err
    assert 'use one of 1, 2, 4, 8' in err  # the divisors of both totals, read from the option files
    assert "Ranker's total batch 16 (train_Ranker_NIQE.yml" in err
    assert "RankSRGAN's total batch 8 (train_RankSRGAN_NIQE.yml" in err
    assert not (tmp_path / 'out').exists()


def test_a_divisor_of_both_total_batches_is_accepted(tmp_path, capsys, no_external_files):
    status = load_tool('reproduce').main(tool_args(tmp_path, '--gpus', '2', '--check'))
    out, err = capsys.readouterr()
    assert status == 2 and 'MISSING DIV2K train HR' in out  # on to the check of the inputs (an empty folder here)
    assert '--gpus' not in err
    assert layout_for(tmp_path, gpus=2).gpus_problem() is None


@pytest.mark.parametrize('option', ['--data', '--pretrained', '--output', '--root'])
def test_a_file_where_a_folder_goes_is_refused_naming_it(tmp_path, capsys, no_external_files, option):
    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder')
    err = refused(tmp_path, capsys, option, str(a_file), '--check')
    assert f'reproduce: error: argument {option}: {a_file} is a file; it takes a folder' in err


def test_ma_model_must_be_a_file_read_by_the_variant(tmp_path, capsys, no_external_files):
    err = refused(tmp_path, capsys, '--variant', 'ma', '--ma-model', str(tmp_path), '--check')
    assert f'argument --ma-model: {tmp_path} is a folder' in err
    err = refused(tmp_path, capsys, '--variant', 'pi', '--ma-model', str(tmp_path / 'no.mat'), '--check')
    assert f'argument --ma-model: {tmp_path / "no.mat"} does not exist' in err
    model = tmp_path / 'model.mat'
    model.write_bytes(b'')
    err = refused(tmp_path, capsys, '--ma-model', str(model), '--check')
    assert 'argument --ma-model: the niqe road reads no model.mat' in err


def test_every_bad_argument_is_named_at_once(tmp_path, capsys, no_external_files):
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    err = refused(tmp_path, capsys, '--gpus', '5', '--root', str(a_file), '--from', 'ranker', '--until',
                  'rank_dataset')
    assert 'argument --gpus: 5 does not divide' in err and f'argument --root: {a_file} is a file' in err
    assert 'argument --until: rank_dataset comes before --from ranker' in err


def test_rehearsal_refuses_data_it_would_not_read(tmp_path, capsys):
    err = refused(tmp_path, capsys, '--rehearsal')  # tool_args gives --data and --pretrained
    assert 'argument --data: not read with --rehearsal' in err and 'argument --pretrained: not read' in err
    assert not (tmp_path / 'out').exists()


# ------------------------------------------------------------------------------------------------
# a failed start changes nothing


def test_a_failed_start_leaves_the_state_byte_identical(tmp_path, capsys, no_external_files):
    layout = layout_for(tmp_path)
    before = finished_state(tmp_path, layout, until='ranksrgan')
    # an attempt that never ended: loading counts its time in memory, writing nothing
    state = json.loads(before)
    state['stages']['test'] = {'status': 'running', 'seconds': 0.0, 'attempts': 1, 'attempt_started': time.time()}
    with open(layout.state_file, 'w', encoding='utf-8') as f:
        json.dump(state, f)
    with open(layout.state_file, 'rb') as f:
        before = f.read()
    empty_folder(tmp_path)
    files = tree(str(tmp_path))
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    files.append(str(a_file))
    refused(tmp_path, capsys, '--gpus', '3')
    refused(tmp_path, capsys, '--data', str(a_file))
    os.remove(state['stages']['ranker']['outputs']['checkpoint'])
    files.remove(state['stages']['ranker']['outputs']['checkpoint'])
    err = refused(tmp_path, capsys, '--from', 'test')
    assert 'ranker: the Ranker checkpoint' in err and 'is gone (the stage is recorded as done' in err
    assert load_tool('reproduce').main(tool_args(tmp_path)) == 2  # the check: every input missing
    with open(layout.state_file, 'rb') as f:
        assert f.read() == before
    assert tree(str(tmp_path)) == sorted(files)


def test_a_stage_failing_before_its_command_leaves_a_finished_stage_as_it_was(tmp_path, monkeypatch):
    """--from ranker with 3 processes (the road used through its API, the tool refuses this first): the Ranker
    fails computing its batch, its log untouched; its record stays done (was: flipped to running, 0 s)."""
    monkeypatch.setattr(PaperRoad, 'check', lambda self: True)
    layout = layout_for(tmp_path, gpus=3)
    finished_state(tmp_path, layout, until='report')
    road = PaperRoad(layout, echo=lambda line: None, show_bars=False)
    before = json.loads(json.dumps(road.state['stages']['ranker']))
    with pytest.raises(ValueError, match='--gpus 3 does not divide the Ranker total batch 16'):
        road.run(start='ranker')
    with open(layout.state_file, encoding='utf-8') as f:
        assert json.load(f)['stages']['ranker'] == before
    assert not osp.exists(layout.log_file('ranker'))


def test_a_stage_that_ran_and_failed_records_its_attempt(tmp_path, monkeypatch):
    """The stage's command started (its log written) and was stopped: its time and attempt are recorded, no
    attempt start is left behind for the next load to count again."""
    monkeypatch.setattr(PaperRoad, 'check', lambda self: True)
    layout = layout_for(tmp_path)
    finished_state(tmp_path, layout, until='rank_dataset')
    seen = {}

    def ranker(self, forced):
        with open(layout.state_file, encoding='utf-8') as f:
            seen.update(json.load(f)['stages']['ranker'])
        os.makedirs(osp.dirname(layout.log_file('ranker')), exist_ok=True)
        with open(layout.log_file('ranker'), 'w', encoding='utf-8') as f:
            f.write('iter: 1\n')
        time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(PaperRoad, '_stage_ranker', ranker)
    started = time.time()
    with pytest.raises(KeyboardInterrupt):
        PaperRoad(layout, echo=lambda line: None, show_bars=False).run()
    assert seen['status'] == 'running' and started <= seen['attempt_started'] <= time.time()
    with open(layout.state_file, encoding='utf-8') as f:
        record = json.load(f)['stages']['ranker']
    assert record['status'] == 'running' and record['attempts'] == 1 and record['seconds'] >= 0.05
    assert 'attempt_started' not in record


# ------------------------------------------------------------------------------------------------
# --from


@pytest.mark.parametrize('start, missing', [
    ('ranker', ['rank_dataset: the rank dataset']),
    ('ranksrgan', ['rank_dataset: the rank dataset', 'ranker: the Ranker checkpoint']),
    ('test', ['rank_dataset: the rank dataset', 'ranker: the Ranker checkpoint',
              'ranksrgan: the RankSRGAN generator checkpoint']),
])
def test_from_a_stage_with_nothing_before_it_is_refused(tmp_path, capsys, no_external_files, start, missing):
    err = refused(tmp_path, capsys, '--from', start)
    assert f'reproduce: error: argument --from: --from {start} reruns {start}' in err
    for what in missing:
        assert f'    {what} ' in err and '(not made yet)' in err
    data = tmp_path / 'empty'
    assert str(data / 'rank_DF2K_niqe') in err  # where the rank dataset goes, relocated to --data
    assert osp.join('experiments', 'Ranker_VGG12_NIQE', 'models', 'net_r_latest.pth') in err or start == 'ranker'
    earlier = STAGES[STAGES.index(start) - 1]
    assert (f'python tools/reproduce.py --data {data} --pretrained {data} --output {tmp_path / "out"} '
            f'--until {earlier}\n') in err
    assert not (tmp_path / 'out').exists()


def test_the_road_refuses_from_without_the_earlier_outputs(tmp_path, stages_replaced):
    """Through the API: was the whole road run silently (the rank dataset built, a 400k-iteration Ranker)."""
    layout = layout_for(tmp_path)
    with pytest.raises(StageFailed, match=r'--from ranksrgan needs the outputs of the stages before it') as error:
        PaperRoad(layout, echo=lambda line: None).run(start='ranksrgan')
    assert 'rank_dataset: the rank dataset' in str(error.value) and '--until ranker' in str(error.value)
    assert stages_replaced == [] and not osp.exists(layout.output)
    assert PaperRoad(layout, echo=lambda line: None).run(until='ranker') == 0
    assert stages_replaced == ['rank_dataset', 'ranker']
    open(osp.join(layout.output, 'ranker.pth'), 'wb').close()
    assert PaperRoad(layout, echo=lambda line: None).run(start='ranksrgan', until='ranksrgan') == 0
    assert stages_replaced[2:] == ['ranksrgan']


# ------------------------------------------------------------------------------------------------
# a killed attempt's time


def killed_attempt(layout, stage, seconds, attempts, ago, last_write, log_text=''):
    """A state whose ``stage`` is 'running' since ``ago`` seconds (its road killed outright, SIGKILL: no record of
    the end), its log last written ``last_write`` seconds after the attempt started; the attempt's start time."""
    with open(layout.state_file, encoding='utf-8') as f:
        state = json.load(f)
    started = time.time() - ago
    state['stages'][stage] = {'status': 'running', 'seconds': seconds, 'attempts': attempts,
                              'attempt_started': started}
    with open(layout.state_file, 'w', encoding='utf-8') as f:
        json.dump(state, f)
    os.makedirs(osp.dirname(layout.log_file(stage)), exist_ok=True)
    with open(layout.log_file(stage), 'w', encoding='utf-8') as f:
        f.write(log_text)
    os.utime(layout.log_file(stage), (started + last_write, started + last_write))
    return started


def test_the_time_of_an_attempt_killed_outright_is_counted(tmp_path, monkeypatch):
    layout = layout_for(tmp_path)
    finished_state(tmp_path, layout, until='rank_dataset')
    killed_attempt(layout, 'ranker', 100.0, 2, ago=7200, last_write=3600, log_text='iter: 5\n')
    with open(layout.state_file, 'rb') as f:
        before = f.read()
    lines = []
    road = PaperRoad(layout, echo=lines.append, show_bars=False)
    assert road.stage('ranker')['seconds'] == pytest.approx(3700.0)
    monkeypatch.setattr(PaperRoad, 'check', lambda self: False)  # the check fails: the state is not written
    assert road.run() == 2
    note, = [line for line in lines if line.startswith('[state] ranker')]
    assert 'attempt 2' in note and 'never ended' in note and '3600 s' in note and layout.log_file('ranker') in note
    with open(layout.state_file, 'rb') as f:
        assert f.read() == before


def test_a_killed_attempt_is_counted_once(tmp_path, stages_replaced):
    layout = layout_for(tmp_path)
    finished_state(tmp_path, layout, until='ranker')
    killed_attempt(layout, 'ranksrgan', 0.0, 1, ago=100, last_write=60)
    assert PaperRoad(layout, echo=lambda line: None).run(until='ranker') == 0  # saves the counted state
    again = PaperRoad(layout, echo=lambda line: None)
    assert again.state_notes == [] and again.stage('ranksrgan')['seconds'] == pytest.approx(60.0)


# ------------------------------------------------------------------------------------------------
# --toolbox


def test_toolbox_mmagic_has_its_own_folder_and_state(tmp_path, capsys, no_external_files, stages_replaced):
    tool = load_tool('reproduce')
    args = tool.build_parser().parse_args(tool_args(tmp_path, '--toolbox', 'mmagic'))
    layout = tool.layout_from_args(args)
    assert layout.toolbox == 'mmagic' and layout.output == str(tmp_path / 'out' / 'niqe_mmagic')
    assert PaperRoad(layout, echo=lambda line: None).run(until='rank_dataset') == 0
    with open(layout.state_file, encoding='utf-8') as f:
        assert json.load(f)['toolbox'] == 'mmagic'
    basicsr = layout_for(tmp_path)
    before = finished_state(tmp_path, basicsr, until='ranker')
    os.replace(basicsr.state_file, layout.state_file)  # a BasicSR road's state in the MMagic road's folder
    assert tool.main(tool_args(tmp_path, '--toolbox', 'mmagic', '--check')) == 1
    err = capsys.readouterr().err
    assert f'reproduce: error: {layout.state_file} belongs to the basicsr road of the niqe variant' in err
    assert '--toolbox basicsr' in err and 'use another --output' in err
    with open(layout.state_file, 'rb') as f:
        assert f.read() == before


def test_toolbox_mmagic_trains_ranksrgan_with_the_mmagic_stage(tmp_path, monkeypatch):
    calls = []

    def run_ranksrgan_mmagic(*args, **kwargs):
        calls.append((args, kwargs))
        return {'checkpoint': 'net_g.pth'}

    fake = types.ModuleType('ranksrgan_plugin.reproduce.mmagic_stages')
    fake.run_ranksrgan_mmagic = run_ranksrgan_mmagic
    monkeypatch.setitem(sys.modules, 'ranksrgan_plugin.reproduce.mmagic_stages', fake)
    layout = layout_for(tmp_path, toolbox='mmagic')
    plan = RoadPlan(overrides={'ranksrgan': {'train_cfg.max_iters': 2}}, kill_after={'ranksrgan': 1})
    road = PaperRoad(layout, plan, echo=lambda line: None, show_bars=False)
    road.state['stages']['ranker'] = {'outputs': {'checkpoint': 'net_r.pth'}}
    assert road._stage_ranksrgan(True) == {'checkpoint': 'net_g.pth'}
    (args, kwargs), = calls
    assert args == (layout, 'net_r.pth', True, road.echo)
    assert kwargs == {'overrides': {'train_cfg.max_iters': 2}, 'kill_after': 1, 'show_bars': False}


def test_the_rehearsal_plan_is_the_toolboxs():
    tool = load_tool('reproduce')
    for toolbox in ('basicsr', 'mmagic'):
        args = tool.build_parser().parse_args(['--rehearsal', '--toolbox', toolbox])
        plan = tool.plan_from_args(args, tool.layout_from_args(args))
        assert plan.rehearsal and ('MMagic' in plan.notes[0]) == (toolbox == 'mmagic')
    args = tool.build_parser().parse_args([])
    assert tool.plan_from_args(args, tool.layout_from_args(args)) == RoadPlan()


@pytest.mark.parametrize('raised, status, says', [
    (lambda: Stopped(signal.SIGTERM, 'the ranker stage'), 128 + signal.SIGTERM,
     'SIGTERM received: the ranker stage and its processes were stopped'),
    (lambda: KeyboardInterrupt(), 128 + signal.SIGINT, 'SIGINT received'),
    (lambda: LiveStageError('Not starting ranker.yml: pid 4242 runs it'), 1, 'pid 4242 runs it'),
])
def test_a_stopped_or_refused_road_ends_with_a_message_not_a_traceback(tmp_path, capsys, monkeypatch, no_external_files,
                                                                      raised, status, says):
    """The road's top: a stop signal (Stopped, raised by run_logged after it stopped the stage's processes) or Ctrl-C
    exits 128 + the signal's number telling how to continue; a stage a live process runs exits 1 naming it."""
    def run(self, start=None, until='report', check_only=False):
        raise raised()

    monkeypatch.setattr(PaperRoad, 'run', run)
    assert load_tool('reproduce').main(tool_args(tmp_path)) == status
    said = capsys.readouterr().err
    assert says in said and 'Traceback' not in said
    if status != 1:
        assert 'run the same command to continue' in said
