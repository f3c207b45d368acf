"""BLEU (Papineni et al., 2002), from scratch, and the COCO caption metrics where Java is available.

Lesson 07 builds it. For a corpus of hypotheses c and their reference sets:

    p_n  = Σ_c Σ_g min(count_c(g), max_r count_r(g)) / Σ_c Σ_g count_c(g)    clipped n-gram precision
    BP   = 1 if len_c > len_r else exp(1 - len_r / len_c)                     brevity penalty, with
           len_c = total hypothesis length and len_r = Σ_c (the reference length closest to len(c))
    BLEU = BP · exp(Σ_n w_n log p_n)                                          geometric mean, w_n = 1/N

Counts are pooled over the corpus before dividing (corpus BLEU is not the mean of sentence BLEUs).
The result equals nltk.translate.bleu_score.corpus_bleu (tested), including its conventions: no
matching unigram gives 0, and an order with no matches contributes log(tiny) unless smoothed.
"""
from __future__ import annotations

import math
import shutil
import sys
from collections import Counter
from typing import Sequence

__all__ = ["ngrams", "clipped_counts", "closest_ref_length", "brevity_penalty", "corpus_bleu", "sentence_bleu",
           "bleu_scores", "coco_metrics"]

Tokens = Sequence[str]


def ngrams(tokens: Tokens, n: int) -> Counter:
    """Counter of the n-grams (as tuples) in a token list."""
    return Counter(zip(*(tokens[i:] for i in range(n))))


def clipped_counts(hypothesis: Tokens, references: Sequence[Tokens], n: int) -> tuple[int, int]:
    """(matches clipped by the most any one reference has, total hypothesis n-grams)."""
    hyp = ngrams(hypothesis, n)
    if not hyp:
        return 0, 0
    most = Counter()
    for ref in references:
        most |= ngrams(ref, n)          # union of Counters = the max count of each n-gram over references
    return sum((hyp & most).values()), sum(hyp.values())   # intersection = min: the clipping


def _all_ngrams(tokens: Tokens, max_n: int) -> Counter:
    """One Counter of all n-grams with 1 <= n <= max_n (keys are tuples, so their length is n)."""
    counts: Counter = Counter()
    for n in range(1, max_n + 1):
        counts.update(zip(*(tokens[i:] for i in range(n))))
    return counts


def _add_counts(matches: list, totals: list, hyp: Tokens, refs: Sequence[Tokens], max_n: int) -> None:
    """Add one sentence's clipped matches and n-gram totals, for every n at once (the fast path of clipped_counts)."""
    hyp_counts = _all_ngrams(hyp, max_n)
    most = dict.fromkeys(hyp_counts, 0)       # max count over the references, only of n-grams we need
    for ref in refs:
        ref_counts = _all_ngrams(ref, max_n)
        for gram in most:
            k = ref_counts.get(gram, 0)
            if k > most[gram]:
                most[gram] = k
    for gram, k in hyp_counts.items():        # clip: min(count in hypothesis, max in references)
        matches[len(gram)] += min(k, most[gram])
    for n in range(1, max_n + 1):
        totals[n] += max(1, len(hyp) - n + 1)  # nltk's convention: no n-grams still counts 1 in the denominator


def closest_ref_length(references: Sequence[Tokens], hyp_len: int) -> int:
    """The reference length closest to hyp_len; on a tie, the shorter one (as nltk and Papineni)."""
    return min((len(r) for r in references), key=lambda r: (abs(r - hyp_len), r))


def brevity_penalty(ref_len: int, hyp_len: int) -> float:
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


def corpus_bleu(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens], max_n: int = 4,
                smoothing: float | None = None) -> float:
    """BLEU-max_n of a corpus. references[i] is the list of token lists for hypotheses[i].

    smoothing: None (nltk's method0) or an epsilon added to zero match counts (nltk's method1, 0.1).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        _add_counts(matches, totals, hyp, refs, max_n)
        hyp_len += len(hyp)
        ref_len += closest_ref_length(refs, len(hyp))
    return _combine(matches, totals, hyp_len, ref_len, max_n, smoothing)


def _combine(matches, totals, hyp_len, ref_len, max_n, smoothing) -> float:
    if matches[1] == 0:
        return 0.0  # no unigram in common: BLEU is 0 whatever the smoothing (nltk's convention)
    log_sum = 0.0
    for n in range(1, max_n + 1):
        denominator = max(1, totals[n])
        if matches[n] > 0:
            p = matches[n] / denominator
        elif smoothing is not None:
            p = smoothing / denominator
        else:
            p = sys.float_info.min  # nltk method0: log(p) is about -708, so BLEU is about 0
        log_sum += math.log(p) / max_n
    return brevity_penalty(ref_len, hyp_len) * math.exp(log_sum)


def bleu_scores(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens]) -> dict[str, float]:
    """BLEU-1..4 in one pass over the corpus (the n-gram counts are shared)."""
    matches, totals = [0] * 5, [0] * 5
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        _add_counts(matches, totals, hyp, refs, 4)
        hyp_len += len(hyp)
        ref_len += closest_ref_length(refs, len(hyp))
    return {f"BLEU-{n}": _combine(matches, totals, hyp_len, ref_len, n, None) for n in range(1, 5)}


def sentence_bleu(references: Sequence[Tokens], hypothesis: Tokens, max_n: int = 4, smoothing: float | None = 0.1) -> float:
    """BLEU of one hypothesis; smoothed by default, since one sentence rarely has a 4-gram match."""
    return corpus_bleu([references], [hypothesis], max_n, smoothing)


def coco_metrics(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
    """pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr on raw strings.

    METEOR and the PTB tokenizer run on Java. Without Java this raises a RuntimeError saying so;
    use `bleu_scores` (pure Python) instead.
    """
    if shutil.which("java") is None:
        raise RuntimeError("pycocoevalcap's METEOR and PTB tokenizer need Java, and `java` is not on PATH. "
                           "Install a JDK (e.g. `apt install default-jre` or `conda install openjdk`), or use bleu_scores().")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(hypotheses)})
    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)})
    out["METEOR"] = float(Meteor().compute_score(gts, res)[0])
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out
