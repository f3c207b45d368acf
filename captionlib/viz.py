"""Pictures: attention maps per word over the image, and training curves.

Lessons 03-08 use it. An attention map α_t (P,) is reshaped to the g x g grid (regions are
row-major, see encoder.py), upsampled to the image size with bilinear smoothing, and drawn over
the image.

Shapes: L caption length, P regions (g*g), S image side.
"""
from __future__ import annotations

import functools
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["upsample_attention", "cjk_font", "show_attention", "attention_png", "plot_history", "draw_beam_tree"]


def upsample_attention(alpha, size: int) -> np.ndarray:
    """(P,) weights on a g x g grid -> (S, S) smooth map, same total mass per area."""
    a = torch.as_tensor(np.asarray(alpha), dtype=torch.float32)
    g = int(round(math.sqrt(a.numel())))
    if g * g != a.numel():
        raise ValueError(f"attention has {a.numel()} regions, not a square grid")
    up = F.interpolate(a.view(1, 1, g, g), size=(size, size), mode="bilinear", align_corners=False)  # (1, 1, S, S)
    return up[0, 0].numpy()


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


@functools.lru_cache(maxsize=1)
def cjk_font():
    """matplotlib FontProperties of a font with Chinese glyphs (Noto Sans CJK SC, from the `mplfonts` package the
    course installs), or None when there is none: matplotlib's default font has no CJK glyphs and draws boxes."""
    from matplotlib import font_manager

    try:
        import mplfonts
    except ImportError:
        return None
    path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
    if not path.exists():
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path))


def _labels(words: list) -> tuple[list, dict]:
    """Panel titles for `words`, and the font keyword to draw them with: a CJK font for Chinese words, and when the
    machine has none, the words' positions instead of boxes (with a note saying how to get the font)."""
    if not any(_CJK.search(w) for w in words):
        return list(words), {}
    font = cjk_font()
    if font is not None:
        return list(words), {"fontproperties": font}
    print("note: no font with Chinese glyphs here (matplotlib's own has none), so the panels are numbered instead of "
          "titled: `pip install mplfonts` (it comes with the course) gives them their words", file=sys.stderr)
    return [f"word {k + 1}" for k in range(len(words))], {}


def show_attention(image: Image.Image, words: list, alphas, cols: int = 5, size: int = 224, colorbar: bool = True):
    """One panel per word: the image with where the decoder looked when it wrote that word (bright: more α,
    the weight of a region, upsampled to the image; one colour scale for all panels, shown by the colour bar)."""
    import matplotlib.pyplot as plt

    alphas = np.asarray(alphas)
    rows = math.ceil((len(words) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + (0.6 if colorbar else 0), 2.7 * rows), squeeze=False)
    img = np.asarray(image.convert("RGB").resize((size, size)))
    maps = [upsample_attention(alphas[k], size) for k in range(min(len(words), len(alphas)))]
    top = max((float(m.max()) for m in maps), default=1.0)
    titles, font = _labels(words)
    shown = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k == 0:
            ax.imshow(img)
            ax.set_title("image", fontsize=10)
        elif k <= len(maps):
            ax.imshow(img)
            shown = ax.imshow(maps[k - 1], cmap="gray", alpha=0.6, vmin=0, vmax=top)
            ax.set_title(titles[k - 1], fontsize=11, **font)
    fig.tight_layout()
    if colorbar and shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01)
        bar.set_label("α per region (upsampled)", fontsize=8)
    return fig


def attention_png(image: Image.Image, words: list, alphas, cols: int = 6, dpi: int = 72) -> bytes:
    """`show_attention` drawn completely, off screen, to PNG bytes, and the figure closed: what a widget callback
    (lesson 09's upload) displays. A figure left to the notebook's inline backend inside an `Output` widget is
    drawn when the backend next flushes, not when the callback shows it; PNG bytes are the finished picture."""
    import io

    import matplotlib.pyplot as plt

    fig = show_attention(image, words, alphas, cols=cols)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


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
