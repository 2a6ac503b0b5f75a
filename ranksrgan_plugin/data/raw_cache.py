"""The raw-image cache: images decoded once into ``.npy`` files (BGR uint8) that readers memory-map.

One entry per source image, ``<stem>-<path id>-<mode><version>.npy``. The path id (10 hex digits of the
SHA-1 of the source's absolute path) finds a source's entries among those of every dataset sharing the
folder. Mode ``m`` (the default) keys the version on the source's path, size and modification time (the
key the cache always had): a copy that keeps both (``cp -p``, ``rsync -a``, ``tar``) but holds other pixels
is served the old pixels. Mode ``c`` (``verify``) keys it on a BLAKE2b digest of the source's bytes: every
process reads every source when the dataset is made (hashing at about 1 GB/s), and a changed file is
decoded again whatever its size and time.

Building (:meth:`RawImageCache.build`) decodes what is missing while holding an exclusive ``flock`` on
``.raw_cache.lock`` in the folder (unlinked when done), so builders sharing no process group (two jobs,
two nodes on a shared file system) decode each image once: one that gets the lock after another finds
the entries present. Where the file system refuses ``flock`` (Lustre without ``-o flock``) it builds
unlocked: still correct (unique temporary files renamed into place), an image may be decoded twice.
:func:`build_once` adds the process group: only LOCAL_RANK 0 of each node builds, the others wait.

Pruned while building (under the lock): the same source's entries of the same mode and another version
when its new entry is written (the source changed); this cache's temporary files untouched for
``STALE_TEMPORARY_SECONDS`` (a builder killed mid-write), the former ``<entry>.<pid>.tmp.npy`` ones too.
Adopted: an entry of the former naming ``<stem>-<key>.npy`` whose key is the source's current one
(mode ``m``): renamed, not decoded again. Never touched: other sources' entries (other datasets sharing
the folder, stale or not: nothing says whether a job still reads them), the other mode's entries of a
source (a dataset with the other ``raw_cache_verify`` may read them), entries of deleted sources and any
file of another naming. Deleting the folder reclaims those.
"""
import errno
import fcntl
import hashlib
import os
import os.path as osp
import re
import socket
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager, suppress
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch.distributed as dist
from basicsr.utils import get_root_logger
from tqdm import tqdm

from .rank_dataset_format import RankDatasetError

LOCK_NAME = '.raw_cache.lock'
STALE_TEMPORARY_SECONDS = 600  # a write takes milliseconds; older ones lost their builder
ENTRY = re.compile(r'(?P<stem>.+)-(?P<source>[0-9a-f]{10})-(?P<mode>[mc])(?P<version>[0-9a-f]{12})\.npy')
TEMPORARY = re.compile(r'(?P<entry>.+\.npy)\.[A-Za-z0-9._-]+\.\d+\.[0-9a-f]{32}\.tmp')
FORMER_TEMPORARY = re.compile(r'.+-[0-9a-f]{12}\.npy\.\d+\.tmp\.npy')


def stat_key(source: str) -> str:
    """12 hex digits of the SHA-1 of ``source``'s absolute path, size and modification time (mode ``m``)."""
    stat = os.stat(source)
    key = f'{osp.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}'.encode()
    return hashlib.sha1(key).hexdigest()[:12]


def content_key(source: str, chunk: int = 1 << 20) -> str:
    """12 hex digits of the BLAKE2b digest of ``source``'s bytes, read in chunks (mode ``c``)."""
    digest = hashlib.blake2b(digest_size=6)
    with open(source, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def decode(source: str) -> np.ndarray:
    """``source`` as cv2 reads a colour image (BGR uint8)."""
    img = cv2.imread(source, cv2.IMREAD_COLOR)
    if img is None:
        raise RankDatasetError(f'Cannot decode image {source} for the raw cache.')
    return img


def temporary_name(target: str) -> str:
    """``target`` plus host, pid and a random token: unique across processes and nodes sharing the folder."""
    host = re.sub(r'[^A-Za-z0-9._-]', '_', socket.gethostname())
    return f'{target}.{host}.{os.getpid()}.{uuid.uuid4().hex}.tmp'


def write_entry(source: str, target: str) -> None:
    """``source`` decoded, saved to ``target`` atomically (a temporary file renamed into place)."""
    img = decode(source)
    tmp = temporary_name(target)
    try:
        with open(tmp, 'xb') as f:
            np.save(f, img)
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def family(name: str) -> Optional[Tuple[str, str, str]]:
    """``(stem, path id, mode)`` of an entry's file name: the entries one source has in one mode; else None."""
    match = ENTRY.fullmatch(name)
    return (match['stem'], match['source'], match['mode']) if match else None


def prune_temporary(folder: str, names: Iterable[str]) -> None:
    """Remove this cache's temporary files among ``names`` untouched for ``STALE_TEMPORARY_SECONDS``."""
    now = time.time()
    for name in names:
        ours = TEMPORARY.fullmatch(name)
        if (ours and ENTRY.fullmatch(ours['entry'])) or FORMER_TEMPORARY.fullmatch(name):
            path = osp.join(folder, name)
            with suppress(FileNotFoundError):
                if now - os.stat(path).st_mtime > STALE_TEMPORARY_SECONDS:
                    os.remove(path)


def _same_file(fd: int, path: str) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)


def _acquire(path: str) -> Optional[int]:
    """A descriptor of ``path`` holding its exclusive ``flock``; None where the file system refuses one."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            get_root_logger().warning(f'Raw cache: cannot open the lock {path} ({error}); building unlocked.')
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            os.close(fd)
            if error.errno == errno.ESTALE:  # NFS: the holder removed it meanwhile
                continue
            get_root_logger().warning(f'Raw cache: no flock on {path} ({error}); building unlocked.')
            return None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder unlinked it before letting go: lock the file now at the path


@contextmanager
def exclusive_lock(folder: str) -> Iterator[bool]:
    """Hold the folder's build lock (an exclusive ``flock`` on ``LOCK_NAME``); yields whether it is held."""
    path = osp.join(folder, LOCK_NAME)
    fd = _acquire(path)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            with suppress(FileNotFoundError):
                os.unlink(path)  # while held: a waiter then finds its file unlinked and opens a new one
            os.close(fd)


class RawImageCache:
    """A folder of images decoded once (module docstring): :meth:`entry` names one, :meth:`build` makes them.

    Args:
        folder: the cache folder (made if missing); several datasets may share it.
        verify: key the entries on the sources' bytes (mode ``c``) instead of their size and time.
    """

    def __init__(self, folder: str, verify: bool = False) -> None:
        self.folder = folder
        self.verify = verify
        os.makedirs(folder, exist_ok=True)

    def entry(self, source: str) -> str:
        """The path of ``source``'s entry for its current content."""
        path_id = hashlib.sha1(osp.abspath(source).encode()).hexdigest()[:10]
        version = f'c{content_key(source)}' if self.verify else f'm{stat_key(source)}'
        return osp.join(self.folder, f'{_stem(source)}-{path_id}-{version}.npy')

    def build(self, sources: Iterable[str], desc: str = 'raw cache') -> Dict[str, str]:
        """Each source's entry; the missing ones are decoded under the folder's lock, with the pruning."""
        entries = {source: self.entry(source) for source in sources}
        if not all(osp.isfile(target) for target in entries.values()):
            with exclusive_lock(self.folder):
                self._fill(entries, desc)
        return entries

    def _fill(self, entries: Dict[str, str], desc: str) -> None:
        names = os.listdir(self.folder)
        prune_temporary(self.folder, names)
        families = defaultdict(list)
        for name in names:
            if family(name):
                families[family(name)].append(name)
        missing = [source for source, target in entries.items() if not osp.isfile(target)]  # another built them?
        for source in tqdm(missing, desc=desc, unit='img', disable=not missing):
            target = entries[source]
            if not self._adopt_former(source, target):
                write_entry(source, target)
            for name in families[family(osp.basename(target))]:
                if name != osp.basename(target):
                    with suppress(FileNotFoundError):
                        os.remove(osp.join(self.folder, name))

    def _adopt_former(self, source: str, target: str) -> bool:
        if self.verify:
            return False
        try:
            os.replace(osp.join(self.folder, f'{_stem(source)}-{stat_key(source)}.npy'), target)
        except FileNotFoundError:
            return False
        return True


def _stem(source: str) -> str:
    return osp.splitext(osp.basename(source))[0]


def local_rank() -> int:
    """This process's rank on its node: $LOCAL_RANK (torchrun, BasicSR's slurm launcher), else its global rank."""
    return int(os.environ.get('LOCAL_RANK', dist.get_rank()))


def build_once(cache: RawImageCache, sources: List[str], desc: str = 'raw cache') -> Dict[str, str]:
    """``cache.build(sources)``, under ``torch.distributed`` by LOCAL_RANK 0 of each node while the others wait.

    Every rank meets at ``dist.barrier()`` (so every rank must make the dataset, as BasicSR's train does),
    also after a failed build: the others then meet the same error instead of the group's timeout. After it
    a rank builds, under the lock, what its node still misses (a folder local to a node whose ranks have no
    LOCAL_RANK). A build longer than the group's timeout (BasicSR: 30 minutes) fails at the barrier.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return cache.build(sources, desc)
    entries = None
    try:
        if local_rank() == 0:
            entries = cache.build(sources, desc)
    finally:
        dist.barrier()
    return entries if entries is not None else cache.build(sources, desc)
