"""tools/reproduce.py, the paper road: the preflight names every missing input, the stages chain their
outputs, a killed training stage resumes and ends where an uninterrupted one ends, finished stages are
skipped, --from / --until."""
import dataclasses
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
import yaml
from tool_loader import load_tool
from torchrun_retry import GLOO_TEARDOWN_ABORT

from ranksrgan_plugin.archs.ranker_arch import RankerVGG
from ranksrgan_plugin.archs.ranksrgan_generator_arch import RankSRGANGenerator
from ranksrgan_plugin.checkpoints import to_release_layout
from ranksrgan_plugin.reproduce import EXIT_MISSING_INPUTS, PaperRoad, RoadLayout, RoadPlan, Variant, check_road
from ranksrgan_plugin.reproduce.preflight import PATCH_BYTES, check_disk, rank_dataset_bytes
from ranksrgan_plugin.reproduce.rehearsal import make_rehearsal_data
from ranksrgan_plugin.reproduce.stages import StageFailed, finished_rank_dataset
from ranksrgan_plugin.reproduce.variants import VARIANTS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAPER_INPUTS = ['DIV2K train HR', 'DIV2K train LR x4', 'Flickr2K HR', 'PIRM_test HR', 'PIRM_test LR',
                'SRResNet_bicx4_in3nf64nb16.pth', 'SRGAN.pth', 'ESRGAN_SuperSR.pth', 'vgg19-dcbb9e9d.pth']


@pytest.fixture
def no_external_files(tmp_path, monkeypatch):
    """No VGG19 in torch's hub cache and no model.mat anywhere the lookup goes."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('RANKSRGAN_MA_MODEL', raising=False)
    monkeypatch.setattr('ranksrgan_plugin.iqa.ma_model.DEFAULT_MODEL_PATH', tmp_path / 'no' / 'model.mat')


def run_check(tmp_path, capsys, *args):
    empty = tmp_path / 'empty'
    empty.mkdir(exist_ok=True)
    output = tmp_path / 'out'
    status = load_tool('reproduce').main(['--check', '--data', str(empty), '--pretrained', str(empty),
                                          '--output', str(output), *args])
    return status, capsys.readouterr().out, output


def test_check_on_an_empty_folder_names_every_input_and_writes_nothing(tmp_path, capsys, no_external_files):
    status, out, output = run_check(tmp_path, capsys)
    assert status == EXIT_MISSING_INPUTS
    for what in PAPER_INPUTS:
        assert f'MISSING {what}:' in out, what
    assert 'model.mat' not in out and 'Set14' not in out  # not needed by the NIQE road, not asked for
    assert 'https://data.vision.ee.ethz.ch/cvl/DIV2K/' in out and 'XPixelGroup/RankSRGAN' in out
    assert not output.exists()


@pytest.mark.parametrize('variant, present, absent', [
    ('ma', ['model.mat'], []),
    ('pi', ['model.mat'], []),
    ('hr', [], ['ESRGAN_SuperSR.pth']),
])
def test_check_per_variant(tmp_path, capsys, no_external_files, variant, present, absent):
    status, out, _ = run_check(tmp_path, capsys, '--variant', variant)
    assert status == EXIT_MISSING_INPUTS
    for what in present:
        assert f'MISSING {what}:' in out
    for what in absent:
        assert what not in out


def test_check_names_test_sets_asked_for(tmp_path, capsys, no_external_files):
    _, out, _ = run_check(tmp_path, capsys, '--test-sets', 'Set14', 'BSDS100')
    for what in ('Set14 HR', 'Set14 LR', 'BSDS100 HR', 'BSDS100 LR'):
        assert f'MISSING {what}:' in out


def layout_for(tmp_path, variant=VARIANTS['niqe'], **kwargs):
    return RoadLayout(repo=REPO, variant=variant, data=str(tmp_path / 'data'),
                      pretrained=str(tmp_path / 'pretrained'), output=str(tmp_path / 'out'),
                      root=str(tmp_path / 'root'), **kwargs)


def test_check_refuses_weights_of_the_wrong_network_and_unpaired_lr(tmp_path, no_external_files):
    layout = layout_for(tmp_path)
    make_rehearsal_data(layout.data, str(tmp_path / 'photos'))
    os.remove(osp.join(layout.div2k_lr, '0002x4.png'))
    os.makedirs(layout.pretrained)
    torch.save({'params': RankerVGG(depth=8).state_dict()}, osp.join(layout.pretrained, 'SRGAN.pth'))
    problems = {p.what: p for p in check_road(layout)}
    assert problems['SRGAN.pth'].kind == 'wrong'
    assert 'levels[srgan].weights' in problems['SRGAN.pth'].detail
    assert problems['DIV2K train LR x4'].kind == 'missing' and '0002.png' in problems['DIV2K train LR x4'].detail
    assert 'Flickr2K HR' not in problems and 'PIRM_test HR' not in problems


def test_disk_estimate_counts_the_original_grid(tmp_path):
    folder = tmp_path / 'hr'
    folder.mkdir()
    cv2.imwrite(str(folder / '0001.png'), np.zeros((1356, 2040, 3), np.uint8))  # a DIV2K-sized image
    options = {'patch_size': 296, 'stride': 148, 'max_patches_per_image': 200, 'levels': [1, 2, 3]}
    # tops range(0, 1060, 148): 8, lefts range(0, 1744, 148): 12
    assert rank_dataset_bytes([str(folder)], options) == 8 * 12 * 3 * PATCH_BYTES * 2
    assert rank_dataset_bytes([str(folder)], {**options, 'max_patches_per_image': 10}) == 10 * 3 * PATCH_BYTES * 2
    assert check_disk(1, str(tmp_path / 'not' / 'yet')) == []
    problem, = check_disk(2 ** 60, str(tmp_path))
    assert problem.kind == 'disk' and 'GiB' in problem.detail


# ------------------------------------------------------------------------------------------------
# the stages, on tiny networks: the paper's option files with only the sizes shrunk

TINY_RANKER = {'type': 'RankerVGG', 'depth': 8, 'num_feat': 8, 'stage_widths': [8, 8, 16, 16], 'num_hidden': 8}
RANKER_ITERATIONS = 40  # long enough that the kill after iteration 2's state comes before the end
TINY_G = {'type': 'RankSRGANGenerator', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4}


def tiny_variant(folder):
    """The NIQE road's option files with built-in levels, tiny networks and a few iterations."""
    def load(name):
        with open(osp.join(REPO, 'options', name), encoding='utf-8') as f:
            return yaml.safe_load(f)

    def dump(options, name):
        path = osp.join(folder, name)
        with open(path, 'w', encoding='utf-8') as f:
            yaml.safe_dump(options, f)
        return path

    os.makedirs(folder, exist_ok=True)
    rank = load('rank_dataset_DF2K_NIQE.yml')
    rank.update(levels=[{'name': 'bicubic', 'type': 'builtin', 'method': 'bicubic'},
                        {'name': 'sharpened', 'type': 'builtin', 'method': 'sharpened'}, {'name': 'hr', 'type': 'hr'}],
                sharpness_level='hr', sharpness_threshold=None, gap_levels=['sharpened', 'hr'], min_gap=0)
    ranker = load('train_Ranker_NIQE.yml')
    ranker['network_r'] = TINY_RANKER
    ranker['datasets']['train'].update(batch_size_per_gpu=4, num_worker_per_gpu=0)
    ranker['train']['total_iter'] = RANKER_ITERATIONS
    ranker['val']['val_freq'] = RANKER_ITERATIONS // 2
    ranker['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    gan = load('train_RankSRGAN_NIQE.yml')
    gan.update(network_g=TINY_G, network_r=TINY_RANKER,
               network_d={'type': 'VGGStyleDiscriminatorAnySize', 'num_feat': 8, 'input_size': 64})
    gan['datasets']['train'].update(gt_size=64, batch_size_per_gpu=2, num_worker_per_gpu=0)
    gan['train'].update(total_iter=2, perceptual_opt=None)
    gan['val']['val_freq'] = 2
    gan['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return Variant('niqe', dump(rank, 'rank.yml'), dump(ranker, 'ranker.yml'), dump(gan, 'gan.yml'),
                   paper=dict(VARIANTS['niqe'].paper))


def tiny_layout(folder):
    layout = RoadLayout(repo=REPO, variant=tiny_variant(osp.join(folder, 'options')), data=osp.join(folder, 'data'),
                        pretrained=osp.join(folder, 'pretrained'), output=osp.join(folder, 'out', 'niqe'),
                        root=osp.join(folder, 'root'))
    make_rehearsal_data(layout.data, osp.join(folder, 'photos'))
    os.makedirs(layout.pretrained, exist_ok=True)
    torch.manual_seed(0)
    generator = RankSRGANGenerator(**{k: v for k, v in TINY_G.items() if k != 'type'}).state_dict()
    torch.save(to_release_layout(generator, 'generator_model'),
               osp.join(layout.pretrained, 'SRResNet_bicx4_in3nf64nb16.pth'))
    return layout


def read_state(layout):
    with open(layout.state_file, encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def finished_road(tmp_path_factory):
    """One whole road, its Ranker killed after its iteration-2 state and run again; the echoed lines."""
    folder = str(tmp_path_factory.mktemp('road'))
    layout = tiny_layout(folder)
    lines = []
    status = PaperRoad(layout, RoadPlan(kill_after={'ranker': 2}), echo=lines.append, show_bars=False).run()
    return layout, status, lines


def test_road_chains_the_stages_outputs(finished_road):
    layout, status, _ = finished_road
    assert status == 0
    state = read_state(layout)
    assert [s for s, r in state['stages'].items() if r['status'] == 'done'] == [
        'check', 'rank_dataset', 'ranker', 'ranksrgan', 'test', 'report']
    rank_dataset = state['stages']['rank_dataset']['outputs']['rank_dataset']
    with open(layout.options_as_run('ranker'), encoding='utf-8') as f:
        ranker_options = yaml.safe_load(f)
    assert ranker_options['datasets']['train']['dataroot'] == osp.join(rank_dataset, 'train')
    ranker_checkpoint = state['stages']['ranker']['outputs']['checkpoint']
    assert ranker_checkpoint.endswith(osp.join('Ranker_VGG12_NIQE', 'models', 'net_r_latest.pth'))
    with open(layout.options_as_run('ranksrgan'), encoding='utf-8') as f:
        gan_options = yaml.safe_load(f)
    assert gan_options['path']['pretrain_network_r'] == ranker_checkpoint
    assert gan_options['datasets']['train']['dataroot_gt'] == layout.div2k_hr  # relocated from datasets/
    with open(osp.join(layout.output, 'table1.json'), encoding='utf-8') as f:
        report = json.load(f)
    for side in ('paper', 'ours'):
        assert {'rank_pairs', 'ranker_srocc', 'ranksrgan_niqe', 'ranksrgan_psnr'} <= set(report[side])
    assert report['paper']['ranksrgan_niqe'] == 2.51
    ours = report['ours']
    assert ours['rank_pairs'] == state['stages']['rank_dataset']['outputs']['counts']['kept'] > 0
    assert -1 <= ours['ranker_srocc'] <= 1 and ours['ranksrgan_niqe'] > 0 and ours['ranksrgan_psnr'] > 0
    assert set(ours['test_sets']) == {'PIRM_test', 'Set14', 'BSDS100'}  # the rehearsal layout has all three
    assert set(report['stages']) == {'check', 'rank_dataset', 'ranker', 'ranksrgan', 'test', 'report'}
    with open(osp.join(layout.output, 'table1.md'), encoding='utf-8') as f:
        table = f.read()
    assert ranker_checkpoint in table and '| 2.51 |' in table
    assert osp.isfile(report['figures']['ranker_histograms'])


def test_killed_training_stage_resumes_and_ends_where_an_uninterrupted_one_ends(finished_road):
    layout, _, lines = finished_road
    outputs = read_state(layout)['stages']['ranker']['outputs']
    killed, finished = outputs['runs']
    assert killed['status'] == 'killed' and killed['iteration'] < RANKER_ITERATIONS
    assert finished == {'status': 0, 'iteration': RANKER_ITERATIONS}
    resumed, = outputs['resumed_from']  # the newest state saved before the kill (every 2 iterations)
    assert 2 <= resumed <= killed['iteration'] and resumed % 2 == 0
    assert any(f"killed at iteration {killed['iteration']}" in line for line in lines)
    with open(layout.log_file('ranker'), encoding='utf-8') as f:
        after_resume = f.read().split('Resuming training from', 1)[1]
    logged = [int(i) for i in re.findall(r'\[epoch:\s*\d+, iter:\s*(\d+)', after_resume)]
    assert logged == list(range(resumed + 1, RANKER_ITERATIONS + 1))  # continued from the state, not from 0
    models = osp.join(outputs['experiment'], 'models')
    # the files an uninterrupted run writes (checkpoints every 2 iterations, the last, the best SROCC)
    expected = {f'net_r_{i}.pth' for i in range(2, RANKER_ITERATIONS + 1, 2)} | {'net_r_latest.pth', 'net_r_best.pth'}
    assert expected <= set(os.listdir(models))
    final = torch.load(osp.join(models, 'net_r_latest.pth'), weights_only=True)['params']
    at_end = torch.load(osp.join(models, f'net_r_{RANKER_ITERATIONS}.pth'), weights_only=True)['params']
    assert all(torch.equal(final[k], at_end[k]) for k in final)


def test_running_again_skips_finished_stages(finished_road):
    layout, _, _ = finished_road
    before = read_state(layout)
    checkpoint = before['stages']['ranksrgan']['outputs']['checkpoint']
    mtime = osp.getmtime(checkpoint)
    lines = []
    assert PaperRoad(layout, echo=lines.append, show_bars=False).run() == 0
    assert sum('done before' in line and 'skipped' in line for line in lines) == 5
    after = read_state(layout)
    assert osp.getmtime(checkpoint) == mtime
    assert [after['stages'][s]['attempts'] for s in ('rank_dataset', 'ranker', 'ranksrgan')] == [1, 1, 1]


def test_from_reruns_a_stage_and_the_later_ones_only(finished_road):
    layout, _, _ = finished_road
    ranker_mtime = osp.getmtime(read_state(layout)['stages']['ranker']['outputs']['checkpoint'])
    assert PaperRoad(layout, echo=lambda line: None, show_bars=False).run(start='ranksrgan') == 0
    state = read_state(layout)
    assert [state['stages'][s]['attempts'] for s in ('ranker', 'ranksrgan', 'test', 'report')] == [1, 2, 2, 2]
    assert osp.getmtime(state['stages']['ranker']['outputs']['checkpoint']) == ranker_mtime
    experiments = os.listdir(osp.join(layout.root, 'experiments'))
    assert any(name.startswith('RankSRGAN_x4_NIQE_archived_') for name in experiments)  # BasicSR kept the old run


def test_until_stops_after_the_stage(tmp_path):
    layout = tiny_layout(str(tmp_path))
    assert PaperRoad(layout, echo=lambda line: None, show_bars=False).run(until='rank_dataset') == 0
    assert set(read_state(layout)['stages']) == {'check', 'rank_dataset'}
    assert osp.isfile(osp.join(layout.data, 'rank_DF2K_niqe', 'manifest.json'))


def test_two_processes_per_stage_keep_the_total_batch(tmp_path):
    """--gpus 2 on the CPU: torchrun (gloo) for the rank dataset and the Ranker, half the batch per process; the
    Ranker's validation (rank 0 alone, BatchNorm buffers) does not stall the other process."""
    layout = dataclasses.replace(tiny_layout(str(tmp_path)), gpus=2)
    try:
        status = PaperRoad(layout, echo=lambda line: None, show_bars=False).run(until='ranker')
    except StageFailed:  # tests/torchrun_retry.py: gloo's teardown abort only; the road's rerun continues the stage
        logs = [open(layout.log_file(stage), encoding='utf-8').read() for stage in ('rank_dataset', 'ranker')
                if osp.isfile(layout.log_file(stage))]
        assert any(GLOO_TEARDOWN_ABORT in log for log in logs), logs[-1][-3000:]
        status = PaperRoad(layout, echo=lambda line: None, show_bars=False).run(until='ranker')
    assert status == 0
    with open(osp.join(layout.data, 'rank_DF2K_niqe', 'manifest.json'), encoding='utf-8') as f:
        assert json.load(f)['processes'] == 2
    with open(layout.options_as_run('ranker'), encoding='utf-8') as f:
        assert yaml.safe_load(f)['datasets']['train']['batch_size_per_gpu'] == 2  # the tiny options' total 4
    with open(layout.log_file('ranker'), encoding='utf-8') as f:
        log = f.read()
    assert 'World size (gpu number): 2' in log and '# srocc:' in log
    assert osp.isfile(read_state(layout)['stages']['ranker']['outputs']['checkpoint'])


def test_gpus_must_keep_the_original_total_batch(tmp_path):
    layout = layout_for(tmp_path, gpus=3)
    with pytest.raises(ValueError, match="--gpus 3 does not divide the RankSRGAN total batch 8"):
        layout.per_gpu_batch(8, 'RankSRGAN')
    assert layout_for(tmp_path, gpus=4).per_gpu_batch(8, 'RankSRGAN') == 2


def test_a_rank_dataset_built_with_other_options_is_not_taken_for_this_one(tmp_path):
    layout = tiny_layout(str(tmp_path))
    assert PaperRoad(layout, echo=lambda line: None, show_bars=False).run(until='rank_dataset') == 0
    os.remove(layout.state_file)  # as if the folder came from elsewhere
    options = layout.read_options('rank_dataset')
    options['seed'] = 1
    with pytest.raises(StageFailed, match='built with other options; rerun with --from rank_dataset'):
        finished_rank_dataset(options)
