"""`make demo`: the project's main job on its built-in data, offline, on CPU or GPU.

1. writes scikit-image's bundled photos to datasets/demo/hr;
2. builds a NIQE rank dataset from them with built-in levels (options/rank_dataset_demo.yml);
3. trains a small Ranker through ``basicsr/train.py`` (options/train_Ranker_demo.yml) and
   measures its validation SROCC and pair accuracy, before and after training;
4. trains a small SRResNet (L1) and then RankSRGAN from it with the frozen demo Ranker
   (options/train_SRResNet_demo.yml, options/train_RankSRGAN_demo.yml), and measures NIQE and
   PSNR of the validation photos before (SRResNet) and after (RankSRGAN);
5. prints both tables and where every output is; saves them in results/demo/ (demo_results.json,
   evaluation.md) with the Ranker's score histograms (the paper's Figure 3) and validation curves.
"""
import json
import os
import os.path as osp

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from ranksrgan_plugin import demo
from ranksrgan_plugin.compat.basicsr import write_options_with
from ranksrgan_plugin.utils.upscaler import default_device

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DATASET_OPTIONS = osp.join(REPO_ROOT, 'options', 'rank_dataset_demo.yml')
RANKER_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_Ranker_demo.yml')
SRRESNET_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_SRResNet_demo.yml')
RANKSRGAN_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_RankSRGAN_demo.yml')
SR_DATA = osp.join(REPO_ROOT, 'datasets', 'demo', 'sr')
RESULTS = osp.join(REPO_ROOT, 'results', 'demo')


def rank_content_bias(ranker_experiment: str, srresnet_experiment: str) -> float:
    """The demo Ranker's mean score of the trained SRResNet's outputs of the training photos."""
    device = default_device()
    ranker = demo.load_network(RANKER_OPTIONS, 'network_r', latest(ranker_experiment, 'r'), device)
    generator = demo.load_network(SRRESNET_OPTIONS, 'network_g', latest(srresnet_experiment, 'g'), device)
    return demo.mean_ranker_score(ranker, generator, osp.join(SR_DATA, 'train', 'lq'))


def options_with_rank_bias(bias: float) -> str:
    """A copy of the RankSRGAN demo options with ``train.rank_opt.bias`` set (see ``write_options_with``)."""
    return write_options_with(
        RANKSRGAN_OPTIONS, {'train.rank_opt.bias': round(bias, 4)}, osp.join(RESULTS, osp.basename(RANKSRGAN_OPTIONS)),
        f'{osp.relpath(RANKSRGAN_OPTIONS, REPO_ROOT)} with rank_opt.bias set by tools/demo.py')


def latest(experiment: str, net: str) -> str:
    """The latest checkpoint of network ``net`` (``r``, ``g``) of a BasicSR experiment folder."""
    return osp.join(experiment, 'models', f'net_{net}_latest.pth')


def main() -> None:
    """Run the demo's steps in order and print the tables and where every output is."""
    os.makedirs(RESULTS, exist_ok=True)
    rank_cfg = demo.build_rank_dataset(DATASET_OPTIONS, REPO_ROOT)
    dataset = rank_cfg['output']
    ranker_experiment = demo.train_with_basicsr(RANKER_OPTIONS, REPO_ROOT)
    ranker = demo.evaluate_ranker(RANKER_OPTIONS, ranker_experiment, osp.join(dataset, 'val'),
                                  osp.join(RESULTS, 'ranker_histograms.png'))
    demo.write_paired_photos(rank_cfg, SR_DATA)
    srresnet_experiment = demo.train_with_basicsr(SRRESNET_OPTIONS, REPO_ROOT)
    bias = rank_content_bias(ranker_experiment, srresnet_experiment)
    ranksrgan_experiment = demo.train_with_basicsr(options_with_rank_bias(bias), REPO_ROOT)
    generators = demo.evaluate_generators({
        'SRResNet (before)': (SRRESNET_OPTIONS, latest(srresnet_experiment, 'g')),
        'RankSRGAN (after)': (RANKSRGAN_OPTIONS, latest(ranksrgan_experiment, 'g')),
    }, osp.join(SR_DATA, 'val'))
    os.makedirs(RESULTS, exist_ok=True)
    results_path = osp.join(RESULTS, 'demo_results.json')
    with open(results_path, 'w', encoding='utf-8') as f:
        json.dump({'ranker': ranker, 'generators': generators, 'rank_content_bias': bias}, f, indent=2)
    tables = demo.markdown_table('Ranker on the demo rank set\'s validation split (NIQE labels):',
                                 {'srocc': 'SROCC', 'pair_accuracy': 'pair accuracy'}, ranker)
    tables += demo.markdown_table(f'Generators on the validation photos (Y channel, 4-pixel shave; rank-content '
                                  f'bias {bias:.3f}):', {'psnr': 'PSNR (dB)', 'niqe': 'NIQE (lower = better)'},
                                  generators)
    print(tables)
    with open(osp.join(RESULTS, 'evaluation.md'), 'w', encoding='utf-8') as f:
        f.write(tables)
    curves = demo.plot_demo_curves({'Ranker': ranker_experiment, 'SRResNet': srresnet_experiment,
                                    'RankSRGAN': ranksrgan_experiment}, RESULTS)
    print(f'\nRank dataset:  {dataset} (train/, val/, manifest.json)')
    for experiment in (ranker_experiment, srresnet_experiment, ranksrgan_experiment):
        print(f'Experiment:    {experiment} (models/, training log, options)')
    print(f'Validation SR: {ranksrgan_experiment}/visualization')
    print(f'TensorBoard:   {osp.join(REPO_ROOT, "tb_logger")}')
    print(f'Results:       {results_path}, {osp.join(RESULTS, "evaluation.md")}')
    print(f'Figures:       {osp.join(RESULTS, "ranker_histograms.png")}, {", ".join(curves)}')


if __name__ == '__main__':
    main()
