"""The paper road's variants (which option files each stage runs) and the paper's Table 1 figures."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

STAGES = ('check', 'rank_dataset', 'ranker', 'ranksrgan', 'test', 'report')

# Supplementary Table 1, row RankSRGAN-R-D2 (Ranker2 on rank dataset2, DIV2K + Flickr2K). The test set,
# the iteration and RGB-or-Y for PSNR are not stated there (docs/reproduce.md, section 5).
PAPER_R_D2 = {'rank_pairs': 150000, 'ranker_srocc': 0.88, 'ranksrgan_niqe': 2.51, 'ranksrgan_psnr': 25.62}
PAPER_NOT_STATED = {'rank_pairs': None, 'ranker_srocc': None, 'ranksrgan_niqe': None, 'ranksrgan_psnr': None}


@dataclass(frozen=True)
class Variant:
    """One road: the options files (under the repository's ``options/``) of its three trained stages.

    ``ranker_values`` are set in the Ranker's options (RankSRGAN-HR reuses the NIQE Ranker's file);
    ``needs_ma`` when the labels or the validation need Ma et al.'s ``model.mat``; ``paper`` the
    supplementary's Table 1 figures this road is compared with (``None`` where the text gives none).
    """

    name: str
    rank_dataset: str
    ranker: str
    ranksrgan: str
    needs_ma: bool = False
    ranker_values: Dict[str, Any] = field(default_factory=dict)
    paper: Dict[str, Optional[float]] = field(default_factory=lambda: dict(PAPER_NOT_STATED))
    paper_row: str = 'not in the supplementary\'s Table 1'


VARIANTS: Dict[str, Variant] = {
    'niqe': Variant('niqe', 'rank_dataset_DF2K_NIQE.yml', 'train_Ranker_NIQE.yml', 'train_RankSRGAN_NIQE.yml',
                    paper=dict(PAPER_R_D2), paper_row='supplementary Table 1, RankSRGAN-R-D2'),
    'ma': Variant('ma', 'rank_dataset_DF2K_Ma.yml', 'train_Ranker_Ma.yml', 'train_RankSRGAN_Ma.yml', needs_ma=True),
    'pi': Variant('pi', 'rank_dataset_DF2K_PI.yml', 'train_Ranker_PI.yml', 'train_RankSRGAN_PI.yml', needs_ma=True),
    'hr': Variant('hr', 'rank_dataset_DF2K_NIQE_HR.yml', 'train_Ranker_NIQE.yml', 'train_RankSRGAN_HR.yml',
                  ranker_values={'name': 'Ranker_VGG12_NIQE_HR', 'datasets.train.name': 'rank_DF2K_niqe_hr',
                                 'datasets.val.name': 'rank_DF2K_niqe_hr_val'}),
}
