# RankSRGAN-HR (supplementary Sec. 2.2) as the paper trained it: the -N paper config with the Ranker of the
# SRResNet / SRGAN / HR rank dataset (a BasicSR net_r_*.pth, or an MMagic Ranker checkpoint).
_base_ = './ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-hr'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(ranker_checkpoint='experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth')
