# The Ranker of RankSRGAN-HR: the NIQE Ranker's settings on the SRResNet / SRGAN / HR rank dataset
# (options/rank_dataset_DF2K_NIQE_HR.yml -> datasets/rank_DF2K_niqe_hr).
#   python tools/mmagic_train.py options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-niqe-hr.py
_base_ = './ranker_vgg12_1xb16-400k_rank-df2k-niqe.py'

experiment_name = 'ranker_vgg12_1xb16-400k_rank-df2k-niqe-hr'
work_dir = f'./work_dirs/{experiment_name}'

data_root = 'datasets/rank_DF2K_niqe_hr'
train_dataloader = dict(dataset=dict(data_root=data_root + '/train'))
val_dataloader = dict(dataset=dict(data_root=data_root + '/val'))
