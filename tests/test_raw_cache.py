"""The raw-image cache of RawPairedImageDataset (issue 31 item 5): built once, unique temporary names, pruned,
keyed on the images' bytes on request."""
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from ranksrgan_plugin.data import RawPairedImageDataset

HOUR_AGO = time.time() - 3600

# A builder in its own process: counts its decodes (one line per cv2.imread in the log), slowed so that two
# started together overlap. GROUP set: a 2-process gloo group first; else both wait for each other's import.
CHILD = r'''
import json, os, sys, time
import cv2
import torch.distributed as dist
from ranksrgan_plugin.data import RawPairedImageDataset

opt, log, rank = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
imread = cv2.imread

def counted(path, *args):
    with open(log, 'a') as f:
        f.write(f'{rank} {path}\n')
    time.sleep(0.3)
    return imread(path, *args)

cv2.imread = counted
if os.environ.get('GROUP'):
    dist.init_process_group('gloo', init_method=os.environ['GROUP'], rank=rank, world_size=2)
else:
    open(f'{log}.ready{rank}', 'w').close()
    while not os.path.exists(f'{log}.ready{1 - rank}'):
        time.sleep(0.01)
RawPairedImageDataset(opt)
if os.environ.get('GROUP'):
    dist.barrier()
    dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)  # gloo's thread teardown can abort a finished process on this box
'''


def write_pairs(root, count=2, ext='png', seed=0):
    """``count`` random GT 16x16 / LQ 4x4 pairs under root/gt and root/lq; the sources' paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for kind, size in (('gt', 16), ('lq', 4)):
        os.makedirs(root / kind, exist_ok=True)
        for i in range(count):
            paths.append(str(root / kind / f'{i:04d}.{ext}'))
            cv2.imwrite(paths[-1], rng.integers(1, 256, (size, size, 3), dtype=np.uint8))
    return paths


def options(root, cache, **extra):
    return {'name': 'pairs', 'type': 'RawPairedImageDataset', 'dataroot_gt': str(root / 'gt'),
            'dataroot_lq': str(root / 'lq'), 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'phase': 'val',
            'scale': 4, 'raw_cache': str(cache), **extra}


def entries(cache):
    return sorted(name for name in os.listdir(cache) if name.endswith('.npy'))


def gt_sum(dataset, name):
    index = next(i for i, item in enumerate(dataset.paths) if item['gt_path'].endswith(name))
    return dataset[index]['gt'].abs().sum().item()


@pytest.fixture
def decodes(monkeypatch):
    """The paths cv2.imread decodes in this process (the cache's only reader of image files)."""
    seen = []
    imread = cv2.imread

    def counted(path, *args):
        seen.append(path)
        return imread(path, *args)

    monkeypatch.setattr(cv2, 'imread', counted)
    return seen


def run_builders(tmp_path, opt, group=False):
    """Two builder processes started together over ``opt``; ``[(rank, path)]`` of every decode."""
    log = tmp_path / 'decodes.log'
    procs = []
    for rank in (0, 1):
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}
        if group:
            env.update(GROUP=f"file://{tmp_path / 'group'}", LOCAL_RANK=str(rank))
        procs.append(subprocess.Popen([sys.executable, '-c', CHILD, json.dumps(opt), str(log), str(rank)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    return [tuple(line.split(' ', 1)) for line in log.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------
# Built once


def test_two_processes_without_a_group_decode_each_image_once(tmp_path):
    """Two jobs on one folder: the flock makes the second wait, then find every entry present."""
    sources = write_pairs(tmp_path)
    decoded = run_builders(tmp_path, options(tmp_path, tmp_path / 'cache'))
    assert sorted(path for _, path in decoded) == sorted(sources)
    assert len(entries(tmp_path / 'cache')) == 4
    assert '.raw_cache.lock' not in os.listdir(tmp_path / 'cache')


def test_two_ranks_of_a_gloo_group_decode_each_image_once_on_local_rank_0(tmp_path):
    sources = write_pairs(tmp_path)
    decoded = run_builders(tmp_path, options(tmp_path, tmp_path / 'cache'), group=True)
    assert sorted(decoded) == sorted(('0', path) for path in sources)


# ------------------------------------------------------------------------------------------------
# Temporary files


def test_temporary_names_carry_host_pid_and_a_random_token(tmp_path, monkeypatch):
    write_pairs(tmp_path, count=1)
    renamed = []
    replace = os.replace

    def spy(src, dst):
        replace(src, dst)
        renamed.append(os.path.basename(src))  # the renames that happened

    monkeypatch.setattr(os, 'replace', spy)
    RawPairedImageDataset(options(tmp_path, tmp_path / 'cache'))
    assert len(renamed) == 2
    for name in renamed:
        assert f'.{socket.gethostname()}.{os.getpid()}.' in name, name
        assert re.search(r'\.[0-9a-f]{32}\.tmp$', name), name
    assert len({name.split('.')[-2] for name in renamed}) == 2  # a token per file


def test_stale_temporary_files_are_removed_fresh_and_foreign_ones_kept(tmp_path):
    write_pairs(tmp_path, count=1)
    cache = tmp_path / 'cache'
    cache.mkdir()
    entry = '0000-0123456789-m0123456789ab.npy'
    names = {'stale': f'{entry}.node7.42.{"a" * 32}.tmp', 'former': '0000-0123456789ab.npy.42.tmp.npy',
             'fresh': f'{entry}.node7.43.{"b" * 32}.tmp', 'foreign': 'notes.tmp'}
    for key, name in names.items():
        (cache / name).write_bytes(b'x')
        if key != 'fresh':
            os.utime(cache / name, (HOUR_AGO, HOUR_AGO))
    RawPairedImageDataset(options(tmp_path, cache))
    left = set(os.listdir(cache))
    assert names['stale'] not in left and names['former'] not in left
    assert names['fresh'] in left and names['foreign'] in left


# ------------------------------------------------------------------------------------------------
# Pruning


def test_a_changed_source_replaces_its_entry_and_nothing_else(tmp_path):
    """A folder shared by two datasets and both modes: only the changed source's own old entry goes."""
    cache = tmp_path / 'cache'
    write_pairs(tmp_path / 'a')
    write_pairs(tmp_path / 'b', seed=1)
    RawPairedImageDataset(options(tmp_path / 'a', cache))
    RawPairedImageDataset(options(tmp_path / 'a', cache, raw_cache_verify=True))
    RawPairedImageDataset(options(tmp_path / 'b', cache))
    (cache / 'notes.txt').write_text('mine')
    (cache / '0001-0123456789ab.npy').write_bytes(b'other naming')
    before = set(os.listdir(cache))
    assert len(entries(cache)) == 12 + 1
    cv2.imwrite(str(tmp_path / 'a' / 'gt' / '0001.png'), np.zeros((16, 16, 3), np.uint8))
    os.utime(tmp_path / 'a' / 'gt' / '0001.png', ns=(1, 1))
    dataset = RawPairedImageDataset(options(tmp_path / 'a', cache))
    after = set(os.listdir(cache))
    new = dataset.raw[str(tmp_path / 'a' / 'gt' / '0001.png')]
    assert after - before == {os.path.basename(new)}
    (gone,) = before - after
    assert gone.startswith('0001-') and gone.split('-')[1] == os.path.basename(new).split('-')[1]
    assert gone.split('-')[2].startswith('m')  # the same mode's old version; the verify entry stays
    assert gt_sum(dataset, '0001.png') == 0


def test_a_dataset_whose_entry_a_later_build_pruned_maps_the_new_one(tmp_path):
    write_pairs(tmp_path)
    first = RawPairedImageDataset(options(tmp_path, tmp_path / 'cache'))
    cv2.imwrite(str(tmp_path / 'gt' / '0001.png'), np.zeros((16, 16, 3), np.uint8))
    os.utime(tmp_path / 'gt' / '0001.png', ns=(1, 1))
    RawPairedImageDataset(options(tmp_path, tmp_path / 'cache'))
    assert gt_sum(first, '0001.png') == 0
    assert len(entries(tmp_path / 'cache')) == 4


def test_an_entry_of_the_former_naming_is_adopted_not_decoded(tmp_path, decodes):
    sources = write_pairs(tmp_path, count=1)
    cache = tmp_path / 'cache'
    cache.mkdir()
    stat = os.stat(sources[0])
    key = hashlib.sha1(f'{os.path.abspath(sources[0])}|{stat.st_size}|{stat.st_mtime_ns}'.encode()).hexdigest()
    former = cache / f'0000-{key[:12]}.npy'
    np.save(former, np.zeros((16, 16, 3), np.uint8))  # marked: zeros, where the source has none
    dataset = RawPairedImageDataset(options(tmp_path, cache))
    assert decodes == [sources[1]] and not former.exists()
    assert gt_sum(dataset, '0000.png') == 0 and len(entries(cache)) == 2


# ------------------------------------------------------------------------------------------------
# raw_cache_verify


def copy_keeping_size_and_time(path):
    """Other pixels at ``path`` (a BMP: the same size), its modification time put back as cp -p would."""
    stat = os.stat(path)
    cv2.imwrite(path, np.zeros((16, 16, 3), np.uint8))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size


def test_without_verify_a_copy_keeping_size_and_time_serves_the_old_pixels(tmp_path):
    """The default's documented limit: the key is path, size and modification time."""
    write_pairs(tmp_path, ext='bmp')
    RawPairedImageDataset(options(tmp_path, tmp_path / 'cache'))
    copy_keeping_size_and_time(str(tmp_path / 'gt' / '0001.bmp'))
    assert gt_sum(RawPairedImageDataset(options(tmp_path, tmp_path / 'cache')), '0001.bmp') > 0


def test_with_verify_the_new_pixels_are_served_and_unchanged_files_not_decoded_again(tmp_path, decodes):
    write_pairs(tmp_path, ext='bmp')
    opt = options(tmp_path, tmp_path / 'cache', raw_cache_verify=True)
    RawPairedImageDataset(opt)
    assert len(decodes) == 4
    RawPairedImageDataset(opt)
    assert len(decodes) == 4
    copy_keeping_size_and_time(str(tmp_path / 'gt' / '0001.bmp'))
    dataset = RawPairedImageDataset(opt)
    assert decodes[4:] == [str(tmp_path / 'gt' / '0001.bmp')]
    assert gt_sum(dataset, '0001.bmp') == 0 and len(entries(tmp_path / 'cache')) == 4


@pytest.mark.parametrize('value', ['true', 1, None])
def test_raw_cache_verify_must_be_true_or_false(tmp_path, value):
    write_pairs(tmp_path, count=1)
    with pytest.raises(ValueError, match='raw_cache_verify'):
        RawPairedImageDataset(options(tmp_path, tmp_path / 'cache', raw_cache_verify=value))
