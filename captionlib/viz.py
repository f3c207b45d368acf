"""Pictures: attention maps per word over the image, and training curves.

Lessons 03-08 use it. An attention map α_t (P,) is reshaped to the g x g grid (regions are
row-major, see encoder.py), upsampled to the image size with bilinear smoothing, and drawn over
the image.

Shapes: L caption length, P regions (g*g), S image side.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["upsample_attention", "show_attention", "plot_history"]


def upsample_attention(alpha, size: int) -> np.ndarray:
    """(P,) weights on a g x g grid -> (S, S) smooth map, same total mass per area."""
    a = torch.as_tensor(np.asarray(alpha), dtype=torch.float32)
    g = int(round(math.sqrt(a.numel())))
    if g * g != a.numel():
        raise ValueError(f"attention has {a.numel()} regions, not a square grid")
    up = F.interpolate(a.view(1, 1, g, g), size=(size, size), mode="bilinear", align_corners=False)  # (1, 1, S, S)
    return up[0, 0].numpy()


def show_attention(image: Image.Image, words: list, alphas, cols: int = 5, size: int = 224):
    """One panel per word: the image with where the decoder looked when it wrote that word."""
    import matplotlib.pyplot as plt

    alphas = np.asarray(alphas)
    rows = math.ceil((len(words) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.7 * rows))
    img = np.asarray(image.convert("RGB").resize((size, size)))
    for k, ax in enumerate(np.atleast_1d(axes).flat):
        ax.axis("off")
        if k == 0:
            ax.imshow(img)
            ax.set_title("image", fontsize=10)
        elif k <= len(words):
            ax.imshow(img)
            ax.imshow(upsample_attention(alphas[k - 1], size), cmap="gray", alpha=0.6)
            ax.set_title(words[k - 1], fontsize=11)
    fig.tight_layout()
    return fig


def plot_history(history: dict, title: str = ""):
    """Training loss per step and per epoch, and validation BLEU-4 per epoch."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    steps = history["step_loss"]
    if steps:
        a.plot(steps, alpha=0.3, label="per step")
        per_epoch = len(steps) / max(1, len(history["train_loss"]))
        a.plot([(e + 1) * per_epoch for e in range(len(history["train_loss"]))], history["train_loss"], "o-", label="epoch mean")
    a.set_xlabel("step"); a.set_ylabel("loss"); a.legend(); a.set_title(f"{title} training loss".strip())
    b.plot(range(1, len(history["val_bleu4"]) + 1), history["val_bleu4"], "o-", color="tab:green")
    b.set_xlabel("epoch"); b.set_ylabel("BLEU-4"); b.set_title("validation BLEU-4 (greedy)")
    fig.tight_layout()
    return fig
