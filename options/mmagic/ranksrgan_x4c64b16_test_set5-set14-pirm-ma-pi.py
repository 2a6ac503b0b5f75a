# The evaluation protocol plus Ma's metric and PI (<set>/Ma, <set>/PI), which need the authors' model.mat
# (Ma et al.'s release; see docs/mmagic.md). Inference only, as the base test config.
#   RANKSRGAN_MA_MODEL=/path/to/model.mat \
#   python <mmagic>/.mim/tools/test.py options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm-ma-pi.py CHECKPOINT
# (without $RANKSRGAN_MA_MODEL: ~/.cache/ranksrgan_plugin/ma/model.mat; a missing file fails before testing)
_base_ = './ranksrgan_x4c64b16_test_set5-set14-pirm.py'

experiment_name = 'ranksrgan_x4c64b16_test_set5-set14-pirm-ma-pi'
work_dir = f'./work_dirs/{experiment_name}'

test_evaluator = [
    dict(type='Evaluator',
         metrics=[
             dict(type='PSNR', crop_border=4, prefix=name),
             dict(type='SSIM', crop_border=4, prefix=name),
             dict(type='PSNR', crop_border=4, convert_to='Y', prefix=f'{name}/Y'),
             dict(type='SSIM', crop_border=4, convert_to='Y', prefix=f'{name}/Y'),
             dict(type='BatchedNIQE', crop_border=4, convert_to='y', prefix=name),
             dict(type='MaPI', crop_border=4, prefix=name),
         ]) for name in ('Set5', 'Set14', 'PIRM')
]
