"""Lesson 09 (the capstone) exercise: scoring a model on the references a person is scored on.

The human "ceiling" scores each reference caption against the image's OTHER references (K - 1 of them), while a
model is usually scored against all K. BLEU rises with the number of references, so the two are not comparable.
The learner writes `leave_one_out(references, hypotheses, score)`: the model's score with each reference left out
in turn, averaged over the K choices; `captionlib.evaluate.against_humans` then puts the model and the people on
the very same references.
"""
from __future__ import annotations

from ..checks import Mistake, checked
from ..evaluate import leave_one_out

__all__ = ["leave_one_out", "check_leave_one_out", "word_precision"]


def word_precision(references: list, hypotheses: list) -> float:
    """A small corpus metric for the check: the share of hypothesis words that some reference of the image uses."""
    hits = sum(sum(w in {x for r in refs for x in r} for w in hyp) for refs, hyp in zip(references, hypotheses))
    return hits / max(1, sum(len(h) for h in hypotheses))


def _fold(references, k):
    return [r[:k] + r[k + 1:] for r in references]


# Two images, three references each: every reference brings one word no other has, so each fold scores differently.
_REFS = [[["a", "dog"], ["a", "brown", "dog"], ["dog", "running"]],
         [["two", "cats"], ["cats", "sleeping"], ["two", "kittens", "asleep"]]]
_HYPS = [["a", "brown", "dog", "running"], ["two", "kittens", "sleeping"]]


def _cases():
    return [(_REFS, _HYPS, word_precision),
            ([r[:2] for r in _REFS], _HYPS, word_precision),                       # K = 2
            ([_REFS[0] + [["a", "puppy"]]], [["a", "puppy", "running"]], word_precision)]   # one image, K = 4


def _unique_words(counts: dict, order: str) -> tuple[list, list]:
    """One image whose K references each bring one word of their own (in `order`), and a caption using those
    words as often as `counts` says: every round scores differently, and which round is best is set by counts."""
    refs = [["x", w] for w in order]
    hyp = [w for w, n in counts.items() for _ in range(n)]
    return [refs], [hyp]


def _parts(fn) -> str | None:
    close = lambda a, b: isinstance(a, (int, float)) and abs(a - b) < 1e-9    # noqa: E731
    fixtures = [_unique_words({"a": 4, "b": 1, "c": 2, "x": 1}, "abc"), _unique_words({"a": 1, "b": 4, "c": 2, "x": 1}, "abc"),
                _unique_words({"a": 2, "b": 1, "x": 1}, "ab")]
    two = fn(_REFS, _HYPS, word_precision)                                    # two images: a division by their number shows
    if close(two, sum(word_precision(_fold(_REFS, k), _HYPS) for k in range(3)) / len(_REFS)):
        return "the sum of the rounds is divided by the number of images: divide by K, the number of rounds"
    said = set()
    for refs, hyps in fixtures:
        K = len(refs[0])
        folds = [word_precision(_fold(refs, k), hyps) for k in range(K)]
        got = fn(refs, hyps, word_precision)
        if close(got, sum(folds) / K):
            continue                                                          # right on this one
        if close(got, word_precision(refs, hyps)):
            said.add("every reference is used: leave one out in each of the K rounds (score against the other K - 1), "
                     "as the human ceiling is scored, then average the K scores")
        elif close(got, sum(folds[:-1]) / (K - 1)) or close(got, sum(folds[:-1]) / K):
            said.add("one reference is never left out: run the K rounds k = 0 .. K - 1, range(K)")
        elif close(got, max(folds)):
            said.add("max")
        elif close(got, min(folds)):
            said.add("min")
        elif close(got, folds[-1]) or close(got, folds[0]):
            said.add("one round only (one reference left out): run all K rounds and average them")
        elif close(got, sum(folds)):
            said.add("the K rounds' scores are summed: divide by K, their mean")
        elif any(close(got, sum(folds) / n) for n in (3, 4, 5) if n != K):
            said.add("the mean divides by a fixed number of rounds: divide by K, the number of references per image "
                     "(here 2)")
        else:
            said.add("other")
    if said == {"max"} or said == {"min"}:
        return (f"the K rounds are combined by their {said.pop()}imum: take their mean, the expected score over which "
                "reference is left out")
    named = sorted(d for d in said if d not in ("max", "min", "other"))
    if len(named) == 1 and said <= {named[0], "max", "min"}:
        return named[0]
    per_image = sum(word_precision(_fold([r], k), [h]) for r, h in zip(_REFS, _HYPS) for k in range(3)) / 6
    if close(fn(_REFS, _HYPS, word_precision), per_image):
        return ("each image is scored alone and the scores averaged: the metric is a corpus one (pooled over the "
                "images); call score on all images' references of a round at once")
    return None


_RECIPE = {None: "the recipe: K = the number of references per image; for k in range(K): score(the references without "
                 "their k-th, hypotheses); return the mean of the K scores"}


def check_leave_one_out(fn):
    def all_refs(references, hypotheses, score):
        return score(references, hypotheses)

    mistakes = [Mistake("every reference is used: leave one out in each round, as the human ceiling is scored", all_refs)]
    return checked("leave_one_out", fn, leave_one_out, _cases(), mistakes=mistakes, probes=[_parts], atol=1e-9,
                   recipe=_RECIPE)
