"""BLEU (Papineni et al., 2002), from scratch, and the COCO caption metrics where Java is available.

Lesson 07 builds it. For a corpus of hypotheses c and their reference sets:

    p_n  = Σ_c Σ_g min(count_c(g), max_r count_r(g)) / Σ_c Σ_g count_c(g)    clipped n-gram precision
    BP   = 1 if len_c > len_r else exp(1 - len_r / len_c)                     brevity penalty, with
           len_c = total hypothesis length and len_r = Σ_c (the reference length closest to len(c))
    BLEU = BP · exp(Σ_n w_n log p_n)                                          geometric mean, w_n = 1/N

Counts are pooled over the corpus before dividing (corpus BLEU is not the mean of sentence BLEUs).
The result equals nltk.translate.bleu_score.corpus_bleu (tested), including its conventions: no
matching unigram gives 0, and an order with no matches contributes log(tiny) unless smoothed.
"""
from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ngrams", "clipped_counts", "corpus_counts", "closest_ref_length", "brevity_penalty", "corpus_bleu", "sentence_bleu",
           "bleu_scores", "ptb_tokenize", "coco_metrics"]

Tokens = Sequence[str]


def ngrams(tokens: Tokens, n: int) -> Counter:
    """Counter of the n-grams (as tuples) in a token list."""
    return Counter(zip(*(tokens[i:] for i in range(n))))


def clipped_counts(hypothesis: Tokens, references: Sequence[Tokens], n: int) -> tuple[int, int]:
    """(matches clipped by the most any one reference has, total hypothesis n-grams)."""
    hyp = ngrams(hypothesis, n)
    if not hyp:
        return 0, 0
    most = Counter()
    for ref in references:
        most |= ngrams(ref, n)          # union of Counters = the max count of each n-gram over references
    return sum((hyp & most).values()), sum(hyp.values())   # intersection = min: the clipping


def corpus_counts(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens], max_n: int = 4) -> tuple:
    """The corpus's pooled counts: (matches, totals, hyp_len, ref_len), matches[n] and totals[n] for 1 <= n <= max_n.

    The same numbers as adding up `clipped_counts` sentence by sentence (tested), computed for the
    whole corpus at once: each token becomes an integer, each n-gram the integer sum_i tok_i V^(n-1-i),
    and each (hypothesis, n-gram) pair one key, so counting and clipping are sorts and searches over
    arrays instead of millions of small Counters (benchmarks/: the BLEU row).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    H = len(hypotheses)
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    if H == 0:
        return matches, totals, 0, 0
    sentences = list(hypotheses) + [r for refs in references for r in refs]
    n_refs = np.fromiter(map(len, references), dtype=np.int64, count=H)                     # (H,)
    R = int(n_refs.max())
    owner = np.concatenate([np.arange(H), np.repeat(np.arange(H), n_refs)])                 # (S,) hypothesis of each sentence
    slot = np.concatenate([np.full(H, R), np.arange(int(n_refs.sum())) - np.repeat(np.cumsum(n_refs) - n_refs, n_refs)])
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))        # (S,)
    words = list(itertools.chain.from_iterable(sentences))
    ids = {w: i for i, w in enumerate(set(words), start=1)}                                 # 0 is kept for padding
    tokens = np.fromiter(map(ids.__getitem__, words), dtype=np.int64, count=len(words))     # (W,)
    V = len(ids) + 1
    sid = np.repeat(np.arange(len(sentences)), lengths)                                     # (W,) sentence of each token
    left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(tokens))                  # (W,) tokens from here to the end
    padded = np.concatenate([tokens, np.zeros(max_n, dtype=np.int64)])
    code = np.zeros(len(tokens), dtype=np.int64)                                            # (W,) the n-gram starting here
    limit = _KEY_LIMIT // max(H * (R + 1), V)    # below it, the keys and the next order's codes fit in int64
    for n in range(1, max_n + 1):
        code = code * V + padded[n - 1:n - 1 + len(tokens)]
        if code.max(initial=0) >= limit:
            code = np.unique(code, return_inverse=True)[1].reshape(-1).astype(np.int64)    # renumber the n-grams densely
        totals[n] = int(np.maximum(1, lengths[:H] - n + 1).sum())  # nltk: a hypothesis with no n-grams still counts 1
        ok = left >= n                                                                      # n-grams inside one sentence
        grams, sents = code[ok], sid[ok]
        key = owner[sents] * (int(grams.max(initial=0)) + 1) + grams                        # (hypothesis, n-gram)
        is_hyp = sents < H
        hyp_keys, hyp_counts = np.unique(key[is_hyp], return_counts=True)
        ref_keys, ref_sents = key[~is_hyp], sents[~is_hyp]
        at = np.minimum(np.searchsorted(hyp_keys, ref_keys), max(len(hyp_keys) - 1, 0))
        wanted = hyp_keys[at] == ref_keys if len(hyp_keys) else np.zeros(len(ref_keys), bool)   # n-grams a hypothesis has
        per_ref, counts = np.unique(ref_keys[wanted] * (R + 1) + slot[ref_sents[wanted]], return_counts=True)
        if len(per_ref) == 0:
            continue                                                                        # nothing in common at this order
        gram_of = per_ref // (R + 1)                                                        # sorted: one run per key
        starts = np.flatnonzero(np.r_[True, gram_of[1:] != gram_of[:-1]])
        most = np.maximum.reduceat(counts, starts)                                          # max count over the references
        at = np.searchsorted(hyp_keys, gram_of[starts])                                     # each is a hypothesis key
        matches[n] = int(np.minimum(hyp_counts[at], most).sum())                            # the clipping
    # closest_ref_length for every hypothesis: the smallest (|r - c|, r), as one number |r - c| * M + r
    M = int(lengths.max(initial=0)) + 1
    ref_lengths = lengths[H:]
    closeness = np.abs(ref_lengths - np.repeat(lengths[:H], n_refs)) * M + ref_lengths     # refs of one hypothesis are adjacent
    ref_len = int((np.minimum.reduceat(closeness, np.cumsum(n_refs) - n_refs) % M).sum())
    return matches, totals, int(lengths[:H].sum()), ref_len


_KEY_LIMIT = 2 ** 62   # int64 headroom for corpus_counts' keys (tests lower it to exercise the renumbering)


def closest_ref_length(references: Sequence[Tokens], hyp_len: int) -> int:
    """The reference length closest to hyp_len; on a tie, the shorter one (as nltk and Papineni)."""
    return min((len(r) for r in references), key=lambda r: (abs(r - hyp_len), r))


def brevity_penalty(ref_len: int, hyp_len: int) -> float:
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


def corpus_bleu(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens], max_n: int = 4,
                smoothing: float | None = None) -> float:
    """BLEU-max_n of a corpus. references[i] is the list of token lists for hypotheses[i].

    smoothing: None (nltk's method0) or an epsilon added to zero match counts (nltk's method1, 0.1).
    """
    matches, totals, hyp_len, ref_len = corpus_counts(references, hypotheses, max_n)
    return _combine(matches, totals, hyp_len, ref_len, max_n, smoothing)


def _combine(matches, totals, hyp_len, ref_len, max_n, smoothing, penalty: bool = True) -> float:
    if matches[1] == 0:
        return 0.0  # no unigram in common: BLEU is 0 whatever the smoothing (nltk's convention)
    log_sum = 0.0
    for n in range(1, max_n + 1):
        denominator = max(1, totals[n])
        if matches[n] > 0:
            p = matches[n] / denominator
        elif smoothing is not None:
            p = smoothing / denominator
        else:
            p = sys.float_info.min  # nltk method0: log(p) is about -708, so BLEU is about 0
        log_sum += math.log(p) / max_n
    return (brevity_penalty(ref_len, hyp_len) if penalty else 1.0) * math.exp(log_sum)


def bleu_scores(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens],
                brevity: bool = True) -> dict[str, float]:
    """BLEU-1..4 in one pass over the corpus (the n-gram counts are shared).

    brevity=False: without the brevity penalty, the geometric mean of the clipped n-gram precisions alone (how
    Xu et al. 2015 define BLEU-n in a footnote, and what Li et al. 2016 report beside the standard BLEU)."""
    matches, totals, hyp_len, ref_len = corpus_counts(references, hypotheses, 4)
    return {f"BLEU-{n}": _combine(matches, totals, hyp_len, ref_len, n, None, brevity) for n in range(1, 5)}


def sentence_bleu(references: Sequence[Tokens], hypothesis: Tokens, max_n: int = 4, smoothing: float | None = 0.1) -> float:
    """BLEU of one hypothesis; smoothed by default, since one sentence rarely has a 4-gram match."""
    return corpus_bleu([references], [hypothesis], max_n, smoothing)


def ptb_tokenize(captions: dict) -> dict:
    """pycocoevalcap's PTB tokenization ({id: [{"caption": str}, ...]} -> {id: [tokenized str, ...]}).

    The same Stanford tokenizer, options and punctuation removal as pycocoevalcap's PTBTokenizer, but its
    input file goes to a temporary folder: PTBTokenizer writes it beside its jar, which fails where
    site-packages is read-only (a shared or system install).
    """
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)
    ids = [k for k, caps in captions.items() for _ in caps]
    sentences = "\n".join(c["caption"].replace("\n", " ") for caps in captions.values() for c in caps)
    with tempfile.TemporaryDirectory(prefix="captionlib-ptb-") as folder:
        source = Path(folder) / "sentences.txt"
        source.write_bytes(sentences.encode())
        lines = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                                "-lowerCase", str(source)], capture_output=True, check=True).stdout.decode().split("\n")
    out: dict = {}
    for k, line in zip(ids, lines):
        out.setdefault(k, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS))
    return out


def coco_metrics(references: Sequence[Sequence[str]], hypotheses: Sequence[str], tokenizer: str = "words",
                 cache: bool = True) -> dict[str, float]:
    """pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr on raw strings.

    METEOR and the PTB tokenizer run on Java. Without Java this raises a RuntimeError saying so;
    use `bleu_scores` (pure Python) instead. tokenizer: for a language written without spaces ("jieba",
    "chars"), the captions are cut with captionlib's tokenizer and handed over space-joined (the PTB tokenizer is
    English's), and METEOR is left out: its stems, synonyms and paraphrases are English resources.
    cache: the scorers are deterministic, so a result is kept under data/cache/metrics/, keyed by the captions, the
    tokenizer and pycocoevalcap's version; the same question asked again (a re-run cell) is answered from there
    instead of starting Java again.
    """
    if not cache:
        return _coco_metrics(references, hypotheses, tokenizer)
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError, version

    from .utils import atomic_write, data_root

    try:
        scorer = version("pycocoevalcap")
    except PackageNotFoundError:
        scorer = "unknown"
    key = hashlib.sha256(json.dumps([[list(r) for r in references], [h if isinstance(h, str) else list(h) for h in hypotheses],
                                     tokenizer, scorer], ensure_ascii=False).encode()).hexdigest()[:24]
    path = data_root() / "cache" / "metrics" / f"coco-{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):                  # unreadable: computed again, and rewritten
            pass
    out = _coco_metrics(references, hypotheses, tokenizer)
    try:
        atomic_write(path, lambda f: f.write(json.dumps(out).encode()))
    except OSError:                                    # a read-only data folder: the result is still returned
        pass
    return out


_METEOR = None


def _meteor():
    """One METEOR process for this Python process. Starting it (a JVM loading its paraphrase tables) takes ~5 s, scoring
    a few hundred captions a fraction of that; each EVAL line is scored on its own segments only, so reusing the process
    changes no number (tests/test_bleu.py), and `against_humans` (10 calls) no longer starts Java 10 times."""
    global _METEOR
    from pycocoevalcap.meteor.meteor import Meteor

    if _METEOR is None or _METEOR.meteor_p.poll() is not None:
        _METEOR = Meteor()
    return _METEOR


def _coco_metrics(references, hypotheses, tokenizer: str) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if tokenizer != "words":
        from .vocab import tokenize

        gts = {i: [" ".join(tokenize(r, tokenizer)) for r in refs] for i, refs in enumerate(references)}
        # a hypothesis already cut into tokens (space-joined, as vocab.decode gives them) is kept as it was cut
        res = {i: [" ".join(h) if isinstance(h, list) else h if " " in h else " ".join(tokenize(h, tokenizer))]
               for i, h in enumerate(hypotheses)}
        out = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)})
        out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        return out
    if shutil.which("java") is None:
        raise RuntimeError("pycocoevalcap's METEOR and PTB tokenizer need Java, and `java` is not on PATH. "
                           "Install a JDK (e.g. `apt install default-jre` or `conda install openjdk`), or use bleu_scores().")
    gts = ptb_tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = ptb_tokenize({i: [{"caption": h}] for i, h in enumerate(hypotheses)})
    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)})
    out["METEOR"] = float(_meteor().compute_score(gts, res)[0])
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out
