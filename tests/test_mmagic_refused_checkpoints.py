"""MMagic side: a generator initialisation or test checkpoint that does not hold the generator is an error naming
the file and the option, not a random generator with a warning (mmengine loads with strict=False)."""
from pathlib import Path

import pytest
import torch
from basicsr.archs.srresnet_arch import MSRResNet
from mmagic.registry import MODELS
from mmengine.runner import Runner
from test_mmagic_test_protocol import TEST_CONFIG, _tiny, _tiny_test_sets
from test_mmagic_training import (  # noqa: F401  (sr_workspace: fixture)
    RANKESRGAN_CONFIG,
    RANKSRGAN_CONFIG,
    _generator_init_files,
    _write_generator_only_checkpoints,
    sr_workspace,
    tiny_ranker,
    tiny_sr_config,
)

import ranksrgan_plugin.mmagic  # noqa: F401
from ranksrgan_plugin.checkpoints import CheckpointMismatchError


def write_basicsr_generator(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'params': MSRResNet(num_feat=8, num_block=1).state_dict()}, path)


def write_mmagic_ranker(path: Path) -> None:
    """What MMagic's RankerModel saves: an mmengine checkpoint of ``ranker.*`` weights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'meta': {}, 'state_dict': {f'ranker.{k}': v for k, v in tiny_ranker().state_dict().items()}}, path)


@pytest.mark.parametrize('config', [RANKSRGAN_CONFIG, RANKESRGAN_CONFIG], ids=['ranksrgan', 'rankesrgan'])
def test_generator_init_refuses_a_basicsr_file(sr_workspace, tmp_path, monkeypatch, config):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    cfg = tiny_sr_config(sr_workspace, config, tmp_path / 'work', keep_init=True)
    path, = _generator_init_files(cfg)
    write_basicsr_generator(Path(path))
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointMismatchError) as error:
        model.init_weights()  # what the Runner does before training
    message = str(error.value)
    assert path in message and 'model.generator.init_cfg.checkpoint' in message
    assert "a BasicSR checkpoint (weights under 'params')" in message


def test_model_level_pretrained_refuses_a_file_without_the_generator(sr_workspace, tmp_path):  # noqa: F811
    cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work')
    ranker_file = tmp_path / 'ranker_mmagic.pth'
    write_mmagic_ranker(ranker_file)
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(ranker_file))  # the old configs' form
    with pytest.raises(CheckpointMismatchError, match='model.init_cfg.checkpoint') as error:
        MODELS.build(cfg.model).init_weights()
    assert str(ranker_file) in str(error.value) and 'submodules ranker' in str(error.value)


def test_fitting_generator_init_loads_without_key_mismatch_lines(sr_workspace, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    cfg = tiny_sr_config(sr_workspace, RANKSRGAN_CONFIG, tmp_path / 'work', keep_init=True)
    state = _write_generator_only_checkpoints(cfg)
    printed = []
    monkeypatch.setattr('mmengine.runner.checkpoint.print_log', lambda msg, *a, **k: printed.append(str(msg)))
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert all(torch.equal(value, state[f'generator.{key}']) for key, value in model.generator.state_dict().items())
    assert not any('missing keys' in line or 'unexpected key' in line for line in printed)
    # the model-level Pretrained of the same file goes through mmengine's lenient loader: the noise users learned
    path, = _generator_init_files(cfg)
    cfg.model.generator.pop('init_cfg')
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=path)
    MODELS.build(cfg.model).init_weights()
    assert any('missing keys' in line and 'discriminator' in line for line in printed)


def test_test_config_refuses_a_ranker_checkpoint_naming_it(tmp_path, monkeypatch):
    """MMagic's tools/test.py path (Runner.test with load_from): a Ranker's checkpoint is refused by name."""
    monkeypatch.chdir(tmp_path)
    _tiny_test_sets(tmp_path / 'data')
    ranker_file = tmp_path / 'best_SROCC_iter_10.pth'
    write_mmagic_ranker(ranker_file)
    cfg = _tiny(TEST_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ranker_file)
    for loader in cfg.test_dataloader:
        loader.num_workers = 0
    with pytest.raises(CheckpointMismatchError) as error:
        Runner.from_cfg(cfg).test()
    message = str(error.value)
    assert message.startswith(str(ranker_file)) and 'submodules ranker' in message
    assert 'the generator of StrictEditModel' in message
