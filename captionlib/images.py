"""Loading real-world image files robustly, and turning them into normalised tensors.

Lesson 01 uses it. Photos arrive grayscale, with alpha, palettised, in CMYK, sideways with an
EXIF rotation tag, or truncated by a failed download; each case becomes a plain RGB image or a
clear `ImageLoadError` naming the file.

Shapes: S image side in pixels.
"""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "load_image", "to_rgb", "resized", "normalize", "transform", "to_tensor"]

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail loudly, not load half grey


class ImageLoadError(ValueError):
    """An image file that cannot be read; the message names the file and what to do."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparent pixels become white, not black (as a viewer shows them)."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit integer or float grayscale: to 8 bits first
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, 0.0)                  # NaN/inf pixels (float TIFFs) become the darkest value
        low, high = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        if img.mode != "F" and low >= 0 and high <= 65535:   # the usual 8- and 16-bit ranges keep their meaning
            low, high = 0.0, (65535.0 if high > 255 else 255.0)
        arr = (np.clip(arr, low, None) - low) / max(high - low, 1e-12) * 255
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGB


def load_image(path: str | Path, data: bytes | None = None) -> Image.Image:
    """Open an image file as upright RGB (EXIF orientation applied).

    data: the file's bytes when it is not on disk (an upload); `path` then only names it in errors.
    """
    if data is None:
        _check_file(path)
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)   # PIL only warns below 2x its limit
            with Image.open(io.BytesIO(data) if data is not None else path) as img:
                img.load()  # decode now, inside the try, so truncation is caught here
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        declared = re.search(r"\d+ pixels", str(e))
        raise ImageLoadError(f"{path}: the image declares {declared.group() if declared else 'too many pixels'}, more than "
                             f"the {Image.MAX_IMAGE_PIXELS:,} that are decoded safely (a decompression bomb, or a huge scan). "
                             "Resize it below about 9000x9000 first.") from None
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{path}: not an image file PIL can read ({e}). Remove it or replace it with a JPEG/PNG.") from e
    except PermissionError:
        raise ImageLoadError(f"{path}: permission denied: this user may not read it (chmod a+r, or copy it).") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{path}: the file is corrupt or truncated ({e}). Download it again, or remove it.") from e


def _check_file(path: str | Path) -> None:
    """What is wrong with `path` as an image file, said before PIL tries it (a pipe would block forever)."""
    if str(path).strip() == "":
        raise ImageLoadError("an empty path was given as an image: name a file")
    path = Path(path)
    where = "" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such file{where}. Check the path.") from None
    except PermissionError:
        raise ImageLoadError(f"{path}: permission denied on a folder above it: this user may not reach it.") from None
    except OSError as e:          # a symlink loop, a name too long, ...
        raise ImageLoadError(f"{path}: cannot be reached ({e.strerror or e}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(f"{path} is a folder, not an image file{_inside(path)}")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(f"{path} is not a regular file (a pipe, socket or device): save the image to a file and "
                             "name that file.")
    if not os.access(path, os.R_OK):
        raise ImageLoadError(f"{path}: permission denied: this user may not read it (chmod a+r, or copy it).")
    if info.st_size == 0:
        raise ImageLoadError(f"{path} is empty (0 bytes): a download that failed? Download it again, or remove it.")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def _inside(folder: Path) -> str:
    """What a folder given as an image holds, said so that the person can name the right file."""
    try:
        images = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError:
        return "."
    if not images:
        return " (it holds no image files)."
    shown = " ".join(str(folder / name) for name in images[:3])
    return f". It holds {len(images)} image file(s); name them, e.g. {shown}" + (" ..." if len(images) > 3 else "")


def resized(img: Image.Image, size: int) -> np.ndarray:
    """One PIL image -> (S, S, 3) uint8, squashed to S x S (as in the Show-Attend-Tell setup), bilinear.

    The cheap half of preprocessing that a data-loading worker can do: uint8 is a quarter of the
    bytes of float32 to send back to the main process (or to a GPU)."""
    img = to_rgb(img)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32, each channel (x/255 - mean) / std.

    The result is a permuted view of the pixels, so its memory is channels-last: the layout CPU
    convolutions are fastest in (features.py), with no extra copy. Runs on the pixels' device."""
    x = pixels.permute(0, 3, 1, 2).float()                              # (B, 3, S, S), channels-last strides
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) * 255
    return x.sub_(m).div_(s)


def transform(size: int, mean: Sequence[float], std: Sequence[float]):
    """The preprocessing as the torchvision pipeline every captioning tutorial writes: PIL image -> (3, S, S).

    Any mode to RGB, squashed to S x S with PIL's bilinear filter, scaled to [0, 1], normalised per
    channel. Equal (to float rounding) to `normalize(resized(...))`, the split form that feature
    extraction runs in its loader workers; use this one anywhere a torchvision transform fits (a
    `torchvision.datasets.ImageFolder`, your own Dataset)."""
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose([v2.Lambda(to_rgb), v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR),
                       v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def to_tensor(images: Sequence[Image.Image] | Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """PIL images -> one normalised batch, through `transform`.

    Returns:
        (B, 3, S, S) float32, each channel (x/255 - mean) / std. Images are resized to S x S
        (squashed, as in the Show-Attend-Tell setup) with bilinear filtering.
    """
    if isinstance(images, Image.Image):
        images = [images]
    pipeline = transform(size, mean, std)
    return torch.stack([pipeline(im) for im in images])
