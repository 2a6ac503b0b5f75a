# RankSRGAN-N+M: two frozen Rankers at once (NIQE and Ma), as options/train_RankSRGAN_NIQE_Ma.yml: our construction
# following the journal version's idea (TPAMI 2022, "multiple Rankers"); its exact weights are not known here, so each
# Ranker gets the paper's rank-content loss (0.03 x sum). Everything else is the -M paper config (Ma / PI validation).
# Each Ranker is the last checkpoint of its BasicSR Ranker run (net_r_latest.pth), as the paper configs take it.
# Each item takes the keys of a BasicSR rankers: item (options/train_RankSRGAN_NIQE_Ma.yml). The log has
# loss_rank_niqe / out_r_niqe and loss_rank_ma / out_r_ma.
_base_ = './ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-ma.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe-ma'
work_dir = f'./work_dirs/{experiment_name}'

rank_loss = dict(type='RankContentLoss', loss_weight=0.03, bias=0, reduction='sum')
model = dict(
    ranker=None, ranker_checkpoint=None, rank_loss=None, ranker_batchnorm='batch',  # replaced by the list
    rankers=[
        dict(name='niqe', network=dict(type='RankerVGG', depth=12),
             path='experiments/Ranker_VGG12_NIQE/models/net_r_latest.pth', rank_opt=rank_loss, batchnorm='batch'),
        dict(name='ma', network=dict(type='RankerVGG', depth=12),
             path='experiments/Ranker_VGG12_Ma/models/net_r_latest.pth', rank_opt=rank_loss, batchnorm='batch'),
    ])
