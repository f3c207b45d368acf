"""Lesson 06 exercises: one beam-search step, and collecting finished hypotheses.

`beam_step` is the heart of beam search for one image: extend each of the K hypotheses by every
word, score the K*V continuations by summed log-probability, keep the best k, and remember where
each came from. `collect_finished` moves hypotheses that produced <end> out of the beam (the
classic per-image loop then continues with fewer beams) and ranks them, optionally normalised
by length.
"""
from __future__ import annotations

import torch

from ..checks import Mistake, checked

__all__ = ["beam_step", "collect_finished", "check_beam_step", "check_collect_finished", "END"]

END = 2  # captionlib.vocab: <pad> 0, <start> 1, <end> 2


def beam_step(scores: torch.Tensor, logp: torch.Tensor, k: int):
    """scores (K,) summed log-probs of the live hypotheses; logp (K, V) next-word log-probs.
    Returns (new scores (k,), parent beam (k,), word (k,)), best first."""
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)       # over all K*V continuations
    return top, idx // V, idx % V


def _multiplied_logp(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] * logp).reshape(-1).topk(k)
    return top, idx // V, idx % V


def _probabilities(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores.exp()[:, None] * logp.exp()).reshape(-1).topk(k)
    return top, idx // V, idx % V


def _best_word_per_beam(scores, logp, k):
    top, words = (scores[:, None] + logp).max(dim=1)              # each beam keeps its own best word
    order = top.argsort(descending=True)[:k]
    return top[order], order, words[order]


def _topk_of_first_beams(scores, logp, k):
    top, words = (scores[:, None] + logp).topk(k, dim=1)          # (K, k) per beam, then the first k found
    return top.reshape(-1)[:k], torch.arange(logp.shape[0]).repeat_interleave(k)[:k], words.reshape(-1)[:k]


def _swapped(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx % V, idx // V


def _by_k(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx // k, idx % V


def _not_accumulated(scores, logp, k):
    V = logp.shape[1]
    _, idx = logp.reshape(-1).topk(k)
    return (scores[:, None] + logp).reshape(-1)[idx], idx // V, idx % V


def _beam_cases():
    g = torch.Generator().manual_seed(6)
    cases = []
    for K, V, k in [(3, 7, 3), (4, 9, 4), (2, 6, 2), (5, 11, 3)]:
        logp = torch.log_softmax(2 * torch.randn(K, V, generator=g), dim=1)
        scores = -3 * torch.rand(K, generator=g) - 1.0                 # earlier words' summed log-probs
        cases.append((scores, logp, k))
    return cases


def check_beam_step(fn):
    per_beam = ("top-k is taken per beam: all K*V continuations compete in one top-k over the flattened (K*V) "
                "scores, so a strong beam may keep several children and a weak one none")
    mistakes = [
        Mistake("log-probabilities are multiplied: scores of a sequence add up in log space (log p1p2 = log p1 + "
                "log p2), so the continuation's score is scores[:, None] + logp", _multiplied_logp),
        Mistake("probabilities are multiplied: the ranking is the same, but the scores are probabilities that "
                "underflow to 0 for long captions; add log-probabilities instead", _probabilities),
        Mistake(per_beam, _best_word_per_beam),
        Mistake(per_beam, _topk_of_first_beams),
        Mistake("back-pointers are swapped: in the flattened index i over K*V continuations, the parent beam is "
                "i // V and the word i % V", _swapped),
        Mistake("the parent beam is computed with k: in the flattened index i over K*V continuations, the parent "
                "is i // V (V words per beam), the word i % V", _by_k),
        Mistake("the scores are not accumulated: continuations are ranked by the new word's log-prob alone; "
                "rank by the whole hypothesis, scores[:, None] + logp", _not_accumulated),
    ]
    return checked("beam_step", fn, beam_step, _beam_cases(), mistakes=mistakes)


def collect_finished(seqs: list, scores: list, finished: list, length_norm: float = 0.0):
    """Move the hypotheses that end with END from the beam to `finished`.

    Args:
        seqs: k token lists, each ending with the word chosen at this step; scores: their k summed log-probs.
        finished: (score, tokens) pairs found so far; a new one is scored score / len(tokens) ** length_norm
            (len counts END; length_norm 0 is the plain log-probability).
    Returns:
        (live seqs, live scores, finished): the hypotheses that go on, and the new finished list.
    """
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def _keep_expanding(seqs, scores, finished, length_norm=0.0):
    _, _, done = collect_finished(seqs, scores, finished, length_norm)
    return list(seqs), list(scores), done


def _no_norm(seqs, scores, finished, length_norm=0.0):
    return collect_finished(seqs, scores, finished, 0.0)


def _dropped(seqs, scores, finished, length_norm=0.0):
    live, live_scores, _ = collect_finished(seqs, scores, finished, length_norm)
    return live, live_scores, list(finished)


def _finished_cases():
    A, B_, C = [5, 6, END], [5, 7, 8], [4, 4, 6, 9, END]
    return [([A, B_, C], [-1.5, -2.0, -2.6], [(-0.9, [7, END])], 0.7),
            ([B_, A], [-2.0, -2.2], [], 1.0),
            ([C, B_, [9, END]], [-3.0, -3.1, -1.2], [(-0.5, [END])], 0.5)]


def check_collect_finished(fn):
    mistakes = [
        Mistake("finished hypotheses keep expanding: one that produced <end> must leave the beam (it is complete), "
                "or it grows words after <end>", _keep_expanding),
        Mistake("no length normalisation: a finished hypothesis is ranked by score / len(tokens) ** length_norm "
                "when length_norm > 0 (otherwise short captions always win)", _no_norm),
        Mistake("finished hypotheses are dropped: append each (score, tokens) that ended with <end> to finished, "
                "and return the new list", _dropped),
    ]
    return checked("collect_finished", fn, collect_finished, _finished_cases(), mistakes=mistakes, atol=1e-9)
