"""Fine-tuning the CNN's last blocks together with the decoder (`captionlib train --fine-tune-encoder K`).

No lesson builds it; lesson 01 explains why the course trains on frozen, cached features (one CNN pass per
image instead of one per caption per epoch). With a GPU and a large dataset, unfreezing the last K blocks of
the encoder gains a little more (Xu et al. fine-tune nothing; sgrvinod's tutorial fine-tunes ResNet-101's last
blocks at lr 1e-4 beside the decoder's 4e-4). The batch-norm statistics stay the ImageNet ones
(`Encoder.train` keeps the trunk in eval mode): captioning batches are too small and too alike to re-estimate
them. Each step then reads the batch's images, not cached features: decoding and resizing happen in the
training process (slower on a CPU, as it should be, but it works there too).

The checkpoint keeps the whole trunk's weights ("encoder_model", and "best_encoder_model" with the best
decoder), so `caption` and `evaluate` use the fine-tuned encoder (`load_encoder`), and its features are cached
apart from the frozen backbone's (the encoder's name gets a digest of its weights).

Shapes: B batch, S image side, P regions, E encoder dim.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .images import ImageLoadError, normalize, resized

__all__ = ["pixels", "pixel_batches", "as_input", "EncodedImages", "load_encoder", "trunk_digest"]


def _unreadable(i: int, error) -> RuntimeError:
    return RuntimeError(f"fine-tuning reads every training image, and image {i} cannot be read: {error}. Remove it "
                        "from the split (`captionlib prepare` lists every unreadable image)")


def as_input(encoder, px: torch.Tensor, device, flip: list | None = None) -> torch.Tensor:
    """(b, S, S, 3) uint8 pixels -> the encoder's input (b, 3, S, S) on `device`; flip[k]: mirror row k left to right."""
    if flip is not None and any(flip):
        px = px.clone()
        px[torch.tensor(flip)] = px[torch.tensor(flip)].flip(2)          # the width axis
    return normalize(px.to(device, non_blocking=True), encoder.backbone.mean, encoder.backbone.std)


def pixels(encoder, images, rows: list, device, flip: list | None = None) -> torch.Tensor:
    """images[rows] decoded here, in this process, as the encoder's input (b, 3, S, S) (validation; `as_input`)."""
    out = []
    for i in rows:
        try:
            out.append(resized(images[i], encoder.backbone.image_size))
        except ImageLoadError as e:
            raise _unreadable(i, e) from e
    return as_input(encoder, torch.from_numpy(np.stack(out)), device, flip)


def pixel_batches(encoder, images, batches: list, workers: int):
    """Yield each batch's images[rows] as (b, S, S, 3) uint8, in order. With workers, DataLoader processes decode
    and resize the next batches while the current one trains (features.py's `_Pixels`, which extraction uses too)."""
    from torch.utils.data import DataLoader

    from .features import _as_list, _Pixels

    flat, spans, start = [i for rows in batches for i in rows], [], 0
    for rows in batches:                                                # each batch's positions in flat
        spans.append(list(range(start, start + len(rows))))
        start += len(rows)
    loader = DataLoader(_Pixels(images, flat, encoder.backbone.image_size), batch_sampler=spans, num_workers=workers,
                        collate_fn=_as_list, prefetch_factor=2 if workers else None)
    for batch in loader:
        for i, px, error in batch:
            if px is None:
                raise _unreadable(i, error)
        yield torch.from_numpy(np.stack([px for _, px, _ in batch]))


class EncodedImages:
    """images read like a feature array: `self[rows]` is (b, P, E), the encoder's current features, no gradient.
    What validation decodes from while the encoder is being fine-tuned (no cache: its weights change)."""

    def __init__(self, encoder, images, device):
        self.encoder, self.images, self.device = encoder, images, device

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def __getitem__(self, rows) -> torch.Tensor:
        rows = [int(i) for i in np.atleast_1d(rows)]
        was = self.encoder.training
        self.encoder.eval()
        feats = self.encoder(pixels(self.encoder, self.images, rows, self.device))[0]   # (b, P, E)
        self.encoder.train(was)
        return feats


def trunk_digest(trunk_state: dict) -> str:
    """A short digest of a trunk's weights: the fine-tuned encoder's features get their own cache."""
    h = hashlib.sha256()
    for name, v in sorted(trunk_state.items()):
        t = v.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:10]


def load_encoder(state: dict, backbone: str, grid: int | None):
    """The Encoder a checkpoint's decoder reads: its backbone and grid (from its metadata, else the arguments),
    with the fine-tuned trunk weights when it has them."""
    from .encoder import Encoder

    meta = state.get("meta", {})
    encoder = Encoder(meta.get("backbone", backbone), grid=meta.get("grid", grid))
    weights = state.get("best_encoder_model") or state.get("encoder_model")
    if weights:
        try:
            encoder.trunk.load_state_dict(weights)               # float16 (exported) into float32 parameters
        except RuntimeError as e:
            raise ValueError(f"the checkpoint's fine-tuned encoder does not fit backbone {encoder.name!r}: {e}") from e
        encoder.name = f"{encoder.name}-ft{trunk_digest(encoder.trunk.state_dict())}"
    return encoder
