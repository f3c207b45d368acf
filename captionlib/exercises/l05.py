"""Lesson 05 exercises: free-running (greedy) decoding, and one scheduled-sampling step (Bengio et al., 2015).

`greedy_decode` is the loop where exposure bias lives: the decoder reads its own words. Its check runs it on
`Scripted` decoders whose every step is known in advance.

The learner writes `scheduled_input`, the choice of the input at decoding step t: the true word,
or, with probability `sample_prob`, the model's own word sampled from step t-1's prediction.
The check compares values on fixed random draws, then checks that no gradient flows from the
chosen input back into the logits (the sample is a decision, not a differentiable function):
a straight-through trick gives the right values and only that second check catches it.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import MISSING, Mistake, Part, checked, grad_reaches
from ..decoder import scheduled_input

__all__ = ["PARTS", "scheduled_input", "check_scheduled_input", "greedy_decode", "check_greedy_decode", "Scripted"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "scheduled_input": [Part("reproducible draws", 1, r"generator|other order|draws"),
                        Part("the time step", 1, r"wrong time step|steps 0\.\.t-1|holds the steps"),
                        Part("one coin per caption", 1, r"coin|probability is inverted"),
                        Part("sampling the model's word", 1, r"same word|multinomial needs|expected embedding|sample it")],
    "greedy_decode": [Part("<start> and <pad> never chosen", 1, r"<start> or <pad>|-inf|PAD, START|picks rows"),
                      Part("the captions' tokens", 1, r"start with <start>|Python int"),
                      Part("feeding back the chosen word and the state", 1, r"feed back|reads <start>|state each step|argmax ran"),
                      Part("stopping", 2, r"<end>|stop|never ends|finished|keeps growing|max_len|batch of one")],
}


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
    "greedy_decode": {
        None: ("the recipe: words = <start> for every image; for at most max_len steps: logits = step(words, ...); "
               "-inf on <pad> and <start>; words = argmax over the vocabulary; append to the captions not yet done; "
               "mark those that said <end> done"),
    },
    "scheduled_input": {
        None: ("the recipe: coins = torch.rand(B, generator) < sample_prob; own = multinomial(softmax(logits[:, t - "
               "1]), 1, generator); where(coin, embedding(own), embedding(captions[:, t]))"),
    },
}

def check_scheduled_input(fn=MISSING):
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


# ------------------------------------------------------------------ exercise 1: free-running (greedy) decoding

PAD, START, END = 0, 1, 2


def greedy_decode(decoder, features: torch.Tensor, max_len: int = 20) -> list[list[int]]:
    """Free running: from <start>, feed back the model's own most probable word, for a batch.

    features (B, P, E). Returns B token lists: each caption's word indices, without <start>, ending with <end>
    when it finished within max_len steps (at most max_len tokens). <pad> and <start> are never chosen."""
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)      # (B,) every caption starts
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)               # (B, V)
        logits[:, [PAD, START]] = float("-inf")                                     # not words
        words = logits.argmax(dim=-1)                                               # (B,) its own best word
        for b in (~done).nonzero().flatten().tolist():                              # finished captions stay finished
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


class Scripted(nn.Module):
    """A decoder whose next word is read from a table: the image's row (feature [b, 0, 0] holds the image's
    number) and the previous word; and whose <end> comes from its state, a clock of the steps taken, at the
    step `ends[image]`. The decoder interface of lessons 03-04 (init_state, prepare, step), so a check can predict
    every step, and a loop that does not carry the state never sees its captions end."""

    def __init__(self, table: torch.Tensor, ends: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)                                         # (images, V, V)
        self.register_buffer("ends", ends)                                           # (images,) the step that says <end>

    def init_state(self, features):
        return (features[:, 0, 0].long(), torch.zeros(features.shape[0], dtype=torch.long))   # image number, steps taken

    def prepare(self, features):
        return None

    def step(self, words, state, features, memo):
        image, t = state
        logits = self.table[image, words].clone()                                    # (B, V)
        logits[:, END] += torch.where(t == self.ends[image], 50.0, -50.0)            # <end> when the clock says so
        return logits, (image, t + 1), None


def _script(captions: list[list[int]], V: int = 9, start_top: set = frozenset()) -> Scripted:
    """A decoder that makes image i say captions[i] greedily (the next word 5 logits above the rest, <end> at its
    step by the clock), with <start> and <pad> given the very highest logit after the words in `start_top` (a loop
    that does not mask them says them)."""
    table = torch.randn(len(captions), V, V, generator=torch.Generator().manual_seed(len(captions))) * 0.1
    ends = torch.full((len(captions),), 10_000)
    for i, words in enumerate(captions):
        prev = START
        for step, w in enumerate(words):
            if w == END:
                ends[i] = step
                break
            table[i, prev, w] += 5.0
            prev = w
        for w in start_top:
            table[i, w, START] += 9.0
            table[i, w, PAD] += 8.0
    return Scripted(table, ends)


# image 0 ends after 3 words, image 1 after 5; image 2 never says <end>
_SAID = [[4, 5, 6, END], [7, 3, 8, 4, 5, END], [4, 6, 5, 7, 8, 6, 3, 4, 5, 6, 7, 8]]


def _features(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1).expand(n, 2, 3).clone()   # (B, P=2, E=3): the numbers


def _greedy_cases():
    return [(_script(_SAID[:2]), _features(2), 10), (_script(_SAID), _features(3), 8),
            (_script(_SAID[1:2]), _features(1), 10),                                      # a batch of one
            (_script(_SAID[:2], start_top={5, 3}), _features(2), 10)]                     # <start> tempts the model


def _greedy_parts(fn) -> str | None:
    """Scenarios where one rule of free running alone decides the output; names the first one broken."""
    out = fn(_script(_SAID[:2]), _features(2), 10)
    if torch.is_tensor(out):
        return ("return a list of B token lists, not a tensor: the captions end at different steps, so they have "
                "different lengths (a (B, L) tensor would pad or cut them)")
    if not isinstance(out, list) or len(out) != 2 or not all(isinstance(c, list) for c in out):
        return f"return one list of word indices per image: [[...], [...]] for 2 images, got {str(out)[:60]}"
    if any(c[:1] == [START] for c in out):
        return "the captions start with <start>: it is the first input, not a word of the caption; leave it out"
    short, long = out
    if short[:4] == [4, 5, 6, END] and len(short) == len(long) == 10:
        return ("the captions go on after <end> until max_len: stop each caption at its <end> (keep <end> as its last "
                "token), and stop the loop once every caption has finished")
    if short[:4] == [4, 5, 6, END] and len(short) > 4:
        if len(short) == len(long):
            return ("a finished caption keeps growing while the others run: after <end>, append nothing more to it "
                    "(keep a `done` flag per caption; finished captions stay finished)")
        return "the caption goes on after <end>: stop each caption at its <end> (keep <end> as its last token)"
    if short == [4, 5, 6] and long == [7, 3, 8, 4, 5]:
        return "<end> is missing at the end of the captions: keep it as each finished caption's last token"
    if short[:2] == [4, 4] and set(short) - {END} == {4}:
        return ("every step reads <start>: feed back the word the model just chose (words = its argmax) as the next "
                "step's input")
    if short[:3] == [4, 5, 6] and END not in short and END not in long:
        return ("no caption ever ends: the state each step returns is not passed to the next, so the decoder never "
                "knows how far it got. Carry it: logits, state, _ = decoder.step(words, state, features, memo)")
    everyone = fn(_script(_SAID), _features(3), 8)
    never = everyone[2]
    if len(never) == 4 and len(everyone[0]) == 4:
        return ("the loop stops as soon as the first caption finishes: the others still have words to say. Stop when "
                "every caption has finished (done.all())")
    if len(never) != 8:
        return (f"a caption that never says <end> has {len(never)} tokens with max_len 8: run at most max_len steps, "
                "for _ in range(max_len), one token each")
    tempted = fn(_script(_SAID[:2], start_top={5, 3}), _features(2), 10)
    if any(w in (START, PAD) for c in tempted for w in c):
        return ("the model chose <start> or <pad> (their logits were highest after some word): they are not words. "
                "Set their logits to -inf before the argmax: logits[:, [0, 1]] = float('-inf')")
    return None


def check_greedy_decode(fn=MISSING):
    def explain(e, args) -> str | None:
        B, V = args[1].shape[0], args[0].table.shape[-1]
        if B == 1 and ("0-dim" in str(e) or "'int' object is not iterable" in str(e)):
            return ("with a batch of one, a squeeze() with no dim turned the (1,) words into a 0-dim tensor: keep the "
                    "batch axis (argmax(dim=-1) gives (B,) already; squeeze(-1) if you used keepdim)")
        if B == 1 and "out of bounds for dimension 0" in str(e):
            return ("logits[[PAD, START]] picks rows, that is images, not words: with one image there is no row 1. Mask "
                    "the columns: logits[:, [PAD, START]] = float('-inf')")
        if "must match" in str(e) and {int(n) for n in re.findall(r"\((\d+)\)", str(e))} == {B, V}:
            return (f"the argmax ran over the batch axis (dim=0), giving one index per word of the vocabulary (V = {V}) "
                    "instead of one word per image: take it over the vocabulary, logits.argmax(dim=-1)")
        return None

    return checked("greedy_decode", fn, greedy_decode, _greedy_cases(), probes=[_greedy_parts],
                   errors={IndexError: explain, RuntimeError: explain, TypeError: explain},
                   notes=[None, None, "with a batch of one (B = 1)", "when the model's highest logit is <start> or <pad>"],
                   arg_axes={"features": "BPE"}, recipe=_RECIPES["greedy_decode"])
