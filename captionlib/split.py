"""A `CaptionSplit`: one split of one dataset, the unit every part of the course passes around.

Lesson 00 introduces it. Its own module so that the two places that make splits, `data` (the embedded
shapes, and the registry of datasets) and `datasets` (real folders: Flickr8k, Flickr30k, COCO), both
import it and neither imports the other's caller: data -> datasets -> split, no circle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .vocab import tokenize

__all__ = ["CaptionSplit"]


@dataclass
class CaptionSplit:
    dataset: str
    split: str
    image_ids: list                  # one id (file name or index) per image
    captions: list                   # captions[i] = the reference strings of image i
    images: Sequence                 # images[i] -> PIL RGB image (may raise ImageLoadError)
    fingerprint: str                 # changes whenever the images could change
    scenes: list | None = None       # shapes only: objects, boxes and word->object refs

    def __len__(self) -> int:
        return len(self.image_ids)

    def __post_init__(self):
        if len(self.captions) != len(self.image_ids):
            raise ValueError(f"{self.dataset}/{self.split}: {len(self.image_ids)} images but {len(self.captions)} caption lists")
        for i, caps in enumerate(self.captions):
            if not caps or not any(tokenize(c) for c in caps):
                raise ValueError(f"{self.dataset}/{self.split}: image {self.image_ids[i]!r} has no non-empty caption; "
                                 "fix or drop it in the caption file")
