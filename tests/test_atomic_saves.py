"""A job killed while it writes a checkpoint or a training state leaves the previous file whole.

Each case runs the writer in a child process that dies (``os._exit``: no ``finally``, as ``kill -9``) half-way
through the file. Written in place (basicsr 1.4.2), the truncated file keeps its final name and ``--auto_resume``
stops on it; written by the plugin, the name holds the old file and the resume goes on from it.
"""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from ranksrgan_plugin.checkpoints import UnreadableCheckpointError, read_checkpoint
from ranksrgan_plugin.compat.basicsr import load_resume_state_any_device
from ranksrgan_plugin.utils.atomic_files import save_torch_atomically, write_text_atomically
from ranksrgan_plugin.utils.training_state import read_training_state

# Installed in the child: torch.save writes half of what it would write, then the process dies.
DIE_HALF_WAY = '''
import io, os, torch
real_save = torch.save
def dying_save(obj, f, *args, **kwargs):
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    with open(f, 'wb') as out:
        out.write(data[:len(data) // 2])
    os._exit(9)
torch.save = dying_save
'''


def die_while(code: str, cwd: str) -> None:
    """Run ``code`` in a child whose ``torch.save`` dies half-way; assert it died there."""
    child = subprocess.run([sys.executable, '-c', DIE_HALF_WAY + textwrap.dedent(code)], cwd=cwd,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 9, child.stderr


def state(iteration: int) -> dict:
    return {'epoch': 0, 'iter': iteration, 'optimizers': [{'state': {}, 'param_groups': []}],
            'schedulers': [{'milestones': []}]}


def resume_options(folder) -> dict:
    return {'auto_resume': True, 'path': {'training_states': str(folder)}}


def test_a_state_written_in_place_and_killed_stops_the_auto_resume(tmp_path):
    """The defect: basicsr 1.4.2's ``torch.save`` to the final name leaves the newest state truncated."""
    torch.save(state(2), tmp_path / '2.state')
    die_while(f"torch.save({{'iter': 4}}, {str(tmp_path / '4.state')!r})", str(tmp_path))
    assert osp.getsize(tmp_path / '4.state') > 0
    with pytest.raises(UnreadableCheckpointError, match=r'4\.state.*delete it to resume from the state before it'):
        load_resume_state_any_device(resume_options(tmp_path))


def test_a_state_killed_mid_write_leaves_the_previous_one_to_resume(tmp_path):
    from ranksrgan_plugin.utils.training_state import write_training_state

    opt = {'path': {'training_states': str(tmp_path)}}
    write_training_state(opt, state(2))
    die_while(f'''
        from ranksrgan_plugin.utils.training_state import write_training_state
        write_training_state({opt!r}, {state(4)!r})
        ''', str(tmp_path))
    assert not osp.exists(tmp_path / '4.state')
    assert load_resume_state_any_device(resume_options(tmp_path))['iter'] == 2
    write_training_state(opt, state(4))  # the next save of the same iteration is not blocked by the dead one's file
    assert read_training_state(str(tmp_path / '4.state'))['iter'] == 4
    assert sorted(os.listdir(tmp_path)) == ['2.state', '4.state']


def test_a_basicsr_network_killed_mid_write_keeps_the_old_file(tmp_path):
    """``BaseModel.save_network`` of the plugin's entry points (through ``patch_basicsr_train``)."""
    models = tmp_path / 'models'
    models.mkdir()
    script = f'''
        import torch
        from ranksrgan_plugin.compat.basicsr import patch_basicsr_train
        from basicsr.models.base_model import BaseModel
        patch_basicsr_train()

        class Saver(BaseModel):
            def __init__(self):
                self.opt = {{'path': {{'models': {str(models)!r}}}, 'dist': False, 'num_gpu': 0}}

        torch.manual_seed({{seed}})
        Saver().save_network(torch.nn.Conv2d(3, 3, 3), 'net_g', -1)
        '''
    subprocess.run([sys.executable, '-c', textwrap.dedent(script).replace('{seed}', '0')], check=True, timeout=300)
    saved = read_checkpoint(str(models / 'net_g_latest.pth'))['params']
    torch.manual_seed(0)
    assert torch.equal(saved['weight'], torch.nn.Conv2d(3, 3, 3).weight.detach())
    die_while(script.replace('{seed}', '1'), str(tmp_path))
    after = read_checkpoint(str(models / 'net_g_latest.pth'))['params']
    assert torch.equal(after['weight'], saved['weight'])
    assert sorted(os.listdir(models)) == ['.partial', 'net_g_latest.pth']


def test_the_ranker_model_s_own_files_and_the_stage_outputs_are_atomic(tmp_path):
    target = tmp_path / 'net_r_latest.pth'
    save_torch_atomically({'params': {'w': torch.ones(2)}}, str(target))
    die_while(f'''
        import torch
        from ranksrgan_plugin.utils.atomic_files import save_torch_atomically
        save_torch_atomically({{'params': {{'w': torch.zeros(2)}}}}, {str(target)!r})
        ''', str(tmp_path))
    assert torch.equal(read_checkpoint(str(target))['params']['w'], torch.ones(2))


def test_a_failed_write_leaves_no_partial_file_and_raises(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('cannot pickle this')

    with pytest.raises(RuntimeError, match='cannot pickle this'):
        save_torch_atomically({'x': Unpicklable()}, str(tmp_path / 'a.pth'))
    write_text_atomically(str(tmp_path / 'a.txt'), 'one\n')
    assert sorted(os.listdir(tmp_path)) == ['a.txt']
    assert (tmp_path / 'a.txt').read_text(encoding='utf-8') == 'one\n'
