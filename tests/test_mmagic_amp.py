"""MMagic side: RankSRGAN trains with mixed precision through mmengine's AMP optimiser wrapper (CPU-capable here)."""
import numpy as np
import torch
from mmengine.runner import Runner
from test_mmagic_training import RANKSRGAN_CONFIG, sr_workspace, tiny_sr_config  # noqa: F401  (fixture)


def test_ranksrgan_trains_two_iterations_in_bf16(sr_workspace, tmp_path):  # noqa: F811
    cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', max_iters=2)
    for name in ('generator', 'discriminator'):  # the config lines docs/mmagic.md gives
        cfg.optim_wrapper[name].update(type='AnyDeviceAmpOptimWrapper', dtype='bfloat16')
    runner = Runner.from_cfg(cfg)
    dtypes = []
    runner.model.generator.conv_first.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    runner.train()
    assert torch.bfloat16 in dtypes  # the training steps ran under autocast (validation runs in fp32)
    assert type(runner.optim_wrapper['generator']).__name__ == 'AnyDeviceAmpOptimWrapper'
    for name in ('train/loss_rank', 'train/loss_gan', 'train/loss_d_real'):
        assert np.isfinite(float(runner.message_hub.get_scalar(name).current())), name
