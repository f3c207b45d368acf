"""CIDEr-D against pycocoevalcap's Cider (the number papers report), image by image."""
import random

import numpy as np
import pytest

from captionlib.cider import CiderD, ngram_counts
from captionlib.shapes import ShapesConfig, generate_split
from captionlib.vocab import tokenize


def _corpus(n=60, seed=0):
    rng = random.Random(seed)
    scenes = generate_split(ShapesConfig(n_test=n), "test")
    refs = [[tokenize(c) for c in s.captions] for s in scenes]
    hyps = []
    for r in refs:
        h = list(rng.choice(r))
        if rng.random() < 0.5:
            h[rng.randrange(len(h))] = rng.choice(["red", "box", "two", "above", "zebra"])
        if rng.random() < 0.3:
            h = h + h[:3]                                                   # longer: the length penalty acts
        hyps.append(h)
    return refs, hyps


def test_equals_pycocoevalcap_cider_per_image_when_the_frequencies_come_from_the_same_references():
    from pycocoevalcap.cider.cider import Cider

    refs, hyps = _corpus()
    hyps[3], hyps[7] = ["a"], []                                             # one word, no word: no bigrams at all
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    mean, theirs = Cider().compute_score(gts, res)
    ours = CiderD(refs).scores(range(len(hyps)), hyps)
    assert np.allclose(ours, theirs, atol=1e-12, rtol=1e-9)
    assert abs(ours.mean() - mean) < 1e-9


def test_a_reference_scores_high_an_unrelated_caption_zero_and_repetition_is_penalised():
    refs, _ = _corpus()
    cider = CiderD(refs)
    good = cider.score(0, refs[0][0])
    assert good > 1.0
    assert cider.score(0, ["zebra", "xylophone", "quartz"]) == 0.0
    assert cider.score(0, refs[0][0] * 3) < good / 2                         # clipping and the length penalty


def test_ngram_counts_and_mismatched_lengths():
    assert ngram_counts(["a", "b", "a"], 2) == {("a",): 2, ("b",): 1, ("a", "b"): 1, ("b", "a"): 1}
    with pytest.raises(ValueError, match="2 captions but 1"):
        CiderD([[["a"]]]).scores([0], [["a"], ["b"]])
