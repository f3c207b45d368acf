"""Lesson 03 exercises: teacher-forcing inputs/targets, the masked loss, the teacher-forced forward pass.

Shapes: B batch, T time, V vocab, P regions, E encoder dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..checks import MISSING, Mistake, Part, checked, ungraded_parameters
from ..decoder import DecoderConfig, build_decoder

__all__ = ["PARTS", "shift_captions", "masked_loss", "teacher_forced_logits", "train_step", "check_shift_captions",
           "check_masked_loss", "check_teacher_forced_logits", "check_train_step"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "shift_captions": [Part("the inputs", 1, r"\binputs\b"), Part("the targets", 1, r"\btargets\b")],
    "masked_loss": [Part("the average over real tokens", 1, r"averaged|divided|divide by|summed|per caption|mean is"),
                    Part("the mask", 2, r"<pad>|pad index|pad_idx|mask them"),
                    Part("log-softmax over the words", 1, r"log_softmax|softmax runs|nan")],
    "teacher_forced_logits": [Part("raw logits, with gradients", 1, r"probabilities|raw logits|gradient"),
                              Part("the true word as input", 1, r"fed its own|inputs are shifted|true word"),
                              Part("the state carried", 1, r"state"),
                              Part("T-1 steps along dim 1", 1, r"steps for captions|T-1 steps|time-major|stack")],
    "train_step": [Part("clipping", 1, r"clipped|clip_grad_norm"),
                   Part("training mode", 1, r"eval mode|decoder\.train"),
                   Part("the loss", 1, r"loss compares|<pad>|loss returned|loss\.item|Python float"),
                   Part("the update (zero_grad, backward, step)", 2, r"zero_grad|optimizer|step\(\)|did not move|never move|backward")],
}


def shift_captions(captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) padded captions -> inputs (B, T-1) = y_0..y_{T-2}, targets (B, T-1) = y_1..y_{T-1}."""
    return captions[:, :-1], captions[:, 1:]


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, pad_idx: int = 0) -> torch.Tensor:
    """Mean cross-entropy over the real (non-pad) targets. logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_idx)


def teacher_forced_logits(decoder, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
    """(B, T-1, V): at step t the decoder reads the true word captions[:, t] and predicts captions[:, t+1]."""
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits)
    return torch.stack(out, dim=1)


CAPS = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 4, 2, 0, 0, 0, 0], [1, 9, 8, 7, 6, 5, 2]])



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "shift_captions": {
        0: "the recipe: inputs are every word but the last, captions[:, :-1]",
        1: "the recipe: targets are every word but the first, captions[:, 1:]",
    },
    "masked_loss": {
        None: ("the recipe: per-token cross-entropy of log_softmax(logits), masked where targets == pad_idx, summed, "
               "divided by the number of real tokens"),
    },
    "train_step": {
        None: ("the recipe: decoder.train(); logits from decoder(features, captions); loss = masked_loss(logits, "
               "captions[:, 1:], pad_idx); optimizer.zero_grad(); loss.backward(); clip_grad_value_; optimizer.step(); "
               "return loss.item()"),
    },
    "teacher_forced_logits": {
        None: ("the recipe: state = init_state, memo = prepare; for t in range(T - 1): logits, state = "
               "step(captions[:, t], state, ...); stack along dim=1"),
    },
}

def check_shift_captions(fn=MISSING):
    mistakes = [
        Mistake("targets equal the inputs (no shift): the model would learn to predict the current word, not the next",
                lambda c: (c[:, :-1], c[:, :-1])),
        Mistake("targets start with <start>: the model never has to predict <start>; targets are captions[:, 1:]",
                lambda c: (c[:, :-1], c)),
        Mistake("inputs and targets are swapped: inputs = captions[:, :-1] (they start with <start>), targets = captions[:, 1:]",
                lambda c: (c[:, 1:], c[:, :-1])),
        Mistake("inputs still contain the last token: they must stop one short, captions[:, :-1]",
                lambda c: (c, c[:, 1:])),
    ]
    return checked("shift_captions", fn, shift_captions, [(CAPS,), (CAPS[:1, :5],)], mistakes=mistakes, axes=("BT", "BT"),
                   probes=[_which_positions],
                   recipe=_RECIPES["shift_captions"])


def _which_positions(fn) -> str | None:
    """Captions whose words are all different (word = 10 * row + position), so each returned tensor shows
    which rows and positions it was cut from."""
    c = torch.arange(3)[:, None] * 10 + torch.arange(6)[None]            # (3, 6)
    out = fn(c.clone())
    if not (isinstance(out, tuple) and len(out) == 2):
        return "return a pair (inputs, targets)"
    said = []
    for part, start, want in (("inputs", 0, "captions[:, :-1]"), ("targets", 1, "captions[:, 1:]")):
        x = out[start]
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            said.append(f"{part} should be a (B, T-1) tensor")
        elif x.shape[0] != 3:
            said.append(f"{part} has {x.shape[0]} rows for 3 captions: slice the time axis, [:, ...], not the batch axis")
        elif x.shape[1] != 5:
            said.append(f"{part} has length {x.shape[1]} for captions of length 6: it must be T-1 = 5")
        elif not torch.equal(x, c[:, start:start + 5]):
            first = int(x[0, 0])                                      # row 0's words are its positions
            where = f"starts at position {first}" if 0 <= first < 6 else "is not a slice of the captions"
            said.append(f"{part} {where}: it must be {want}")
    return "; ".join(said) or None


def _logit_cases():
    g = torch.Generator().manual_seed(0)
    pad3 = torch.where(CAPS[:, 1:] == 0, 3, CAPS[:, 1:])                 # a vocabulary whose <pad> is not 0
    return [(torch.randn(3, 6, 10, generator=g), CAPS[:, 1:], 0), (torch.randn(2, 4, 10, generator=g), CAPS[:2, 1:5], 0),
            (torch.randn(3, 6, 10, generator=g), pad3, 3),
            (torch.randn(3, 6, 10, generator=g) * 300, CAPS[:, 1:], 0)]        # large logits, as a confident model's


def check_masked_loss(fn=MISSING):
    def counts_pad(logits, targets, pad_idx=0):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def over_padded_length(logits, targets, pad_idx=0):
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return (per * (targets.reshape(-1) != pad_idx)).sum() / targets.numel()

    def summed(logits, targets, pad_idx=0):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_idx, reduction="sum")

    def per_caption_mean(logits, targets, pad_idx=0):
        per = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")          # (B, T)
        mask = (targets != pad_idx).float()
        return ((per * mask).sum(1) / mask.sum(1)).mean()

    mistakes = [
        Mistake("<pad> targets are counted in the loss: mask them out (ignore_index=pad_idx)", counts_pad),
        Mistake("the pad index is a literal 0: with pad_idx = 3 the padding is counted. Mask with the pad_idx argument",
                lambda logits, targets, pad_idx=0: masked_loss(logits, targets, 0)),
        Mistake("the loss is averaged over the padded length (B*T): divide by the number of real tokens", over_padded_length),
        Mistake("the loss is summed, not averaged: its size would depend on the batch", summed),
        Mistake("the mean is per caption, then over captions: average over all real tokens of the batch instead", per_caption_mean),
    ]
    def uniform_logits(fn) -> str | None:        # equal logits for all V words: the loss is log V, whatever the targets
        logits, targets = torch.zeros(2, 3, 10), torch.tensor([[4, 5, 0], [6, 0, 0]])
        got = float(fn(logits, targets, 0))
        real, captions, positions = 3, 2, 6                              # 3 real targets in 2 captions of 3 positions
        for n, what in ((captions, "the number of captions"), (positions, "every position, padding included")):
            if abs(got - math.log(10) * real / n) < 1e-4:
                return (f"the masked sum is divided by {what}: divide by the number of real (non-pad) tokens, "
                        f"mask.sum(); with equal logits the loss must be log 10 = {math.log(10):.4f}, yours is {got:.4f}")
        for n, axis in ((positions // 2, "time axis (dim=1)"), (captions, "batch axis (dim=0)")):
            if abs(got - math.log(n)) < 1e-4 and n != 10:
                return (f"the softmax runs over the {axis}: with equal logits the loss comes out log {n} = {got:.4f}. "
                        "The distribution is over the V words: log_softmax(logits, dim=-1)")
        if abs(got - math.log(10)) > 1e-4:
            return (f"with equal logits for all 10 words the loss must be log 10 = {math.log(10):.4f}, yours is {got:.4f}: "
                    f"use -log_softmax of the logits at the target (F.cross_entropy does both), not softmax or raw logits")
        return None

    notes = [None, None, "when the pad index is 3, not 0 (mask with the pad_idx argument, never a literal 0)",
             "with large logits (hundreds, as a confident model has)"]

    def overflow(fn) -> str | None:
        logits, targets, pad = _logit_cases()[3]
        got = fn(logits, targets, pad)
        if torch.is_tensor(got) and not torch.isfinite(got).all() and torch.isfinite(masked_loss(logits, targets, pad)):
            return (f"with large logits (in the hundreds) your loss is {float(got)}: log(softmax(x)) underflows to log(0) = -inf. "
                    "Use log_softmax (F.log_softmax, or F.cross_entropy), which subtracts the largest logit first")
        return None
    return checked("masked_loss", fn, masked_loss, _logit_cases(), mistakes=mistakes, notes=notes, axes="",
                   arg_axes={"logits": "BTV", "targets": "BT"},
                   probes=[overflow, uniform_logits],
                   recipe=_RECIPES["masked_loss"])


def _decoder(attention):
    torch.manual_seed(0)
    return build_decoder(DecoderConfig(vocab_size=10, encoder_dim=6, embed_dim=4, hidden_dim=5, attention_dim=3,
                                       dropout=0.0, attention=attention)).eval()


def check_teacher_forced_logits(fn=MISSING):
    g = torch.Generator().manual_seed(2)
    cases = [(_decoder(False), torch.randn(3, 4, 6, generator=g), CAPS), (_decoder(True), torch.randn(3, 4, 6, generator=g), CAPS)]

    def own_predictions(decoder, features, captions):
        state, memo = decoder.init_state(features), decoder.prepare(features)
        words, out = captions[:, 0], []
        for t in range(captions.shape[1] - 1):
            logits, state, _ = decoder.step(words, state, features, memo)
            out.append(logits)
            words = logits.argmax(-1)
        return torch.stack(out, 1)

    def fresh_state(decoder, features, captions):
        memo = decoder.prepare(features)
        return torch.stack([decoder.step(captions[:, t], decoder.init_state(features), features, memo)[0]
                            for t in range(captions.shape[1] - 1)], 1)

    def current_word(decoder, features, captions):
        state, memo = decoder.init_state(features), decoder.prepare(features)
        out = []
        for t in range(1, captions.shape[1]):
            logits, state, _ = decoder.step(captions[:, t], state, features, memo)
            out.append(logits)
        return torch.stack(out, 1)

    mistakes = [
        Mistake("the decoder is fed its own predictions: with teacher forcing the input at step t is the true word captions[:, t]", own_predictions),
        Mistake("the state is not carried from step to step: pass the state each step returns into the next", fresh_state),
        Mistake("the inputs are shifted the wrong way: step t reads captions[:, t] (starting with <start>) and predicts captions[:, t+1]", current_word),
    ]
    def parts(fn) -> str | None:
        args = cases[1]
        got, want = fn(*args), teacher_forced_logits(*args)
        B, T = args[2].shape
        if not torch.is_tensor(got):
            return f"return one (B, T-1, V) tensor (torch.stack(logits, dim=1)), not a {type(got).__name__}"
        if got.shape == (B, T, want.shape[2]):
            return f"{T} steps for captions of T = {T}: the last word has nothing to predict, so run T-1 steps (range(T - 1))"
        if got.shape == (T - 1, B, want.shape[2]):
            return "the logits are time-major (T-1, B, V): stack the steps along dim=1"
        if got.shape == want.shape:
            if torch.allclose(got, want.softmax(-1), atol=1e-6):
                return "these are probabilities: return the raw logits (cross-entropy applies log-softmax itself)"
            if torch.allclose(got, want.log_softmax(-1), atol=1e-6):
                return "these are log-probabilities: return the raw logits (cross-entropy applies log-softmax itself)"
        return None

    def trainable(fn) -> str | None:                 # the loss is backpropagated through these logits
        decoder, features, captions = _decoder(True), torch.randn(2, 4, 6), CAPS[:2]
        out = fn(decoder, features, captions)
        if not torch.is_tensor(out) or not out.requires_grad:
            return ("the logits carry no gradient: the unroll runs under torch.no_grad() (or detaches them). Training "
                    "backpropagates the loss through these logits into the decoder: keep the graph")
        missing = ungraded_parameters(decoder, out, teacher_forced_logits(decoder, features, captions))
        if missing:
            return (f"no gradient would reach {', '.join(missing[:4])}: the part of the step that uses them ran under "
                    "torch.no_grad() or was detached, so training would leave them as they are. Keep init_state, "
                    "prepare and every step in the graph")
        return None

    no_memo = {AttributeError: lambda e, args: ("memo is None where the attention decoder needs its projected regions: "
                                                "memo = decoder.prepare(features), once, then pass it to every step")
               if "NoneType" in str(e) and args[0].config.attention else None}
    return checked("teacher_forced_logits", fn, teacher_forced_logits, cases, mistakes=mistakes, probes=[parts], errors=no_memo,
                   axes="BTV", arg_axes={"features": "BPE", "captions": "BT"}, properties=[trainable],
                   recipe=_RECIPES["teacher_forced_logits"])


# ------------------------------------------------------------------ exercise 4: the training step

def train_step(decoder, optimizer, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = 0,
               grad_clip: float = 5.0) -> float:
    """One optimisation step of teacher forcing: returns the batch's loss as a float.

    features (B, P, E), captions (B, T). The lesson's version of captionlib.train.train_step."""
    decoder.train()                                                    # dropout on
    logits, _ = decoder(features, captions)                            # (B, T-1, V), predicting captions[:, 1:]
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step_setup(seed: int = 0, dropout: float = 0.0, lr: float = 0.1, attention: bool = False, opt: str = "sgd"):
    """A tiny decoder, an optimiser over its parameters, and a batch."""
    torch.manual_seed(seed)
    decoder = build_decoder(DecoderConfig(vocab_size=10, encoder_dim=6, embed_dim=4, hidden_dim=5, attention_dim=3,
                                          dropout=dropout, attention=attention)).eval()
    optimizer = (torch.optim.SGD if opt == "sgd" else torch.optim.Adam)(decoder.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    return decoder, optimizer, torch.randn(3, 4, 6, generator=g), CAPS


def _effects(step):
    """What a training step did: its result, then the decoder's weights and gradients afterwards (same dropout draws)."""
    def run(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
        torch.manual_seed(123)
        loss = step(decoder, optimizer, features, captions, pad_idx, grad_clip)
        weights = {n: p.detach().clone() for n, p in decoder.named_parameters()}
        return loss, weights
    return run


def _weights(decoder) -> dict:
    return {n: p.detach().clone() for n, p in decoder.named_parameters()}


def _moved(before: dict, after: dict) -> float:
    """The largest change of any weight."""
    return max(float((after[n] - before[n]).abs().max()) for n in before)


def _train_step_parts(fn) -> str | None:
    """Scenarios where one move of the step alone decides what happens to the weights; names the first that is off."""
    close = lambda a, b: abs(a - b) < 1e-6                                        # noqa: E731
    # 1. The loss: equal to the reference's on a fresh model, as a float, computed in training mode.
    decoder, optimizer, features, captions = _step_setup(dropout=0.5)
    reference, ref_opt, _, _ = _step_setup(dropout=0.5)
    torch.manual_seed(5)
    got = fn(decoder, optimizer, features, captions, 0, 5.0)
    torch.manual_seed(5)
    want = train_step(reference, ref_opt, features, captions, 0, 5.0)
    if torch.is_tensor(got):
        return "return the loss as a Python float, loss.item(): a tensor would keep its whole graph alive in the history"
    if not isinstance(got, float):
        return f"return the loss as a float (loss.item()), not a {type(got).__name__}"
    if not close(got, want):
        with torch.no_grad():
            fresh, _, _, _ = _step_setup(dropout=0.5)
            torch.manual_seed(5)
            trained = fresh.train()(features, captions)[0]                     # the same dropout draws as the step's
            evaluated = fresh.eval()(features, captions)[0]
            variants = {"eval": masked_loss(evaluated, captions[:, 1:]),
                        "unshifted": masked_loss(trained, captions[:, :-1]),
                        "pad counted": F.cross_entropy(trained.reshape(-1, trained.shape[-1]), captions[:, 1:].reshape(-1))}
        if close(got, float(variants["eval"])):
            if decoder.training:
                return ("the forward pass ran in eval mode (dropout off): decoder.train() comes after it. Call it first, "
                        "before the forward pass")
            return ("the model trains in eval mode (dropout off): the loss is the eval-mode one. Call decoder.train() "
                    "at the start of the step (validation switches it to eval)")
        if close(got, float(variants["pad counted"])):
            return ("the <pad> targets are counted in the loss: use your masked_loss (or ignore_index=pad_idx), so that "
                    "padding adds nothing")
        if close(got, float(variants["unshifted"])):
            return ("the loss compares the logits with captions[:, :-1], the inputs: the targets are the next words, "
                    "captions[:, 1:] (your shift_captions' second output)")
        plain, plain_opt, _, _ = _step_setup()                             # no dropout: a second forward is comparable
        mine, mine_opt, _, _ = _step_setup()
        train_step(plain, plain_opt, features, captions, 0, 5.0)
        with torch.no_grad():
            after = float(masked_loss(plain.train()(features, captions)[0], captions[:, 1:]))
        if close(fn(mine, mine_opt, features, captions, 0, 5.0), after):
            return ("the loss returned is computed again after the update (a second forward pass): return the loss of "
                    "the batch the step trained on, the one backward() ran on")
        return f"the loss on a fresh model is {got:.4f}, expected {want:.4f}: the teacher-forced logits and your masked_loss"
    # 2. The order of the moves, on a model with no gradients yet: one call must change the weights. A spy on the
    # optimiser says whether step() ran at all, and whether there were gradients when it did.
    decoder, optimizer, features, captions = _step_setup()
    steps = []
    original = optimizer.step

    def spy(*args, **kwargs):
        steps.append(any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in decoder.parameters()))
        return original(*args, **kwargs)
    optimizer.step = spy
    before = _weights(decoder)
    fn(decoder, optimizer, features, captions, 0, 5.0)
    if _moved(before, _weights(decoder)) == 0:
        if not steps:
            return "the weights never move: optimizer.step() is missing (it applies the gradients; after backward and clip)"
        if not any(steps) and any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in decoder.parameters()):
            return ("the weights did not move, though the gradients are there: optimizer.step() runs before "
                    "loss.backward() (it applies the previous batch's gradients, none at the first step). The order is "
                    "zero_grad, backward, clip, step")
        if all(p.grad is None or not bool(p.grad.abs().sum() > 0) for p in decoder.parameters()):
            return ("the weights did not move and the gradients are empty: optimizer.zero_grad() runs after "
                    "loss.backward(), erasing them before the step (or backward is missing). The order is zero_grad, "
                    "backward, clip, step")
    # 3. Gradients left from an earlier step must not count: leftovers of 1.0 everywhere, SGD with lr 1, no clip.
    decoder, optimizer, features, captions = _step_setup(lr=1.0)
    reference, ref_opt, _, _ = _step_setup(lr=1.0)
    for p in decoder.parameters():
        p.grad = torch.ones_like(p)
    fn(decoder, optimizer, features, captions, 0, 1e6)
    train_step(reference, ref_opt, features, captions, 0, 1e6)
    got_w, want_w = _weights(decoder), _weights(reference)
    if _moved(want_w, got_w) > 1e-5:
        if all(torch.allclose(got_w[n], want_w[n] - 1.0, atol=1e-5) for n in got_w):
            return ("the gradients of the previous step are added to this one's: call optimizer.zero_grad() before "
                    "loss.backward() (backward adds to .grad, it does not replace it)")
    # 4. Clipping: a tiny clip value, SGD with lr 1: each weight may move by at most the clip.
    decoder, optimizer, features, captions = _step_setup(lr=1.0)
    before = _weights(decoder)
    fn(decoder, optimizer, features, captions, 0, 1e-3)
    moved = _moved(before, _weights(decoder))
    reference, ref_opt, _, _ = _step_setup(lr=1.0)
    reference.train()
    loss = masked_loss(reference(features, captions)[0], captions[:, 1:])
    ref_opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1e-3)
    ref_opt.step()
    if _moved(_weights(reference), _weights(decoder)) < 1e-7:
        return ("the gradients are clipped by their norm (clip_grad_norm_): clip each value to [-grad_clip, grad_clip], "
                "torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)")
    if moved > 1e-3 + 1e-7:
        grads = [p.grad for p in decoder.parameters() if p.grad is not None]
        if grads and max(float(g.abs().max()) for g in grads) <= 1e-3 + 1e-9:
            return (f"the gradients are clipped after optimizer.step(): the step used the unclipped ones (a weight moved "
                    f"by {moved:.3g} with grad_clip 0.001 and lr 1). Clip between backward() and step()")
        return (f"the gradients are not clipped: with grad_clip 0.001 and lr 1 a weight moved by {moved:.3g}. Clip "
                "between backward() and step(): torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)")
    # 5. The optimiser given is the one that steps (Adam keeps state between steps).
    decoder, optimizer, features, captions = _step_setup(opt="adam", lr=0.01)
    fn(decoder, optimizer, features, captions, 0, 5.0)
    if not any(len(state) for state in optimizer.state.values()):
        return ("the optimizer you were given never stepped: a new one made inside the step (or one over another "
                "model's parameters) forgets Adam's running averages every step. Use `optimizer`")
    return None


def check_train_step(fn=MISSING):
    cases = [_step_setup(dropout=0.3) + (0, 5.0), _step_setup(seed=3, lr=0.5) + (0, 0.01)]
    errors = {AttributeError: lambda e, args: ("loss.item() is a float: it has no gradient. Call loss.backward() on the "
                                               "tensor, and return loss.item() at the end") if "backward" in str(e) else None,
              RuntimeError: lambda e, args: ("there are no gradients to clip: optimizer.zero_grad() after loss.backward() "
                                             "erased them. The order is zero_grad, backward, clip, step")
              if "nested_tensorlist" in str(e) else None}
    return checked("train_step", fn, train_step, cases, effects=_effects, probes=[_train_step_parts], errors=errors,
                   properties=[_train_step_parts],
                   rtol=1e-4, atol=1e-6, recipe=_RECIPES["train_step"])
