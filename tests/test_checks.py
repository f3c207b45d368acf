import numpy as np
import torch

from captionlib.checks import DONE, NOT_DONE, WRONG, Mistake, check, checked, describe_difference, is_reference
from captionlib.exercises import l00
from captionlib.vocab import tokenize


def square(x):
    return x * x


def test_done_not_done_and_wrong():
    cases = [(torch.tensor([1.0, 2.0]),), (torch.tensor([[3.0]]),)]
    assert check("sq", square, square, cases).status == DONE

    def todo(x):
        raise NotImplementedError()

    r = check("sq", todo, square, cases)
    assert r.status == NOT_DONE and "not done yet" in r.message

    r = check("sq", lambda x: x + x, square, cases, mistakes=[Mistake("you doubled instead of squaring", lambda x: 2 * x)])
    assert r.status == WRONG and r.diagnosis == "you doubled instead of squaring"

    r = check("sq", lambda x: x ** 3, square, cases)
    assert r.status == WRONG and "first at index (1,): expected 4, got 8" in r.message

    r = check("sq", lambda x: x.unsqueeze(0), square, cases)
    assert "(1, 2) has an extra axis of size 1 at position 0 ((2,) expected)" in r.message

    r = check("sq", lambda x: x.nope(), square, cases)
    assert r.status == WRONG and "AttributeError" in r.message


def test_checked_returns_reference_unless_done(capsys):
    ref = square
    assert checked("sq", square, ref, [(np.array([2.0]),)]) is square
    bad = lambda x: x  # noqa: E731
    used = checked("sq", bad, ref, [(np.array([2.0]),)])
    assert is_reference(used, ref) and used(3.0) == 9.0
    assert "continues with the reference" in capsys.readouterr().out


def test_rerunning_only_the_check_cell_keeps_the_verdict(capsys):
    """A check cell rebinds the name: `sq = checked(sq)`. Re-running just that cell after ⏳ or ❌ must
    re-check the learner's function, not report ✅ for the reference it fell back to."""
    def todo(x):
        raise NotImplementedError()

    for learner, mark in ((todo, "⏳"), (lambda x: x + x, "❌")):
        sq = learner
        verdicts = []
        for _ in range(3):                                             # the check cell, run three times
            sq = checked("sq", sq, square, [(np.array([3.0]),)])
            verdicts.append(capsys.readouterr().out.splitlines()[0][0])
        assert verdicts == [mark] * 3 and is_reference(sq, square)
    fixed = square                                                     # the exercise cell fixed and run: ✅
    assert checked("sq", fixed, square, [(np.array([3.0]),)]) is fixed


def test_describe_difference_on_containers():
    assert describe_difference([1, [2, 3]], [1, [2, 3]]) is None
    assert "length 1, expected 2" in describe_difference([1, 2], [1])
    assert "keys" in describe_difference({"a": 1}, {"b": 1})
    assert describe_difference(0.1 + 0.2, 0.3) is None


def test_inputs_are_copied_so_in_place_edits_do_not_leak():
    x = torch.ones(3)

    def inplace(t):
        t.mul_(5)
        return t

    check("sq", inplace, square, [(x,)])
    assert torch.equal(x, torch.ones(3))


# Lesson 00: each listed mistake, written independently of the check's own versions.

def test_l00_reference_passes():
    assert l00.check_build_vocab(l00.build_vocab) is l00.build_vocab
    assert l00.check_encode(l00.encode) is l00.encode
    assert l00.check_decode(l00.decode) is l00.decode


def _diag(check_fn, fn):
    from captionlib.checks import check as raw
    import captionlib.exercises.l00 as m
    captured = {}
    orig = m.checked
    m.checked = lambda name, f, ref, cases, **kw: captured.setdefault("r", raw(name, f, ref, cases, **kw))
    try:
        check_fn(fn)
    finally:
        m.checked = orig
    return captured["r"]


def test_l00_build_vocab_mistakes_are_named():
    from collections import Counter

    def forgot_specials(captions, min_freq):
        c = Counter(w for s in captions for w in tokenize(s))
        return [w for w in sorted(c, key=lambda w: (-c[w], w)) if c[w] >= min_freq]

    def greater_than(captions, min_freq):
        c = Counter(w for s in captions for w in tokenize(s))
        return ["<pad>", "<start>", "<end>", "<unk>"] + [w for w in sorted(c, key=lambda w: (-c[w], w)) if c[w] > min_freq]

    def raw_split(captions, min_freq):
        c = Counter(w for s in captions for w in s.split(" "))
        return ["<pad>", "<start>", "<end>", "<unk>"] + [w for w in sorted(c, key=lambda w: (-c[w], w)) if c[w] >= min_freq]

    assert "special tokens are missing" in _diag(l00.check_build_vocab, forgot_specials).message
    assert ">= min_freq" in _diag(l00.check_build_vocab, greater_than).message
    assert "tokenize" in _diag(l00.check_build_vocab, raw_split).message


def test_l00_encode_and_decode_mistakes_are_named():
    def no_markers(caption, w2i):
        return [w2i.get(w, w2i["<unk>"]) for w in tokenize(caption)]

    def skip_unknown(caption, w2i):
        return [w2i["<start>"], *[w2i[w] for w in tokenize(caption) if w in w2i], w2i["<end>"]]

    def no_stop(ids, i2w):
        return " ".join(w for w in (i2w[i] for i in ids) if not w.startswith("<"))

    assert "<start> and <end> are missing" in _diag(l00.check_encode, no_markers).message
    assert "<unk>" in _diag(l00.check_encode, skip_unknown).message
    assert "does not stop at the first <end>" in _diag(l00.check_decode, no_stop).message

    def crashes_on_unknown(caption, w2i):
        return [w2i["<start>"], *[w2i[w] for w in tokenize(caption)], w2i["<end>"]]

    r = _diag(l00.check_encode, crashes_on_unknown)
    assert r.status == WRONG and "KeyError" in r.message


def test_right_values_of_the_wrong_dtype_are_named_with_the_fix():
    cases = [(torch.tensor([1.0, 2.0]),)]
    r = check("sq", lambda x: (x * x).double(), square, cases)
    assert r.status == WRONG and "right values but dtype torch.float64, expected torch.float32" in r.message
    assert ".float() on the tensor" in r.message
    r = check("sq", lambda x: (x * x).numpy(), square, cases)
    assert r.status == WRONG and "should be a Tensor, got a ndarray: convert with torch.from_numpy" in r.message


def test_an_input_changed_in_place_is_named_even_when_the_output_is_right():
    def squares_in_place(x):
        return x.mul_(x)

    r = check("sq", squares_in_place, square, [(torch.tensor([1.0, 2.0]),), (torch.tensor([[3.0]]),)])
    assert r.status == WRONG and "changes its input `x` in place" in r.message and "x.clone()" in r.message

    def appends(item, into):                 # the exercise's contract: `into` is filled in place
        into.append(item)
        return len(into)

    assert check("append", appends, appends, [(3, [1, 2])]).status == DONE   # the reference changes it too: allowed


def test_a_long_verdict_folds_between_words_and_two_inputs_read_as_both():
    """JupyterLab's output area breaks a long line anywhere, mid-word too: the verdict is folded at word
    boundaries first. And "correct on all 2 test inputs" reads oddly: two are "both"."""
    from captionlib.checks import Result, _say

    words = ("the gates are in the wrong order: torch.nn.LSTMCell stacks them as (i, f, g, o), not (i, f, o, g); "
             "split the pre-activations with gates.chunk(4, dim=1) in that order and apply sigmoid to i, f and o").split()
    said = _say(Result("lstm_step", WRONG, " ".join(words)))
    assert all(len(line) <= 110 for line in said.splitlines()) and len(said.splitlines()) > 1
    assert said.split() == ["❌", "lstm_step:"] + words                       # no word cut in two
    assert "correct on both test inputs" in str(check("f", lambda x: x + 1, lambda x: x + 1, [(1,), (2,)]))
    assert "correct on all 3 test inputs" in str(check("f", lambda x: x + 1, lambda x: x + 1, [(1,), (2,), (3,)]))
