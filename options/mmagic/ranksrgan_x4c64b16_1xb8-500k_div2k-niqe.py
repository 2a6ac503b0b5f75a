# RankSRGAN-N: MMagic's SRGAN plus the frozen NIQE Ranker and the rank-content loss.
# Only what RankSRGAN changes is overridden (the original code's settings; every difference: docs/fidelity.md):
# - model: RankSRGAN, Ranker VGG-12 loaded from a checkpoint, rank-content loss 0.03 x SUM over the
#   total batch (the original's), frozen Ranker with batch-statistics BatchNorm (the original's)
# - losses: pixel weight 0 (the base: L1 1e-2); perceptual conv5_4 and vanilla GAN 5e-3 as the base
# - data: total batch 8 (with N GPUs: --cfg-options train_dataloader.batch_size=8/N), GT crop 296
#   (the Ranker's patch size), so the discriminator is the VGG-style one for 296x296 inputs
#   (MMagic's ModifiedVGG takes 128x128 only)
# - Adam betas (0.9, 0.99); 500k iterations (MultiStepLR [50k, 100k, 200k, 300k] x0.5 as the base)
# - validation: the base's MAE / PSNR / SSIM plus NIQE (Y channel, 4-pixel shave)
# The generator is the base's MSRResNet, initialised from MMagic's PSNR-trained MSRResNet through the
# generator's init_cfg, as MMagic's ESRGAN config does (the file's generator.* keys; RankSRGAN sets it on
# the generator, whose class takes no init_cfg argument). Strict: a file that does not hold every weight of
# the generator is an error naming it, not a random generator with a warning. Not load_from: mmengine's
# --resume would resume from that file instead of work_dir/last_checkpoint.
#   python tools/mmagic_train.py options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py
#   torchrun --nproc_per_node=2 tools/mmagic_train.py \
#       options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py --launcher pytorch \
#       --cfg-options train_dataloader.batch_size=4   # total batch 8; BatchNorm groups of 4 as the original
#       (4 GPUs x 2: each BatchNorm sees 2 images, and the model warns: docs/fidelity.md S4)
# External files (not downloaded; see docs/mmagic.md):
#   experiments/pretrained_models/Ranker_NIQE_basicsr.pth   # tools/convert_official_weights.py, a BasicSR net_r_*.pth,
#                                                           # or an MMagic Ranker checkpoint (the last: iter_400000.pth)
#   experiments/pretrained_models/msrresnet_x4c64b16_1x16_300k_div2k_20200521-61556be5.pth   # MMagic model zoo
#   experiments/pretrained_models/vgg19-dcbb9e9d.pth   # torchvision ImageNet VGG19 (or $TORCH_HOME/hub/checkpoints/)
_base_ = 'mmagic::srgan_resnet/srgan_x4c64b16_1xb16-1000k_div2k.py'

custom_imports = dict(imports=['ranksrgan_plugin.mmagic'], allow_failed_imports=False)

experiment_name = 'ranksrgan_x4c64b16_1xb8-500k_div2k-niqe'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
gt_crop_size = 296

model = dict(
    type='RankSRGAN',
    generator=dict(
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='experiments/pretrained_models/msrresnet_x4c64b16_1x16_300k_div2k_20200521-61556be5.pth',
            prefix='generator.')),
    discriminator=dict(
        _delete_=True, type='VGGStyleDiscriminatorAnySize', num_in_ch=3, num_feat=64, input_size=gt_crop_size),
    pixel_loss=dict(loss_weight=0.0),
    ranker=dict(type='RankerVGG', depth=12),
    ranker_checkpoint='experiments/pretrained_models/Ranker_NIQE_basicsr.pth',
    rank_loss=dict(type='RankContentLoss', loss_weight=0.03, bias=0, reduction='sum'),
    ranker_batchnorm='batch',
    # images per BatchNorm statistics in the frozen Ranker and the discriminator: the original's 4 per GPU (batch 8
    # on its 2 GPUs, DataParallel); None = each process's batch
    batchnorm_group=4)

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

randomness = dict(seed=10)  # the original's manual_seed (train_RankSRGAN.yml l. 89)
