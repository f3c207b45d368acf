"""Captions as integers: Karpathy-style preprocessing, the vocabulary, and padded batches.

Lesson 00 builds this module. The preprocessing follows Karpathy's `prepro` for the
Flickr/COCO split files (lower-case, strip punctuation, split on white space), done with a
regular expression so that no nltk tokenizer data has to be downloaded.

Shapes: B batch, T time (tokens, `<start>` and `<end>` included).
"""
from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import torch

__all__ = ["PAD", "START", "END", "UNK", "SPECIALS", "TOKENIZERS", "tokenize", "without_spaces", "Vocab", "pad_captions"]

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)  # fixed indices 0..3, so pad_idx is always 0

# Karpathy's rule drops punctuation, not letters: any script's letters and digits stay ("café", "läuft", "狗").
_NOT_WORD = re.compile(r"[^\w\s]|_")
# Scripts written without spaces between words: Chinese (Han), Japanese kana, Thai, Lao, Khmer, Myanmar.
_NO_SPACES = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\u3040-\u30ff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]")
_CHAR_TOKENS = re.compile(r"[a-z0-9]+|\S")            # "chars": Latin letters and digits stay words, the rest one each

# How a caption becomes tokens. Spaces separate words only by convention: Chinese writes none.
#   words: split on spaces (Karpathy's rule)      jieba: Chinese word segmentation (Li et al., 2016's choice)
#   chars: one token per character (Latin words and numbers kept whole)
TOKENIZERS = ("words", "jieba", "chars")


def _clean(caption: str) -> str:
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    # NFC first: an accent typed as a separate combining mark joins its letter instead of splitting the word
    return unicodedata.normalize("NFC", caption)


@functools.lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)           # it logs "Building prefix dict ..." on stderr at first use
    return jieba


def tokenize(caption: str, tokenizer: str = "words") -> list[str]:
    """'A small, RED circle.' -> ['a', 'small', 'red', 'circle'] (punctuation dropped, letters of any script kept).

    tokenizer: "words" (split on spaces), "jieba" (segment Chinese into words: '一只狗在草地上奔跑。' ->
    ['一只', '狗', '在', '草地', '上', '奔跑']) or "chars" (['一', '只', '狗', ...])."""
    text = _clean(caption)
    if tokenizer == "words":
        return _NOT_WORD.sub(" ", text.lower()).split()
    if tokenizer == "jieba":                     # segment first (case and punctuation help it: "T恤"), then clean
        return [t for w in _jieba().lcut(text) for t in _NOT_WORD.sub(" ", w.lower()).split()]
    if tokenizer == "chars":
        return _CHAR_TOKENS.findall(_NOT_WORD.sub(" ", text.lower()))
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")


def without_spaces(captions: Iterable[str], sample: int = 200) -> bool:
    """Whether most captions are written in a script without spaces between words (Chinese, Japanese, Thai)."""
    letters = unspaced = 0
    for c in itertools.islice(captions, sample):
        letters += sum(ch.isalpha() for ch in c)
        unspaced += len(_NO_SPACES.findall(c))
    return letters > 0 and unspaced > letters / 2


class Vocab:
    """A two-way map between words and indices, with the four special tokens first.

    Attributes:
        word_to_idx: dict word -> index.
        idx_to_word: list index -> word; idx_to_word[0] is `<pad>`.
        max_len: captions longer than this many words are cut when encoded (None: never).
    """

    def __init__(self, words: Iterable[str], max_len: int | None = None, tokenizer: str = "words"):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
        self.idx_to_word = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.word_to_idx = {w: i for i, w in enumerate(self.idx_to_word)}
        if len(self.word_to_idx) != len(self.idx_to_word):
            raise ValueError("the vocabulary has a repeated word")
        self.max_len, self.tokenizer = max_len, tokenizer

    pad_idx, start_idx, end_idx, unk_idx = 0, 1, 2, 3

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1, max_len: int | None = None, tokenizer: str = "words") -> "Vocab":
        """Keep every word seen at least `min_freq` times, most frequent first (ties: a-z).

        With the "words" tokenizer on captions written without spaces (Chinese), each caption would be one
        "word" and a model would learn nothing: that is said, with the tokenizers that fit."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        captions = list(captions)
        if tokenizer == "words" and without_spaces(captions):
            from .utils import warn

            per = sum(len(tokenize(c)) for c in captions[:200]) / max(1, len(captions[:200]))
            warn(f"these captions are written without spaces between words (Chinese?), so the 'words' tokenizer, "
                 f"which splits on spaces, makes {per:.1f} 'words' of a caption on average and a model would learn "
                 "nothing. Use tokenizer='jieba' (word segmentation; `--tokenizer jieba`) or 'chars' (one per character)")
        counts = Counter(w for c in captions for w in tokenize(c, tokenizer))
        kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls(kept, max_len=max_len, tokenizer=tokenizer)

    def __len__(self) -> int:
        return len(self.idx_to_word)

    def __contains__(self, word: str) -> bool:
        return word in self.word_to_idx

    def encode(self, caption: str | Sequence[str]) -> list[int]:
        """'a red circle' -> [<start>, a, red, circle, <end>] as indices; unknown words -> <unk>."""
        words = tokenize(caption, self.tokenizer) if isinstance(caption, str) else list(caption)
        if self.max_len is not None:
            words = words[: self.max_len]
        return [self.start_idx] + [self.word_to_idx.get(w, self.unk_idx) for w in words] + [self.end_idx]

    def decode(self, ids: Iterable[int], join: bool = True) -> str | list[str]:
        """Indices -> words, stopping at the first <end> and dropping <start>/<pad>."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.end_idx:
                break
            if i in (self.start_idx, self.pad_idx):
                continue
            words.append(self.idx_to_word[i] if 0 <= i < len(self) else UNK)
        return " ".join(words) if join else words

    def text(self, ids: Iterable[int]) -> str:
        """The caption as a person writes it: words joined by spaces, or, for a language written without spaces
        (the jieba and chars tokenizers), joined directly ('一只 狗 在 跑' -> '一只狗在跑'; Latin words keep a space)."""
        words = self.decode(ids, join=False)
        if self.tokenizer == "words":
            return " ".join(words)
        out = ""
        for w in words:
            out += (" " if out and out[-1].isascii() and out[-1].isalnum() and w[:1].isascii() and w[:1].isalnum() else "") + w
        return out

    # Plain lists and ints only, so a checkpoint holding it loads with weights_only=True.
    def state_dict(self) -> dict:
        return {"idx_to_word": list(self.idx_to_word), "max_len": self.max_len, "tokenizer": self.tokenizer}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocab":
        words = state["idx_to_word"]
        if tuple(words[:4]) != SPECIALS:
            raise ValueError(f"not a captionlib vocabulary: it starts with {words[:4]}, expected {list(SPECIALS)}")
        return cls(words[4:], max_len=state.get("max_len"), tokenizer=state.get("tokenizer", "words"))

    def __repr__(self) -> str:
        tokens = "" if self.tokenizer == "words" else f", tokenizer={self.tokenizer!r}"
        return f"Vocab({len(self)} words, max_len={self.max_len}{tokens})"


def pad_captions(encoded: Sequence[Sequence[int]], pad_idx: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad encoded captions into one tensor.

    Returns:
        captions: (B, T) long, T = the longest caption; padding is `pad_idx`.
        lengths: (B,) long, true length of each caption (<start> and <end> included).
    """
    if len(encoded) == 0:
        raise ValueError("cannot pad an empty list of captions")
    lengths = torch.tensor([len(c) for c in encoded], dtype=torch.long)  # (B,)
    captions = torch.full((len(encoded), int(lengths.max())), pad_idx, dtype=torch.long)  # (B, T)
    for b, c in enumerate(encoded):
        captions[b, : len(c)] = torch.as_tensor(c, dtype=torch.long)
    return captions, lengths
