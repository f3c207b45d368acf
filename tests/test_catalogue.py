"""Wrong solutions as learners write them (not as the checks' `Mistake`s are written), each fed to its
exercise's check: the verdict must be wrong and the message must name the part that is wrong.

Issue 19's catalogue: lesson 03's shift_captions and masked_loss, lesson 04's attend, lesson 06's beam_step and
collect_finished, lesson 07's clipped_matches, brevity_penalty and corpus_bleu (wrong_solutions.py holds those of
06 and 07). Lessons 00, 01, 02 and 05 and the other exercises of 03 and 04: not yet.
`test_catalogue_counts` prints caught / named / total.
"""
import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from captionlib.checks import is_reference
import wrong_solutions as w
from captionlib.exercises import l03, l04, l06, l07


def _ce(logits, targets, **kw):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), **kw)


def _masked(per, targets, pad_idx):
    mask = (targets != pad_idx).float()
    return (per * mask).sum() / mask.sum()


def _in_place_shift(c):
    c[c == 2] = 0                                   # "drop <end>" by overwriting the caller's captions
    return c[:, :-1], c[:, 1:]


def _clone_then_zero(c):
    t = c[:, 1:].clone()
    t.zero_()
    return c[:, :-1], t


# (exercise, what the learner did, their function, words the message must contain)
CATALOGUE = [
    ("shift_captions", "returned the captions unshifted", lambda c: (c, c), "it must be T-1"),
    ("shift_captions", "targets cut from position 2", lambda c: (c[:, :-1], c[:, 2:]), "targets has length 4"),
    ("shift_captions", "sliced the batch axis", lambda c: (c[:-1], c[1:]), "not the batch axis"),
    ("shift_captions", "inputs start after <start>", lambda c: (c[:, 1:], c[:, 1:]), "inputs starts at position 1"),
    ("shift_captions", "targets overwritten with zeros", _clone_then_zero, "targets starts at position 0"),
    ("shift_captions", "changed the caller's captions", _in_place_shift, "changes its input `captions` in place"),
    ("masked_loss", "no mask", lambda l, t, pad_idx=0: _ce(l, t), "<pad> targets are counted"),
    ("masked_loss", "a literal 0 for the pad", lambda l, t, pad_idx=0: _ce(l, t, ignore_index=0), "pad index is 3"),
    ("masked_loss", "softmax instead of log-softmax",
     lambda l, t, pad_idx=0: _masked(-l.softmax(-1).gather(2, t.unsqueeze(2)).squeeze(2), t, pad_idx), "log_softmax"),
    ("masked_loss", "raw logits as log-probabilities",
     lambda l, t, pad_idx=0: _masked(-l.gather(2, t.unsqueeze(2)).squeeze(2), t, pad_idx), "log_softmax"),
    ("masked_loss", "mean over every position",
     lambda l, t, pad_idx=0: (_ce(l, t, reduction="none") * (t.reshape(-1) != pad_idx)).mean(), "padded length"),
    ("masked_loss", "mean per caption first",
     lambda l, t, pad_idx=0: ((F.cross_entropy(l.transpose(1, 2), t, reduction="none") * (t != pad_idx)).sum(1)
                              / (t != pad_idx).sum(1)).mean(), "per caption"),
    ("masked_loss", "a float64 loss", lambda l, t, pad_idx=0: _ce(l, t, ignore_index=pad_idx).double(), "dtype torch.float64"),
]


def _score(p, h, W_h, w, squash=torch.tanh):
    return squash(p + (h @ W_h.T).unsqueeze(1)) @ w              # (B, P)


def _attention(alpha, f, reduce="sum"):
    return getattr(alpha.unsqueeze(2) * f, reduce)(1), alpha


CATALOGUE += [
    ("attend", "no tanh and a softmax over the batch",
     lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, lambda z: z), 0), f), "over the batch"),
    ("attend", "sigmoid instead of softmax", lambda f, p, h, W, w: _attention(torch.sigmoid(_score(p, h, W, w)), f),
     "must sum to 1 over the P regions"),
    ("attend", "context averaged, not summed", lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w), 1), f, "mean"),
     "Σ_p α_p f_p"),
    ("attend", "relu instead of tanh", lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, torch.relu), 1), f),
     "must be tanh"),
    ("attend", "exp without the normalisation", lambda f, p, h, W, w: _attention(_score(p, h, W, w).exp(), f),
     "must sum to 1"),
    ("attend", "no tanh and the context averaged (both named)",
     lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, lambda z: z), 1), f, "mean"), "summed over regions; the score's nonlinearity must be tanh"),
]
CATALOGUE += [
    ("beam_step", "back-pointers swapped", w.b_swapped, "back-pointers are swapped"),
    ("beam_step", "each beam keeps its best word", w.b_per_beam, "top-k is taken per beam"),
    ("beam_step", "parent as idx // K", w.b_by_K, "the parent is i // V"),
    ("beam_step", "ranked by the new word alone", w.b_logp_only, "own score is not added"),
    ("beam_step", "true division for the parent", w.b_true_div, "integer indices"),
    ("beam_step", "logp += scores in place", w.b_in_place, "changes its input `logp` in place"),
    ("beam_step", "only the first k beams looked at", w.b_first_k_beams, "only the first beam's continuations"),
    ("collect_finished", "finished ones stay in the beam", w.f_no_else, "keep expanding"),
    ("collect_finished", "no length normalisation", w.f_no_norm, "no length normalisation"),
    ("collect_finished", "length without <end>", w.f_len_without_end, "len(tokens) counts <end>"),
    ("collect_finished", "multiplied by the length", w.f_times, "multiplied by the length"),
    ("collect_finished", "(tokens, score) pairs", w.f_swapped_pair, "(score, tokens), in that order"),
    ("collect_finished", "earlier finished ones forgotten", w.f_forgot_old, "finished at earlier steps are lost"),
    ("clipped_matches", "no clipping", w.k_unclipped, "there is no clipping"),
    ("clipped_matches", "clipped by the first reference", w.k_first_ref, "clipped by one reference only"),
    ("clipped_matches", "clipped by the fewest", w.k_min_over_refs, "clipped by the fewest"),
    ("clipped_matches", "distinct n-grams as the total", w.k_unique_total, "repeats included"),
    ("clipped_matches", "returns the precision", w.k_precision, "return a pair"),
    ("clipped_matches", "clipped at the references' sum", w.k_summed, "total over all references"),
    ("clipped_matches", "the references' n-grams as the total", w.k_ref_total, "repeats included"),
    ("brevity_penalty", "first of two equally close", w.bp_first_closest, "whatever the order"),
    ("brevity_penalty", "shortest reference", w.bp_shortest, "shortest reference"),
    ("brevity_penalty", "no exp", w.bp_no_exp, "BP = exp(1 - r / c)"),
    ("brevity_penalty", "mean reference length", w.bp_mean, "not the mean"),
    ("brevity_penalty", "inverted", w.bp_inverted, "inverted"),
    ("brevity_penalty", "a penalty for long ones too", w.bp_always, "BP = 1 when c > r"),
    ("corpus_bleu", "average of sentence scores", w.c_avg, "average of sentence BLEUs"),
    ("corpus_bleu", "no clipping", w.c_unclipped, "not clipped"),
    ("corpus_bleu", "arithmetic mean", w.c_arith, "arithmetic mean"),
    ("corpus_bleu", "a brevity penalty per sentence", w.c_bp_per_sentence, "computed per sentence"),
    ("corpus_bleu", "the shortest references' length", w.c_shortest_r, "closest to each hypothesis"),
    ("corpus_bleu", "matches pooled over n", w.c_pooled_over_n, "sqrt(1 * 1/4)"),
    ("corpus_bleu", "no brevity penalty", w.c_no_bp, "there is no brevity penalty"),
    ("corpus_bleu", "always BLEU-4", w.c_always4, "max_n is not used"),
]
CHECKS = {"shift_captions": (l03.check_shift_captions, l03.shift_captions),
          "masked_loss": (l03.check_masked_loss, l03.masked_loss), "attend": (l04.check_attend, l04.attend),
          "beam_step": (l06.check_beam_step, l06.beam_step), "collect_finished": (l06.check_collect_finished, l06.collect_finished),
          "clipped_matches": (l07.check_clipped_matches, l07.clipped_matches),
          "brevity_penalty": (l07.check_brevity_penalty, l07.brevity_penalty),
          "corpus_bleu": (l07.check_corpus_bleu, l07.corpus_bleu)}


def _verdict(exercise, fn):
    check, reference = CHECKS[exercise]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        used = check(fn)
    return is_reference(used, reference), out.getvalue().splitlines()[0]


@pytest.mark.parametrize("exercise, did, fn, names", CATALOGUE, ids=[f"{e}: {d}" for e, d, _, _ in CATALOGUE])
def test_each_learner_mistake_is_caught_and_named(exercise, did, fn, names):
    caught, line = _verdict(exercise, fn)
    assert caught and line.startswith("❌"), line
    assert names in line, line


def test_catalogue_counts(capsys):
    rows = [(e, *_verdict(e, fn), names) for e, _, fn, names in CATALOGUE]
    with capsys.disabled():
        for exercise in CHECKS:
            mine = [r for r in rows if r[0] == exercise]
            print(f"\n{exercise}: caught {sum(r[1] for r in mine)} / named {sum(r[1] and r[3] in r[2] for r in mine)} "
                  f"/ total {len(mine)}")
    assert all(len([r for r in rows if r[0] == e]) >= 5 for e in CHECKS)
