# RankSRGAN evaluation protocol (the paper's): NIQE (Y, 4-pixel shave), PSNR / SSIM on Y and on RGB
# (4-pixel shave) on Set5, Set14 and PIRM, each a folder with LRbicx4/ (LR inputs) and GTmod12/ (HR).
# Inference only: the model is MMagic's BaseEditModel (the plugin's StrictEditModel: a checkpoint without the
# whole generator is refused, naming the file) with RankSRGAN's generator, so testing needs the
# generator weights alone (a RankSRGAN checkpoint, a generator-only file with generator.* keys, or
# MMagic's MSRResNet); no Ranker, no VGG19, no discriminator is built. Any variant (-N/-M/-PI/-HR):
#   python <mmagic>/.mim/tools/test.py options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm.py CHECKPOINT
# (<mmagic>: the installed mmagic package's folder; MMagic's own tools/test.py). The original generator
# (official / converted weights): a config of two lines, see docs/mmagic.md.
# Ma / PI (needs the authors' model.mat): ranksrgan_x4c64b16_test_set5-set14-pirm-ma-pi.py.
# Metric names: <set>/PSNR, <set>/SSIM (RGB), <set>/Y/PSNR, <set>/Y/SSIM, <set>/NIQE; the values equal
# tools/evaluate.py's on the same SR images (PSNR within float32 rounding; see docs/mmagic.md).
_base_ = './ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'

experiment_name = 'ranksrgan_x4c64b16_test_set5-set14-pirm'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4

model = dict(
    _delete_=True,
    type='StrictEditModel',   # MMagic's BaseEditModel refusing a checkpoint without the whole generator
    generator=dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=64, num_blocks=16,
                   upscale_factor=scale),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),  # built, never used in testing
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# testing only: no training / validation data, optimisers or schedules (nothing of the training config is read)
train_dataloader = train_cfg = optim_wrapper = param_scheduler = None
val_dataloader = val_evaluator = val_cfg = None

test_sets = dict(Set5='data/Set5', Set14='data/Set14', PIRM='data/PIRM_val')  # each: LRbicx4/, GTmod12/

test_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='PackInputs')
]

test_cfg = dict(_delete_=True, type='MultiTestLoop')
test_dataloader = [
    dict(num_workers=2, persistent_workers=False, drop_last=False, batch_size=1,
         sampler=dict(type='DefaultSampler', shuffle=False),
         dataset=dict(type='BasicImageDataset', metainfo=dict(dataset_type=name.lower(), task_name='sisr'),
                      data_root=root, data_prefix=dict(img='LRbicx4', gt='GTmod12'), pipeline=test_pipeline))
    for name, root in test_sets.items()
]
test_evaluator = [
    dict(type='Evaluator',
         metrics=[
             dict(type='PSNR', crop_border=scale, prefix=name),
             dict(type='SSIM', crop_border=scale, prefix=name),
             dict(type='PSNR', crop_border=scale, convert_to='Y', prefix=f'{name}/Y'),
             dict(type='SSIM', crop_border=scale, convert_to='Y', prefix=f'{name}/Y'),
             dict(type='BatchedNIQE', crop_border=scale, convert_to='y', prefix=name),
         ]) for name in test_sets
]
