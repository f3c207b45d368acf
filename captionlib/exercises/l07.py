"""Lesson 07 exercises: clipped n-gram precision, the brevity penalty, corpus BLEU.

Sentences are lists of tokens. The test corpora avoid zero counts, so the edge conventions
(an n-gram order with no match; an empty hypothesis) are not graded here; bleu.py handles them.
"""
from __future__ import annotations

import math
from collections import Counter

from ..bleu import closest_ref_length, clipped_counts, corpus_bleu, ngrams, sentence_bleu
from ..checks import MISSING, Mistake, Part, checked

__all__ = ["PARTS", "clipped_matches", "brevity_penalty", "corpus_bleu", "check_clipped_matches", "check_brevity_penalty",
           "check_corpus_bleu"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "clipped_matches": [Part("counting the n-grams", 2, r"as a set|window|shorter than n|Counter"),
                        Part("clipping", 2, r"clip")],
    "brevity_penalty": [Part("the formula", 2, r"exp\(1|inverted|longer than r|division"),
                        Part("the closest reference length", 2, r"closest|shortest|longest|tie|equally close|mean")],
    "corpus_bleu": [Part("the brevity penalty", 1, r"brevity penalty is|no brevity penalty:|there is no brevity|closest to each|penalty is inverted"),
                    Part("pooling over the corpus", 2, r"average of sentence|per sentence|adds up"),
                    Part("the precisions and their mean", 2, r"clipped|geometric|arithmetic|log|max_n|orders|p1")],
}


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


def _shorter_than_n(fn) -> str | None:
    """A caption of fewer than n words has no n-grams at all (a model's one-word caption, scored with BLEU-4)."""
    short = fn(["a"], ["a b c".split()], 3)
    if isinstance(short, (tuple, list)) and len(short) == 2 and tuple(short) != (0, 0):
        return (f"a hypothesis shorter than n has no n-grams: (0, 0) for 'a' at n = 3, yours gives {tuple(short)} "
                "(len(s) - n + 1 is negative there: count the n-grams there are, max(0, ...))")
    return None


def _clip_parts(fn) -> str | None:
    """The matches and the total, each on hypotheses built so that one rule alone decides them."""
    out = fn("the the cat".split(), ["the cat".split(), "the the dog".split()], 1)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return (f"return a pair (clipped matches, total n-grams of the hypothesis), here (3, 3); yours returns "
                f"{out!r:.40}. The precision is their ratio, computed later over the whole corpus")
    said = []
    matches, total = out
    window = fn("a a a b".split(), ["a b".split()], 1)[1]              # 4 unigrams: 2 distinct, 3 with range(len - n)
    if total != 3 and window == 2:
        return ("the n-grams are counted as a set: 'a a a b' has 4 unigrams, not 2 distinct ones. Count them with a "
                "Counter (repeats included), then clip each count")
    if total != 3 and window == 3:
        return ("the n-gram window stops one short: a sentence of L words has L - n + 1 n-grams, "
                "range(len(s) - n + 1); range(len(s) - n) misses the last one")
    if total != 3:
        said.append(f"the total is {total}, expected 3: count every n-gram of the hypothesis, repeats included "
                    "('the the cat' has 3 unigrams), not the distinct ones nor the reference's")
        return "; ".join(said)                                          # the matches are confounded with the total
    # 'the' twice in the hypothesis, at most 1 in the first reference, 2 in the second: both count (max over references).
    if matches != 3:
        if matches == 2:
            said.append("each n-gram is clipped by one reference only: clip at the most any one reference has "
                        "('the' twice: the second reference has it twice, so both count)")
        elif matches < 2:
            said.append("each n-gram is clipped by the fewest any reference has: clip at the most any one reference has")
        else:
            said.append(f"{matches} matches, expected 3: clip each n-gram's count at the most any one reference has")
    return "; ".join(said) or None



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "clipped_matches": {
        None: ("the recipe: count the hypothesis's n-grams; clip each at the most any one reference has; return "
               "(clipped sum, total)"),
    },
    "brevity_penalty": {
        None: ("the recipe: r = the reference length closest to c (ties: the shorter); BP = 1 if c > r, else exp(1 - "
               "r / c)"),
    },
    "corpus_bleu": {
        None: ("the recipe: pool the clipped matches and totals per n over all sentences, and c and r; BLEU = BP · "
               "exp(mean of log p_n)"),
    },
}

def check_clipped_matches(fn=MISSING):
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
    return checked("clipped_matches", fn, clipped_matches, cases, mistakes=mistakes, probes=[_clip_parts],
                   properties=[_shorter_than_n],
                   recipe=_RECIPES["clipped_matches"])


def _penalty_parts(fn) -> str | None:
    """The choice of r and the formula, each on its own; names every part that is wrong. The choice of r is judged
    against the learner's own one-reference answers, so a wrong formula does not look like a wrong r."""
    said = []
    close = lambda a, b: abs(a - b) < 1e-9                              # noqa: E731
    short_first, long_first = fn(5, [4, 6]), fn(5, [6, 4])             # 4 and 6 are equally close to 5
    if not close(short_first, long_first):
        said.append("two references equally close (4 and 6 words for a 5-word hypothesis) give different penalties "
                    "in the two orders: on a tie take the shorter one, whatever the order (min over (|r - c|, r))")
    elif close(short_first, fn(5, [6])) and not close(short_first, fn(5, [4])):
        said.append("on a tie between two reference lengths (4 and 6 for 5 words), take the shorter one")
    if not close(fn(5, [5, 11]), fn(5, [5])):
        said.append("r is the reference length closest to the hypothesis (5 of 5 and 11), not the mean or another one")
    if not close(fn(9, [6]), 1.0):
        said.append("a hypothesis longer than r gets no penalty: BP = 1 when c > r")
    got = fn(3, [4])
    if close(got, 1.0) and close(fn(3, [7]), math.exp(1 - 7 // 3)):       # 4 // 3 = 1: no penalty at all
        said.append("r / c is computed with integer division (4 // 3 = 1): use true division, exp(1 - r / c)")
    got = fn(2, [4])
    if not close(got, math.exp(1 - 4 / 2)):
        said.append(f"for c = 2 words against r = 4, BP = exp(1 - r / c) = exp(-1) = {math.exp(-1):.4f}; yours is {got:.4g}")
    return "; ".join(said) or None


def check_brevity_penalty(fn=MISSING):
    cases = [(5, [4, 7, 9]), (6, [5, 9]), (3, [8, 12]), (10, [6, 8]), (4, [3, 5]), (6, [7, 12, 4]), (4, [5, 3]),
             (7, [8, 6])]
    notes = [None] * 6 + ["when two references are equally close (5 and 3 words for a 4-word hypothesis, the longer "
                          "listed first): take the shorter one"] * 2
    mistakes = [
        Mistake("the penalty uses the shortest reference: use the reference length closest to the hypothesis",
                lambda c, rs: 1.0 if c > min(rs) else math.exp(1 - min(rs) / c)),
        Mistake("the penalty uses the longest reference: use the reference length closest to the hypothesis",
                lambda c, rs: 1.0 if c > max(rs) else math.exp(1 - max(rs) / c)),
        Mistake("the penalty is inverted: it is exp(1 - r / c) for a hypothesis shorter than r (c < r), which is below 1",
                lambda c, rs: 1.0 if c > closest_ref_length([[0] * x for x in rs], c) else math.exp(1 - c / closest_ref_length([[0] * x for x in rs], c))),
    ]
    return checked("brevity_penalty", fn, brevity_penalty, cases, mistakes=mistakes, atol=1e-9, notes=notes,
                   probes=[_penalty_parts],
                   recipe=_RECIPES["brevity_penalty"])


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


def _bleu_parts(fn) -> str | None:
    """Corpora where one part of BLEU alone decides the answer; names every part that is wrong."""
    said = []
    close = lambda a, b: abs(a - b) < 1e-9                              # noqa: E731
    # The orders first (every other probe reads BLEU at some max_n): p1 = 1, p2 = 1/4, no brevity penalty.
    refs, hyps = [["a b c d e".split()]], ["a b d c e".split()]
    one, two = fn(refs, hyps, 1), fn(refs, hyps, 2)
    if close(one, 1.0) and close(two, 1.0):
        return ("the orders stop one short: BLEU-2 of this corpus (p1 = 1, p2 = 1/4) comes out 1, the value of p1 "
                "alone: loop over n in range(1, max_n + 1)")
    if close(two, math.exp((math.log2(1.0) + math.log2(0.25)) / 2)):
        return ("the logarithm is base 2 (log2) but the mean is taken back with exp (base e): use math.log with "
                "math.exp (or log2 with 2 **): BLEU-2 here must be sqrt(1 * 1/4) = 0.5")
    cat, mat = "the cat sat on the mat".split(), "a dog ran in the park today".split()
    # Pooled, not averaged: one short perfect sentence and one long poor one (every order of n still matches).
    refs, hyps = [[cat], [mat]], [cat[:3], "a dog ran in a big field today".split()]
    whole = fn(refs, hyps, 2)
    if close(whole, sum(fn([r], [h], 2) for r, h in zip(refs, hyps)) / 2) and not close(whole, corpus_bleu(refs, hyps, 2)):
        said.append("this averages the sentences' scores: corpus BLEU adds up every sentence's matches, totals and "
                    "lengths first, then computes one score")
    # Clipping: 'the the the the' against 'the cat': 1 of its 4 unigrams counts (BP 1: 4 words > 2).
    got = fn([["the cat".split()]], ["the the the the".split()], 1)
    if close(got, 1.0):
        said.append("the n-gram matches are not clipped: 'the the the the' against 'the cat' has 1 match, not 4")
    # Geometric mean: p1 = 1, p2 = 1/4 (1 of 4 bigrams), one sentence as long as its reference: BLEU-2 = sqrt(1/4).
    got = fn([["a b c d e".split()]], ["a b d c e".split()], 2)
    if close(got, corpus_bleu([["a b c d e".split()]], ["a b d c e".split()], 4)) and not close(got, 0.5):
        said.append("max_n is not used: BLEU-max_n averages the log-precisions of n = 1 .. max_n only")
    elif close(got, (1 + 0.25) / 2):
        said.append("the precisions are combined by an arithmetic mean: BLEU is their geometric mean, exp(Σ_n log p_n / N)")
    elif not close(got, 0.5) and not close(got, 1.0):
        said.append(f"with p1 = 1 and p2 = 1/4 and no brevity penalty, BLEU-2 = sqrt(1 * 1/4) = 0.5; yours is {got:.4g}")
    # The brevity penalty alone: every word matches (p1 = 1), so BLEU-1 = BP. 3 words against 6: exp(1 - 6/3).
    alone = fn([["a b c d e f".split()]], ["a b c".split()], 1)
    if close(alone, 1.0):
        said.append("there is no brevity penalty: 3 words against a 6-word reference must score exp(1 - 6/3) = "
                    f"{math.exp(-1):.4f} even though every word matches")
    elif close(alone, math.exp(-1)):                                   # the penalty works; which r does it take?
        got = fn([["a b c".split(), "a b c d e f".split()]], ["a b c d e".split()], 1)
        if not close(got, math.exp(1 - 6 / 5)):
            said.append("r must be the reference length closest to each hypothesis (6 of 3 and 6 for a 5-word one), "
                        "summed over the corpus; not the shortest or the longest")
    # The brevity penalty is the corpus's: one short sentence, one long, together longer than their references.
    refs, hyps = [["a b c d".split()], ["e f".split()]], ["a b c".split(), "e f e f e f".split()]
    got, want = fn(refs, hyps, 1), corpus_bleu(refs, hyps, 1)
    per_sentence = [math.exp(1 - len(r[0]) / len(h)) if len(h) <= len(r[0]) else 1.0 for r, h in zip(refs, hyps)]
    if not close(got, want) and (close(got, want * math.exp(1 - 4 / 3) / 2 + want / 2)
                                 or close(got, want * math.prod(per_sentence))):
        said.append("the brevity penalty is computed per sentence: it is the corpus's, from the total hypothesis length "
                    "c and the total of the closest reference lengths r")
    return "; ".join(said) or None


def check_corpus_bleu(fn=MISSING):
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
    return checked("corpus_bleu", fn, corpus_bleu, cases, mistakes=mistakes, atol=1e-9, probes=[_bleu_parts],
                   recipe=_RECIPES["corpus_bleu"])
