"""Loading real-world image files robustly, and turning them into normalised tensors.

Lesson 01 uses it. Photos arrive grayscale, with alpha, palettised, in CMYK, sideways with an
EXIF rotation tag, or truncated by a failed download; each case becomes a plain RGB image or a
clear `ImageLoadError` naming the file.

Shapes: S image side in pixels.
"""
from __future__ import annotations

import io
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
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale: scale to 8 bits first
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-12) * 255
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGB


def load_image(path: str | Path, data: bytes | None = None) -> Image.Image:
    """Open an image file as upright RGB (EXIF orientation applied).

    data: the file's bytes when it is not on disk (an upload); `path` then only names it in errors.
    """
    path = Path(path)
    if data is None and not path.exists():
        raise ImageLoadError(f"{path}: no such file. Check the path"
                             + ("" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})") + ".")
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            img.load()  # decode now, inside the try, so truncation is caught here
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{path}: not an image file PIL can read ({e}). Remove it or replace it with a JPEG/PNG.") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{path}: the file is corrupt or truncated ({e}). Download it again, or remove it.") from e


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
