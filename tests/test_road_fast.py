"""tools/reproduce.py --fast: the speed options in every training stage, in their own experiments and road folder,
never mixed with a paper-settings state, and said in the report (issue 31 item 6). The run itself is rehearsed by
`make rehearsal` (tools/reproduce.py --rehearsal --fast: bf16 on the CPU, RankSRGAN killed and resumed)."""
import json
import os
import os.path as osp

import pytest
from test_road_report import fake_state
from tool_loader import load_tool

from ranksrgan_plugin.reproduce import PaperRoad, RoadLayout, RoadPlan, StageFailed
from ranksrgan_plugin.reproduce.fast import fast_plan, raw_cache_folder
from ranksrgan_plugin.reproduce.rehearsal import rehearsal_plan
from ranksrgan_plugin.reproduce.report import write_report
from ranksrgan_plugin.reproduce.variants import VARIANTS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SPEED = {'train.precision': 'bf16', 'train.channels_last': True, 'train.fused_optimizers': True}


def layout_for(tmp_path, toolbox='basicsr'):
    return RoadLayout(repo=REPO, variant=VARIANTS['niqe'], data=str(tmp_path / 'data'),
                      pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out' / 'niqe_fast'),
                      root=str(tmp_path / 'root'), toolbox=toolbox)


@pytest.mark.parametrize('cuda', [False, True])
def test_fast_sets_the_speed_options_in_both_training_stages_in_their_own_experiments(tmp_path, cuda):
    layout = layout_for(tmp_path)
    plan = fast_plan(RoadPlan(), layout, cuda=cuda)
    ranker, ranksrgan = plan.overrides['ranker'], plan.overrides['ranksrgan']
    for values in (ranker, ranksrgan):
        assert SPEED.items() <= values.items() and values['train.compile'] is cuda  # compile: CUDA only
    assert ranker['name'] == 'Ranker_VGG12_NIQE_fast' and ranksrgan['name'] == 'RankSRGAN_x4_NIQE_fast'
    assert ranksrgan['datasets.train.type'] == 'RawPairedImageDataset'
    assert ranksrgan['datasets.train.raw_cache'] == raw_cache_folder(layout)
    assert raw_cache_folder(layout).startswith(layout.root)
    assert plan.settings == 'fast' and not plan.rehearsal and "Not the paper's fp32" in plan.notes[-1]
    assert ('no torch.compile (CUDA only)' in plan.notes[-1]) is not cuda


def test_a_rehearsals_counts_and_kill_stay_under_fast(tmp_path):
    rehearsal = rehearsal_plan()
    plan = fast_plan(rehearsal, layout_for(tmp_path), cuda=False)
    for stage, values in rehearsal.overrides.items():
        assert values.items() <= plan.overrides[stage].items()
    assert plan.kill_after == rehearsal.kill_after and plan.rehearsal
    assert plan.notes[:-1] == rehearsal.notes and plan.notes[-1].startswith('FAST: ')


def test_fast_in_mmagic_gives_both_optimisers_bf16_and_its_own_work_dir(tmp_path):
    plan = fast_plan(RoadPlan(), layout_for(tmp_path, 'mmagic'), cuda=True)
    ranksrgan = plan.overrides['ranksrgan']
    for name in ('generator', 'discriminator'):
        assert ranksrgan[f'optim_wrapper.{name}.type'] == 'AnyDeviceAmpOptimWrapper'
        assert ranksrgan[f'optim_wrapper.{name}.dtype'] == 'bfloat16'
    assert ranksrgan['experiment_name'].endswith('_fast') and 'train.precision' not in ranksrgan
    assert SPEED.items() <= plan.overrides['ranker'].items()  # the Ranker stage is BasicSR's
    assert 'MMagic: AnyDeviceAmpOptimWrapper' in plan.notes[-1]


def test_the_fast_road_has_its_own_folder():
    tool = load_tool('reproduce')
    for extra, folder in (([], 'niqe_fast'), (['--toolbox', 'mmagic'], 'niqe_mmagic_fast')):
        args = tool.build_parser().parse_args(['--fast', '--output', '/tmp/x', *extra])
        layout = tool.layout_from_args(args)
        assert layout.output == osp.join('/tmp/x', folder)
        assert tool.plan_from_args(args, layout).settings == 'fast'


@pytest.mark.parametrize('written, asked', [('paper', 'fast'), ('fast', 'paper')])
def test_a_state_of_the_other_settings_is_refused(tmp_path, written, asked):
    layout = layout_for(tmp_path)
    os.makedirs(layout.output)
    with open(layout.state_file, 'w', encoding='utf-8') as f:
        json.dump({'variant': 'niqe', 'toolbox': 'basicsr', 'settings': written, 'stages': {}}, f)
    with pytest.raises(StageFailed, match=f'trained with the {written} settings, not the {asked} ones'):
        PaperRoad(layout, RoadPlan(settings=asked), echo=lambda line: None)


def test_a_state_without_settings_is_the_papers(tmp_path):
    layout = layout_for(tmp_path)
    os.makedirs(layout.output)
    with open(layout.state_file, 'w', encoding='utf-8') as f:
        json.dump({'variant': 'niqe', 'toolbox': 'basicsr', 'stages': {}}, f)
    assert PaperRoad(layout, RoadPlan(), echo=lambda line: None).state['stages'] == {}
    with pytest.raises(StageFailed):
        PaperRoad(layout, RoadPlan(settings='fast'), echo=lambda line: None)


@pytest.mark.parametrize('settings', ['paper', 'fast'])
def test_the_report_says_which_settings_ran(tmp_path, settings):
    layout = RoadLayout(repo=REPO, variant=VARIANTS['niqe'], data=str(tmp_path / 'data'),
                        pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out'), root=str(tmp_path))
    state = {**fake_state(tmp_path, rehearsal=False), 'settings': settings}
    report = write_report(layout, state, ['FAST: ...'] if settings == 'fast' else [])
    with open(osp.join(layout.output, 'table1.md'), encoding='utf-8') as f:
        title, _, header = f.read().splitlines()[:3]
    assert report['settings'] == settings
    assert ('FAST SETTINGS' in title) == (settings == 'fast')
    assert header == ("Training settings: paper (the paper's fp32)." if settings == 'paper' else
                      "Training settings: fast: not the paper's fp32 (see the note below).")
