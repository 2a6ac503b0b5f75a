# RankSRGAN-M: RankSRGAN-N with the Ranker trained on Ma's metric (options/train_RankSRGAN_Ma.yml on the
# BasicSR side). Only the Ranker and the validation change: Ma / PI (MaPI) are added to the base's
# MAE / PSNR / SSIM / NIQE. The Ranker: ranker_vgg12_1xb16-400k_rank-df2k-ma.py (labels flipped: Ma is
# higher-is-better) or options/train_Ranker_Ma.yml.
#   python tools/mmagic_train.py options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-ma.py
# External files (not downloaded; see docs/mmagic.md): those of the -N config, with
#   experiments/pretrained_models/Ranker_Ma_basicsr.pth   # instead of the NIQE Ranker
#   Ma et al.'s model.mat (MaPI's model_path; None: $RANKSRGAN_MA_MODEL or ~/.cache/ranksrgan_plugin/ma/model.mat)
_base_ = './ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'

experiment_name = 'ranksrgan_x4c64b16_1xb8-500k_div2k-ma'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
ma_model_path = None

model = dict(ranker_checkpoint='experiments/pretrained_models/Ranker_Ma_basicsr.pth')

val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='MAE'),
        dict(type='PSNR', crop_border=scale),
        dict(type='SSIM', crop_border=scale),
        dict(type='BatchedNIQE', crop_border=scale, convert_to='y'),
        dict(type='MaPI', crop_border=scale, model_path=ma_model_path),
    ])
