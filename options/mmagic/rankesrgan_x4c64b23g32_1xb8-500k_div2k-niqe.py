# RankESRGAN-N: MMagic's ESRGAN (RRDBNet, relativistic GAN) plus the frozen NIQE Ranker and the
# rank-content loss; the RankSRGAN settings of options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py
# applied to ESRGAN, as options/train_RankESRGAN_NIQE.yml does on the BasicSR side:
# - model: RankESRGAN, Ranker VGG-12 loaded from a checkpoint, rank-content loss 0.03 x SUM over the
#   total batch, frozen Ranker with batch-statistics BatchNorm (as the original RankSRGAN)
# - losses: as the base (pixel L1 1e-2, perceptual conv5_4, GAN 5e-3)
# - data: total batch 8 (with N GPUs: --cfg-options train_dataloader.batch_size=8/N), GT crop 296,
#   VGG-style discriminator for 296x296 inputs
# - Adam betas (0.9, 0.99); 500k iterations (MultiStepLR [50k, 100k, 200k, 300k] x0.5 as the base)
# - validation: the base's MAE / PSNR / SSIM plus NIQE (Y channel, 4-pixel shave)
# The generator is the base's RRDBNet, initialised from MMagic's PSNR-trained RRDBNet (a local file
# instead of the base's download URL).
#   python tools/mmagic_train.py options/mmagic/rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe.py
# External files (not downloaded; see docs/mmagic.md):
#   experiments/pretrained_models/Ranker_NIQE_basicsr.pth
#   experiments/pretrained_models/esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth   # MMagic model zoo
#   experiments/pretrained_models/vgg19-dcbb9e9d.pth   # torchvision ImageNet VGG19 (or $TORCH_HOME/hub/checkpoints/)
_base_ = 'mmagic::esrgan/esrgan_x4c64b23g32_1xb16-400k_div2k.py'

custom_imports = dict(imports=['ranksrgan_plugin.mmagic'], allow_failed_imports=False)

experiment_name = 'rankesrgan_x4c64b23g32_1xb8-500k_div2k-niqe'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
gt_crop_size = 296

model = dict(
    type='RankESRGAN',
    generator=dict(
        init_cfg=dict(
            checkpoint='experiments/pretrained_models/esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth')),
    discriminator=dict(
        _delete_=True, type='VGGStyleDiscriminatorAnySize', num_in_ch=3, num_feat=64, input_size=gt_crop_size),
    ranker=dict(type='RankerVGG', depth=12),
    ranker_checkpoint='experiments/pretrained_models/Ranker_NIQE_basicsr.pth',
    rank_loss=dict(type='RankContentLoss', loss_weight=0.03, bias=0, reduction='sum'),
    ranker_batchnorm='batch',
    batchnorm_group=4)   # images per BatchNorm statistics, as RankSRGAN's (the original's 4 per GPU)

train_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=gt_crop_size),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))

val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='MAE'),
        dict(type='PSNR', crop_border=scale),
        dict(type='SSIM', crop_border=scale),
        dict(type='BatchedNIQE', crop_border=scale, convert_to='y'),
    ])

optim_wrapper = dict(
    generator=dict(optimizer=dict(betas=(0.9, 0.99))),
    discriminator=dict(optimizer=dict(betas=(0.9, 0.99))))

train_cfg = dict(max_iters=500_000)

# validation scalars by iteration (MMagic's runtime logs them by epoch: every validation at step 0)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))
