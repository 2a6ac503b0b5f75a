# RankSRGAN-N+M: two frozen Rankers at once (NIQE and Ma), as options/train_RankSRGAN_NIQE_Ma.yml: our construction
# following the journal version's idea (TPAMI 2022, "multiple Rankers"); its exact weights are not known here, so each
# Ranker gets the paper's rank-content loss (0.03 x sum). Everything else is the -M paper config (Ma / PI validation).
# Each Ranker is the last checkpoint of its BasicSR Ranker run (net_r_latest.pth), as the paper configs take it.
# The log has loss_rank_niqe / rank_score_niqe and loss_rank_ma / rank_score_ma.
_base_ = './ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-ma.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe-ma'
work_dir = f'./work_dirs/{experiment_name}'

rank_loss = dict(type='RankContentLoss', loss_weight=0.03, bias=0, reduction='sum')
model = dict(
    ranker=None, ranker_checkpoint=None, rank_loss=None, ranker_batchnorm='batch',  # replaced by the list
    rankers=[
        dict(name='niqe', ranker=dict(type='RankerVGG', depth=12),
             ranker_checkpoint='experiments/Ranker_VGG12_NIQE/models/net_r_latest.pth', rank_loss=rank_loss,
             ranker_batchnorm='batch'),
        dict(name='ma', ranker=dict(type='RankerVGG', depth=12),
             ranker_checkpoint='experiments/Ranker_VGG12_Ma/models/net_r_latest.pth', rank_loss=rank_loss,
             ranker_batchnorm='batch'),
    ])
