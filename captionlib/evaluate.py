"""Evaluating a captioner beyond one number: the dataset's own BLEU ceiling, and where attention looks.

Lessons 04 and 07 use it.

* **Ceiling.** Score each reference caption against the other references of its image (corpus
  BLEU, leave-one-out, averaged over which reference is left out). A model "as good as a
  person" scores about this; with 4 references instead of 5 it is a slightly pessimistic bound.
* **Attention in box.** For each generated word that names a colour or shape present in a shapes
  scene, the attention mass that falls inside the boxes of the objects it can name. Uniform
  attention would put mass equal to the boxes' share of the image there, so we report both.

Shapes: L caption length, P regions (g*g).
"""
from __future__ import annotations

import numpy as np

from .bleu import bleu_scores
from .shapes import COLOURS, SHAPE_WORDS, PLURAL
from .vocab import tokenize

__all__ = ["reference_ceiling", "region_box_overlap", "attention_in_box"]

_SHAPE_OF = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_SHAPE_OF.update({PLURAL[w]: s for w, s in list(_SHAPE_OF.items())})


def reference_ceiling(captions: list) -> dict:
    """BLEU-1..4 of references against the others of the same image; captions[i] = image i's references."""
    k = min(len(c) for c in captions)
    if k < 2:
        raise ValueError("the ceiling needs at least 2 references per image")
    runs = []
    for j in range(k):
        hyps = [tokenize(c[j]) for c in captions]
        refs = [[tokenize(r) for m, r in enumerate(c) if m != j] for c in captions]
        runs.append(bleu_scores(refs, hyps))
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


def region_box_overlap(box: tuple, grid: int, size: int) -> np.ndarray:
    """(P,) fraction of each grid cell (row-major) covered by box (x0, y0, x1, y1) in pixels."""
    edges = np.linspace(0, size, grid + 1)
    x0, y0, x1, y1 = box
    ox = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None) / (size / grid)  # (g,)
    oy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None) / (size / grid)  # (g,)
    return np.outer(oy, ox).reshape(-1)                                                          # (P,)


def attention_in_box(scene, words: list, alphas: np.ndarray, grid: int, size: int = 224) -> list:
    """[(word, mass inside the named objects' boxes, uniform baseline)] for colour/shape words.

    Args:
        scene: a shapes Scene; words: the generated words; alphas: (L, P) one row per word.
    """
    out = []
    for t, w in enumerate(words):
        if w in COLOURS:
            named = [o for o in scene.objects if o.colour == w]
        elif w in _SHAPE_OF:
            named = [o for o in scene.objects if o.shape == _SHAPE_OF[w]]
        else:
            continue
        if not named:
            continue  # the model named something that is not there: no box to grade against
        cover = np.clip(sum(region_box_overlap(o.box, grid, size) for o in named), 0, 1)          # (P,)
        out.append((w, float((alphas[t] * cover).sum()), float(cover.mean())))
    return out
