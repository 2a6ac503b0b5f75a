# RankSRGAN-PI as the paper trained it: the -M paper config (Ma / PI validation) with the PI Ranker.
_base_ = './ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-ma.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-pi'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(ranker_checkpoint='experiments/Ranker_VGG12_PI/models/net_r_latest.pth')  # the last
