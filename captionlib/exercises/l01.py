"""Lesson 01 exercises: feature maps as regions, pooling, and preprocessing a photo.

Shapes: B batch, E channels, h x w feature map, P = h*w regions, S image side.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..checks import MISSING, Mistake, Part, checked

__all__ = ["PARTS", "to_regions", "pool", "preprocess", "check_to_regions", "check_pool", "check_preprocess"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "preprocess": [Part("resizing", 1, r"resiz|BICUBIC|BILINEAR"),
                   Part("scaling to [0, 1]", 1, r"255|\[0, 1\]"),
                   Part("the channel axis first", 1, r"channels|permute|reshape|height and width|grayscale"),
                   Part("ImageNet normalisation", 1, r"normalis|mean|std")],
    "to_regions": [Part("the order of the regions", 2, r"scrambled|column-major|row \* w")],
    "pool": [Part("the axis pooled", 1, r"dim=|over the batch|feature dimension|B axis"),
             Part("'avg'", 1, r"avg|average|divide by P"),
             Part("'max'", 1, r"'max'|max\b|\.values")],
}

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def to_regions(fmap: torch.Tensor) -> torch.Tensor:
    """(B, E, h, w) -> (B, P, E), region p = row * w + col."""
    return fmap.flatten(2).transpose(1, 2)


def pool(features: torch.Tensor, how: str) -> torch.Tensor:
    """(B, P, E) -> (B, E): the average or the maximum over regions."""
    return features.mean(dim=1) if how == "avg" else features.max(dim=1).values


def preprocess(img: Image.Image, size: int, mean=MEAN, std=STD) -> torch.Tensor:
    """PIL image -> (3, S, S): resized, scaled to [0, 1], normalised per channel."""
    x = torch.from_numpy(np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32))
    x = x.permute(2, 0, 1) / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _fmaps():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 5, 3, 4, generator=g),), (torch.randn(1, 3, 2, 2, generator=g),)]



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "pool": {
        None: ("the recipe: 'avg' is features.mean(dim=1), 'max' is features.max(dim=1).values, both over the P "
               "regions"),
    },
    "preprocess": {
        None: ("the recipe: convert('RGB'), resize to (S, S), to a float tensor, (S, S, 3) -> (3, S, S), / 255, then "
               "(x - mean) / std per channel"),
    },
}

def check_to_regions(fn=MISSING):
    B_E_P = "you returned (B, E, P): transpose the last two axes to get (B, P, E)"
    mistakes = [
        Mistake("regions are scrambled: reshaping (B, E, h, w) straight to (B, P, E) mixes channels and positions. "
                "Move the channel axis last first (flatten(2) then transpose(1, 2), or permute(0, 2, 3, 1))",
                lambda f: f.reshape(f.shape[0], -1, f.shape[1])),
        Mistake("regions are in column-major order (h and w swapped): region p must be row * w + col",
                lambda f: f.permute(0, 3, 2, 1).reshape(f.shape[0], -1, f.shape[1])),
        Mistake(B_E_P, lambda f: f.flatten(2)),
    ]
    recipe = {None: "the recipe: flatten h and w into P = h*w regions (flatten(2) gives (B, E, P)), then put E last "
                    "(transpose(1, 2)): (B, P, E)"}
    def axes(fn) -> str | None:
        out = fn(_fmaps()[0][0])
        if torch.is_tensor(out) and out.dim() == 2:
            return "the output must keep three axes, (B, P, E): flatten only h and w (flatten(2)), not the channels"
        return None

    return checked("to_regions", fn, to_regions, _fmaps(), mistakes=mistakes, recipe=recipe, probes=[axes],
                   axes="BPE", arg_axes={"fmap": "BEhw"})


def check_pool(fn=MISSING):
    g = torch.Generator().manual_seed(1)
    cases = [(torch.randn(2, 6, 4, generator=g), "avg"), (torch.randn(2, 6, 4, generator=g), "max"),
             (torch.randn(3, 4, 6, generator=g), "avg"), (torch.randn(3, 4, 6, generator=g), "max"),
             (torch.randn(1, 5, 3, generator=g), "avg"), (torch.randn(1, 5, 3, generator=g), "max")]    # a batch of one
    mistakes = [
        Mistake("pooled over the feature dimension (dim=2) instead of over the regions (dim=1)",
                lambda f, how: f.mean(dim=2) if how == "avg" else f.max(dim=2).values),
        Mistake("pooled over the batch (dim=0): every image must keep its own vector",
                lambda f, how: f.mean(dim=0) if how == "avg" else f.max(dim=0).values),
        Mistake("'max' returns the average (or 'avg' the maximum): check which branch does what",
                lambda f, how: f.max(dim=1).values if how == "avg" else f.mean(dim=1)),
    ]

    def tuple_hint(args, got):
        if isinstance(got, tuple) or type(got).__name__.endswith("return_types.max"):
            return "torch.max(x, dim) returns (values, indices): take .values"
        return None

    def parts(fn) -> str | None:
        f = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [5.0, 4.0]]])           # (1, P=3, E=2): mean (3, 2/3), max (5, 4)
        avg, mx = fn(f, "avg"), fn(f, "max")
        said = []
        if torch.is_tensor(mx) and not mx.is_floating_point():
            said.append("'max' returns integer indices: torch.max(x, dim) gives (values, indices); take .values")
        if torch.is_tensor(avg) and avg.shape == (1, 2):
            if torch.allclose(avg.float(), f.sum(1)):
                said.append("'avg' is the sum over regions: divide by P, or use mean(dim=1)")
            elif torch.allclose(avg.float(), f.max(1).values) and torch.is_tensor(mx) and torch.allclose(mx.float(), avg.float()):
                said.append("both give the maximum: the 'avg' branch is never taken (compare how == 'avg')")
        return "; ".join(said) or None

    return checked("pool", fn, pool, cases, mistakes=mistakes, hints=[tuple_hint], probes=[parts], axes="BE",
                   arg_axes={"features": "BPE"},
                   recipe=_RECIPES["pool"])


def check_preprocess(fn=MISSING):
    rng = np.random.default_rng(0)
    # Already at the target size, so any resampling filter gives the same pixels: the cases grade scaling,
    # normalising and the axis order; `variants` then resizes (8 -> 5 pixels), where the filter matters too.
    img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).convert("L")
    cases = [(img, 8), (gray, 6)]

    def as_tensor(im, size):
        return torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32))

    mistakes = [
        Mistake("ImageNet normalisation is missing: subtract the mean and divide by the std per channel; the CNN "
                "was trained on normalised pixels and sees garbage otherwise", lambda im, s: as_tensor(im, s).permute(2, 0, 1) / 255),
        Mistake("pixels are not scaled to [0, 1] before normalising: divide by 255 first",
                lambda im, s: (as_tensor(im, s).permute(2, 0, 1) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)),
        Mistake("channels are last, (S, S, 3): torch convolutions want (3, S, S), use permute(2, 0, 1)",
                lambda im, s: (as_tensor(im, s) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)),
    ]
    def normalised(arr: torch.Tensor) -> torch.Tensor:
        return (arr - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)

    def same(a, b) -> bool:
        return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-4)

    def variants(fn, resize_is_all: bool = False) -> str | None:
        """The learner's output on a photo that is resized, against what each plausible slip makes of it.
        resize_is_all: the learner is right on the cases, which need no resizing, so only the resize can be wrong."""
        if not resize_is_all and same(fn(img, 8), preprocess(img, 8)):
            return None                                   # right values without resizing: the slip is elsewhere (dtype?)
        got = fn(img, 5)
        if same(got, preprocess(img, 5)):
            return None
        for name in ("NEAREST", "BICUBIC", "BOX", "HAMMING", "LANCZOS"):
            x = torch.from_numpy(np.asarray(img.resize((5, 5), getattr(Image, name)), dtype=np.float32)).permute(2, 0, 1)
            if same(got, normalised(x / 255)):
                return (f"the image is resized with {name}{' (what resize() uses when no filter is given)' if name == 'BICUBIC' else ''}: "
                        "the course's features are made with Image.BILINEAR: img.resize((size, size), Image.BILINEAR)")
        arr = as_tensor(img, 5)                                            # (S, S, 3), 0..255
        if same(got, normalised(arr.reshape(3, 5, 5) / 255)):
            return ("reshape(3, S, S) on the (S, S, 3) array keeps the memory order, so the pixels are scrambled: move "
                    "the channel axis with permute(2, 0, 1)")
        if same(got, normalised(arr.permute(2, 0, 1)) / 255):
            return "normalised before scaling, then divided by 255: scale to [0, 1] first (/ 255), then (x - mean) / std"
        if not resize_is_all:
            return None
        return ("a photo that must be resized (8 x 8 pixels to 5 x 5) comes out wrong: resize with "
                "img.resize((size, size), Image.BILINEAR) before anything else")

    def parts(fn) -> str | None:
        """One colour, then a gradient along the width: the normalisation, then the axis order."""
        said = []
        x = fn(Image.new("RGB", (4, 4), (51, 102, 204)), 4)                  # 0.2, 0.4, 0.8 after /255
        v = torch.tensor([0.2, 0.4, 0.8])
        if torch.is_tensor(x) and x.shape == (3, 4, 4):
            got = x[:, 0, 0].float()
            if torch.allclose(got, (v - 0.5) / 0.5, atol=1e-4):
                said.append("normalised with 0.5: use ImageNet's mean and std, the statistics the CNN was trained with")
            elif torch.allclose(got, (v - torch.tensor(STD)) / torch.tensor(MEAN), atol=1e-4):
                said.append("mean and std are swapped: (x - mean) / std")
        ramp = Image.fromarray(np.tile(np.arange(0, 240, 60, dtype=np.uint8)[None, :, None], (4, 1, 3)))   # varies along W
        y = fn(ramp, 4)
        if torch.is_tensor(y) and y.shape == (3, 4, 4) and bool((y[0, :, 0] != y[0, 0, 0]).any()) and \
                bool((y[0, 0, :] == y[0, 0, 0]).all()):
            said.append("height and width are swapped: permute(2, 0, 1) turns (H, W, 3) into (3, H, W); "
                        "permute(2, 1, 0) gives (3, W, H)")
        return "; ".join(said) or None

    gray = {RuntimeError: lambda e, args: ("a grayscale photo has one channel: convert it with img.convert('RGB') "
                                           "first") if getattr(args[0], "mode", "RGB") != "RGB" else None,
            ValueError: lambda e, args: ("a grayscale photo has one channel: convert it with img.convert('RGB') "
                                         "first") if getattr(args[0], "mode", "RGB") != "RGB" else None}
    return checked("preprocess", fn, preprocess, cases, mistakes=mistakes, probes=[variants, parts], errors=gray,
                   properties=[lambda fn: variants(fn, resize_is_all=True)],
                   recipe=_RECIPES["preprocess"])
