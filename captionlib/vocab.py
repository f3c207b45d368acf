"""Captions as integers: Karpathy-style preprocessing, the vocabulary, and padded batches.

Lesson 00 builds this module. The preprocessing follows Karpathy's `prepro` for the
Flickr/COCO split files (lower-case, strip punctuation, split on white space), done with a
regular expression so that no nltk tokenizer data has to be downloaded.

Shapes: B batch, T time (tokens, `<start>` and `<end>` included).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import torch

__all__ = ["PAD", "START", "END", "UNK", "SPECIALS", "tokenize", "Vocab", "pad_captions"]

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)  # fixed indices 0..3, so pad_idx is always 0

# Karpathy's rule drops punctuation, not letters: any script's letters and digits stay ("café", "läuft", "狗").
_NOT_WORD = re.compile(r"[^\w\s]|_")


def tokenize(caption: str) -> list[str]:
    """'A small, RED circle.' -> ['a', 'small', 'red', 'circle'] (punctuation dropped, letters of any script kept)."""
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    # NFC first: an accent typed as a separate combining mark joins its letter instead of splitting the word
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFC", caption).lower()).split()


class Vocab:
    """A two-way map between words and indices, with the four special tokens first.

    Attributes:
        word_to_idx: dict word -> index.
        idx_to_word: list index -> word; idx_to_word[0] is `<pad>`.
        max_len: captions longer than this many words are cut when encoded (None: never).
    """

    def __init__(self, words: Iterable[str], max_len: int | None = None):
        self.idx_to_word = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.word_to_idx = {w: i for i, w in enumerate(self.idx_to_word)}
        if len(self.word_to_idx) != len(self.idx_to_word):
            raise ValueError("the vocabulary has a repeated word")
        self.max_len = max_len

    pad_idx, start_idx, end_idx, unk_idx = 0, 1, 2, 3

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1, max_len: int | None = None) -> "Vocab":
        """Keep every word seen at least `min_freq` times, most frequent first (ties: a-z)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(w for c in captions for w in tokenize(c))
        kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls(kept, max_len=max_len)

    def __len__(self) -> int:
        return len(self.idx_to_word)

    def __contains__(self, word: str) -> bool:
        return word in self.word_to_idx

    def encode(self, caption: str | Sequence[str]) -> list[int]:
        """'a red circle' -> [<start>, a, red, circle, <end>] as indices; unknown words -> <unk>."""
        words = tokenize(caption) if isinstance(caption, str) else list(caption)
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

    # Plain lists and ints only, so a checkpoint holding it loads with weights_only=True.
    def state_dict(self) -> dict:
        return {"idx_to_word": list(self.idx_to_word), "max_len": self.max_len}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocab":
        words = state["idx_to_word"]
        if tuple(words[:4]) != SPECIALS:
            raise ValueError(f"not a captionlib vocabulary: it starts with {words[:4]}, expected {list(SPECIALS)}")
        return cls(words[4:], max_len=state.get("max_len"))

    def __repr__(self) -> str:
        return f"Vocab({len(self)} words, max_len={self.max_len})"


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
