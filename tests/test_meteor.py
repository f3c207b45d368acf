"""The exact-match METEOR reward: its formula on small cases, and the same ranking as pycocoevalcap's METEOR."""
import random
import shutil

import numpy as np
import pytest

from captionlib.meteor import align, meteor_exact
from captionlib.shapes import ShapesConfig, generate_split
from captionlib.vocab import tokenize


def test_alignment_counts_matches_and_chunks():
    assert align("a red ball on the grass".split(), "a red ball on the grass".split()) == (6, 1)
    assert align("the grass a red ball".split(), "a red ball on the grass".split()) == (5, 2)
    assert align("a dog a dog".split(), "a dog".split()) == (2, 1)              # one-to-one
    assert align("a big dog".split(), "a dog".split()) == (2, 2)                # "big" breaks the chunk
    assert align([], ["a"]) == (0, 0)


def test_the_formula_recall_weighting_and_the_best_reference():
    ref = "a man rides a red bike down the hill".split()
    assert meteor_exact(ref, [ref]) == pytest.approx(1 - 0.6 * (1 / 9) ** 0.2)
    short = "a man rides".split()                                               # precise, but recalls a third
    longer = "a man rides a red bike down the hill fast today".split()         # recalls everything, two extra
    assert meteor_exact(longer, [ref]) > meteor_exact(short, [ref])
    assert meteor_exact(short, [ref, short]) == meteor_exact(short, [short])    # the best reference counts
    assert meteor_exact([], [ref]) == 0.0 and meteor_exact(["zebra"], [ref]) == 0.0


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's METEOR needs Java")
def test_it_ranks_captions_as_pycocoevalcap_meteor_does():
    from pycocoevalcap.meteor.meteor import Meteor

    rng = random.Random(0)
    scenes = generate_split(ShapesConfig(n_test=150), "test")
    refs = [[tokenize(c) for c in s.captions[1:]] for s in scenes]
    hyps = []
    for s in scenes:
        h = tokenize(s.captions[0])
        cut = rng.choice(["none", "drop", "swap", "junk"])
        if cut == "drop":
            h = h[: max(1, len(h) // 2)]
        elif cut == "swap":
            h = h[len(h) // 2:] + h[: len(h) // 2]
        elif cut == "junk":
            h = [rng.choice(["zebra", "piano", "the", "on", "red"]) for _ in h]
        hyps.append(h)
    _, theirs = Meteor().compute_score({i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)},
                                       {i: [" ".join(h)] for i, h in enumerate(hyps)})
    ours = [meteor_exact(h, rs) for h, rs in zip(hyps, refs)]
    ranks = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(ranks(ours), ranks(np.asarray(theirs, dtype=float)))[0, 1] > 0.9   # Spearman
