# The paper's Ranker (VGG-12) trained with the margin rank loss on a NIQE-labelled rank dataset
# (SRResNet / SRGAN / ESRGAN levels of DIV2K + Flickr2K), in MMagic.
# The original code's settings (differences: docs/fidelity.md): margin 0.5, Adam lr 1e-4,
# weight decay 1e-4, batch 16, MultiStepLR [100k, 200k] x0.5, 400k iterations; validation: SROCC
# (Table 1-2) and pair accuracy over the whole held-out split; scores clamped to [-5, 5] in the
# loss, one forward pass per side of the pairs, no flips/rotations (all three as the original).
# Same settings as options/train_Ranker_NIQE.yml.
#   python tools/make_rank_dataset.py -opt options/rank_dataset_DF2K_NIQE.yml   # datasets/rank_DF2K_niqe/{train,val}
#   python tools/mmagic_train.py options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-niqe.py
#   torchrun --nproc_per_node=2 tools/mmagic_train.py \
#       options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-niqe.py --launcher pytorch \
#       --cfg-options train_dataloader.batch_size=8   # total batch 16 and BatchNorm groups of 8, as the original
# The last checkpoint (iter_400000.pth, named by work_dir/last_checkpoint) is the `ranker_checkpoint` the paper road
# uses (the original selected none); best_SROCC_iter_*.pth is chosen on the val split (docs/fidelity.md R11).
_base_ = 'mmagic::_base_/default_runtime.py'

custom_imports = dict(imports=['ranksrgan_plugin.mmagic'], allow_failed_imports=False)

experiment_name = 'ranker_vgg12_1xb16-400k_rank-df2k-niqe'
work_dir = f'./work_dirs/{experiment_name}'
save_dir = './work_dirs/'

model = dict(
    type='RankerModel',
    ranker=dict(type='RankerVGG', depth=12),
    # RankRegressionLoss: the "regression" Ranker
    rank_loss=dict(type='RankLoss', margin=0.5, loss_weight=1.0, clamp=5),
    pair_forward='separate',
    # images per BatchNorm statistics: the original's 8 per GPU (each side's 16 on its 2 GPUs, DataParallel);
    # None = each process's batch
    batchnorm_group=8,
    data_preprocessor=dict(type='BaseDataPreprocessor'))

data_root = 'datasets/rank_DF2K_niqe'
train_dataloader = dict(
    num_workers=6,
    batch_size=16,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='RankPairDataset',
        data_root=data_root + '/train',
        io_backend=dict(type='lmdb'),
        use_hflip=False,  # the original's dataset never reads its flip/rotation flags
        use_rot=False,
        pair_order='better_first'))  # the original: one of the level pairs, the better level as side A
val_dataloader = dict(
    num_workers=4,
    batch_size=16,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='RankPairDataset',
        data_root=data_root + '/val',
        test_mode=True,
        io_backend=dict(type='lmdb')))
val_evaluator = dict(type='Evaluator', metrics=[dict(type='SROCC'), dict(type='PairAccuracy')])

train_cfg = dict(type='IterBasedTrainLoop', max_iters=400_000, val_interval=5000)
val_cfg = dict(type='MultiValLoop')

optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[100_000, 200_000], gamma=0.5)

# validation scalars by iteration (MMagic's runtime logs them by epoch: every validation at step 0)
default_hooks = dict(checkpoint=dict(save_best='SROCC', rule='greater'), logger=dict(log_metric_by_epoch=False))
custom_hooks = []  # MMagic's image visualisation hook has no images to show for a Ranker

randomness = dict(seed=10)  # the original's manual_seed (train_Ranker.yml l. 61)
