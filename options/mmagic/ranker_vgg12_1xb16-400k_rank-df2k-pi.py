# The Ranker of RankSRGAN-PI: the NIQE Ranker's settings on a PI-labelled rank dataset
# (options/rank_dataset_DF2K_PI.yml -> datasets/rank_DF2K_pi; options/train_Ranker_PI.yml on the BasicSR side).
# PI is lower-is-better, as NIQE: the labels keep their direction.
#   python tools/mmagic_train.py options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-pi.py
_base_ = './ranker_vgg12_1xb16-400k_rank-df2k-niqe.py'

experiment_name = 'ranker_vgg12_1xb16-400k_rank-df2k-pi'
work_dir = f'./work_dirs/{experiment_name}'

data_root = 'datasets/rank_DF2K_pi'
train_dataloader = dict(dataset=dict(data_root=data_root + '/train'))
val_dataloader = dict(dataset=dict(data_root=data_root + '/val'))
