# RankSRGAN-HR (supplementary Sec. 2.2): RankSRGAN-N with the NIQE Ranker trained on SRResNet / SRGAN /
# HR levels (options/rank_dataset_DF2K_NIQE_HR.yml, options/train_RankSRGAN_HR.yml on the BasicSR side).
# Only the Ranker changes: ranker_vgg12_1xb16-400k_rank-df2k-niqe-hr.py (or the BasicSR Ranker below).
#   python tools/mmagic_train.py options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-hr.py
# External files (not downloaded; see docs/mmagic.md): those of the -N config, with
#   experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth   # Ranker trained on datasets/rank_DF2K_niqe_hr (the last)
_base_ = './ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'

experiment_name = 'ranksrgan_x4c64b16_1xb8-500k_div2k-hr'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(ranker_checkpoint='experiments/Ranker_VGG12_NIQE_HR/models/net_r_latest.pth')
