"""The paper road's report: ``table1.md`` and ``table1.json``, our numbers beside the supplementary's Table 1.

JSON keys: ``paper`` and ``ours`` (each with ``rank_pairs``, ``ranker_srocc``, ``ranksrgan_niqe``,
``ranksrgan_psnr``), ``stages`` (seconds each), ``checkpoints``, ``figures``, ``notes``. The
supplementary does not define a "pair": ``rank_pairs`` of ours counts patch locations (three levels
each), as the original's ``generate_rankdataset.m`` counts them. Its PSNR is not said to be RGB or Y:
``ranksrgan_psnr`` of ours is RGB, as the original's validation, ``ranksrgan_psnr_y`` beside it.
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional

from ..utils.curve_plots import plot_curves
from ..utils.training_logs import CurveError, load_run
from .layout import REQUIRED_TEST_SET, RoadLayout
from .variants import STAGES


def ours(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Our numbers from the stages' outputs (``None`` for a stage not run)."""
    outputs = {name: stage.get('outputs', {}) for name, stage in state['stages'].items()}
    counts = outputs.get('rank_dataset', {}).get('counts', {})
    test = outputs.get('test', {})
    pirm = test.get('generator', {}).get(REQUIRED_TEST_SET, {})
    ranker = test.get('ranker', {})
    return {
        'rank_pairs': counts.get('kept'),
        'rank_splits': outputs.get('rank_dataset', {}).get('splits'),
        'ranker_srocc': ranker.get('srocc'),
        'ranker_pair_accuracy': ranker.get('pair_accuracy'),
        'ranker_best_logged_srocc': ranker.get('best_logged_srocc'),
        'ranksrgan_niqe': pirm.get('y', {}).get('niqe'),
        'ranksrgan_psnr': pirm.get('rgb', {}).get('psnr'),
        'ranksrgan_psnr_y': pirm.get('y', {}).get('psnr'),
        'test_sets': test.get('generator', {}),
    }


def plot_training_curves(experiment: str, output: str) -> Optional[str]:
    """NIQE and PSNR of RankSRGAN's validation against iterations (supplementary Figure 1), if logged."""
    try:
        return plot_curves({'RankSRGAN': load_run(experiment)}, ['niqe', 'psnr'], output,
                           title='RankSRGAN validation during training')
    except (CurveError, OSError):
        return None


def _value(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return '-'
    return f'{value:,}' if isinstance(value, int) else f'{value:.{digits}f}'


def markdown(report: Mapping[str, Any]) -> str:
    paper, mine = report['paper'], report['ours']
    lines = [f"# RankSRGAN road, variant {report['variant']}" + (' (REHEARSAL)' if report['rehearsal'] else ''), '']
    lines += [f'> {note}' for note in report['notes']] + ([''] if report['notes'] else [])
    lines += [f"| | paper ({report['paper_row']}) | ours |", '|---|---:|---:|',
              f"| rank-set size (\"pairs\"; ours: patch locations, 3 levels each) | {_value(paper['rank_pairs'])} | "
              f"{_value(mine['rank_pairs'])} |",
              f"| Ranker SROCC, rank set's val split | {_value(paper['ranker_srocc'], 2)} | "
              f"{_value(mine['ranker_srocc'])} |",
              f"| Ranker pair accuracy, val split | - | {_value(mine['ranker_pair_accuracy'])} |",
              f"| RankSRGAN NIQE, PIRM test (Y, shave 4) | {_value(paper['ranksrgan_niqe'], 2)} | "
              f"{_value(mine['ranksrgan_niqe'])} |",
              f"| RankSRGAN PSNR (dB), PIRM test, RGB (paper: RGB or Y not stated) | "
              f"{_value(paper['ranksrgan_psnr'], 2)} | {_value(mine['ranksrgan_psnr'])} |",
              f"| RankSRGAN PSNR (dB), PIRM test, Y | - | {_value(mine['ranksrgan_psnr_y'])} |", '']
    if mine['test_sets']:
        lines += ['Test sets (final generator; 4-pixel shave; RGB rows: NIQE on gray):', '',
                  '| set | channel | images | NIQE | PSNR (dB) | SSIM |', '|---|---|---:|---:|---:|---:|']
        for name, channels in mine['test_sets'].items():
            for channel, values in channels.items():
                lines.append(f"| {name} | {channel} | {values['images']} | {_value(values.get('niqe'))} | "
                             f"{_value(values.get('psnr'))} | {_value(values.get('ssim'), 4)} |")
        lines.append('')
    lines += ['Checkpoints:', ''] + [f'- {what}: `{path}`' for what, path in report['checkpoints'].items()] + ['']
    lines += ['| stage | wall time (s) |', '|---|---:|']
    lines += [f'| {name} | {seconds:.1f} |' for name, seconds in report['stages'].items()]
    lines += ['', 'Figures: ' + ', '.join(f'`{path}`' for path in report['figures'].values()), '']
    return '\n'.join(lines)


def write_report(layout: RoadLayout, state: Mapping[str, Any], notes: List[str]) -> Dict[str, Any]:
    """Write ``table1.json`` and ``table1.md`` into the road's output; returns the report."""
    outputs = {name: stage.get('outputs', {}) for name, stage in state['stages'].items()}
    figures = dict(outputs.get('test', {}).get('figures', {}))
    curves = plot_training_curves(outputs.get('ranksrgan', {}).get('experiment', ''),
                                  osp.join(layout.output, 'ranksrgan_curves.png'))
    if curves:
        figures['ranksrgan_curves'] = curves
    report = {
        'variant': layout.variant.name, 'rehearsal': bool(state.get('rehearsal')),
        'paper_row': layout.variant.paper_row, 'paper': dict(layout.variant.paper), 'ours': ours(state),
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
