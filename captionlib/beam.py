"""Decoding a caption: greedy, sampling with temperature, and batched beam search.

Lesson 06 builds it. Decoding looks for argmax_y log p(y | I) = Σ_t log p(y_t | y_<t, I). Greedy
takes the best word at each step; beam search keeps the K best partial captions (by summed
log-probability) at every step, for all images of a batch at once: the B*K hypotheses are rows of
one batch, and a single top-k over the K*V continuations of each image picks the survivors.
A finished hypothesis (it produced <end>) is frozen: its only continuation is <pad> at no cost,
so it keeps its score and competes with the unfinished ones until the end. An image stops early
once its best finished hypothesis beats all live ones (unless all K or length-normalised scores
are asked for), since live scores can only fall. The searches decode with `decoder.for_search()` where
the decoder has one (Show-Attend-Tell: `fused.SearchStep`, the same numbers as `step`, faster).

Shapes: B images, K beam size, V vocab, L max caption length, P regions, E encoder dim.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["Caption", "greedy", "sample", "beam_search", "possible_captions"]

PAD, START, END = 0, 1, 2  # fixed by captionlib.vocab.SPECIALS


@dataclass
class Caption:
    tokens: list                    # word indices, without <start>, ending with <end> if it finished
    score: float                    # sum of log-probabilities (length-normalised if asked)
    alphas: torch.Tensor | None     # (len(tokens), P) attention per produced token, or None
    alternatives: list = field(default_factory=list)  # all K hypotheses, best first (return_all)


def _searcher(decoder):
    """The decoder's fast view for decoding without gradients (ShowAttendTellDecoder.for_search), else the
    decoder itself: anything with init_state, prepare and step (lesson 06's toy decoder too)."""
    return decoder.for_search() if hasattr(decoder, "for_search") else decoder


def _forbid(logp: torch.Tensor) -> torch.Tensor:
    logp[:, PAD] = float("-inf")    # never generated: <pad> and <start> are not words
    logp[:, START] = float("-inf")
    return logp


def _trim(tokens: list) -> list:
    return tokens[: tokens.index(END) + 1] if END in tokens else tokens


@torch.no_grad()
def greedy(decoder, features: torch.Tensor, max_len: int = 20) -> list[Caption]:
    """The most probable word at every step. features: (B, P, E)."""
    return sample(decoder, features, max_len=max_len, temperature=0.0)


@torch.no_grad()
def sample(decoder, features: torch.Tensor, max_len: int = 20, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> list[Caption]:
    """Sample each word from softmax(logits / temperature); temperature 0 is greedy."""
    B, decoder = features.shape[0], _searcher(decoder)
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    tokens, scores, alphas = [], torch.zeros(B, device=features.device), []
    for _ in range(max_len):
        logits, state, alpha = decoder.step(words, state, features, memo)
        logp = _forbid(F.log_softmax(logits.float(), dim=-1))              # (B, V)
        if temperature == 0:
            words = logp.argmax(dim=-1)
        else:
            words = torch.multinomial(F.softmax(logp / temperature, -1), 1, generator=generator).squeeze(1)
        scores += torch.where(done, torch.zeros_like(scores), logp.gather(1, words[:, None]).squeeze(1))
        words = torch.where(done, torch.full_like(words, PAD), words)
        tokens.append(words)
        alphas.append(alpha)
        done |= words == END
        if done.all():
            break
    tokens = torch.stack(tokens, 1).tolist()                               # (B, L')
    att = torch.stack(alphas, 1) if alphas[0] is not None else None       # (B, L', P)
    out = []
    for b in range(B):
        seq = _trim([t for t in tokens[b] if t != PAD])
        out.append(Caption(seq, float(scores[b]), att[b, : len(seq)].cpu() if att is not None else None))
    return out


def possible_captions(V: int, max_len: int) -> int:
    """How many different captions a vocabulary of V tokens (specials included) can make in at most max_len steps:
    W = V - 3 words (<pad>, <start> are never generated, <end> ends a caption), so Σ_{l<L} W^l finished ones and
    W^L cut at max_len. A beam wider than this keeps nothing more: its extra beams stay empty."""
    W, total = max(V - 3, 0), 0
    for length in range(max_len + 1):
        total += W ** length
        if total > 2 ** 40:                      # far wider than any beam that fits in memory
            return 2 ** 40
    return total


def _expand(x, K):
    return x.repeat_interleave(K, dim=0)  # (B, ...) -> (B*K, ...), beams of one image adjacent


@torch.no_grad()
def beam_search(decoder, features: torch.Tensor, beam_size: int = 3, max_len: int = 20, length_norm: float = 0.0,
                return_all: bool = False) -> list[Caption]:
    """Batched beam search.

    Args:
        features: (B, P, E), one row per image.
        beam_size: K, any size (beams beyond the number of possible captions stay empty).
        length_norm: rank finished captions by score / len**length_norm (0: plain log-probability).
        return_all: also give each Caption its K alternatives, best first.
    Returns:
        one Caption per image: tokens, score, attention maps (len, P).
    """
    V = getattr(getattr(decoder, "config", None), "vocab_size", None)
    K = min(beam_size, possible_captions(V, max_len)) if V else beam_size   # wider keeps nothing more
    B, device, decoder = features.shape[0], features.device, _searcher(decoder)
    feats = features                                                       # (B, P, E): the K beams of an image share
    memo = decoder.prepare(features)                                       # its regions and their projection (B, P, A)
    state = decoder.init_state(features)                                   # (B, H) each: the K beams start alike,
    words = torch.full((B,), START, dtype=torch.long, device=device)      # so step 0 runs once per image
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0                                                     # one live beam to start: no duplicates
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    history = torch.zeros(B * K, 0, dtype=torch.long, device=device)      # (B*K, t)
    att_hist = None                                                        # (B*K, t, P)
    alive = torch.arange(B)                                                # which images the rows belong to
    final: list = [None] * B                                               # per image: (scores (K,), tokens, attention)
    recorded = torch.zeros(B, dtype=torch.bool, device=device)             # rows whose image is set aside already
    for t in range(max_len):
        n = alive.numel()
        rows = torch.arange(n, device=device).unsqueeze(1) * K             # (n, 1) first beam row of each image
        logits, state, alpha = decoder.step(words, state, feats, memo)
        logp = _forbid(F.log_softmax(logits.float(), dim=-1))              # (n*K, V)
        if t == 0:                                                         # (B, ...) -> (B*K, ...)
            logp, state = _expand(logp, K), tuple(_expand(s, K) for s in state)
            alpha = _expand(alpha, K) if alpha is not None else None
        V = logp.shape[1]
        logp.masked_fill_(finished.unsqueeze(1), float("-inf"))           # a finished beam may only add <pad>, free
        logp[finished, PAD] = 0.0
        total = logp.add_(scores.reshape(-1, 1))                           # (n*K, V), in place: it is large
        top, idx = total.reshape(n, K * V).topk(K, dim=1)                  # (n, K) over all K*V continuations
        beam, words = idx // V, idx % V                                    # which parent beam, which word
        parent = (rows + beam).reshape(-1)                                 # (n*K,) rows of the parents
        words = words.reshape(-1)
        scores = top
        state = tuple(s[parent] for s in state)
        history = torch.cat([history[parent], words.unsqueeze(1)], dim=1)
        if alpha is not None:
            step_att = alpha[parent].unsqueeze(1)                          # (n*K, 1, P)
            att_hist = step_att if att_hist is None else torch.cat([att_hist[parent], step_att], dim=1)
        finished = finished[parent] | (words == END)
        done = (finished | torch.isinf(scores.reshape(-1))).view(n, K).all(dim=1)   # (n,) every beam over
        if not return_all and not length_norm:
            # live scores only fall (log-probs are <= 0): once a finished hypothesis beats every live
            # one, it is the answer, whatever the remaining steps do
            fin = finished.view(n, K)
            best_finished = torch.where(fin, scores, float("-inf")).max(dim=1).values
            best_live = torch.where(fin, float("-inf"), scores).max(dim=1).values
            done |= best_finished > best_live
        if t == max_len - 1:
            done[:] = True
        for j in (done & ~recorded).nonzero().flatten().tolist():          # set finished images aside
            r = slice(j * K, (j + 1) * K)
            final[int(alive[j])] = (scores[j].cpu(), history[r].tolist(), att_hist[r].cpu() if att_hist is not None else None)
        recorded |= done
        if recorded.all():
            break
        if int(recorded.sum()) >= max(1, n // 4):                          # then stop computing for them, in bulk
            keep = ~recorded
            recorded = recorded[keep]
            keep_rows = keep.repeat_interleave(K)
            alive, scores, finished, words = alive[keep.cpu()], scores[keep], finished[keep_rows], words[keep_rows]
            state = tuple(s[keep_rows] for s in state)
            feats, history = feats[keep], history[keep_rows]
            memo = memo[keep] if memo is not None else None
            att_hist = att_hist[keep_rows] if att_hist is not None else None
    return [_best(*final[b], length_norm, return_all) for b in range(B)]


def _best(scores: torch.Tensor, histories: list, att, length_norm: float, return_all: bool) -> Caption:
    """The K hypotheses of one image, ranked; the best one first."""
    seqs = [_trim([w for w in h if w != PAD]) for h in histories]
    lengths = torch.tensor([max(1, len(s)) for s in seqs], dtype=torch.float32)
    ranked = scores / lengths ** length_norm if length_norm else scores
    hyps = []
    for k in ranked.argsort(descending=True).tolist():
        if torch.isinf(scores[k]):
            continue                                                       # a beam that never had a candidate
        hyps.append(Caption(seqs[k], float(ranked[k]), att[k, : len(seqs[k])] if att is not None else None))
    best = hyps[0]
    if return_all:
        best.alternatives = hyps
    return best
