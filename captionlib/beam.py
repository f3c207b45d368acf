"""Decoding a caption: greedy, sampling with temperature, and batched beam search.

Lesson 06 builds it. Decoding looks for argmax_y log p(y | I) = Σ_t log p(y_t | y_<t, I). Greedy
takes the best word at each step; beam search keeps the K best partial captions (by summed
log-probability) at every step, for all images of a batch at once: the B*K hypotheses are rows of
one batch, and a single top-k over the K*V continuations of each image picks the survivors.
A finished hypothesis (it produced <end>) is frozen: its only continuation is <pad> at no cost,
so it keeps its score and competes with the unfinished ones until the end.

Shapes: B images, K beam size, V vocab, L max caption length, P regions, E encoder dim.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["Caption", "greedy", "sample", "beam_search"]

PAD, START, END = 0, 1, 2  # fixed by captionlib.vocab.SPECIALS


@dataclass
class Caption:
    tokens: list                    # word indices, without <start>, ending with <end> if it finished
    score: float                    # sum of log-probabilities (length-normalised if asked)
    alphas: torch.Tensor | None     # (len(tokens), P) attention per produced token, or None
    alternatives: list = field(default_factory=list)  # all K hypotheses, best first (return_all)


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
    B = features.shape[0]
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
    B, K = features.shape[0], beam_size
    feats = _expand(features, K)                                           # (B*K, P, E)
    state, memo = decoder.init_state(feats), decoder.prepare(feats)
    words = torch.full((B * K,), START, dtype=torch.long, device=features.device)
    scores = torch.full((B, K), float("-inf"), device=features.device)
    scores[:, 0] = 0.0                                                     # one live beam to start: no duplicates
    finished = torch.zeros(B * K, dtype=torch.bool, device=features.device)
    history = torch.zeros(B * K, 0, dtype=torch.long, device=features.device)   # (B*K, t)
    att_hist = None                                                        # (B*K, t, P)
    rows = torch.arange(B, device=features.device).unsqueeze(1) * K        # (B, 1) first beam row of each image
    for _ in range(max_len):
        logits, state, alpha = decoder.step(words, state, feats, memo)
        logp = _forbid(F.log_softmax(logits.float(), dim=-1))              # (B*K, V)
        V = logp.shape[1]
        frozen = torch.full_like(logp[0], float("-inf"))
        frozen[PAD] = 0.0                                                  # a finished beam may only add <pad>, free
        logp = torch.where(finished.unsqueeze(1), frozen, logp)
        total = scores.reshape(-1, 1) + logp                               # (B*K, V)
        top, idx = total.reshape(B, K * V).topk(K, dim=1)                  # (B, K) over all K*V continuations
        beam, words = idx // V, idx % V                                    # which parent beam, which word
        parent = (rows + beam).reshape(-1)                                 # (B*K,) rows of the parents
        words = words.reshape(-1)
        scores = top
        state = tuple(s[parent] for s in state)
        history = torch.cat([history[parent], words.unsqueeze(1)], dim=1)
        if alpha is not None:
            step_att = alpha[parent].unsqueeze(1)                          # (B*K, 1, P)
            att_hist = step_att if att_hist is None else torch.cat([att_hist[parent], step_att], dim=1)
        finished = finished[parent] | (words == END)
        if bool((finished | torch.isinf(scores.reshape(-1))).all()):
            break
    history = history.tolist()
    lengths = torch.tensor([len(_trim([w for w in h if w != PAD])) for h in history], device=scores.device)
    ranked = scores / lengths.view(B, K).clamp(min=1).float() ** length_norm if length_norm else scores
    order = ranked.argsort(dim=1, descending=True)                         # (B, K)
    out = []
    for b in range(B):
        hyps = []
        for k in order[b].tolist():
            if torch.isinf(scores[b, k]):
                continue                                                   # a beam that never had a candidate
            r = b * K + k
            seq = _trim([w for w in history[r] if w != PAD])
            att = att_hist[r, : len(seq)].cpu() if att_hist is not None else None
            hyps.append(Caption(seq, float(ranked[b, k]), att))
        best = hyps[0]
        if return_all:
            best.alternatives = hyps
        out.append(best)
    return out
