"""Shared test setup: the plugin import (before any basicsr import) and rank-set fixtures."""
import os.path as osp
import sys

import ranksrgan_plugin  # noqa: F401  (must precede every basicsr import: compat alias + registration)

_TESTS_DIR = osp.dirname(osp.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import pytest  # noqa: E402
from rank_set_factory import make_rank_set  # noqa: E402

STORAGES = ('lmdb', 'folder')


@pytest.fixture(params=STORAGES)
def storage(request):
    """Each storage of the rank dataset format: 'lmdb' and 'folder'."""
    return request.param


@pytest.fixture
def rank_set(tmp_path, storage):
    """A default tiny split (4 keys x 3 levels, 40x40 'blur' images) in each storage."""
    return make_rank_set(str(tmp_path / 'train'), storage=storage)


@pytest.fixture
def offset_rank_set(tmp_path, storage):
    """A split whose levels differ by a constant brightness only (non-square 36x44 patches)."""
    return make_rank_set(str(tmp_path / 'train'), storage=storage, mode='offset', size=(36, 44))
