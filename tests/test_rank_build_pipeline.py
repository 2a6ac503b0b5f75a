"""The rank-dataset build's background stages (reading ahead, writing patches) and its launcher processes."""
import os.path as osp
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from ranksrgan_plugin.rank_dataset import BuildProcesses, RankDatasetBuildError, load_config
from ranksrgan_plugin.rank_dataset.pipeline import PNG_PARAMS, PatchWriter, read_ahead, write_png


def test_read_ahead_keeps_order_and_loads_in_the_background():
    threads = []

    def load(stem):
        threads.append(threading.current_thread().name)
        return stem.upper()

    assert list(read_ahead(load, ['a', 'b', 'c', 'd'], depth=2)) == [('a', 'A'), ('b', 'B'), ('c', 'C'), ('d', 'D')]
    assert threads and all(name.startswith('rank-read') for name in threads)
    assert list(read_ahead(load, [])) == []


def test_read_ahead_raises_the_load_error_at_its_image():
    def load(stem):
        if stem == 'bad':
            raise RankDatasetBuildError(f'Cannot read HR image {stem}')
        return stem

    images = read_ahead(load, ['a', 'bad', 'c'])
    assert next(images) == ('a', 'a')
    with pytest.raises(RankDatasetBuildError, match='Cannot read HR image bad'):
        next(images)


def test_patch_writer_commits_records_in_order_after_their_patches(tmp_path):
    rng = np.random.default_rng(0)
    committed = []

    def commit(record):
        assert all(osp.isfile(path) for path in record['paths']), 'committed before its patches were written'
        committed.append(record['stem'])

    patches = {}
    with PatchWriter(commit, threads=3, max_pending=1) as writer:
        for image in range(5):
            paths = [str(tmp_path / f'level{level}' / f'img{image}_s{k:04d}.png')
                     for level in range(2) for k in range(4)]
            for path in paths:
                patches[path] = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                writer.stage(path, patches[path])
            writer.finish_image({'stem': f'img{image}', 'paths': paths, 'seconds': {'read': 0.5}})
        writer.drain()
    assert committed == [f'img{i}' for i in range(5)]
    for path, patch in patches.items():
        assert np.array_equal(cv2.imread(path, cv2.IMREAD_UNCHANGED), patch)  # lossless
        with open(path, 'rb') as f:
            assert f.read() == cv2.imencode('.png', patch, list(PNG_PARAMS))[1].tobytes()


def test_patch_writer_adds_write_seconds_to_the_record(tmp_path):
    records = []
    with PatchWriter(records.append, threads=2) as writer:
        writer.stage(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
        writer.finish_image({'stem': 'a', 'seconds': {'read': 1.0}})
        writer.drain()
    assert records[0]['seconds']['read'] == 1.0 and 0 < records[0]['seconds']['write'] < 1.0


def test_failed_patch_write_names_the_file_and_commits_nothing(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the level folder should be')
    committed = []
    with pytest.raises(RankDatasetBuildError, match='not_a_folder'):
        with PatchWriter(committed.append, threads=2) as writer:
            writer.stage(str(blocker / 'img_s0000.png'), np.zeros((8, 8, 3), np.uint8))
            writer.finish_image({'stem': 'img', 'seconds': {}})
            writer.drain()
    assert committed == []


def test_write_png_returns_its_seconds(tmp_path):
    started = time.perf_counter()
    seconds = write_png(str(tmp_path / 'sub' / 'p.png'), np.full((16, 16, 3), 7, np.uint8))
    assert 0 < seconds <= time.perf_counter() - started
    assert cv2.imread(str(tmp_path / 'sub' / 'p.png'))[0, 0, 0] == 7


def test_processes_share_the_images_by_rank():
    items = [f'img{i}' for i in range(7)]
    shares = [BuildProcesses(rank, 3).share(items) for rank in range(3)]
    assert shares == [['img0', 'img3', 'img6'], ['img1', 'img4'], ['img2', 'img5']]
    assert BuildProcesses().share(items) == items


def test_each_launcher_process_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert BuildProcesses(rank=3, world_size=4, local_rank=3).device(None) == 'cuda:1'
    assert BuildProcesses(rank=0, world_size=4, local_rank=0).device('cuda') == 'cuda:0'
    assert BuildProcesses(rank=1, world_size=4, local_rank=1).device('cpu') == 'cpu'
    assert BuildProcesses(rank=1, world_size=4, local_rank=1).device('cuda:1') == 'cuda:1'  # explicit: kept
    assert BuildProcesses().device(None) is None  # one process: the build's default
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert BuildProcesses(rank=1, world_size=4, local_rank=1).device(None) is None


def test_io_threads_option_is_checked_and_result_neutral(tmp_path):
    from ranksrgan_plugin.rank_dataset.options import config_fingerprint

    base = {'output': str(tmp_path), 'hr': str(tmp_path), 'levels': [{'name': 'a', 'type': 'hr'},
                                                                      {'name': 'b', 'type': 'hr'}]}
    assert config_fingerprint(load_config(base, io_threads=1)) == config_fingerprint(load_config(base))
    with pytest.raises(RankDatasetBuildError, match='io_threads'):
        load_config(base, io_threads=0)


def test_niqe_in_worker_processes_equals_in_process():
    """``NiqeProcessPool`` (spawned single-threaded workers) gives niqe_batch's scores, in order."""
    from ranksrgan_plugin.iqa import NiqeProcessPool, niqe_batch

    rng = np.random.default_rng(3)
    patches = rng.integers(0, 256, (5, 120, 120, 3), dtype=np.uint8)
    patches[2:] = cv2.GaussianBlur(patches[2:].reshape(-1, 120, 3), (0, 0), 1.5).reshape(3, 120, 120, 3)
    with NiqeProcessPool(2) as pool:
        assert np.array_equal(pool(patches, crop_border=4), niqe_batch(patches, crop_border=4))
        gray = patches[..., 1]
        assert np.array_equal(pool(gray, input_order='HW'), niqe_batch(gray, input_order='HW'))
        assert pool(patches[:0]).shape == (0,)
    with pytest.raises(ValueError, match='>= 1 process'):
        NiqeProcessPool(0)
