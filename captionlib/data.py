"""Datasets as the course uses them: splits of (image, reference captions), and training batches.

Lesson 00 builds it. A `CaptionSplit` is one split of one dataset: image ids, the reference
captions of each image, and a sequence that yields each image as a PIL picture. `shapes` is
embedded (rendered from a seed); real datasets (Flickr8k, Flickr30k, COCO) plug into the same
registry. `CaptionPairs` turns a split plus its cached features into (features, caption)
training pairs, each image appearing once per reference, and `collate` pads them into a batch.

Shapes: B batch, T time, P regions, E encoder dim.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import IMAGE_DIRS, load_real
from .shapes import Scene, ShapesConfig, load_shapes, render
from .split import CaptionSplit
from .utils import data_root
from .vocab import Vocab, pad_captions, tokenize

__all__ = ["CaptionSplit", "load_split", "default_tokenizer", "mirrored", "DATASETS", "CaptionPairs", "collate"]


class _Rendered:
    """Shapes scenes as a lazy sequence of PIL images."""

    def __init__(self, scenes: list[Scene], size: int):
        self.scenes, self.size = scenes, size

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int):
        return render(self.scenes[i], self.size)


def _shapes(split: str, root: Path, **options) -> CaptionSplit:
    config = ShapesConfig(**options)
    scenes = load_shapes(config, root / "cache" / "shapes")[split]
    fingerprint = hashlib.sha1(json.dumps([asdict(config), split]).encode()).hexdigest()
    return CaptionSplit("shapes", split, list(range(len(scenes))), [s.captions for s in scenes],
                        _Rendered(scenes, config.image_size), fingerprint, scenes)


# name -> loader(split, root, **options): the embedded shapes, and the real datasets read from folders (datasets.py).
DATASETS: dict[str, Callable[..., CaptionSplit]] = {"shapes": _shapes, **{
    name: functools.partial(load_real, name) for name in IMAGE_DIRS}}


# How a dataset's captions become tokens (vocab.TOKENIZERS): words split on spaces, except for a language written
# without them (lesson 00): Flickr8K-CN's Chinese is cut into words by jieba, as its authors did.
TOKENIZERS = {"flickr8k-cn": "jieba"}


def default_tokenizer(dataset: str) -> str:
    """The tokenizer a dataset's captions are cut with: "jieba" for Flickr8K-CN, "words" for the others."""
    return TOKENIZERS.get(dataset, "words")


def load_split(dataset: str = "shapes", split: str = "train", root: str | Path | None = None, **options) -> CaptionSplit:
    """One split of a dataset. Options go to the dataset (shapes: seed, n_train, ...; real datasets:
    folder, default <data root>/<name>)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
    return DATASETS[dataset](split, Path(root) if root is not None else data_root(), **options)


class _Mirrored:
    """A sequence of images, each flipped left to right."""

    def __init__(self, images: Sequence):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import ImageOps

        return ImageOps.mirror(self.images[i])


def mirrored(split: CaptionSplit) -> CaptionSplit:
    """The same split with every image flipped left to right and the same captions: data augmentation for
    training (a mirrored photo is still described by its captions, except for the rare "left"/"right").
    Its features are cached apart (the fingerprint differs)."""
    return CaptionSplit(split.dataset, f"{split.split}-mirrored", split.image_ids, split.captions, _Mirrored(split.images),
                        split.fingerprint + "|mirrored", None)


class CaptionPairs(Dataset):
    """(features (P, E) float32, encoded caption) pairs over the images that have features.

    Args:
        features: (N, P, E) array-like (a FeatureStore's memmap), row i = image i.
        captions: captions[i] = reference strings of image i.
        vocab: encodes each caption (<start> ... <end>).
        indices: which images to use (e.g. FeatureStore.valid(upto)).
    """

    def __init__(self, features, captions: list, vocab: Vocab, indices: Sequence[int]):
        self.features, self.captions, self.vocab = features, captions, vocab
        self.pairs = [(int(i), vocab.encode(c)) for i in indices for c in captions[int(i)] if tokenize(c)]
        if not self.pairs:
            raise ValueError("no (image, caption) pairs: are the features extracted and the captions non-empty?")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int):
        i, caption = self.pairs[k]
        return torch.from_numpy(np.asarray(self.features[i], dtype=np.float32)), caption, i


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack a list of CaptionPairs items.

    Returns:
        features: (B, P, E) float32
        captions: (B, T) long, padded with <pad> = 0
        lengths: (B,) long
        image_index: (B,) long, row of each item in the feature array
    """
    feats, caps, idx = zip(*batch)
    captions, lengths = pad_captions(caps)
    return torch.stack(feats), captions, lengths, torch.tensor(idx, dtype=torch.long)
