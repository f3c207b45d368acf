"""Lesson 07 exercises: clipped n-gram precision, the brevity penalty, corpus BLEU.

Sentences are lists of tokens. The test corpora avoid zero counts, so the edge conventions
(an n-gram order with no match; an empty hypothesis) are not graded here; bleu.py handles them.
"""
from __future__ import annotations

import math
from collections import Counter

from ..bleu import closest_ref_length, clipped_counts, corpus_bleu, ngrams, sentence_bleu
from ..checks import Mistake, checked

__all__ = ["clipped_matches", "brevity_penalty", "corpus_bleu", "check_clipped_matches", "check_brevity_penalty",
           "check_corpus_bleu"]


clipped_matches = clipped_counts   # the exercise is captionlib.bleu's own clipped count


def brevity_penalty(hyp_len: int, ref_lens: list) -> float:
    """1 if the hypothesis is longer than the closest reference length r, else exp(1 - r / hyp_len)."""
    r = min(ref_lens, key=lambda x: (abs(x - hyp_len), x))
    return 1.0 if hyp_len > r else math.exp(1 - r / hyp_len)


S = "a small red circle above a blue square".split()
REFS = [["a small red circle above a blue square".split(), "a red ball over a blue box".split(),
         "there is a little red circle above a blue square".split()],
        ["two green triangles next to a yellow diamond".split(), "a yellow diamond and two green triangles".split()],
        ["the the the cat".split(), "the cat is on the mat".split()]]
HYPS = ["a red circle above a blue box".split(), "two green triangles and a yellow diamond".split(),
        "the the the the the cat".split()]


def check_clipped_matches(fn):
    def unclipped(h, refs, n):
        g = ngrams(h, n)
        seen = set().union(*(ngrams(r, n) for r in refs))
        return sum(k for x, k in g.items() if x in seen), sum(g.values())

    def summed(h, refs, n):
        g, total = ngrams(h, n), Counter()
        for r in refs:
            total.update(ngrams(r, n))
        return sum(min(k, total[x]) for x, k in g.items()), sum(g.values())

    cases = [(HYPS[i], REFS[i], n) for i in range(3) for n in (1, 2)]
    mistakes = [
        Mistake("there is no clipping: 'the the the the' would get full precision against 'the cat'. Count each n-gram "
                "at most as often as the reference that has it most", unclipped),
        Mistake("counts are clipped at the total over all references: clip at the maximum of any single reference", summed),
    ]
    return checked("clipped_matches", fn, clipped_matches, cases, mistakes=mistakes)


def check_brevity_penalty(fn):
    cases = [(5, [4, 7, 9]), (6, [5, 9]), (3, [8, 12]), (10, [6, 8]), (4, [3, 5]), (6, [7, 12, 4])]
    mistakes = [
        Mistake("the penalty uses the shortest reference: use the reference length closest to the hypothesis",
                lambda c, rs: 1.0 if c > min(rs) else math.exp(1 - min(rs) / c)),
        Mistake("the penalty uses the longest reference: use the reference length closest to the hypothesis",
                lambda c, rs: 1.0 if c > max(rs) else math.exp(1 - max(rs) / c)),
        Mistake("the penalty is inverted: it is exp(1 - r / c) for a hypothesis shorter than r (c < r), which is below 1",
                lambda c, rs: 1.0 if c > closest_ref_length([[0] * x for x in rs], c) else math.exp(1 - c / closest_ref_length([[0] * x for x in rs], c))),
    ]
    return checked("brevity_penalty", fn, brevity_penalty, cases, mistakes=mistakes, atol=1e-9)


def _avg_sentence(refs, hyps, max_n=4):
    return sum(sentence_bleu(r, h, max_n, smoothing=None) for r, h in zip(refs, hyps)) / len(hyps)


def _arithmetic(refs, hyps, max_n=4):
    m, t = [0] * (max_n + 1), [0] * (max_n + 1)
    c = r = 0
    for rs, h in zip(refs, hyps):
        for n in range(1, max_n + 1):
            a, b = clipped_matches(h, rs, n)
            m[n] += a
            t[n] += b
        c += len(h)
        r += closest_ref_length(rs, len(h))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * sum(m[n] / t[n] for n in range(1, max_n + 1)) / max_n


def _inverted_bp(refs, hyps, max_n=4):
    c = sum(len(h) for h in hyps)
    r = sum(closest_ref_length(rs, len(h)) for rs, h in zip(refs, hyps))
    true_bp = 1.0 if c > r else math.exp(1 - r / c)
    wrong_bp = 1.0 if c > r else math.exp(1 - c / r)
    return corpus_bleu(refs, hyps, max_n) / true_bp * wrong_bp


def check_corpus_bleu(fn):
    short = [h[:4] for h in HYPS[:2]] + [HYPS[2]]      # short hypotheses, so the brevity penalty matters
    cases = [(REFS, HYPS, 2), (REFS, short, 2), (REFS[:2], HYPS[:2], 3)]
    mistakes = [
        Mistake("this is the average of sentence BLEUs: corpus BLEU adds up matches and totals over all sentences "
                "first, then divides", _avg_sentence),
        Mistake("the precisions are combined with an arithmetic mean: BLEU uses the geometric mean, exp(mean of log p_n)",
                _arithmetic),
        Mistake("the brevity penalty is inverted: exp(1 - r / c) with c the hypotheses' total length and r the references'",
                _inverted_bp),
    ]
    return checked("corpus_bleu", fn, corpus_bleu, cases, mistakes=mistakes, atol=1e-9)
