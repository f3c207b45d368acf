import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

import captionlib.bleu
from captionlib.bleu import (bleu_scores, brevity_penalty, closest_ref_length, clipped_counts, coco_metrics, ptb_tokenize,
                             corpus_bleu, corpus_counts, sentence_bleu)

WORDS = st.sampled_from(["a", "red", "circle", "above", "blue", "square", "two", "the"])
SENT = st.lists(WORDS, min_size=0, max_size=9)
ITEM = st.tuples(st.lists(st.lists(WORDS, min_size=1, max_size=9), min_size=1, max_size=5), SENT)
WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3,) * 3, 4: (0.25,) * 4}


def nltk(refs, hyps, n, smooth=None):
    fn = SmoothingFunction().method1 if smooth else SmoothingFunction().method0
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about zero counts
        return nltk_corpus_bleu(refs, hyps, weights=WEIGHTS[n], smoothing_function=fn)


@settings(max_examples=300, deadline=None)
@given(st.lists(ITEM, min_size=1, max_size=8))
def test_corpus_bleu_equals_nltk(items):
    refs, hyps = [r for r, _ in items], [h for _, h in items]
    for n in (1, 2, 3, 4):
        assert math.isclose(corpus_bleu(refs, hyps, n), nltk(refs, hyps, n), rel_tol=0, abs_tol=1e-9)
    ours = bleu_scores(refs, hyps)
    for n in (1, 2, 3, 4):
        assert math.isclose(ours[f"BLEU-{n}"], nltk(refs, hyps, n), abs_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(ITEM, min_size=1, max_size=5))
def test_smoothed_bleu_equals_nltk_method1(items):
    refs, hyps = [r for r, _ in items], [h for _, h in items]
    assert math.isclose(corpus_bleu(refs, hyps, 4, smoothing=0.1), nltk(refs, hyps, 4, smooth=True), abs_tol=1e-9)


@pytest.mark.parametrize("refs,hyps", [
    ([[["a", "b"]]], [[]]),                                   # empty hypothesis
    ([[["a", "b"]]], [["c", "d"]]),                           # no match at all
    ([[["a"]]], [["a"]]),                                     # single word, perfect
    ([[["a", "b", "c"]], [["x"]]], [["a"], []]),              # mixed
    ([[["the", "cat"], ["a", "cat", "sat", "here"]]], [["the", "cat", "sat"]]),
])
def test_edge_cases_equal_nltk(refs, hyps):
    for n in (1, 2, 3, 4):
        assert math.isclose(corpus_bleu(refs, hyps, n), nltk(refs, hyps, n), abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(ITEM, min_size=0, max_size=8), st.sampled_from([2 ** 62, 40, 0]))
def test_corpus_counts_equal_the_readable_clipped_counts(items, key_limit):
    """The vectorised counts are the sums of clipped_counts, also when n-grams must be renumbered."""
    refs, hyps = [r for r, _ in items], [h for _, h in items]
    old, captionlib.bleu._KEY_LIMIT = captionlib.bleu._KEY_LIMIT, key_limit
    try:
        matches, totals, hyp_len, ref_len = corpus_counts(refs, hyps, 4)
    finally:
        captionlib.bleu._KEY_LIMIT = old
    for n in (1, 2, 3, 4):
        counted = [clipped_counts(h, r, n) for r, h in zip(refs, hyps)]
        assert matches[n] == sum(m for m, _ in counted)
        assert totals[n] == sum(max(t, 1) for _, t in counted)     # nltk's 1 for a hypothesis without n-grams
    assert hyp_len == sum(map(len, hyps))
    assert ref_len == sum(closest_ref_length(r, len(h)) for r, h in zip(refs, hyps))


def test_parts():
    assert clipped_counts(["the"] * 7, [["the", "cat", "the"], ["the"]], 1) == (2, 7)  # Papineni's example
    assert closest_ref_length([[1] * 3, [1] * 7], 5) == 3                              # tie -> shorter
    assert brevity_penalty(10, 12) == 1.0 and brevity_penalty(10, 0) == 0.0
    assert math.isclose(brevity_penalty(10, 5), math.exp(-1))
    assert sentence_bleu([["a", "b", "c", "d"]], ["a", "b", "c", "d"]) == 1.0


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        corpus_bleu([[["a"]]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        bleu_scores([[["a"]]], [["a"], ["b"]])


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs Java")
def test_matches_pycocoevalcap_bleu_on_a_fixed_set():
    refs = [["a small red circle above a blue square", "a red ball over a blue box", "a little red circle and a blue square"],
            ["two green triangles", "there are two green triangles", "two little green triangles"],
            ["a big yellow diamond on the left", "a yellow diamond", "there is a large yellow diamond"]]
    hyps = ["a small red circle above a blue box", "there are two green triangles", "a yellow diamond on the right"]
    coco = coco_metrics(refs, hyps)
    # Lower-case words without punctuation tokenize the same in PTB and in ours, so BLEU agrees
    # (pycocoevalcap adds 1e-9/1e-15 smoothing terms, hence the 1e-6 tolerance).
    ours = bleu_scores([[r.split() for r in rs] for rs in refs], [h.split() for h in hyps])
    for n in range(1, 5):
        assert math.isclose(coco[f"BLEU-{n}"], ours[f"BLEU-{n}"], abs_tol=1e-6), (n, coco, ours)
    # Where they differ: a hypothesis shorter than n words. nltk (and captionlib) count its n-gram
    # total as 1, pycocoevalcap as 0, so with a 3-word caption COCO's BLEU-4 is higher.
    short = hyps[:1] + ["two green triangles"] + hyps[2:]
    coco_short = coco_metrics(refs, short)["BLEU-4"]
    ours_short = bleu_scores([[r.split() for r in rs] for rs in refs], [h.split() for h in short])["BLEU-4"]
    assert coco_short > ours_short + 0.01
    assert 0 < coco["METEOR"] < 1 and 0 < coco["ROUGE-L"] <= 1 and coco["CIDEr"] > 0


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs Java")
def test_one_meteor_process_serves_every_call_and_changes_no_score():
    """coco_metrics keeps one METEOR process (a JVM start is ~5 s): scores asked of it one after another are the
    scores a fresh process gives each of them alone."""
    from pycocoevalcap.meteor.meteor import Meteor

    from captionlib import bleu

    sets = [([["a small red circle above a blue square", "a red ball over a blue box"]], ["a small red ball above a box"]),
            ([["two green triangles", "a pair of green triangles"], ["a yellow diamond", "one yellow diamond"]],
             ["two triangles", "a big yellow diamond"])]
    shared = [bleu.coco_metrics(r, h, cache=False)["METEOR"] for r, h in sets]
    assert bleu._meteor() is bleu._meteor()                       # one process, reused
    for (r, h), score in zip(sets, shared):
        gts = bleu.ptb_tokenize({i: [{"caption": x} for x in refs] for i, refs in enumerate(r)})
        res = bleu.ptb_tokenize({i: [{"caption": x}] for i, x in enumerate(h)})
        assert Meteor().compute_score(gts, res)[0] == score      # a fresh JVM, alone


def test_coco_metrics_without_java_says_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="need Java"):
        coco_metrics([["a"]], ["a"])


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs Java")
def test_ptb_tokenize_equals_pycocoevalcaps_and_writes_nothing_beside_its_jar(monkeypatch):
    """A read-only site-packages (a shared install) is simulated by refusing every file made in the package;
    as root, permission bits alone would not stop the write."""
    import tempfile

    from pycocoevalcap.tokenizer import ptbtokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {0: [{"caption": "A dog, running (fast) on the beach!"}, {"caption": "Two men's bikes ... and a 'big' hat."}],
                7: [{"caption": "Café  au lait?\nyes -- with U.S. \"sugar\"."}]}
    expected = PTBTokenizer().tokenize(captions)
    package = Path(ptbtokenizer.__file__).resolve().parent
    made = tempfile.NamedTemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == package:
            raise PermissionError(13, "Permission denied", str(dir))
        return made(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(PermissionError):
        PTBTokenizer().tokenize(captions)                                   # what a read-only install does
    assert ptb_tokenize(captions) == expected
    assert coco_metrics([["a dog runs on the beach", "a dog on sand"]], ["a dog runs on sand"])["BLEU-1"] > 0
