"""Small helpers every module shares: device choice, seeding, the data folder, atomic saves."""
from __future__ import annotations

import errno
import glob
import io
import os
import random
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["CaptionlibWarning", "warn", "DiskFullError", "pick_device", "seed_everything", "data_root", "shipped_checkpoint", "atomic_write", "atomic_save", "load_checkpoint",
           "RunLock"]

CHECKOUT = Path(__file__).resolve().parents[1]   # the course's folder, when captionlib runs from it


class CaptionlibWarning(UserWarning):
    """Something captionlib handled on purpose and tells you about (a damaged cache rebuilt, an image skipped).
    Shown as one line, "warning: ...", like the command line's other notes: not as Python's warning with
    the source file and line, which is about captionlib's code, not about your data. Still a warning, so
    `warnings.simplefilter` and pytest.warns see it."""


_format = warnings.formatwarning


def _formatwarning(message, category, filename, lineno, line=None):
    if issubclass(category, CaptionlibWarning):
        return f"warning: {message}\n"
    return _format(message, category, filename, lineno, line)


warnings.formatwarning = _formatwarning


def warn(message: str) -> None:
    """Tell the user about something handled on purpose: one line on stderr, "warning: MESSAGE"."""
    warnings.warn(message, CaptionlibWarning, stacklevel=2)


class DiskFullError(RuntimeError):
    """A file could not be written because the disk, a quota or a file-size limit is full."""


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else Apple MPS, else CPU. 'cuda' without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for, but torch sees no CUDA GPU here. Use device='auto' or 'cpu'.")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA), so a run can be repeated exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def data_root() -> Path:
    """Where datasets and caches live: $CAPTIONLIB_DATA, else the checkout's data/, else ~/.cache/captionlib."""
    if os.environ.get("CAPTIONLIB_DATA"):
        root = Path(os.environ["CAPTIONLIB_DATA"]).expanduser()
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"CAPTIONLIB_DATA={os.environ['CAPTIONLIB_DATA']} names a file, not a folder. The variable "
                                     "says where captionlib keeps datasets and caches: point it at a folder (it is made "
                                     "if missing), or unset it to use the course's data/")
        return root
    checkout = CHECKOUT / "data"
    if (checkout / "README.md").exists():
        return checkout
    return Path.home() / ".cache" / "captionlib"


def shipped_checkpoint(dataset: str = "flickr8k", backbone: str = "efficientnet-lite0") -> Path:
    """Where the course keeps the model it ships (data/checkpoints/DATASET-BACKBONE.pt in the checkout, with
    its MODEL_CARD.md), whatever $CAPTIONLIB_DATA says; the file may not exist (a pip install without the course)."""
    return CHECKOUT / "data" / "checkpoints" / f"{dataset}-{backbone}.pt"


def atomic_write(path: str | Path, write) -> Path:
    """Call write(binary_file) on a temporary file in the same folder, then rename it to `path`:
    a crash or Ctrl-C never leaves a torn file, and the old file stays until the new one is whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())               # mkstemp makes 0600; a saved file should read like any other
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise DiskFullError(_full(path, e)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sweep(path)
    return path


def _full(path: Path, e: OSError) -> str:
    """What a full disk (or quota, or file-size limit) means for the file that was being written."""
    what = {errno.EFBIG: "a file-size limit (ulimit -f) is reached"}.get(e.errno, "the disk (or your quota) is full")
    try:
        free = f"; {shutil.disk_usage(path.parent).free / 2 ** 20:.0f} MB are free in {path.parent}"
    except OSError:
        free = ""
    kept = f"The previous {path} is intact." if path.exists() else f"Nothing was written to {path}."
    return f"could not write {path}: {what}{free}. {kept} Free some space (or raise the limit) and run again"


STALE_TMP_S = 3600      # no save takes an hour: a temporary file that old was left by a killed process


def _sweep(path: Path) -> None:
    """Remove the temporary files that killed saves of `path` left behind (`kill -9` skips the cleanup above)."""
    now = time.time()
    for old in path.parent.glob(glob.escape(path.name) + ".*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_TMP_S:
                old.unlink()
        except OSError:
            pass          # gone already, or not ours to remove


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj, path: str | Path) -> Path:
    """torch.save, atomically (see atomic_write). Serialised in memory first, so a full disk fails in the write
    with the operating system's own reason (DiskFullError), not inside torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """torch.load with weights_only=True (no code runs from the file), with a clear error if missing/corrupt."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint there. Train one with `captionlib train`, or check the path.")
    if not path.is_file():
        raise ValueError(f"{path} is not a file (a folder?): give the checkpoint file itself, e.g. {path / 'model.pt'}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle/zip errors differ across torch versions
        # torch's own message may advise weights_only=False: that would run whatever code the file holds. Not passed on.
        reason = "it holds objects other than tensors and plain data (code), which are never unpickled here" \
            if "unsupported global" in str(e).lower() else f"it is truncated, damaged or not a torch file ({type(e).__name__})"
        raise ValueError(f"{path}: not a readable captionlib checkpoint: {reason}. Train it again, or download it again.") from None


class RunLock:
    """`with RunLock(checkpoint):` one run at a time writes a checkpoint (or a feature cache). A second run
    pointed at the same file (two notebooks, two terminals) is refused with the first one's process id, or with
    `wait=True` waits for it, instead of both overwriting it in turn; a lock left by a killed run is taken over.
    The lock names its process and machine ("pid host"): on a shared file system (several machines, torchrun)
    a lock held from another machine is never taken for a dead run's, since its process cannot be looked up here."""

    def __init__(self, path: str | Path, doing: str = "training into", wait: bool = False, poll: float = 0.5):
        self.path, self.doing, self.wait, self.poll = Path(str(path) + ".lock"), doing, wait, poll

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        said = False
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner, host = self._holder()
                elsewhere = host is not None and host != socket.gethostname()
                if owner is not None and (elsewhere or owner != os.getpid() and _alive(owner)):
                    target = self.path.with_suffix("")
                    who = f"process {owner}" + (f" on {host}" if elsewhere else "")
                    if not self.wait:
                        raise RuntimeError(f"another run ({who}) is {self.doing} {target} now. "
                                           f"Wait for it, stop it, or give this run another --checkpoint "
                                           f"(if no such run exists, delete {self.path})") from None
                    if not said:
                        print(f"waiting for {who}, which is {self.doing} {target} "
                              f"(if no such process runs, delete {self.path})", flush=True)
                        said = True
                    time.sleep(self.poll)
                    continue
                if owner is None and time.time() - _mtime(self.path) < 2:
                    time.sleep(self.poll)                   # just created: its owner has not written its pid yet
                    continue
                self.path.unlink(missing_ok=True)           # left by a killed run (or by this process): take it over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}")
            return self

    def __exit__(self, *exc) -> None:
        if self._holder() == (os.getpid(), socket.gethostname()):
            self.path.unlink(missing_ok=True)

    def _holder(self) -> tuple[int | None, str | None]:
        """(pid, machine) written in the lock; the machine is None in a lock from before it was written."""
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
            return int(pid), host or None
        except (OSError, ValueError):
            return None, None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                                   # someone else's process: alive
        return True
    return True
