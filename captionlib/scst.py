"""Self-critical sequence training (Rennie et al., 2017): train on the captions the model writes itself.

Lesson 08 builds it (the learner writes `reinforce_loss`); `Trainer` runs it after the cross-entropy epochs when
`TrainConfig.scst_epochs` > 0, and the shipped Flickr8k model was trained so (data/checkpoints/MODEL_CARD.md).

Teacher forcing trains each word given the *true* previous words, but at test time the model reads its
own (lesson 05's exposure bias), and captions are judged as wholes by a metric the loss never sees.
SCST samples whole captions w^s from the model, scores each with CIDEr-D (`cider.py`), and follows the
REINFORCE gradient of the expected score (Williams, 1992; Rennie et al. eq. 6-7):

    ∇ E[r(w)] ≈ (r(w^s) - b) ∇ log p(w^s | I)

The reward r is CIDEr-D, plus (with `meteor` > 0) that much of METEOR's exact-match core (`meteor.py`):
CIDEr-D alone shortens captions, and METEOR, which weighs recall 9:1 (its α = 0.85), then falls.
The baseline b makes it "self-critical": the model's captions compete with the model itself. Rennie et
al. use the reward of the greedy caption; we use the mean reward of the *other* samples of the same image
(Luo, 2020, "A Better Variant of Self-Critical Sequence Training"), which needs no extra decoding.
A sample better than its siblings is made likelier, a worse one less likely.

Shapes: B images, K samples per image, T tokens, P regions, E encoder dim, V vocab.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .beam import PAD, START, sample
from .cider import CiderD
from .meteor import meteor_exact
from .vocab import Vocab

__all__ = ["Reward", "sample_captions", "self_critical_advantage", "token_logprobs", "sequence_logprob", "reinforce_loss",
           "scst_loss"]


class Reward:
    """r(caption) = CIDEr-D + meteor * METEOR-exact, against the references of the caption's image.

    Args:
        references: references[i] = the reference token lists of image i (also CIDEr-D's corpus).
    Called with (image indices, captions as token lists), returns one reward per caption.
    """

    def __init__(self, references: Sequence[Sequence[Sequence[str]]], meteor: float = 0.0):
        self.references, self.meteor, self.cider = references, meteor, CiderD(references)

    def __call__(self, images: Sequence[int], captions: Sequence[Sequence[str]]) -> np.ndarray:
        r = self.cider.scores(images, captions)
        if self.meteor:
            r = r + self.meteor * np.array([meteor_exact(c, self.references[int(i)]) for i, c in zip(images, captions)])
        return r


def sample_captions(decoder, features: torch.Tensor, k: int, max_len: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, list]:
    """K captions per image, sampled from the model (temperature 1, no gradient).

    Args:
        features: (B, P, E).
    Returns:
        captions: (B*K, T) <start> w_1 .. w_L [<end>] <pad>..., the K samples of an image adjacent;
        tokens: the B*K word-index lists (without <start>, with <end> when it was produced).
    """
    expanded = features.repeat_interleave(k, dim=0)                        # (B*K, P, E)
    tokens = [c.tokens for c in sample(decoder, expanded, max_len=max_len, temperature=1.0, generator=generator)]
    T = 1 + max(len(t) for t in tokens)
    captions = torch.full((len(tokens), T), PAD, dtype=torch.long)
    captions[:, 0] = START
    for r, t in enumerate(tokens):
        captions[r, 1:1 + len(t)] = torch.tensor(t, dtype=torch.long)
    return captions.to(features.device), tokens


def self_critical_advantage(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """(B*K,) rewards -> (B*K,) r - b, b the mean reward of the image's other K-1 samples."""
    r = rewards.view(-1, k)                                                # (B, K)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return (r - baseline).reshape(-1)


def token_logprobs(decoder, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = PAD) -> tuple:
    """(log_probs (B, T-1), mask (B, T-1)): log p of each word of the captions given the words before it (teacher
    forcing on them, with gradient), and 1 where that position is a word of the caption (<end> included), 0 for <pad>.

    features (B, P, E), captions (B, T) as `sample_captions` returns them (with dropout off, teacher forcing gives
    the probabilities the sampler used)."""
    logits, _ = decoder(features, captions)                                # (B, T-1, V)
    targets = captions[:, 1:]                                              # (B, T-1)
    log_probs = F.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)   # (B, T-1)
    return log_probs, (targets != pad_idx).to(log_probs.dtype)


def sequence_logprob(decoder, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = PAD) -> torch.Tensor:
    """(B,) log p(caption | image) = Σ_t log p(w_t | w_<t, I) over the real tokens, with gradient."""
    log_probs, mask = token_logprobs(decoder, features, captions, pad_idx)
    return (log_probs * mask).sum(dim=1)


def reinforce_loss(log_probs: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline, the loss lesson 08 builds: -mean_b[(r_b - b_b) * Σ_t mask_bt log_probs_bt].

    log_probs, mask (B, T); rewards, baseline (B,). The advantage r - b is detached: gradient flows into the
    log-probabilities only, making a caption that beat its baseline likelier and one that fell short less likely."""
    advantage = (rewards - baseline).detach()                              # (B,)
    return -(advantage * (log_probs * mask).sum(dim=1)).mean()


def scst_loss(decoder, features: torch.Tensor, image_ids, reward: Callable, vocab: Vocab, k: int = 5, max_len: int = 16,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """One self-critical step's loss for a batch of images, and the mean reward of its samples.

    Args:
        features: (B, P, E); image_ids: (B,) each image's index into the reward's references.
        reward: (image indices, token lists) -> rewards, e.g. a `Reward` or `CiderD(...).scores`.
    The decoder should be in eval mode (no dropout), so that the sampled captions' probabilities are
    the ones differentiated.
    """
    if k < 2:
        raise ValueError(f"self-critical training compares an image's samples with each other: k must be >= 2, got {k}")
    with torch.no_grad():
        captions, tokens = sample_captions(decoder, features, k, max_len, generator)
    words = [vocab.decode(t, join=False) for t in tokens]
    ids = [int(i) for i in image_ids for _ in range(k)]
    rewards = torch.as_tensor(reward(ids, words), dtype=torch.float32, device=features.device)   # (B*K,)
    baseline = rewards - self_critical_advantage(rewards, k)               # each sample's: the mean of its siblings
    log_probs, mask = token_logprobs(decoder, features.repeat_interleave(k, dim=0), captions)   # (B*K, T-1)
    return reinforce_loss(log_probs, mask, rewards, baseline), float(rewards.mean())
