"""A host process with the plugin imported behaves as without it, except for what the plugin announces (issue 16).

One fresh subprocess per toolbox imports the host, records what a user can observe (every registry's
contents, numpy's error state, the environment reports, MMagic's ``except ImportError`` fallbacks, the
resume decision of BasicSR's ``load_resume_state``), imports the plugin, records again, and the tests
compare. Announced: new registry entries of the plugin (MMagic: also MMagic's own models, importable
with the mmcv ops placeholders) and the documented workarounds of ``ranksrgan_plugin.compat``.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ranksrgan_plugin.compat import basicsr as compat
from ranksrgan_plugin.utils.training_state import read_training_state

ROOT = Path(__file__).resolve().parents[1]

# ranksrgan_plugin/mmagic/__init__.py's docstring: what the plugin registers into mmagic.registry
ANNOUNCED_MMAGIC = {
    'MODELS': {'RankerVGG', 'RankSRGANGenerator', 'VGGStyleDiscriminatorAnySize', 'RankLoss', 'RankRegressionLoss',
               'RankContentLoss', 'RankSRGAN', 'RankESRGAN', 'RankerModel', 'StrictEditModel'},
    'DATASETS': {'RankPairDataset'},
    'METRICS': {'SROCC', 'PairAccuracy', 'BatchedNIQE', 'MaPI'},
    'MMENGINE_WEIGHT_INITIALIZERS': {'StrictPretrained'},
    'OPTIM_WRAPPERS': {'AnyDeviceAmpOptimWrapper'},
}

PROBE = r'''
import ast, contextlib, copy, importlib, json, os, os.path as osp, pathlib, sys, tempfile, types
import numpy as np
import torch

toolbox, out_path = sys.argv[1:3]


def name_of(obj):
    if obj is None:
        return None
    if isinstance(obj, types.ModuleType):
        return f'module {obj.__name__}'
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", type(obj).__qualname__)}'


def registries():
    if toolbox == 'basicsr':
        from basicsr.utils import registry
        found = {name: reg._obj_map for name, reg in vars(registry).items() if isinstance(reg, registry.Registry)}
    else:
        import mmagic.registry
        from mmengine.registry import Registry
        found = {name: reg._module_dict for name, reg in vars(mmagic.registry).items() if isinstance(reg, Registry)}
    return {name: {key: [name_of(obj), id(obj)] for key, obj in entries.items()} for name, entries in found.items()}


def outcome(function):
    try:
        return ['ok', {key: str(value) for key, value in function().items()}]
    except Exception as error:
        return [type(error).__name__, str(error)]


def import_outcome(module):
    try:
        importlib.import_module(module)
        return 'ok'
    except Exception as error:
        return type(error).__name__


def mmagic_fallback_statements():
    """(module, the top-level ``try: from mmcv.ops import ... / except ImportError:`` statement) of MMagic."""
    import mmagic
    root = pathlib.Path(mmagic.__file__).parent
    for path in sorted(root.rglob('*.py')):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for node in tree.body:
            if isinstance(node, ast.Try) and any(
                    isinstance(stmt, ast.ImportFrom) and (stmt.module or '').startswith('mmcv.ops')
                    for stmt in node.body):
                module = '.'.join(('mmagic',) + path.relative_to(root).with_suffix('').parts)
                yield module, node


def fallback_names_in_host():
    """What each fallback statement leaves in the host alone (run here, without the plugin)."""
    names = {}
    for module, node in mmagic_fallback_statements():
        namespace = {}
        with contextlib.redirect_stdout(open(os.devnull, 'w')):
            exec(compile(ast.Module(body=[node], type_ignores=[]), module, 'exec'), namespace)
        for handler in node.handlers:
            for stmt in ast.walk(handler):
                if isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        names[f'{module}.{target.id}'] = name_of(namespace[target.id])
    return names


def fallback_names_in_modules():
    names = {}
    for qualified in fallback_names_in_host():
        module, name = qualified.rsplit('.', 1)
        names[qualified] = name_of(getattr(importlib.import_module(module), name))
    return names


def resume_decisions(load):
    """{combination: [the resumed iteration (or None, or the error), opt after]} of ``load(opt)``."""
    decisions = {}
    for auto_resume in (False, True):
        for saved in ('no folder', 'empty folder', 'states 2 and 10'):
            for given in (None, 'elsewhere/5.state'):
                with tempfile.TemporaryDirectory() as tmp:
                    cwd = os.getcwd()
                    os.chdir(tmp)
                    try:
                        states = osp.join('experiments', 'exp', 'training_states')
                        if saved != 'no folder':
                            os.makedirs(states)
                        if saved == 'states 2 and 10':
                            for it in (2, 10):
                                torch.save({'epoch': 1, 'iter': it, 'optimizers': [], 'schedulers': []},
                                           osp.join(states, f'{it}.state'))
                        os.makedirs('elsewhere')
                        torch.save({'epoch': 1, 'iter': 5, 'optimizers': [], 'schedulers': []}, 'elsewhere/5.state')
                        opt = {'name': 'exp', 'auto_resume': auto_resume, 'model_type': 'SRModel',
                               'network_g': {'type': 'MSRResNet'},
                               'path': {'resume_state': given, 'training_states': states,
                                        'models': osp.join('experiments', 'exp', 'models'),
                                        'pretrain_network_g': 'weights/g.pth', 'param_key_g': 'params_ema'}}
                        try:
                            with contextlib.redirect_stdout(open(os.devnull, 'w')):
                                state = load(opt)
                            result = None if state is None else state['iter']
                        except Exception as error:
                            result = f'{type(error).__name__}: {error}'
                        decisions[f'auto_resume={auto_resume}, saved: {saved}, resume_state={given}'] = [result, opt]
                    finally:
                        os.chdir(cwd)
    return decisions


def observe():
    seen = {'registries': registries(), 'geterr': np.geterr()}
    if toolbox == 'basicsr':
        from basicsr.utils import get_env_info
        seen['env'] = {'get_env_info': get_env_info()}
    else:
        import mmcv.utils
        import mmagic.utils.collect_env
        seen['env'] = {'mmcv.utils.collect_env': outcome(mmcv.utils.collect_env),
                       'mmagic.utils.collect_env.collect_env': outcome(mmagic.utils.collect_env.collect_env),
                       'import mmcv.ops': import_outcome('mmcv.ops')}
    return seen


result = {}
if toolbox == 'basicsr':
    try:  # what a BasicSR 1.4.2 user on torchvision >= 0.17 must do without the plugin
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms._functional_tensor')
    import basicsr  # noqa: F401
    import basicsr.train
    result['before'] = observe()
    upstream_current_device = torch.cuda.current_device
    if not torch.cuda.is_available():  # upstream asks for a CUDA device even to load a state without tensors
        torch.cuda.current_device = lambda: 0
    result['before']['resume'] = resume_decisions(basicsr.train.load_resume_state)
    torch.cuda.current_device = upstream_current_device
    import ranksrgan_plugin  # noqa: F401
    from ranksrgan_plugin.compat import basicsr as compat
    result['after'] = observe()
    result['after']['resume'] = resume_decisions(compat.load_resume_state_any_device)
else:
    for module in ('mmagic', 'mmagic.registry', 'mmagic.utils', 'mmagic.datasets', 'mmagic.engine',
                   'mmagic.structures', 'mmagic.visualization', 'mmcv.utils'):
        importlib.import_module(module)
    result['before'] = observe()
    result['before']['fallbacks'] = fallback_names_in_host()
    import ranksrgan_plugin.mmagic  # noqa: F401
    result['after'] = observe()
    result['after']['fallbacks'] = fallback_names_in_modules()
with open(out_path, 'w', encoding='utf-8') as f:
    json.dump(result, f)
'''


@pytest.fixture(scope='module')
def observed(tmp_path_factory):
    """{toolbox: {'before': ..., 'after': ...}}, one fresh process per toolbox (run once for all tests)."""
    results = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    for toolbox in ('basicsr', 'mmagic'):
        out = tmp_path_factory.mktemp(f'host_{toolbox}') / 'observed.json'
        run = subprocess.run([sys.executable, '-c', PROBE, toolbox, str(out)], cwd=str(ROOT), env=env,
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-4000:]
        results[toolbox] = json.loads(out.read_text(encoding='utf-8'))
    return results


@pytest.mark.parametrize('toolbox', ['basicsr', 'mmagic'])
def test_registries_only_gain_entries(observed, toolbox):
    before, after = observed[toolbox]['before']['registries'], observed[toolbox]['after']['registries']
    assert set(after) == set(before)
    for registry, entries in before.items():
        for key, entry in entries.items():  # no host entry removed or overwritten
            assert after[registry].get(key) == entry, f'{registry}[{key!r}]: {entry} -> {after[registry].get(key)}'
    plugin = {registry: {key for key, (name, _) in entries.items() if name.startswith('ranksrgan_plugin.')}
              for registry, entries in after.items()}
    new = {registry: set(after[registry]) - set(before[registry]) for registry in after}
    if toolbox == 'basicsr':  # every new entry is a plugin class
        assert new == plugin and all(plugin.values())
    else:  # the announced plugin entries; the rest are MMagic's own models (mmagic.models imports now)
        assert {registry: keys for registry, keys in plugin.items() if keys} == ANNOUNCED_MMAGIC
        for registry, keys in new.items():
            for key in keys - plugin[registry]:
                assert after[registry][key][0].startswith(('mmagic.', 'mmengine.', 'mmcv.', 'torch.')), (registry, key)


@pytest.mark.parametrize('toolbox', ['basicsr', 'mmagic'])
def test_numpy_error_state_unchanged(observed, toolbox):
    """basicsr's import-time np.seterr must not reach an MMagic process through the plugin (issue 16, 3)."""
    assert observed[toolbox]['after']['geterr'] == observed[toolbox]['before']['geterr']


@pytest.mark.parametrize('toolbox', ['basicsr', 'mmagic'])
def test_environment_reports_unchanged(observed, toolbox):
    """mmcv's and MMagic's collect_env work as without the plugin; ``import mmcv.ops`` too (issue 16, 1)."""
    before, after = observed[toolbox]['before']['env'], observed[toolbox]['after']['env']
    assert after == before
    if toolbox == 'mmagic':
        assert after['mmcv.utils.collect_env'][0] == 'ok'
        assert after['mmagic.utils.collect_env.collect_env'][0] == 'ok'


def test_mmagic_import_fallbacks_unchanged(observed):
    """MMagic's ``try: from mmcv.ops import X / except ImportError: X = None`` still gives None (issue 16, 2)."""
    before, after = observed['mmagic']['before']['fallbacks'], observed['mmagic']['after']['fallbacks']
    assert 'mmagic.models.editors.stylegan2.ada.upfirdn2d.upfirdn2d' in before
    assert before['mmagic.models.editors.stylegan2.ada.upfirdn2d.upfirdn2d'] is None
    assert after == before


def test_resume_decision_is_upstreams(observed):
    """For every auto_resume / saved states / resume_state, the plugin resumes what upstream resumes (issue 16, 4)."""
    before, after = observed['basicsr']['before']['resume'], observed['basicsr']['after']['resume']
    assert len(before) == 12
    assert {case: result for case, (result, _) in after.items()} == {case: result for case, (result, _) in
                                                                     before.items()}
    assert after == before  # the options after it too (path.resume_state, check_resume's rewrites)
    assert before['auto_resume=True, saved: no folder, resume_state=elsewhere/5.state'][0] is None
    assert before['auto_resume=True, saved: states 2 and 10, resume_state=elsewhere/5.state'][0] == 10
    assert before['auto_resume=False, saved: states 2 and 10, resume_state=elsewhere/5.state'][0] == 5


def write_marker(path):
    """What the crafted training state would run when unpickled: writes a file."""
    Path(path).write_text('ran', encoding='utf-8')


class RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return write_marker, (self.marker,)


def test_training_state_with_pickled_callable_is_refused(tmp_path):
    """A ``.state`` file carrying a callable is refused, naming the file and the type; nothing runs (issue 16, 5)."""
    marker = tmp_path / 'marker'
    state_file = tmp_path / 'experiments' / 'exp' / 'training_states' / '7.state'
    state_file.parent.mkdir(parents=True)
    torch.save({'epoch': 1, 'iter': 7, 'optimizers': [RunsCodeWhenUnpickled(str(marker))], 'schedulers': []},
               state_file)
    opt = {'name': 'exp', 'auto_resume': True, 'model_type': 'SRModel',
           'path': {'resume_state': None, 'training_states': str(state_file.parent), 'models': str(tmp_path)}}
    with pytest.raises(pickle.UnpicklingError) as caught:
        compat.load_resume_state_any_device(opt)
    assert not marker.exists()
    message = str(caught.value)
    assert str(state_file) in message
    assert f'{write_marker.__module__}.write_marker' in message


def test_training_state_as_basicsr_saves_it_loads(tmp_path):
    """What BasicSR 1.4.2's save_training_state writes (optimizer and scheduler state_dicts) passes the allowlist."""
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR

    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([parameter], lr=1e-4)
    parameter.grad = torch.ones(2)
    optimizer.step()
    schedulers = [MultiStepRestartLR(optimizer, [2, 4]),
                  CosineAnnealingRestartLR(optimizer, periods=[3, 3], restart_weights=[1, 1])]
    torch.save({'epoch': 0, 'iter': 3, 'optimizers': [optimizer.state_dict()],
                'schedulers': [s.state_dict() for s in schedulers]}, tmp_path / '3.state')
    state = read_training_state(str(tmp_path / '3.state'))
    assert state['iter'] == 3 and state['schedulers'][0]['milestones'] == schedulers[0].milestones
