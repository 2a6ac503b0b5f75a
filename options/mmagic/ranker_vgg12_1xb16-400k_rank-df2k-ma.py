# The Ranker of RankSRGAN-M: the NIQE Ranker's settings on a Ma-labelled rank dataset
# (options/rank_dataset_DF2K_Ma.yml -> datasets/rank_DF2K_ma; options/train_Ranker_Ma.yml on the BasicSR side).
# Ma's score is higher-is-better: higher_is_better=True flips the labels, so the Ranker's score still
# grows as the quality drops (as the NIQE Ranker's).
#   python tools/mmagic_train.py options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-ma.py
_base_ = './ranker_vgg12_1xb16-400k_rank-df2k-niqe.py'

experiment_name = 'ranker_vgg12_1xb16-400k_rank-df2k-ma'
work_dir = f'./work_dirs/{experiment_name}'

data_root = 'datasets/rank_DF2K_ma'
train_dataloader = dict(dataset=dict(data_root=data_root + '/train', higher_is_better=True))
val_dataloader = dict(dataset=dict(data_root=data_root + '/val', higher_is_better=True))
