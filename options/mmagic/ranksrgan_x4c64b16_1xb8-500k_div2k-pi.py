# RankSRGAN-PI: RankSRGAN-N with the Ranker trained on the Perceptual Index (options/train_RankSRGAN_PI.yml on the
# BasicSR side). Only the Ranker and the validation change; the validation is RankSRGAN-M's (MaPI: Ma
# and PI beside MAE / PSNR / SSIM / NIQE), so this file inherits that one and changes the Ranker.
# The Ranker: ranker_vgg12_1xb16-400k_rank-df2k-pi.py (PI is lower-is-better, as NIQE) or
# options/train_Ranker_PI.yml.
#   python tools/mmagic_train.py options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-pi.py
# External files (not downloaded; see docs/mmagic.md): those of the -N config, with
#   experiments/pretrained_models/Ranker_PI_basicsr.pth   # instead of the NIQE Ranker
#   Ma et al.'s model.mat (MaPI's model_path; None: $RANKSRGAN_MA_MODEL or ~/.cache/ranksrgan_plugin/ma/model.mat)
_base_ = './ranksrgan_x4c64b16_1xb8-500k_div2k-ma.py'

experiment_name = 'ranksrgan_x4c64b16_1xb8-500k_div2k-pi'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(ranker_checkpoint='experiments/pretrained_models/Ranker_PI_basicsr.pth')
