"""The paper road's report: ``table1.md`` and ``table1.json``, our numbers beside the supplementary's Table 1.

JSON keys: ``paper`` and ``ours`` (each with ``rank_pairs``, ``ranker_srocc``, ``ranksrgan_niqe``,
``ranksrgan_psnr``; ``ours`` also the samples they were measured on and the iterations), ``described``
(per number, what the paper's is and what ours is), ``mark`` (a rehearsal's, else ``None``), ``stages``
(seconds each), ``checkpoints``, ``figures``, ``notes``. The supplementary does not define a "pair":
``rank_pairs`` of ours counts patch locations (three levels each), as the original's
``generate_rankdataset.m`` counts them. It states neither the test set, nor the iteration, nor RGB or Y
for PSNR: ours are measured on PIRM test at the last iteration, ``ranksrgan_psnr`` on RGB (as the
original's validation), ``ranksrgan_psnr_y`` beside it.
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional

from ..utils.curve_plots import plot_curves
from ..utils.figure_notes import png_note, stamp_png
from ..utils.training_logs import CurveError, load_run
from .layout import REQUIRED_TEST_SET, RoadLayout
from .variants import STAGES

# What supplementary Table 1 (row RankSRGAN-R-D2) states about each of its numbers, and what it does not.
PAPER_SAYS = {
    'rank_pairs': 'DIV2K + Flickr2K, "150 K image pairs"; what a pair is: not stated',
    'ranker_srocc': 'Ranker2 (VGG-12); on which split, how many patches, which checkpoint: not stated',
    'ranksrgan_niqe': 'test set not stated; iteration not stated; channel not stated',
    'ranksrgan_psnr': 'test set not stated; iteration not stated; RGB or Y not stated',
}


def _outputs(state: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {name: stage.get('outputs', {}) for name, stage in state['stages'].items()}


def trained_iterations(state: Mapping[str, Any]) -> Dict[str, int]:
    """The iteration each training stage (``ranker``, ``ranksrgan``) ended at, where its runs say."""
    outputs = _outputs(state)
    return {stage: outputs[stage]['runs'][-1]['iteration'] for stage in ('ranker', 'ranksrgan')
            if outputs.get(stage, {}).get('runs') and 'iteration' in outputs[stage]['runs'][-1]}


def rehearsal_mark(state: Mapping[str, Any]) -> Optional[str]:
    """The line that marks a rehearsal's figures and numbers (``None`` for a real road)."""
    if not state.get('rehearsal'):
        return None
    iterations = trained_iterations(state)
    if len(set(iterations.values())) == 1:
        counted = f'{next(iter(iterations.values()))} iterations'
    else:
        counted = ', '.join(f'{stage} {it} iterations' for stage, it in iterations.items()) or 'a few iterations'
    return f'REHEARSAL — random stand-in networks, {counted}: says nothing about the method'


def ours(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Our numbers from the stages' outputs (``None`` for a stage not run), with their samples and iterations."""
    outputs = _outputs(state)
    rank_dataset = outputs.get('rank_dataset', {})
    test = outputs.get('test', {})
    pirm = test.get('generator', {}).get(REQUIRED_TEST_SET, {})
    ranker = test.get('ranker', {})
    iterations = trained_iterations(state)
    return {
        'rank_pairs': rank_dataset.get('counts', {}).get('kept'),
        'rank_splits': rank_dataset.get('splits'),
        'ranker_srocc': ranker.get('srocc'),
        'ranker_pair_accuracy': ranker.get('pair_accuracy'),
        'ranker_best_logged_srocc': ranker.get('best_logged_srocc'),
        'ranker_val_patches': ranker.get('patches'),
        'ranker_val_locations': (rank_dataset.get('splits') or {}).get('val', {}).get('num_keys'),
        'ranker_val_pairs': ranker.get('pairs'),
        'ranker_val_pairs_tied': ranker.get('pairs_tied'),
        'ranker_iteration': iterations.get('ranker'),
        'ranksrgan_niqe': pirm.get('y', {}).get('niqe'),
        'ranksrgan_psnr': pirm.get('rgb', {}).get('psnr'),
        'ranksrgan_psnr_y': pirm.get('y', {}).get('psnr'),
        'ranksrgan_test_images': pirm.get('y', {}).get('images'),
        'ranksrgan_iteration': iterations.get('ranksrgan'),
        'test_sets': test.get('generator', {}),
    }


def _count(value: Optional[int], what: str) -> str:
    return f'{value:,} {what}' if value is not None else f'{what} (count not recorded)'


def ours_says(mine: Mapping[str, Any], checkpoints: Mapping[str, Optional[str]]) -> Dict[str, str]:
    """What each of our numbers is: the checkpoint, the iteration, the set and its size, the channel."""
    ranker = osp.basename(checkpoints.get('ranker') or 'net_r_latest.pth')
    generator = osp.basename(checkpoints.get('generator') or 'net_g_latest.pth')
    pirm = f"PIRM test ({_count(mine['ranksrgan_test_images'], 'images')})"
    at = f"`{generator}`, iteration {mine['ranksrgan_iteration'] if mine['ranksrgan_iteration'] is not None else '?'}"
    best = mine['ranker_best_logged_srocc']
    return {
        'rank_pairs': 'patch locations kept from DF2K, 3 levels each (the original\'s count); '
                      f"{_count(mine['ranker_val_locations'], 'of them')} in the val split",
        'ranker_srocc': f"the Ranker RankSRGAN used (`{ranker}`, iteration "
                        f"{mine['ranker_iteration'] if mine['ranker_iteration'] is not None else '?'}) on the rank "
                        f"set's val split, over {_count(mine['ranker_val_patches'], 'patches')}"
                        + (f" of {mine['ranker_val_locations']:,} locations" if mine['ranker_val_locations'] else '')
                        + (f'; best logged val SROCC {best:.4f} (`net_r_best.pth`, not used)'
                           if best is not None else ''),
        'ranker_pair_accuracy': f"same Ranker and split, over {_count(mine['ranker_val_pairs'], 'pairs')} of "
                                'two levels of one location with distinct labels'
                                + (f" ({mine['ranker_val_pairs_tied']:,} tied pairs left out)"
                                   if mine['ranker_val_pairs_tied'] else ''),
        'ranksrgan_niqe': f"{pirm}, Y channel, 4-pixel shave, BasicSR's NIQE; generator {at}",
        'ranksrgan_psnr': f'{pirm}, RGB, 4-pixel shave; generator {at}',
        'ranksrgan_psnr_y': f'{pirm}, Y channel, 4-pixel shave; generator {at}',
    }


def plot_training_curves(experiment: str, output: str, note: Optional[str] = None) -> Optional[str]:
    """NIQE and PSNR of RankSRGAN's validation against iterations (supplementary Figure 1), if logged."""
    try:
        return plot_curves({'RankSRGAN': load_run(experiment)}, ['niqe', 'psnr'], output,
                           title='RankSRGAN validation during training', note=note)
    except (CurveError, OSError):
        return None


def mark_figures(figures: Mapping[str, str], mark: Optional[str]) -> None:
    """Stamps ``mark`` on every figure that does not carry one yet (e.g. drawn by a test stage run without it)."""
    if not mark:
        return
    for path in figures.values():
        if osp.isfile(path) and not png_note(path):
            stamp_png(path, mark)


def _value(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return '-'
    return f'{value:,}' if isinstance(value, int) else f'{value:.{digits}f}'


def _table1(report: Mapping[str, Any]) -> List[str]:
    paper, mine, says = report['paper'], report['ours'], report['described']
    rows = [('rank-set size', 'rank_pairs', 0), ('Ranker SROCC', 'ranker_srocc', 2),
            ('Ranker pair accuracy', 'ranker_pair_accuracy', 2), ('RankSRGAN NIQE', 'ranksrgan_niqe', 2),
            ('RankSRGAN PSNR (dB)', 'ranksrgan_psnr', 2), ('RankSRGAN PSNR (dB), Y', 'ranksrgan_psnr_y', 2)]
    ours_label = 'ours, REHEARSAL' if report['mark'] else 'ours'
    lines = [f"| | paper ({report['paper_row']}) | {ours_label} | the paper's number | {ours_label} |",
             '|---|---:|---:|---|---|']
    samples = {'ranker_srocc': ('ranker_val_patches', 'patches'), 'ranker_pair_accuracy': ('ranker_val_pairs', 'pairs')}
    for label, key, digits in rows:
        value, cell = paper.get(key), _value(mine[key])
        paper_says = says[key]['paper'] if value is not None else '-'
        if key in samples and mine[key] is not None and mine[samples[key][0]] is not None:
            cell += f' ({mine[samples[key][0]]:,} {samples[key][1]})'  # the sample size beside the number
        lines.append(f"| {label} | {_value(value, digits)} | {cell} | {paper_says} | {says[key]['ours']} |")
    return lines + ['']


def markdown(report: Mapping[str, Any]) -> str:
    """``table1.md``: Table 1's numbers beside ours with what each is, the test sets, checkpoints and times."""
    mine, mark = report['ours'], report['mark']
    lines = [f"# RankSRGAN road, variant {report['variant']}" + (' — REHEARSAL' if mark else '')
             + (' — FAST SETTINGS' if report['settings'] != 'paper' else ''), '']
    lines += [f"Training settings: {report['settings']}" + (" (the paper's fp32)." if report['settings'] == 'paper'
                                                             else ": not the paper's fp32 (see the note below)."), '']
    lines += [f'**{mark}.** Every number below comes from it.', ''] if mark else []
    lines += [f'> {note}' for note in report['notes']] + ([''] if report['notes'] else [])
    lines += _table1(report)
    if mine['test_sets']:
        lines += ['Test sets' + (', REHEARSAL' if mark else '') + ' (final generator; 4-pixel shave; RGB rows: NIQE '
                  'on gray):', '', '| set | channel | images | NIQE | PSNR (dB) | SSIM |',
                  '|---|---|---:|---:|---:|---:|']
        for name, channels in mine['test_sets'].items():
            for channel, values in channels.items():
                lines.append(f"| {name} | {channel} | {values['images']} | {_value(values.get('niqe'))} | "
                             f"{_value(values.get('psnr'))} | {_value(values.get('ssim'), 4)} |")
        lines.append('')
    lines += ['Checkpoints:', ''] + [f'- {what}: `{path}`' for what, path in report['checkpoints'].items()] + ['']
    lines += ['| stage | wall time (s) |', '|---|---:|']
    lines += [f'| {name} | {seconds:.1f} |' for name, seconds in report['stages'].items()]
    lines += ['', ('Figures (marked REHEARSAL): ' if mark else 'Figures: ')
              + ', '.join(f'`{path}`' for path in report['figures'].values()), '']
    return '\n'.join(lines)


def write_report(layout: RoadLayout, state: Mapping[str, Any], notes: List[str]) -> Dict[str, Any]:
    """Write ``table1.json`` and ``table1.md`` into the road's output; returns the report.

    A rehearsal's (``state['rehearsal']``) figures and tables carry :func:`rehearsal_mark`.
    """
    outputs = _outputs(state)
    mark = rehearsal_mark(state)
    figures = dict(outputs.get('test', {}).get('figures', {}))
    curves = plot_training_curves(outputs.get('ranksrgan', {}).get('experiment', ''),
                                  osp.join(layout.output, 'ranksrgan_curves.png'), note=mark)
    if curves:
        figures['ranksrgan_curves'] = curves
    mark_figures(figures, mark)
    mine = ours(state)
    mine_says = ours_says(mine, {'ranker': outputs.get('ranker', {}).get('checkpoint'),
                                 'generator': outputs.get('test', {}).get('generator_checkpoint')})
    report = {
        'variant': layout.variant.name, 'rehearsal': bool(state.get('rehearsal')), 'mark': mark,
        'settings': state.get('settings', 'paper'),
        'paper_row': layout.variant.paper_row, 'paper': dict(layout.variant.paper), 'ours': mine,
        'described': {key: {'paper': PAPER_SAYS.get(key, 'none given'), 'ours': text}
                      for key, text in mine_says.items()},
        'checkpoints': {
            'Ranker used by RankSRGAN (the last; the original selected none)': outputs.get('ranker', {}).get(
                'checkpoint'),
            'Ranker with the best logged val SROCC (not used)': outputs.get('ranker', {}).get('best'),
            'RankSRGAN generator tested': outputs.get('test', {}).get('generator_checkpoint'),
            'RankSRGAN initialisation': outputs.get('ranksrgan', {}).get('initialisation')},
        'stages': {name: round(state['stages'][name].get('seconds', 0.0), 1) for name in STAGES
                   if name in state['stages']},
        'figures': figures, 'notes': notes,
    }
    os.makedirs(layout.output, exist_ok=True)
    with open(osp.join(layout.output, 'table1.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(layout.output, 'table1.md'), 'w', encoding='utf-8') as f:
        f.write(markdown(report))
    return report
