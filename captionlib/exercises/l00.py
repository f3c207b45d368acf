"""Lesson 00 exercises: build a vocabulary, encode a caption, decode it back."""
from __future__ import annotations

from collections import Counter

from ..checks import MISSING, Mistake, Part, checked
from ..vocab import SPECIALS, tokenize

__all__ = ["PARTS", "build_vocab", "encode", "decode", "check_build_vocab", "check_encode", "check_decode"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "build_vocab": [Part("the special tokens first", 1, r"special tokens"),
                    Part("the words counted (tokenize, min_freq)", 2, r"min_freq|tokeniz|letters outside|count every"),
                    Part("the order (count, then a-z)", 1, r"the order is|ties|first-seen|sorted a-z|sort by count")],
    "encode": [Part("<start> and <end>", 1, r"<start>|<end>"),
               Part("unknown words as <unk>", 1, r"unknown|<unk>|not in the vocabulary"),
               Part("tokenize first", 1, r"tokeniz")],
    "decode": [Part("stopping at the first <end>", 2, r"stop|<end>|walk the ids"),
               Part("skipping <start> and <pad>", 1, r"<start>|<pad>"),
               Part("the words joined", 1, r"join")],
}


# ------------------------------------------------------------------ references

def build_vocab(captions: list[str], min_freq: int) -> list[str]:
    """idx_to_word: the 4 special tokens, then every word seen >= min_freq times, most frequent first, ties a-z."""
    counts = Counter(w for c in captions for w in tokenize(c))
    kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    return list(SPECIALS) + kept


def encode(caption: str, word_to_idx: dict) -> list[int]:
    """[<start>, words..., <end>] as indices; a word not in word_to_idx becomes <unk>."""
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, word_to_idx["<unk>"]) for w in tokenize(caption)] + [word_to_idx["<end>"]]


def decode(ids: list[int], idx_to_word: list[str]) -> str:
    """Words up to the first <end>, without <start> and <pad>, joined by spaces."""
    words = []
    for i in ids:
        w = idx_to_word[i]
        if w == "<end>":
            break
        if w not in ("<start>", "<pad>"):
            words.append(w)
    return " ".join(words)


# ------------------------------------------------------------------ test inputs

_CAPTIONS = ["A red circle above a blue square.", "a Blue square", "two red circles", "a tiny green triangle!",
             "A red box", "a circle, a circle and a square"]
_WORDS = build_vocab(_CAPTIONS, 1)
_W2I = {w: i for i, w in enumerate(_WORDS)}


# ------------------------------------------------------------------ known mistakes

def _no_specials(captions, min_freq):
    return build_vocab(captions, min_freq)[4:]


def _strict_threshold(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return list(SPECIALS) + sorted((w for w, n in counts.items() if n > min_freq), key=lambda w: (-counts[w], w))


def _split_only(captions, min_freq):
    counts = Counter(w for c in captions for w in c.split())
    return list(SPECIALS) + sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))


def _alphabetical(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return list(SPECIALS) + sorted(w for w, n in counts.items() if n >= min_freq)


def _no_tiebreak(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return list(SPECIALS) + [w for w, n in counts.most_common() if n >= min_freq]


def _vocab_parts(fn) -> str | None:
    """Tiny corpora where one rule alone decides the vocabulary; names every rule that is broken."""
    said = []
    words = list(fn(["b b a", "c"], 1))
    if words[:4] != list(SPECIALS):
        where = "at the end" if words[-4:] == list(SPECIALS) else "missing or out of order"
        said.append(f"the 4 special tokens are {where}: idx_to_word starts with {', '.join(SPECIALS)} (indices 0-3, "
                    "which the rest of the course relies on)")
    kept = [w for w in fn(["A cat.", "a cat"], 1) if w not in SPECIALS]
    accents = [w for w in fn(["un café noir", "le café", "Straße"], 1) if w not in SPECIALS]
    if "café" not in accents and any(w.startswith("caf") for w in accents):   # 'caf' (or 'caf', 'é'): a-z only
        said.append(f"letters outside a-z are lost: 'un café noir' gives {accents[:4]}: split with tokenize(caption), "
                    "which keeps the letters of every script ('café', 'straße')")
    elif sorted(kept) != ["a", "cat"]:
        said.append(f"'A cat.' and 'a cat' give the words {kept}: split with tokenize(caption), which lower-cases "
                    "and drops punctuation")
    kept = [w for w in fn(["a a a", "b b"], 3) if w not in SPECIALS]
    counted = kept == ["a"]
    if not counted:
        said.append(f"with min_freq 3, 'a a a' and 'b b' must keep only 'a' (3 times), got {kept}: count every "
                    "occurrence, and keep the words seen min_freq times or more")
    rest = [w for w in words if w not in SPECIALS]
    if counted and sorted(rest) == ["a", "b", "c"] and rest != ["b", "a", "c"]:   # the order, once counting is right
        said.append(f"the order is {rest}, expected ['b', 'a', 'c']: most frequent first ('b' twice), ties a-z")
    return "; ".join(said) or None



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "build_vocab": {
        None: ("the recipe: count every word of every caption after tokenize(c); keep counts >= min_freq; sort by "
               "(-count, word); put the 4 specials first"),
    },
    "encode": {
        None: ("the recipe: [<start>] + the index of each word of tokenize(caption) (<unk> for unknown ones) + "
               "[<end>]"),
    },
    "decode": {
        None: ("the recipe: walk the ids; stop at the first <end>; skip <start> and <pad>; join the words with "
               "spaces"),
    },
}

def check_build_vocab(fn=MISSING):
    cases = [(_CAPTIONS, 1), (_CAPTIONS, 2), (_CAPTIONS, 3), (["b a", "a c", "c b"], 1), (["un café", "le café noir"], 1)]
    mistakes = [
        Mistake("the special tokens are missing: idx_to_word must start with <pad>, <start>, <end>, <unk>", _no_specials),
        Mistake("words seen exactly min_freq times are dropped: keep count >= min_freq, not > min_freq", _strict_threshold),
        Mistake("captions are split without `tokenize`: 'A' and 'a', 'square.' and 'square' become different words", _split_only),
        Mistake("words are sorted a-z only: sort by count first (most frequent first), then a-z", _alphabetical),
        Mistake("words with equal counts are in first-seen order: break ties alphabetically so the vocabulary is reproducible", _no_tiebreak),
    ]
    return checked("build_vocab", fn, build_vocab, cases, mistakes=mistakes, probes=[_vocab_parts],
                   recipe=_RECIPES["build_vocab"])


def _no_start_end(caption, word_to_idx):
    return encode(caption, word_to_idx)[1:-1]


def _drop_unknown(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx[w] for w in tokenize(caption) if w in word_to_idx] + [word_to_idx["<end>"]]


def _encode_no_tokenize(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, word_to_idx["<unk>"]) for w in caption.split()] + [word_to_idx["<end>"]]



def _encode_parts(fn) -> str | None:
    """One rule of encoding at a time: indices, <start>/<end> around, tokenized words, <unk> for unknown ones."""
    said = []
    out = fn("zebra", _W2I)
    if not isinstance(out, list):
        return f"return a Python list of ints, not a {type(out).__name__} (the batches are padded from lists later)"
    got = out
    if any(not isinstance(i, int) for i in got):
        return "return the words' indices (word_to_idx[w]), not the words"
    start, end = got[:1] == [_W2I["<start>"]], got[-1:] == [_W2I["<end>"]]
    if not (start and end):
        which = "<start> and <end> are" if not (start or end) else "<start> is" if not start else "<end> is"
        said.append(f"{which} missing: the indices must be [word_to_idx['<start>'], ..., word_to_idx['<end>']]")
    def words(ids: list) -> list:                                     # without <start> and <end>, where they are
        ids = ids[1:] if ids[:1] == [_W2I["<start>"]] else ids
        return ids[:-1] if ids[-1:] == [_W2I["<end>"]] else ids

    if words(got) != [_W2I["<unk>"]]:
        said.append(f"the unknown word 'zebra' must become <unk> ({_W2I['<unk>']}), got {words(got)}: "
                    "word_to_idx.get(w, word_to_idx['<unk>'])")
    if words(list(fn("A Red circle.", _W2I))) != [_W2I["a"], _W2I["red"], _W2I["circle"]]:
        said.append("'A Red circle.' must encode a, red, circle: split with tokenize(caption) (lower case, no punctuation)")
    return "; ".join(said) or None


def check_encode(fn=MISSING):
    cases = [("a red circle", _W2I), ("A purple circle above a red box.", _W2I), ("", _W2I), ("zebra", _W2I)]
    mistakes = [
        Mistake("<start> and <end> are missing: the decoder needs <start> as its first input and <end> to learn when to stop", _no_start_end),
        Mistake("unknown words are dropped: map them to <unk> so the caption keeps its length and structure", _drop_unknown),
        Mistake("the caption is not tokenized: use tokenize(caption) to lower-case and strip punctuation first", _encode_no_tokenize),
    ]
    unknown = {KeyError: lambda e, args: (f"{e} in {args[0]!r} is not in the vocabulary. Unknown words must not crash "
                                            "encoding: map them to <unk>, e.g. word_to_idx.get(w, word_to_idx['<unk>'])")}
    return checked("encode", fn, encode, cases, mistakes=mistakes, errors=unknown, probes=[_encode_parts],
                   recipe=_RECIPES["encode"])


def _no_stop(ids, idx_to_word):
    return " ".join(idx_to_word[i] for i in ids if idx_to_word[i] not in ("<start>", "<end>", "<pad>"))


def _keeps_specials(ids, idx_to_word):
    words = []
    for i in ids:
        if idx_to_word[i] == "<end>":
            break
        words.append(idx_to_word[i])
    return " ".join(words)


def _decode_parts(fn) -> str | None:
    """The text's form, and where it stops."""
    s, e, red, circle = _W2I["<start>"], _W2I["<end>"], _W2I["red"], _W2I["circle"]
    got = fn([s, red, circle, e], _WORDS)
    if not isinstance(got, str):
        return f"return one string, the words joined by spaces (' '.join(words)), not a {type(got).__name__}"
    if got == "redcircle":
        return "join the words with a space: ' '.join(words)"
    if got.endswith("<end>"):
        return "<end> itself is not part of the text: stop before it"
    if got != got.strip() and got.strip() == "red circle":
        return f"the text is {got!r}, with a space at the {'end' if got.endswith(' ') else 'start'}: join the words with ' '.join(words)"
    no_start = fn([red, circle, e], _WORDS)                             # ids that do not begin with <start>
    if isinstance(no_start, str) and no_start == "circle":
        return ("the first id is dropped whatever it is ('red circle' without <start> came out 'circle'): skip <start> "
                "by its value (idx_to_word[i] == '<start>'), not by its position")
    unfinished = fn([s, red, circle], _WORDS)                           # a caption cut at max_len: no <end> at all
    if isinstance(unfinished, str) and unfinished != "red circle":
        return (f"ids with no <end> (a caption cut at the maximum length) must give every word, 'red circle'; yours gives "
                f"{unfinished!r}")
    return None


def check_decode(fn=MISSING):
    s, e, p = _W2I["<start>"], _W2I["<end>"], _W2I["<pad>"]
    red, circle, a = _W2I["red"], _W2I["circle"], _W2I["a"]
    cases = [([s, a, red, circle, e, p, p], _WORDS), ([s, a, e, red, red, e], _WORDS), ([s, e], _WORDS), ([a, red], _WORDS),
             ([s, red, circle], _WORDS)]
    mistakes = [
        Mistake("decoding does not stop at the first <end>: everything after it (padding, or what a model says after "
                "finishing) must be ignored", _no_stop),
        Mistake("<start> or <pad> appear in the text: skip them", _keeps_specials),
    ]
    missing_end = {ValueError: lambda e, args: ("list.index raises when the value is missing: ids cut at the maximum "
                                              "length have no <end>. Walk the ids and stop at <end> when there is one")
                   if "is not in list" in str(e) else None}
    return checked("decode", fn, decode, cases, mistakes=mistakes, probes=[_decode_parts], errors=missing_end,
                   recipe=_RECIPES["decode"])
