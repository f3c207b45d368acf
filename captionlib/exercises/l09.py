"""Lesson 09 (the capstone) exercise: scoring a model on the references a person is scored on.

The human "ceiling" scores each reference caption against the image's OTHER references (K - 1 of them), while a
model is usually scored against all K. BLEU rises with the number of references, so the two are not comparable.
The learner writes `leave_one_out(references, hypotheses, score)`: the model's score with each reference left out
in turn, averaged over the K choices; `captionlib.evaluate.against_humans` then puts the model and the people on
the very same references.
"""
from __future__ import annotations

from ..checks import MISSING, Mistake, Part, checked
from ..evaluate import leave_one_out

__all__ = ["PARTS", "leave_one_out", "check_leave_one_out", "word_precision"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "leave_one_out": [Part("one corpus score per round", 1, r"scored alone|corpus"),
                      Part("which references each round keeps", 2, r"every reference is used|k-th IMAGE|keeps only|in place|K is"),
                      Part("the K rounds and their mean", 2, r"round|divide|maximum|K - 1")],
}


def word_precision(references: list, hypotheses: list) -> float:
    """A small corpus metric for the check: the share of hypothesis words that some reference of the image uses."""
    hits = sum(sum(w in {x for r in refs for x in r} for w in hyp) for refs, hyp in zip(references, hypotheses))
    return hits / max(1, sum(len(h) for h in hypotheses))


def _fold(references, k):
    return [r[:k] + r[k + 1:] for r in references]


# Three images, three references each: every reference brings a word no other has, so each fold scores differently.
_REFS = [[["a", "dog"], ["a", "brown", "dog"], ["dog", "running"]],
         [["two", "cats"], ["cats", "sleeping"], ["two", "kittens", "asleep"]],
         [["a", "red", "car"], ["a", "car", "parked"], ["red", "car", "outside"]]]
_HYPS = [["a", "brown", "dog", "running"], ["two", "kittens", "sleeping"], ["red", "car", "parked", "outside"]]
_UNEQUAL = [_REFS[0], _REFS[1][:2], _REFS[2] + [["parked", "outside"]]]     # 3, 2 and 4 references: K = 2, the fewest


def _cases():
    return [(_REFS, _HYPS, word_precision),
            ([r[:2] for r in _REFS], _HYPS, word_precision),                       # K = 2
            ([_REFS[0] + [["a", "puppy"]]], [["a", "puppy", "running"]], word_precision),   # one image, K = 4
            (_UNEQUAL, _HYPS, word_precision)]                                      # images with 4, 2, 3 references


def _unique_words(counts: dict, order: str) -> tuple[list, list]:
    """One image whose K references each bring one word of their own (in `order`), and a caption using those
    words as often as `counts` says: every round scores differently, and which round is best is set by counts."""
    refs = [["x", w] for w in order]
    hyp = [w for w, n in counts.items() for _ in range(n)]
    return [refs], [hyp]


def _K(references) -> int:
    return min(len(r) for r in references)


def _rounds(references, hypotheses, score, keep=lambda r, k: r[:k] + r[k + 1:], ks=None) -> list:
    return [score([keep(r, k) for r in references], hypotheses) for k in (ks if ks is not None else range(_K(references)))]


# Each a whole wrong implementation; a message is given only when the learner's outputs equal one of these on every
# probe input (`_FIXTURES`), so that a coincidence on one input cannot name the wrong slip.
_VARIANTS = [
    ("every reference is used: leave one out in each of the K rounds (score against the other K - 1), as the human "
     "ceiling is scored, then average the K scores", lambda R, H, s: s(R, H)),
    ("one reference is never left out: run the K rounds k = 0 .. K - 1, range(K)",
     lambda R, H, s: sum(_rounds(R, H, s, ks=range(_K(R) - 1))) / (_K(R) - 1)),
    ("round 0 is skipped: run k = 0 .. K - 1, range(K)", lambda R, H, s: sum(_rounds(R, H, s, ks=range(1, _K(R)))) / _K(R)),
    ("round 0 is skipped: run k = 0 .. K - 1, range(K)",
     lambda R, H, s: sum(_rounds(R, H, s, ks=range(1, _K(R)))) / (_K(R) - 1)),
    ("the mean divides by a fixed number of rounds: divide by K, the number of references per image",
     lambda R, H, s: sum(_rounds(R, H, s)) / 3),
    ("the K rounds are combined by their maximum: take their mean, the expected score over which reference is left out",
     lambda R, H, s: max(_rounds(R, H, s))),
    ("the K rounds are combined by their minimum: take their mean", lambda R, H, s: min(_rounds(R, H, s))),
    ("one round only (one reference left out): run all K rounds and average them", lambda R, H, s: _rounds(R, H, s)[-1]),
    ("one round only (the first reference left out): run all K rounds and average them", lambda R, H, s: _rounds(R, H, s)[0]),
    ("the K rounds' scores are summed: divide by K, their mean", lambda R, H, s: sum(_rounds(R, H, s))),
    ("the sum of the K rounds is divided by K - 1: divide by K, the number of rounds",
     lambda R, H, s: sum(_rounds(R, H, s)) / (_K(R) - 1)),
    ("the sum of the rounds is divided by the number of images: divide by K, the number of rounds",
     lambda R, H, s: sum(_rounds(R, H, s)) / len(R)),
    ("each round keeps only the k-th reference: it must keep all the others and leave the k-th out, r[:k] + r[k + 1:]",
     lambda R, H, s: sum(_rounds(R, H, s, keep=lambda r, k: [r[k]])) / _K(R)),
    ("in round k the k-th IMAGE is left out: leave out every image's k-th REFERENCE and keep all the images, "
     "[r[:k] + r[k + 1:] for r in references]",
     lambda R, H, s: sum(s([r for i, r in enumerate(R) if i != k], [h for i, h in enumerate(H) if i != k])
                         for k in range(len(R))) / len(R)),
    ("in round k the k-th IMAGE is left out: leave out every image's k-th REFERENCE and keep all the images, "
     "[r[:k] + r[k + 1:] for r in references]",
     lambda R, H, s: sum(s([r for i, r in enumerate(R) if i != k], [h for i, h in enumerate(H) if i != k])
                         for k in range(_K(R))) / _K(R)),
    ("each image is scored alone and the scores averaged: the metric is a corpus one (pooled over the images); call "
     "score on all images' references of a round at once",
     lambda R, H, s: sum(s([r[:k] + r[k + 1:]], [h]) for r, h in zip(R, H) for k in range(_K(R))) / (_K(R) * len(R))),
    ("K is the first image's number of references: with images of 3, 2 and 4 references it must be the fewest (2), "
     "min(len(r) for r in references)", None),
    ("K is the largest number of references: it must be the fewest, min(len(r) for r in references)", None),
]
_FIXTURES = [(_REFS, _HYPS), ([r[:2] for r in _REFS], _HYPS), _unique_words({"a": 4, "b": 1, "c": 2, "x": 1}, "abc"),
             _unique_words({"a": 1, "b": 4, "c": 2, "x": 1}, "abc"), _unique_words({"a": 2, "b": 1, "x": 1}, "ab")]


def _parts(fn) -> str | None:
    close = lambda a, b: isinstance(a, (int, float)) and abs(a - b) < 1e-9    # noqa: E731
    got = []
    for refs, hyps in _FIXTURES:
        try:
            got.append(fn(refs, hyps, word_precision))
        except Exception:
            got.append(None)
    for said, variant in _VARIANTS:
        if variant is not None and all(close(g, variant(r, h, word_precision)) for g, (r, h) in zip(got, _FIXTURES)):
            return said
    right = all(close(g, leave_one_out(r, h, word_precision)) for g, (r, h) in zip(got, _FIXTURES))
    if right:                                                 # right with equal numbers of references: K itself?
        uneven = fn(_UNEQUAL, _HYPS, word_precision)
        for said, K in ((_VARIANTS[-2][0], len(_UNEQUAL[0])), (_VARIANTS[-1][0], max(len(r) for r in _UNEQUAL))):
            try:
                want = sum(word_precision([r[:k] + r[k + 1:] for r in _UNEQUAL], _HYPS) for k in range(K)) / K
            except Exception:
                continue
            if close(uneven, want):
                return said
    return None


_RECIPE = {None: "the recipe: K = the number of references per image; for k in range(K): score(the references without "
                 "their k-th, hypotheses); return the mean of the K scores"}


def check_leave_one_out(fn=MISSING):
    def all_refs(references, hypotheses, score):
        return score(references, hypotheses)

    mistakes = [Mistake("every reference is used: leave one out in each round, as the human ceiling is scored", all_refs)]
    errors = {IndexError: lambda e, args: ("with images of different numbers of references, K must be the fewest, "
                                           "min(len(r) for r in references): a round beyond it finds no k-th reference")
              if len({len(r) for r in args[0]}) > 1 else None}
    return checked("leave_one_out", fn, leave_one_out, _cases(), mistakes=mistakes, probes=[_parts], atol=1e-9, errors=errors,
                   recipe=_RECIPE)
