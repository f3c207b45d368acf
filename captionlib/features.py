"""The feature cache: run the CNN once per image, keep (N, P, E) float16 on disk, memory-map it.

Lesson 01 builds it. Training a decoder on a frozen encoder only needs each image's features,
so we extract them once (with a progress bar), store them as float16 (half the disk, no loss that
matters for a decoder), and memory-map them so training reads rows without loading the whole
array. The cache folder's name is a hash of everything that changes the numbers (dataset
fingerprint, backbone, grid, image size), so changing any of them starts a new cache.
Extraction is resumable: rows are marked done only after they are flushed to disk, and
`upto=n` extracts just the first n images (a lesson can use a prefix of a split). Every block of
`BLOCK` finished rows gets a checksum (blocks.json), checked the first time a row of it is read,
so bytes changed on disk after extraction are refused, never trained on; one extraction at a
time writes a cache (a second one waits for it). In a torchrun run the processes share the blocks
out and extract them into the one cache together (each writes its own progress file, rank 0 merges them).

Shapes: N images, P regions, E encoder dim.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .encoder import folded
from .images import ImageLoadError, normalize, resized
from .utils import RunLock, atomic_write, pick_device, warn

__all__ = ["cache_key", "FeatureStore", "FeatureCacheError", "BLOCK", "default_workers", "extract_features", "features_for"]


def cache_key(fingerprint: str, backbone: str, grid: int | None, image_size: int) -> str:
    raw = json.dumps([fingerprint, backbone, grid, image_size])
    return f"{backbone}-g{grid}-s{image_size}-" + hashlib.sha1(raw.encode()).hexdigest()[:12]


BLOCK = 32   # rows per checksum: 4 MB of float16 at 49x1280, hashed in a few ms the first time it is read


class FeatureCacheError(ValueError):
    """A cache file changed after extraction (disk damage, another program): its rows are not used."""


def _digest(rows: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rows).tobytes(), digest_size=16).hexdigest()


def _row_indices(key, n: int) -> np.ndarray:
    """The row numbers an index into an (N, ...) array reads: an int, a slice, a list, an array, a tuple."""
    if isinstance(key, tuple):
        key = key[0] if key else slice(None)
    if isinstance(key, slice):
        return np.arange(n)[key]
    idx = np.asarray(key)
    if idx.dtype == bool:
        return np.flatnonzero(idx)
    return np.asarray(idx, dtype=np.int64).reshape(-1) % max(n, 1)


class _CheckedRows:
    """The memory-mapped (N, P, E) features, read like an array; each checksummed block is verified the first
    time one of its rows is read (in this process), so a damaged block raises instead of feeding training."""

    def __init__(self, rows: np.memmap, sums: dict, folder: Path):
        self._rows, self._sums, self._folder, self._checked = rows, sums, folder, set()
        self.shape, self.dtype, self.ndim, self.nbytes = rows.shape, rows.dtype, rows.ndim, rows.nbytes

    def __len__(self) -> int:
        return self.shape[0]

    def _verify(self, rows: np.ndarray) -> None:
        if len(self._checked) == len(self._sums):             # every checksummed block verified: the per-row fast path
            return
        for b in np.unique(rows // BLOCK).tolist():
            if b in self._checked or str(b) not in self._sums:
                continue
            a, z = b * BLOCK, min((b + 1) * BLOCK, self.shape[0])
            if _digest(self._rows[a:z]) != self._sums[str(b)]:
                raise FeatureCacheError(
                    f"feature cache {self._folder}: rows {a}-{z - 1} do not match the checksum written when they were "
                    f"extracted (the file was changed or damaged on disk). Delete {self._folder} and run again: "
                    f"the features are extracted anew")
            self._checked.add(b)

    def __getitem__(self, key):
        if len(self._checked) < len(self._sums):
            self._verify(_row_indices(key, self.shape[0]))
        return self._rows[key]

    def __array__(self, dtype=None, copy=None):
        self._verify(np.arange(self.shape[0]))
        return np.asarray(self._rows, dtype=dtype)


def _read_blocks(path: Path) -> tuple[dict, dict]:
    """(checksums by block, bad images) of a blocks.json or of one process's blocks.rankR.json."""
    sums = json.loads(path.read_text())
    if not isinstance(sums, dict) or sums.get("rows") != BLOCK or not isinstance(sums.get("sums"), dict):
        raise ValueError(f"{path.name} does not hold checksums of {BLOCK}-row blocks")
    return {str(k): str(v) for k, v in sums["sums"].items()}, {str(k): str(v) for k, v in sums.get("bad", {}).items()}


def _rank_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("blocks.rank*.json"))


def _read_sums(folder: Path, bad: dict | None = None) -> dict:
    """The checksums of the finished blocks, with those the processes of a distributed extraction wrote and
    rank 0 has not merged yet (a run killed before the end); their bad images are added to `bad`."""
    path = folder / "blocks.json"
    sums = _read_blocks(path)[0] if path.exists() else {}     # no file: a cache written before checksums
    for part in _rank_files(folder):
        more, more_bad = _read_blocks(part)
        sums.update(more)
        if bad is not None:
            bad.update(more_bad)
    return sums


def _with_checksummed(done: np.ndarray, sums: dict) -> np.ndarray:
    """done, with every checksummed block's rows set: a block gets its checksum only after its rows were flushed,
    so they are done even when a kill came before done.npy was saved."""
    for b in sums:
        done[int(b) * BLOCK:(int(b) + 1) * BLOCK] = True
    return done


class FeatureStore:
    """A read-only view of a cache folder: `features[i]` is image i's (P, E) float16 array (checked, see above)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.shape = tuple(meta["shape"])                                   # (N, P, E)
        bad = json.loads((self.folder / "bad.json").read_text())
        rows, sums = np.memmap(self.folder / "features.f16", np.float16, "r", shape=self.shape), _read_sums(self.folder, bad)
        self.features = _CheckedRows(rows, sums, self.folder)
        self.done = _with_checksummed(np.load(self.folder / "done.npy"), sums)   # (N,) bool
        self.bad = {int(k): v for k, v in bad.items()}

    def __len__(self) -> int:
        return self.shape[0]

    def valid(self, upto: int | None = None) -> np.ndarray:
        """Indices < upto whose features exist (extracted, and the image was readable)."""
        n = len(self) if upto is None else min(upto, len(self))
        return np.array([i for i in range(n) if self.done[i] and i not in self.bad], dtype=np.int64)

    def __getitem__(self, i):
        return self.features[i]


class _Pixels(Dataset):
    """images[todo[k]] decoded and resized, as (index, (S, S, 3) uint8 or None, error or None).

    What DataLoader workers run: JPEG decoding and resizing overlap the CNN's forward pass in the
    main process. An unreadable image comes back as its error message, so one bad file neither
    stops the workers nor the extraction."""

    def __init__(self, images: Sequence, todo: list, size: int):
        self.images, self.todo, self.size = images, todo, size

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int):
        i = self.todo[k]
        try:
            return i, resized(self.images[i], self.size), None
        except ImageLoadError as e:
            return i, None, str(e)


def _as_list(batch: list) -> list:
    return batch


def default_workers(n_images: int) -> int:
    """Decoding processes for extracting n images: none for a handful (starting one costs more than it
    saves), else one per core the forward pass leaves, at least one, at most 4 (benchmarks/: the
    feature-extraction rows)."""
    if n_images < 64:
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@torch.inference_mode()
def _open_cache(folder: Path, n: int):
    """(shape, done, bad, sums) of the cache in `folder`, or None (with a warning) when any of its files is damaged:
    the caller then lays it out anew. A cache of another number of images is refused, not rebuilt."""
    try:
        shape = tuple(json.loads((folder / "meta.json").read_text())["shape"])
        done = np.load(folder / "done.npy")
        bad = {str(k): str(v) for k, v in json.loads((folder / "bad.json").read_text()).items()}
        size = (folder / "features.f16").stat().st_size
        sums = _read_sums(folder, bad)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        warn(f"feature cache {folder} is damaged ({type(e).__name__}: {e}); extracting its features again")
        return None
    if shape[0] != n:
        raise ValueError(f"feature cache {folder} holds {shape[0]} images but the dataset has {n}; delete the folder to rebuild it")
    if len(shape) != 3 or done.shape != (n,) or done.dtype != bool or size != n * shape[1] * shape[2] * 2:
        warn(f"feature cache {folder} is damaged (features.f16 has {size} bytes for {shape}, done.npy "
                      f"{done.shape}); extracting its features again")
        return None
    return shape, _with_checksummed(done, sums), bad, sums


def extract_features(encoder, images: Sequence, key: str, root: str | Path, *, upto: int | None = None,
                     batch_size: int | None = None, device: str = "auto", progress: bool = True,
                     workers: int | None = None, commit_every: float = 5.0, label: str | None = None,
                     world=None) -> FeatureStore:
    """Extract (or finish extracting) features for images[0:upto] into root/key, and open the cache.

    Args:
        encoder: an `Encoder`; its backbone's image size and normalisation, and its forward, are used.
        images: a sequence whose items are PIL images (loading may raise ImageLoadError:
            such images are skipped with a warning and listed in the store's `bad`). With workers,
            it must be picklable (file paths, scenes), as DataLoader datasets are.
        key: the cache name, from `cache_key(...)`.
        workers: DataLoader processes decoding images while the CNN runs (None: `default_workers`).
        commit_every: seconds between writes of the progress files; an interrupted run redoes at
            most this much (rows are marked done only after their features are flushed to disk).
        label: what the progress bar calls the images (default: the cache name).
        world: in a torchrun run (`distributed.init()`), every process calls this with its World: each
            extracts every W-th missing block (whole blocks, so up to BLOCK-1 rows past upto) on its
            device, and all return once the cache is complete.
    Returns:
        a FeatureStore over all len(images) rows; rows >= upto may still be missing.
    """
    folder = Path(root) / key
    folder.mkdir(parents=True, exist_ok=True)
    if world is None:
        with RunLock(folder / "features", doing="extracting features into", wait=True):   # two kernels, one cache
            _merge(folder)                                             # what a killed distributed run left
            return _extract(encoder, images, folder, key, upto, batch_size, device, progress, workers, commit_every, label)
    import torch.distributed as dist

    device = world.device
    with RunLock(folder / "features", doing="extracting features into", wait=True) if world.main else contextlib.nullcontext():
        if world.main:
            _open_or_lay_out(encoder, images, folder, key, device)
            _merge(folder)                                             # what a killed distributed run left
        dist.barrier()                                                 # the files exist before the others open them
        _extract(encoder, images, folder, key, upto, batch_size, device, progress and world.main, workers, commit_every,
                 label, world)
        dist.barrier()                                                 # every share is on disk
        if world.main:
            _merge(folder)
        dist.barrier()
    return FeatureStore(folder)


def _merge(folder: Path) -> None:
    """Fold the processes' progress files into the cache's own (bad images, checksums, then done), and remove them."""
    parts = _rank_files(folder)
    opened = _open_cache(folder, json.loads((folder / "meta.json").read_text())["shape"][0]) if parts else None
    if opened is None:                                                 # nothing to fold in, or a damaged cache
        return
    shape, done, bad, sums = opened
    atomic_write(folder / "bad.json", lambda f: f.write(json.dumps(bad).encode()))
    atomic_write(folder / "blocks.json", lambda f: f.write(json.dumps({"rows": BLOCK, "sums": sums}).encode()))
    atomic_write(folder / "done.npy", lambda f: np.save(f, done))
    for part in parts:
        part.unlink()


def _open_or_lay_out(encoder, images, folder: Path, key: str, device) -> tuple:
    """_open_cache's (shape, done, bad, sums), after laying out a new cache when there is none (or it is damaged)."""
    n = len(images)
    opened = _open_cache(folder, n) if (folder / "meta.json").exists() else None
    if opened is not None:
        return opened
    # Probe a blank image for P and E (not images[0]: a bad first file must be skipped like any other),
    # then lay out the full file.
    side = encoder.backbone.image_size
    with torch.no_grad():
        feats, _ = encoder.to(device).eval()(encoder.preprocess(Image.new("RGB", (side, side))).to(device))
    shape = (n, feats.shape[1], feats.shape[2])
    for part in _rank_files(folder):                              # progress of a cache that is gone
        part.unlink()
    np.memmap(folder / "features.f16", np.float16, "w+", shape=shape).flush()
    atomic_write(folder / "done.npy", lambda f: np.save(f, np.zeros(n, dtype=bool)))
    atomic_write(folder / "bad.json", lambda f: f.write(b"{}"))
    atomic_write(folder / "blocks.json", lambda f: f.write(json.dumps({"rows": BLOCK, "sums": {}}).encode()))
    atomic_write(folder / "meta.json", lambda f: f.write(json.dumps({"shape": shape, "key": key}).encode()))
    return _open_cache(folder, n)


def _extract(encoder, images, folder: Path, key: str, upto, batch_size, device, progress, workers, commit_every, label,
             world=None):
    n, upto = len(images), len(images) if upto is None else min(upto, len(images))
    device = pick_device(device)
    if batch_size is None:  # measured (benchmarks/): small batches stay in a 2-core CPU's caches, GPUs want large ones
        batch_size = 4 if device.type == "cpu" else 64
    shape, done, bad, sums = _open_or_lay_out(encoder, images, folder, key, device)
    if world is None:
        todo, mine = [i for i in range(upto) if not done[i]], None
    else:                                                              # every W-th missing block, whole
        mine = [k for k in range(-(-upto // BLOCK)) if str(k) not in sums][world.rank::world.size]
        todo = [i for k in mine for i in range(k * BLOCK, min((k + 1) * BLOCK, n)) if not done[i]]
        own = {"sums": {}, "bad": {}}                                  # what this process adds: blocks.rankR.json
    if not todo:
        return FeatureStore(folder)
    encoder = folded(encoder.to(device).eval())                        # batch norms folded: the same features, faster
    if device.type == "cpu":  # about 2x faster convolutions on CPU; `normalize` hands over channels-last input
        encoder.trunk.to(memory_format=torch.channels_last)
    b = encoder.backbone
    workers = default_workers(len(todo)) if workers is None else workers
    loader = DataLoader(_Pixels(images, todo, b.image_size), batch_size=batch_size, num_workers=workers,
                        collate_fn=_as_list, pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None,
                        persistent_workers=False)
    out = np.memmap(folder / "features.f16", np.float16, "r+", shape=shape)

    def commit():                                     # data on disk, then its checksums, then "done"
        out.flush()
        if world is not None:                         # its own file: checksums of its finished blocks, its bad images
            for k in mine:
                if str(k) not in sums and done[k * BLOCK:(k + 1) * BLOCK].all():
                    sums[str(k)] = own["sums"][str(k)] = _digest(out[k * BLOCK:(k + 1) * BLOCK])
            payload = json.dumps({"rows": BLOCK, **own}).encode()
            atomic_write(folder / f"blocks.rank{world.rank}.json", lambda f: f.write(payload))
            return
        atomic_write(folder / "bad.json", lambda f: f.write(json.dumps(bad).encode()))
        for k in range(-(-n // BLOCK)):
            if str(k) not in sums and done[k * BLOCK:(k + 1) * BLOCK].all():
                sums[str(k)] = _digest(out[k * BLOCK:(k + 1) * BLOCK])
        atomic_write(folder / "blocks.json", lambda f: f.write(json.dumps({"rows": BLOCK, "sums": sums}).encode()))
        atomic_write(folder / "done.npy", lambda f: np.save(f, done))

    bar = tqdm(total=len(todo), desc=f"features of {label or key}", unit="img", disable=not progress)
    last = time.monotonic()
    try:
        for batch in loader:
            idx = [i for i, px, _ in batch if px is not None]
            for i, _, error in batch:
                if error is not None:
                    warn(f"skipping image {i}: {error}")
                    bad[str(i)] = error
                    if world is not None:
                        own["bad"][str(i)] = error
                    done[i] = True
            if idx:
                pixels = torch.from_numpy(np.stack([px for _, px, _ in batch if px is not None]))   # (b, S, S, 3) uint8
                x = normalize(pixels.to(device, non_blocking=True), b.mean, b.std)                  # (b, 3, S, S)
                feats, _ = encoder(x)                                                              # (b, P, E)
                out[idx] = feats.to(torch.float16).cpu().numpy()
                done[idx] = True
            bar.update(len(batch))
            if time.monotonic() - last > commit_every:
                commit()
                last = time.monotonic()
    finally:                                                           # also on Ctrl-C: keep what was computed
        commit()
        bar.close()
        del out
    return FeatureStore(folder)


def features_for(split, encoder, upto: int | None = None, device: str = "auto", batch_size: int | None = None,
                 progress: bool = True, root: str | Path | None = None, workers: int | None = None,
                 world=None) -> FeatureStore:
    """The cached features of a CaptionSplit (extracting what is missing), under data/cache/features/;
    world: every process of a torchrun run calls it with its World, and they share the work."""
    from .utils import data_root

    key = cache_key(split.fingerprint, encoder.name, encoder.grid, encoder.backbone.image_size)
    root = Path(root) if root is not None else data_root() / "cache" / "features"
    return extract_features(encoder, split.images, f"{split.dataset}-{split.split}-{key}", root, upto=upto,
                            batch_size=batch_size, device=device, progress=progress, workers=workers,
                            label=f"{split.dataset} {split.split}", world=world)
