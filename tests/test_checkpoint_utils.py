"""ranksrgan_plugin.checkpoints (read, layout): the wrappers it unwraps, the module. prefix, the errors."""
import pytest
import torch

from ranksrgan_plugin.checkpoints import CheckpointKeyError, load_state_dict, unwrap_state_dict

WEIGHTS = {'conv.weight': torch.ones(1), 'conv.bias': torch.zeros(1)}


@pytest.mark.parametrize('wrapper', ['params_ema', 'params', 'state_dict', 'model_state_dict'])
def test_each_wrapper_is_unwrapped(wrapper):
    assert unwrap_state_dict({wrapper: WEIGHTS, 'meta': {}}) == WEIGHTS


def test_params_ema_wins_and_an_explicit_key_wins_over_it():
    other = {'conv.weight': torch.full((1,), 2.0)}
    assert unwrap_state_dict({'params': other, 'params_ema': WEIGHTS})['conv.weight'].item() == 1
    assert unwrap_state_dict({'params': other, 'params_ema': WEIGHTS}, 'params')['conv.weight'].item() == 2


def test_bare_state_dict_and_module_prefix():
    assert list(unwrap_state_dict({f'module.{k}': v for k, v in WEIGHTS.items()})) == list(WEIGHTS)
    assert unwrap_state_dict(WEIGHTS) == WEIGHTS
    assert unwrap_state_dict({'params': WEIGHTS}, wrappers=()) == {'params': WEIGHTS}


def test_missing_explicit_key_names_the_file_and_its_keys(tmp_path):
    path = tmp_path / 'net.pth'
    torch.save({'params': WEIGHTS}, path)
    assert load_state_dict(str(path)) == WEIGHTS
    with pytest.raises(CheckpointKeyError, match=rf"Checkpoint {path} has no 'params_ema' entry \(has \['params'\]\)"):
        load_state_dict(str(path), 'params_ema')


def test_non_mapping_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'tensor.pth'
    torch.save(torch.ones(2), path)
    with pytest.raises(TypeError, match='is not a state_dict'):
        load_state_dict(str(path))
