"""CIDEr-D (Vedantam et al., 2015, "CIDEr: Consensus-based Image Description Evaluation"), as a reward.

Lesson 08 uses it, with `scst` (self-critical training optimises it). CIDEr scores a caption by its
agreement with the consensus of the references: each caption becomes, for n = 1..4, a vector of its
n-gram counts weighted by tf-idf (an n-gram that many images' references share, like "a man", weighs
little), and the score is the mean over n of the cosine similarity with each reference:

    CIDEr-D(c, S) = 10/N Σ_n 1/m Σ_j  exp(-(l_c - l_j)^2 / 2σ^2) · min(g_n(c), g_n(s_j)) · g_n(s_j) / (|g_n(c)| |g_n(s_j)|)

The "-D" parts are the clipping (min) and the Gaussian length penalty (σ = 6), which stop a captioner
that optimises it from repeating frequent words. The formula, constants and even the length it
penalises (the number of *bigrams*, a quirk kept for equality) are those of pycocoevalcap's `Cider`,
the number papers report; tests/test_cider.py checks equality per image. What differs is the use:
the document frequencies come from a fixed corpus (the training references, as self-critical training
does: pycocoevalcap takes them from whatever set it is scoring), and each image's references are turned
into vectors once, so scoring many sampled captions of the same image is cheap.

Captions are token lists (`vocab.tokenize`).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = ["ngram_counts", "CiderD"]


def ngram_counts(tokens: Sequence[str], n: int = 4) -> Counter:
    """{n-gram tuple: count} for every 1..n-gram of one caption."""
    return Counter(tuple(tokens[i:i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1))


class CiderD:
    """CIDEr-D of captions against fixed references.

    Args:
        references: references[i] = the reference token lists of image i; they also set the document
            frequencies (in how many images' references an n-gram occurs).
    """

    def __init__(self, references: Sequence[Sequence[Sequence[str]]], n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma
        self.df: Counter = Counter()
        counted = [[ngram_counts(r, n) for r in refs] for refs in references]
        for refs in counted:
            self.df.update({g for c in refs for g in c})
        self.log_images = math.log(float(len(references)))
        self.refs = [[self._vector(c) for c in refs] for refs in counted]

    def _vector(self, counts: Counter) -> tuple[list, list, int]:
        """tf-idf weights per n-gram order, their norms, and the caption's length as pycocoevalcap counts it (bigrams)."""
        vec, norm, bigrams = [dict() for _ in range(self.n)], [0.0] * self.n, 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            w = tf * (self.log_images - math.log(max(1.0, self.df[gram])))
            vec[k][gram] = w
            norm[k] += w * w
            if k == 1:
                bigrams += tf
        return vec, [math.sqrt(x) for x in norm], bigrams

    def _similarity(self, hyp: tuple, ref: tuple) -> float:
        (vh, nh, lh), (vr, nr, lr) = hyp, ref
        penalty = math.exp(-((lh - lr) ** 2) / (2 * self.sigma ** 2))
        total = 0.0
        for k in range(self.n):
            if nh[k] == 0 or nr[k] == 0:
                continue
            rk = vr[k]
            total += sum(min(w, rk.get(g, 0.0)) * rk.get(g, 0.0) for g, w in vh[k].items()) / (nh[k] * nr[k])
        return total * penalty

    def score(self, image: int, tokens: Sequence[str]) -> float:
        """CIDEr-D of one caption of image `image` (an index into the references)."""
        hyp, refs = self._vector(ngram_counts(tokens, self.n)), self.refs[image]
        return 10.0 * sum(self._similarity(hyp, r) for r in refs) / (self.n * len(refs))

    def scores(self, images: Sequence[int], captions: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(captions),) CIDEr-D of captions[k] against the references of image images[k]."""
        if len(images) != len(captions):
            raise ValueError(f"{len(captions)} captions but {len(images)} image indices")
        return np.array([self.score(int(i), c) for i, c in zip(images, captions)], dtype=np.float64)
