"""Lesson 05 exercise: one scheduled-sampling step (Bengio et al., 2015).

The learner writes `scheduled_input`, the choice of the input at decoding step t: the true word,
or, with probability `sample_prob`, the model's own word sampled from step t-1's prediction.
The check compares values on fixed random draws, then checks that no gradient flows from the
chosen input back into the logits (the sample is a decision, not a differentiable function):
a straight-through trick gives the right values and only that second check catches it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import Mistake, checked, grad_reaches
from ..decoder import scheduled_input

__all__ = ["scheduled_input", "check_scheduled_input"]


def _variant(own_step=lambda t: t - 1, true_step=lambda t: t, use_own=lambda u, p: u < p, soft=False,
             straight_through=False, samples_first=False):
    """A scheduled_input with one thing changed; the keyword says which."""
    def fn(embedding, captions, logits, t, sample_prob, generator=None):
        B = captions.shape[0]
        prev = logits[:, own_step(t)]
        probs = F.softmax(prev if straight_through or soft else prev.detach(), dim=-1)   # (B, V)
        if samples_first:
            own = torch.multinomial(probs.detach(), 1, generator=generator).squeeze(1)
            coin = use_own(torch.rand(B, generator=generator), sample_prob)
        else:
            coin = use_own(torch.rand(B, generator=generator), sample_prob)
            own = torch.multinomial(probs.detach(), 1, generator=generator).squeeze(1)
        truth = embedding(captions[:, true_step(t)])                       # (B, M)
        if soft:
            mine = probs @ embedding.weight                                # expected embedding
        elif straight_through:
            onehot = F.one_hot(own, probs.shape[1]).to(probs.dtype)
            mine = (onehot + probs - probs.detach()) @ embedding.weight    # value of own's row, gradient of probs
        else:
            mine = embedding(own)
        return torch.where(coin[:, None], mine, truth)
    return fn


def _cases():
    g = torch.Generator().manual_seed(5)
    out = []
    for t, p in [(1, 0.25), (2, 0.25), (4, 0.7), (3, 0.5)]:
        B, T, V, M = 64, 6, 7, 3
        torch.manual_seed(100 + t)
        emb = nn.Embedding(V, M)
        captions = torch.randint(3, V, (B, T))
        logits = 2 * torch.randn(B, t, V, generator=g)
        out.append((emb, captions, logits, t, p, torch.Generator().manual_seed(t)))
    return out


MISTAKES = [
    Mistake("the model's word is sampled from the wrong time step: the input of step t is what step t-1 "
            "predicted, logits[:, t - 1]", _variant(own_step=lambda t: t - 2)),
    Mistake("the model's word is sampled from the wrong time step: the input of step t is what step t-1 "
            "predicted, logits[:, t - 1] (logits[:, -1] when logits holds steps 0..t-1)", _variant(own_step=lambda t: 0)),
    Mistake("the true word comes from the wrong time step: step t reads captions[:, t] (captions[:, t + 1] is "
            "its target)", _variant(true_step=lambda t: t + 1)),
    Mistake("the true word comes from the wrong time step: step t reads captions[:, t]; captions[:, t - 1] was "
            "the previous step's input", _variant(true_step=lambda t: t - 1)),
    Mistake("the probability is inverted: the model's own word should be used where the coin is below "
            "sample_prob (with sample_prob = 0.25, a quarter of the time), the true word otherwise",
            _variant(use_own=lambda u, p: u >= p)),
    Mistake("the probability is inverted: the model's own word should be used with probability sample_prob, "
            "not 1 - sample_prob", _variant(use_own=lambda u, p: u < 1 - p)),
    Mistake("the input is the expected embedding softmax(logits) @ W: scheduled sampling feeds one sampled word, "
            "and no gradient flows through that choice", _variant(soft=True)),
    Mistake("the random numbers are drawn in the other order: draw the coins (torch.rand) first, then the samples "
            "(torch.multinomial), so that the check can reproduce your draws", _variant(samples_first=True)),
]

GRADIENT = ("gradient flows through the sampled word into the previous step's logits: the values are right, "
            "but the input must be a constant as far as backpropagation is concerned (use embedding(own) with "
            "own an index, or detach the probabilities); Bengio et al. do not backpropagate through the sample")


def no_gradient_through_the_sample(fn) -> str | None:
    """GRADIENT when the input returned by `fn` carries a gradient back to the logits, else None."""
    emb, captions, logits, t, p, g = _cases()[2]
    logits = logits.clone().requires_grad_(True)
    out = fn(emb, captions, logits, t, 1.0, g)
    if not out.requires_grad:
        return None
    grad, = torch.autograd.grad(out.pow(2).sum(), logits, allow_unused=True)
    return GRADIENT if grad is not None and bool(grad.abs().sum() > 0) else None


def embedding_learns(fn) -> str | None:
    """The returned input is what the step reads: the embedding must get its gradient through it (only the sampled
    word is cut from the graph, not the lookup)."""
    emb, captions, logits, t, _, _ = _cases()[2]
    out = fn(emb, captions, logits, t, 0.5, torch.Generator().manual_seed(0))
    if not torch.is_tensor(out) or not grad_reaches(out, emb.weight)[0]:
        return ("no gradient reaches the embedding from the input you return: the lookup ran under torch.no_grad() (or "
                "was detached). Only the sampled word is cut from the graph (it is an index); embedding(words) must "
                "stay in it, or the embedding never learns")
    return None


def _sampling_parts(fn) -> str | None:
    """The form of the output, the use of the generator, one coin per caption, and sampling (not argmax)."""
    emb, captions, logits, t, _, _ = _cases()[2]
    B = captions.shape[0]
    out = fn(emb, captions, logits, t, 0.5, torch.Generator().manual_seed(0))
    if torch.is_tensor(out) and out.shape == (B, B, emb.embedding_dim):
        return (f"the inputs are (B, B, M) = {tuple(out.shape)}: torch.multinomial returns (B, 1), and torch.where of "
                "the (B,) coins against (B, 1) samples broadcasts to (B, B). Squeeze the samples: .squeeze(1)")
    if not torch.is_tensor(out) or out.shape != (B, emb.embedding_dim):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        return f"return the embedded inputs, (B, M) = {(B, emb.embedding_dim)}: embedding(words), not {shape}"
    again = fn(emb, captions, logits, t, 0.5, torch.Generator().manual_seed(0))
    if not torch.equal(out, again):
        return ("the same generator seed gives other draws: pass generator= to torch.rand and to torch.multinomial, so "
                "the draws repeat (and can be checked)")
    truth = emb(captions[:, t])
    for seed in range(4):                               # with a coin per caption, never all 64 true words at 0.5
        out = fn(emb, captions, logits, t, 0.5, torch.Generator().manual_seed(seed))
        if torch.allclose(out, truth):
            return "one coin decides for the whole batch: flip one per caption, torch.rand(B) < sample_prob"
    flat = torch.zeros_like(logits)                     # every word equally likely: samples vary, an argmax does not
    out = fn(emb, captions, flat, t, 1.0, torch.Generator().manual_seed(0))
    if torch.allclose(out, out[:1].expand_as(out)):
        return ("every caption got the same word from equal probabilities: sample it, torch.multinomial(softmax(logits"
                "[:, t - 1], dim=-1), 1), not the argmax")
    return None



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "scheduled_input": {
        None: ("the recipe: coins = torch.rand(B, generator) < sample_prob; own = multinomial(softmax(logits[:, t - "
               "1]), 1, generator); where(coin, embedding(own), embedding(captions[:, t]))"),
    },
}

def check_scheduled_input(fn):
    errors = {
        RuntimeError: lambda e, args: ("torch.multinomial needs probabilities: softmax(logits[:, t - 1], dim=-1) first"
                                       if "probability tensor" in str(e) else None),
        IndexError: lambda e, args: ("logits holds the steps 0..t-1 so far: the prediction of the previous step is "
                                     "logits[:, t - 1]"),
    }
    return checked("scheduled_input", fn, scheduled_input, _cases(), mistakes=MISTAKES, axes="BM",
                   arg_axes={"captions": "BT", "logits": "BtV"},
                   properties=[no_gradient_through_the_sample, embedding_learns], probes=[_sampling_parts], errors=errors,
                   recipe=_RECIPES["scheduled_input"])
