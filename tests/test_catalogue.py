"""Wrong solutions as learners write them (not as the checks' `Mistake`s are written), each fed to its
exercise's check: the verdict must be wrong and the message must name the part that is wrong.

Issue 19's catalogue; so far for lesson 03's shift_captions and masked_loss and lesson 04's attend (the other
exercises: to do).
`test_catalogue_counts` prints caught / named / total.
"""
import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from captionlib.checks import is_reference
from captionlib.exercises import l03, l04


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
CHECKS = {"shift_captions": (l03.check_shift_captions, l03.shift_captions),
          "masked_loss": (l03.check_masked_loss, l03.masked_loss), "attend": (l04.check_attend, l04.attend)}


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
