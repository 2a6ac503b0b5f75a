# The paper road's test in MMagic: the paper's generator (RankSRGANGenerator, 64 features, 16 blocks, x4: what the
# ranksrgan-paper_* configs train) on the PIRM test set where the road keeps it (datasets/PIRM/test: LR/ and HR/,
# the same file names), with the road's measures: NIQE (Y), PSNR / SSIM on RGB and on Y, 4-pixel shave.
# Inference only (the plugin's StrictEditModel: a checkpoint without the whole generator is refused, naming it):
#   python <mmagic>/.mim/tools/test.py options/mmagic/ranksrgan-paper_x4c64b16_test_pirm.py \
#       work_dirs/ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe/iter_500000.pth
# (<mmagic>: the installed mmagic package's folder). Metric names: PIRM/PSNR, PIRM/SSIM (RGB), PIRM/Y/PSNR,
# PIRM/Y/SSIM, PIRM/NIQE. MMagic's port (MSRResNet) on MMagic's layout (data/Set5, data/Set14, data/PIRM_val):
# ranksrgan_x4c64b16_test_set5-set14-pirm.py, whose model, pipeline and loops this file keeps.
_base_ = './ranksrgan_x4c64b16_test_set5-set14-pirm.py'

experiment_name = 'ranksrgan-paper_x4c64b16_test_pirm'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4

model = dict(
    generator=dict(_delete_=True, type='RankSRGANGenerator', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16,
                   upscale=scale))

test_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='PackInputs')
]

test_dataloader = [
    dict(num_workers=2, persistent_workers=False, drop_last=False, batch_size=1,
         sampler=dict(type='DefaultSampler', shuffle=False),
         dataset=dict(type='BasicImageDataset', metainfo=dict(dataset_type='pirm', task_name='sisr'),
                      data_root='datasets/PIRM/test', data_prefix=dict(img='LR', gt='HR'), pipeline=test_pipeline))
]
test_evaluator = [
    dict(type='Evaluator',
         metrics=[
             dict(type='PSNR', crop_border=scale, prefix='PIRM'),
             dict(type='SSIM', crop_border=scale, prefix='PIRM'),
             dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='PIRM/Y'),
             dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='PIRM/Y'),
             dict(type='BatchedNIQE', crop_border=scale, convert_to='y', prefix='PIRM'),
         ])
]
