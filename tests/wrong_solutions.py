"""Wrong solutions of lessons 06 and 07 as learners write them, for tests/test_catalogue.py (not a test file).

Written from what the exercise asks, not from the checks' `Mistake`s: several compute the same wrong thing in
another way, and some make a slip no `Mistake` lists, which only a probe can name.
"""
import math
from collections import Counter

import torch

from captionlib.bleu import corpus_bleu, ngrams, sentence_bleu

END = 2

def b_swapped(scores, logp, k):
    V = logp.shape[1]
    total = scores.unsqueeze(1) + logp
    top, idx = total.view(-1).topk(k)
    return top, idx % V, idx // V

def b_per_beam(scores, logp, k):
    total = scores[:, None] + logp
    best, w = total.max(dim=1)
    vals, order = best.sort(descending=True)
    return vals[:k], order[:k], w[order][:k]

def b_by_K(scores, logp, k):
    K = logp.shape[0]
    top, idx = (scores[:, None] + logp).flatten().topk(k)
    return top, torch.div(idx, K, rounding_mode="floor"), idx % logp.shape[1]

def b_logp_only(scores, logp, k):
    V = logp.shape[1]
    top, idx = logp.flatten().topk(k)
    return top, idx // V, idx % V

def b_true_div(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).flatten().topk(k)
    return top, idx / V, idx % V

def b_in_place(scores, logp, k):
    V = logp.shape[1]
    logp += scores[:, None]
    top, idx = logp.flatten().topk(k)
    return top, idx // V, idx % V

def b_first_k_beams(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:k, None] + logp[:k]).flatten().topk(k)   # "k beams go on, so look at k of them"
    return top, idx // V, idx % V

def f_no_else(seqs, scores, finished, length_norm=0.0):
    done = list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
    return seqs, scores, done

def f_no_norm(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_len_without_end(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / (len(s) - 1) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_times(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc * len(s) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_swapped_pair(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((s, sc / len(s) ** length_norm))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_forgot_old(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], []
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def bp_first_closest(c, rs):
    r = min(rs, key=lambda x: abs(x - c))
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_shortest(c, rs):
    r = min(rs)
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_no_exp(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return 1.0 if c > r else 1 - r / c

def bp_mean(c, rs):
    r = sum(rs) / len(rs)
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_inverted(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return 1.0 if c > r else math.exp(1 - c / r)

def bp_always(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return math.exp(1 - r / c)

def _closest(rs, c):
    return min((len(r) for r in rs), key=lambda x: (abs(x - c), x))

def _counts(refs, hyps, max_n, clip=True):
    m, t = [0] * (max_n + 1), [0] * (max_n + 1)
    c = r = 0
    for rs, h in zip(refs, hyps):
        for n in range(1, max_n + 1):
            g = ngrams(h, n)
            most = Counter()
            for ref in rs:
                most |= ngrams(ref, n)
            m[n] += sum((g & most).values()) if clip else sum(k for x, k in g.items() if x in most)
            t[n] += sum(g.values())
        c += len(h); r += _closest(rs, len(h))
    return m, t, c, r

def c_avg(refs, hyps, max_n=4):
    return sum(sentence_bleu(r, h, max_n, smoothing=None) for r, h in zip(refs, hyps)) / len(hyps)

def c_unclipped(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n, clip=False)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_arith(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * sum(m[n] / t[n] for n in range(1, max_n + 1)) / max_n

def c_bp_per_sentence(refs, hyps, max_n=4):
    m, t, _, _ = _counts(refs, hyps, max_n)
    bps = [1.0 if len(h) > _closest(rs, len(h)) else math.exp(1 - _closest(rs, len(h)) / len(h)) for rs, h in zip(refs, hyps)]
    return sum(bps) / len(bps) * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_shortest_r(refs, hyps, max_n=4):
    m, t, c, _ = _counts(refs, hyps, max_n)
    r = sum(min(len(x) for x in rs) for rs in refs)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_pooled_over_n(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * sum(m[1:]) / sum(t[1:])

def c_no_bp(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    return math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_always4(refs, hyps, max_n=4):
    return corpus_bleu(refs, hyps, 4)

def k_unclipped(h, refs, n):
    g = ngrams(h, n); seen = set().union(*(ngrams(r, n) for r in refs))
    return sum(k for x, k in g.items() if x in seen), sum(g.values())

def k_first_ref(h, refs, n):
    g, r = ngrams(h, n), ngrams(refs[0], n)
    return sum(min(k, r[x]) for x, k in g.items()), sum(g.values())

def k_min_over_refs(h, refs, n):
    g = ngrams(h, n)
    return sum(min(k, *(ngrams(r, n)[x] for r in refs)) for x, k in g.items()), sum(g.values())

def k_unique_total(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()), len(g)

def k_precision(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()) / sum(g.values())

def k_summed(h, refs, n):
    g, total = ngrams(h, n), Counter()
    for r in refs: total.update(ngrams(r, n))
    return sum(min(k, total[x]) for x, k in g.items()), sum(g.values())

def k_ref_total(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()), sum(most.values())

