"""METEOR's core, on exact word matches: a recall-weighted F-mean and a fragmentation penalty, as a reward.

Lesson 08 mentions it; `scst` adds it to CIDEr-D when `TrainConfig.scst_meteor` > 0, as the shipped
Flickr8k model was trained (data/checkpoints/MODEL_CARD.md). METEOR (Banerjee & Lavie, 2005; Denkowski &
Lavie, 2014, version 1.5 as in pycocoevalcap) aligns the words of a caption with a reference and scores

    P = m / |hypothesis|,   R = m / |reference|,   F = P R / (α P + (1 - α) R)
    penalty = γ (chunks / m)^β,   METEOR = F (1 - penalty)

with m the aligned words, chunks the number of runs of aligned words that are adjacent in both, and the
best score over the references. With α = 0.85 recall counts much more than precision, so a caption that
leaves out what the references say scores low however precise it is: the reason CIDEr-only self-critical
training, which shortens captions, loses METEOR. The real metric also aligns stems, WordNet synonyms and
paraphrases (weighted 0.6, 0.8, 0.6) and weighs content words more than function words; those need its
Java resources, so this reward matches exact words only. tests/test_meteor.py checks that it ranks
captions as pycocoevalcap's METEOR does.

Captions are token lists (`vocab.tokenize`).
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["align", "meteor_exact"]

ALPHA, BETA, GAMMA = 0.85, 0.20, 0.60      # METEOR 1.5's English parameters


def align(hypothesis: Sequence[str], reference: Sequence[str]) -> tuple[int, int]:
    """(matched words, chunks) of a one-to-one alignment of equal words, left to right.

    Each hypothesis word takes an unused reference position holding the same word, preferring the one
    right after the previous match (that continues a chunk), else the first free one.
    """
    free: dict[str, list[int]] = {}
    for j, w in enumerate(reference):
        free.setdefault(w, []).append(j)
    matches, chunks, last = 0, 0, None                     # last: the reference position of the previous match
    for w in hypothesis:
        spots = free.get(w)
        if not spots:
            last = None                                    # an unmatched word breaks the chunk
            continue
        j = last + 1 if last is not None and last + 1 in spots else spots[0]
        spots.remove(j)
        chunks += last is None or j != last + 1
        matches, last = matches + 1, j
    return matches, chunks


def meteor_exact(hypothesis: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """The best over the references of F (1 - penalty), exact matches only; 0 for an empty caption."""
    best = 0.0
    for ref in references:
        m, chunks = align(hypothesis, ref)
        if m == 0:
            continue
        p, r = m / len(hypothesis), m / len(ref)
        f = p * r / (ALPHA * p + (1 - ALPHA) * r)
        best = max(best, f * (1 - GAMMA * (chunks / m) ** BETA))
    return best
