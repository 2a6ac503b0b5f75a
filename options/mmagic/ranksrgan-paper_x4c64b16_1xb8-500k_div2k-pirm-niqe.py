# RankSRGAN-N as the paper trained it, in MMagic: the settings of options/train_RankSRGAN_NIQE.yml (the original
# code's, docs/fidelity.md S1-S12), unlike ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py (a port onto MMagic's
# SRGAN, rows M1-M2), whose RankSRGAN model, losses and schedule this file inherits:
# - generator: the original RankSRGAN SRResNet (RankSRGANGenerator: LRconv, long skip, ReLU), initialised from the
#   authors' SRResNet_bicx4_in3nf64nb16.pth converted by tools/convert_official_weights.py (strictly: a file that
#   does not hold the whole generator is refused by name)
# - data: 296x296 crops of whole DIV2K train HR images with DIV2K's MATLAB-bicubic X4 LR (not 480-pixel
#   sub-images), flips and rotations, total batch 8
# - validation: the PIRM test set (100 images), PSNR on RGB (the original's) and on Y, NIQE (Y), 4-pixel border
# - losses: pixel 0, perceptual conv5_4 1, vanilla GAN 5e-3, rank-content 0.03 x sum, batch-statistics Ranker;
#   Adam 1e-4 (0.9, 0.99), MultiStepLR [50k, 100k, 200k, 300k] x0.5, 500k iterations, seed 10
#   python tools/mmagic_train.py options/mmagic/ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe.py
# - the frozen Ranker: the last checkpoint of the NIQE Ranker (options/train_Ranker_NIQE.yml's net_r_latest.pth),
#   as the paper road uses it (tools/reproduce.py; the original selected none; net_r_best.pth is chosen on the
#   val split, docs/fidelity.md R11). The authors' released Ranker: set ranker_checkpoint to its conversion,
#   experiments/pretrained_models/Ranker_NIQE_basicsr.pth (tools/convert_official_weights.py).
# The whole road (rank dataset, Ranker, this config through MMagic's Runner, test, report):
#   python tools/reproduce.py --toolbox mmagic --data datasets   (docs/mmagic.md, "The paper road in MMagic")
# Test: ranksrgan-paper_x4c64b16_test_pirm.py. External files: experiments/pretrained_models/
#   SRResNet_bicx4_in3nf64nb16_basicsr.pth (converted), vgg19-dcbb9e9d.pth (docs/mmagic.md).
_base_ = './ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py'

experiment_name = 'ranksrgan-paper_x4c64b16_1xb8-500k_div2k-pirm-niqe'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4

model = dict(
    generator=dict(
        _delete_=True,
        type='RankSRGANGenerator', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=scale,
        init_cfg=dict(type='StrictPretrained',
                      checkpoint='experiments/pretrained_models/SRResNet_bicx4_in3nf64nb16_basicsr.pth')),
    ranker_checkpoint='experiments/Ranker_VGG12_NIQE/models/net_r_latest.pth')

train_dataloader = dict(
    dataset=dict(
        ann_file='',  # every image of the folder, whole (the port: the sub-image list)
        data_root='datasets/DIV2K',
        data_prefix=dict(img='DIV2K_train_LR_bicubic/X4', gt='DIV2K_train_HR'),
        filename_tmpl=dict(img='{}x4', gt='{}')))

val_dataloader = dict(
    dataset=dict(
        metainfo=dict(dataset_type='pirm', task_name='sisr'),
        data_root='datasets/PIRM/test',
        data_prefix=dict(img='LR', gt='HR')))

val_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=scale),  # the original's validation PSNR: RGB, 4-pixel border
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Y'),
        dict(type='BatchedNIQE', crop_border=scale, convert_to='y'),
    ])
