"""The paper road as one resumable command: check -> rank_dataset -> ranker -> ranksrgan -> test -> report.

:class:`PaperRoad` keeps ``<output>/state.json``: a stage recorded as done whose outputs are still on
disk is skipped when the same command runs again; an unfinished one continues where it stopped;
``start`` (``--from``) runs that stage and the ones after it again from scratch, ``until`` stops
after a stage. The check runs first, every time, and nothing is written when it finds a problem.
``start`` is refused when an earlier stage's outputs are missing (:meth:`PaperRoad.missing_before`).

Each attempt of a stage records its wall-clock start in the state; when a road killed outright
(SIGKILL: no ``finally`` ran) is loaded again, the attempt's time up to its log's last write is added
to the stage's time. The state records its toolbox (``basicsr`` or ``mmagic``, which trains RankSRGAN) and
its training settings (the paper's, or ``--fast``'s); a state of another variant, toolbox or settings is refused.
"""
import copy
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..utils.training_logs import CurveError, load_run, select
from .layout import TEST_SETS, RoadLayout
from .measure import measure_generator, measure_ranker, present_test_sets
from .preflight import check_road
from .report import rehearsal_mark, write_report
from .stages import StageFailed, run_rank_dataset, run_ranker, run_ranksrgan
from .variants import STAGES

EXIT_MISSING_INPUTS = 2
# stage -> (its main output in its outputs, what it is); is_done and missing_before look for it
MAIN_OUTPUTS = {'rank_dataset': ('rank_dataset', 'the rank dataset'), 'ranker': ('checkpoint', 'the Ranker checkpoint'),
                'ranksrgan': ('checkpoint', 'the RankSRGAN generator checkpoint')}
# the stages that run a command behind layout.log_file(stage): one whose log is untouched never started it
LOGGED_STAGES = ('rank_dataset', 'ranker', 'ranksrgan')


@dataclass
class RoadPlan:
    """What a run of the road changes in the option files (nothing for the paper's road).

    ``overrides``: per stage, dotted option keys set on top (the rehearsal's iteration counts);
    ``kill_after``: per training stage, the iteration after whose saved state the run is killed once and
    run again (the rehearsal's crash); ``notes``: said in the log and in the report; ``settings``: the
    training settings, ``'paper'`` (the paper's fp32) or ``'fast'`` (:mod:`.fast`), recorded in the state.
    """

    overrides: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    kill_after: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    rehearsal: bool = False
    settings: str = 'paper'


class PaperRoad:
    """Runs the stages of one :class:`RoadLayout` (see the module docstring)."""

    def __init__(self, layout: RoadLayout, plan: Optional[RoadPlan] = None, echo: Callable[[str], None] = print,
                 show_bars: bool = True) -> None:
        self.layout, self.plan, self.echo, self.show_bars = layout, plan or RoadPlan(), echo, show_bars
        self.state_notes: List[str] = []  # said when the road runs: what loading the state changed
        self.state = self._load_state()

    # -- state --------------------------------------------------------------------------------
    def _load_state(self) -> Dict[str, Any]:
        """The state on disk (read only: it is written once the check passes), else a new one."""
        if not osp.isfile(self.layout.state_file):
            return {'variant': self.layout.variant.name, 'toolbox': self.layout.toolbox,
                    'rehearsal': self.plan.rehearsal, 'settings': self.plan.settings, 'stages': {}}
        with open(self.layout.state_file, encoding='utf-8') as f:
            state = json.load(f)
        if state.get('variant') != self.layout.variant.name:
            raise StageFailed(f'{self.layout.state_file} belongs to variant {state.get("variant")!r}; '
                              'use another --output for another variant.')
        toolbox = state.get('toolbox', 'basicsr')  # states written before the MMagic road are BasicSR's
        if toolbox != self.layout.toolbox:
            raise StageFailed(f'{self.layout.state_file} belongs to the {toolbox} road of the {state["variant"]} '
                              f'variant (--toolbox {toolbox}), not the {self.layout.toolbox} one; use another '
                              '--output for another toolbox.')
        settings = state.get('settings', 'paper')  # states written before --fast are the paper's
        if settings != self.plan.settings:
            raise StageFailed(f'{self.layout.state_file} belongs to a road trained with the {settings} settings, '
                              f'not the {self.plan.settings} ones (--fast or not); a road never mixes them: use '
                              'another --output.')
        for name, record in state['stages'].items():
            self._count_killed_attempt(name, record)
        return state

    def _count_killed_attempt(self, name: str, record: Dict[str, Any]) -> None:
        """Add the time of an attempt that never ended (the road was killed: its ``finally`` never ran) up to
        the last write of the stage's log."""
        started = record.pop('attempt_started', None)
        if started is None or record.get('status') != 'running':
            return
        log = self.layout.log_file(name)
        ended = osp.getmtime(log) if osp.isfile(log) else None
        when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))
        if ended is None or ended <= started:
            self.state_notes.append(f'[state] {name}: attempt {record.get("attempts")} started {when} and never ended '
                                    f'(the road was killed); {log} was not written after it started: no time added')
            return
        record['seconds'] = record.get('seconds', 0.0) + ended - started
        self.state_notes.append(f'[state] {name}: attempt {record.get("attempts")} started {when} and never ended '
                                f'(the road was killed); its {ended - started:.0f} s up to the last write of {log} '
                                'are added to the stage\'s time')

    def _save_state(self) -> None:
        os.makedirs(self.layout.output, exist_ok=True)
        tmp = self.layout.state_file + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.layout.state_file)

    def stage(self, name: str) -> Dict[str, Any]:
        return self.state['stages'].setdefault(name, {'status': 'todo', 'seconds': 0.0, 'attempts': 0})

    def is_done(self, name: str) -> bool:
        """Recorded as done and its main output still on disk."""
        record = self.state['stages'].get(name, {})
        if record.get('status') != 'done':
            return False
        main = MAIN_OUTPUTS.get(name)
        return main is None or osp.exists(record['outputs'][main[0]])

    def outputs(self, name: str) -> Dict[str, Any]:
        return self.state['stages'][name]['outputs']

    def missing_before(self, start: Optional[str]) -> List[Tuple[str, str]]:
        """(stage, what is missing) for every stage before ``start`` (``--from``) that is not done with its
        outputs on disk; ``start`` reruns from there with those outputs, so none may be missing."""
        if not start:
            return []
        return [(name, self._missing_output(name)) for name in STAGES[1:STAGES.index(start)]
                if not self.is_done(name)]

    def _missing_output(self, name: str) -> str:
        record = self.state['stages'].get(name, {})
        if name not in MAIN_OUTPUTS:
            return f'its results in {self.layout.state_file} ({record.get("status", "not run yet")})'
        key, what = MAIN_OUTPUTS[name]
        path = record.get('outputs', {}).get(key) or self._expected_output(name)
        if record.get('status') == 'done':
            return f'{what} {path} is gone (the stage is recorded as done in {self.layout.state_file})'
        status = 'not made yet' if record.get('status', 'todo') == 'todo' else 'its stage has not finished'
        return f'{what} {path} ({status})'

    def _expected_output(self, name: str) -> str:
        """Where a stage that has not run writes its main output."""
        if name == 'rank_dataset':
            return self.layout.read_options('rank_dataset')['output']
        if name == 'ranksrgan' and self.layout.toolbox != 'basicsr':
            return f'(the {self.layout.toolbox} training\'s, exported for BasicSR)'
        options = self.layout.read_options(name)
        values = self.layout.variant.ranker_values if name == 'ranker' else {}
        network = 'net_r' if name == 'ranker' else 'net_g'
        return osp.join(self.layout.root, 'experiments', values.get('name', options['name']), 'models',
                        f'{network}_latest.pth')

    def refuse_start(self, start: Optional[str]) -> None:
        """Raise StageFailed naming the missing outputs when ``start`` cannot rerun from there."""
        missing = self.missing_before(start)
        if missing:
            earlier = STAGES[STAGES.index(start) - 1]
            raise StageFailed(f'--from {start} needs the outputs of the stages before it, and they are missing:\n'
                              + '\n'.join(f'  {name}: {what}' for name, what in missing)
                              + f'\nrun the road until {earlier} first (--until {earlier}), or without --from.')

    # -- the run ------------------------------------------------------------------------------
    def check(self) -> bool:
        """The preflight: prints every problem; True when there is none."""
        started = time.perf_counter()
        problems = check_road(self.layout, rank_dataset_done=self.is_done('rank_dataset'), show_bar=self.show_bars)
        if problems:
            self.echo(f'[check] {len(problems)} problem(s) with the inputs of the {self.layout.variant.name} road '
                      '(nothing was written):')
            for problem in problems:
                self.echo('  ' + str(problem).replace('\n', '\n  '))
            return False
        self.stage('check').update(status='done', seconds=time.perf_counter() - started)
        tested = present_test_sets(self.layout)
        untested = [name for name in TEST_SETS if name not in tested]
        self.echo(f'[check] every input of the {self.layout.variant.name} road is in place, every image file whole '
                  f'({time.perf_counter() - started:.0f} s); test sets: ' + ', '.join(tested)
                  + (f' ({", ".join(untested)} not found: not tested)' if untested else ''))
        return True

    def run(self, start: Optional[str] = None, until: str = 'report', check_only: bool = False) -> int:
        """The road from the check to ``until``; the exit status (2: inputs missing)."""
        self.refuse_start(start)
        for note in [*self.plan.notes, *self.layout.batchnorm_group_notes()]:
            self.echo(f'NOTE: {note}')
        for note in self.state_notes:
            self.echo(note)
        if not self.check():
            return EXIT_MISSING_INPUTS
        if check_only:
            return 0
        self._save_state()
        forced = set(STAGES[STAGES.index(start):]) if start else set()
        for index, name in enumerate(STAGES[1:STAGES.index(until) + 1], start=2):
            header = f'[{index}/{len(STAGES)}] {name}'
            if name not in forced and self.is_done(name):
                self.echo(f'{header}: done before ({self.stage(name)["seconds"]:.0f} s), skipped')
                continue
            self.echo(header)
            self._run_stage(name, name in forced)
        return 0

    def _run_stage(self, name: str, forced: bool) -> None:
        """Run a stage, recording its attempt (its wall-clock start first, for a road killed outright). A stage
        that fails before its command started (its log untouched) leaves its record as it was."""
        record = self.stage(name)
        before, log_before = copy.deepcopy(record), file_mark(self.layout.log_file(name))
        record.update(status='running', attempts=record['attempts'] + 1, attempt_started=time.time())
        if forced:
            record['seconds'] = 0.0
        self._save_state()
        started = time.perf_counter()
        try:
            outputs = getattr(self, f'_stage_{name}')(forced)
        except BaseException:
            if name in LOGGED_STAGES and file_mark(self.layout.log_file(name)) == log_before:
                record.clear()
                record.update(before)
            raise
        finally:
            if record.pop('attempt_started', None) is not None:
                record['seconds'] += time.perf_counter() - started
            self._save_state()
        record.update(status='done', outputs=outputs)
        self._save_state()

    # -- stages -------------------------------------------------------------------------------
    def _train_args(self, name: str) -> Dict[str, Any]:
        return {'overrides': self.plan.overrides.get(name, {}), 'kill_after': self.plan.kill_after.get(name),
                'show_bars': self.show_bars}

    def _stage_rank_dataset(self, forced: bool) -> Dict[str, Any]:
        return run_rank_dataset(self.layout, forced, self.echo, self.show_bars)

    def _stage_ranker(self, forced: bool) -> Dict[str, Any]:
        return run_ranker(self.layout, self.outputs('rank_dataset')['rank_dataset'], forced, self.echo,
                          **self._train_args('ranker'))

    def _stage_ranksrgan(self, forced: bool) -> Dict[str, Any]:
        ranker = self.outputs('ranker')['checkpoint']
        self.echo(f'  frozen Ranker: {ranker}')
        if self.layout.toolbox == 'mmagic':
            from .mmagic_stages import run_ranksrgan_mmagic  # MMagic is imported only by its road

            return run_ranksrgan_mmagic(self.layout, ranker, forced, self.echo, **self._train_args('ranksrgan'))
        return run_ranksrgan(self.layout, ranker, forced, self.echo, **self._train_args('ranksrgan'))

    def _stage_test(self, forced: bool) -> Dict[str, Any]:
        ranker, gan = self.outputs('ranker'), self.outputs('ranksrgan')
        histograms = osp.join(self.layout.output, 'ranker_histograms.png')
        metric = 'niqe' if self.layout.variant.name in ('niqe', 'hr') else self.layout.variant.name
        self.echo('  Ranker on the rank set\'s val split')
        ranker_scores = measure_ranker(ranker['network_r'], ranker['checkpoint'],
                                       osp.join(self.outputs('rank_dataset')['rank_dataset'], 'val'), histograms,
                                       metric, note=rehearsal_mark(self.state))
        ranker_scores['best_logged_srocc'] = best_logged(ranker['experiment'], 'srocc')
        self.echo('  RankSRGAN on the test sets')
        generator = measure_generator(self.layout, gan['network_g'], gan['checkpoint'], progress=False)
        return {'ranker': ranker_scores, 'generator': generator, 'generator_checkpoint': gan['checkpoint'],
                'figures': {'ranker_histograms': histograms}}

    def _stage_report(self, forced: bool) -> Dict[str, Any]:
        report = write_report(self.layout, self.state, self.plan.notes)
        table = osp.join(self.layout.output, 'table1.md')
        self.echo(open(table, encoding='utf-8').read())
        return {'table1_md': table, 'table1_json': osp.join(self.layout.output, 'table1.json'),
                'figures': report['figures']}


def file_mark(path: str) -> Optional[Tuple[int, int]]:
    """(size, modification time in ns) of a file, None when there is none: whether a command wrote it."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def best_logged(experiment: str, metric: str) -> Optional[float]:
    """The best (highest) validation value of ``metric`` in a BasicSR experiment's logs, if any."""
    try:
        points = select(load_run(experiment), metric, None, experiment)
    except (CurveError, OSError):
        return None
    return max(value for _, value in points) if points else None
