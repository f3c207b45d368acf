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

__all__ = ["upsample_attention", "show_attention", "plot_history", "draw_beam_tree"]


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
    """Training loss per step and per epoch, and validation BLEU-4 per epoch. When the loss holds the doubly
    stochastic attention penalty (lesson 04), the cross-entropy and the penalty are drawn apart: only the
    cross-entropy compares with a model trained without it."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    steps = np.asarray(history["step_loss"], dtype=float)
    penalty = np.asarray(history.get("step_penalty") or [], dtype=float)
    split = len(penalty) == len(steps) and len(steps) and penalty.max() > 0
    if len(steps):
        epochs = max(1, len(history["train_loss"]))
        per_epoch = len(steps) / epochs
        ends = [(e + 1) * per_epoch for e in range(len(history["train_loss"]))]
        ce = steps - penalty if split else steps
        a.plot(ce, alpha=0.3, color="tab:blue", label="cross-entropy, per step" if split else "per step")
        mean_ce = [float(np.mean(ce[int(e * per_epoch):int((e + 1) * per_epoch)])) for e in range(len(ends))]
        a.plot(ends, mean_ce, "o-", color="tab:blue", label="cross-entropy, epoch mean" if split else "epoch mean")
        if split:
            a.plot(penalty, alpha=0.3, color="tab:orange", label="attention penalty, per step")
            a.plot(ends, [float(np.mean(penalty[int(e * per_epoch):int((e + 1) * per_epoch)])) for e in range(len(ends))],
                   "s-", color="tab:orange", label="attention penalty, epoch mean")
    a.set_xlabel("step"); a.set_ylabel("loss (nats per word)" if split else "loss"); a.legend(fontsize=8)
    a.set_title(f"{title} training loss".strip())
    b.plot(range(1, len(history["val_bleu4"]) + 1), history["val_bleu4"], "o-", color="tab:green")
    b.set_xlabel("epoch"); b.set_ylabel("BLEU-4"); b.set_title("validation BLEU-4 (greedy)")
    b.set_xticks(range(1, len(history["val_bleu4"]) + 1))
    fig.tight_layout()
    return fig


def draw_beam_tree(steps: list, words: list, upto: int | None = None, ax=None):
    """The tree of a beam search for one image (lesson 06).

    Args:
        steps: steps[t] lists the hypotheses alive after step t as (tokens, score, finished) with
            tokens the word indices so far; a finished one ends with <end>.
        words: index -> word (vocab.idx_to_word).
        upto: draw steps 0..upto only (None: all).
    Each column is a step, each node a surviving hypothesis labelled with its last word and summed
    log-probability; an edge joins it to its prefix. Green: finished with <end>.
    """
    import matplotlib.pyplot as plt

    steps = steps[: (upto + 1) if upto is not None else None]
    if ax is None:
        width = max(6.0, 1.6 * len(steps) + 1)
        height = max(2.5, 0.55 * max((len(s) for s in steps), default=1) + 1)
        ax = plt.subplots(figsize=(width, height))[1]
    where = {(): (-1, 0.0)}                                                # prefix -> (x, y) of its node
    ax.text(-1, 0.0, "<start>", ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", fc="0.9", ec="0.5"))
    for t, hyps in enumerate(steps):
        n = len(hyps)
        for r, (tokens, score, finished) in enumerate(hyps):
            y = (n - 1) / 2 - r                                            # best at the top
            key = tuple(tokens)
            if key in where:
                continue                                                   # a finished one, drawn where it ended
            px, py = where.get(tuple(tokens[:-1]), (t - 1, 0.0))
            ax.plot([px + 0.35, t - 0.35], [py, y], "-", color="0.6", lw=0.8, zorder=1)
            where[key] = (t, y)
            ax.text(t, y, f"{words[tokens[-1]]}\n{score:.2f}", ha="center", va="center", fontsize=7.5, zorder=2,
                    bbox=dict(boxstyle="round", fc="#c8f0c8" if finished else "white", ec="0.4"))
    ax.set_xlim(-1.6, max(len(steps), 1) - 0.4)
    ys = [y for _, y in where.values()]
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_xticks(range(len(steps)), [f"step {t + 1}" for t in range(len(steps))], fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return ax
