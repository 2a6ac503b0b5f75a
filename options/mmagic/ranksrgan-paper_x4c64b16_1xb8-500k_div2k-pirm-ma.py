# RankSRGAN-M as the paper trained it: the -N paper config with the Ma Ranker (options/train_Ranker_Ma.yml's last
# checkpoint), and Ma / PI added to the validation
# (Ma et al.'s model.mat: model_path, $RANKSRGAN_MA_MODEL or ~/.cache/ranksrgan_plugin/ma/model.mat).
_base_ = './ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-ma'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
ma_model_path = None

model = dict(ranker_checkpoint='experiments/Ranker_VGG12_Ma/models/net_r_latest.pth')  # the last

val_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=scale),
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Y'),
        dict(type='BatchedNIQE', crop_border=scale, convert_to='y'),
        dict(type='MaPI', crop_border=scale, model_path=ma_model_path),
    ])
