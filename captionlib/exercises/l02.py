"""Lesson 02 exercises: one LSTM step from the equations, and unrolling it over a sequence.

Shapes: B batch, T time, M input dim, H hidden dim. Gate order (i, f, g, o), as torch.nn.LSTMCell.
"""
from __future__ import annotations

import re

import torch

from ..checks import MISSING, Mistake, Part, checked
from ..lstm import lstm_step, lstm_unroll

__all__ = ["PARTS", "lstm_step", "lstm_unroll", "check_lstm_step", "check_lstm_unroll"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "lstm_step": [Part("the hidden state h", 1, r"\bh (is|has|must)|h = o|\(c, h\)"),
                  Part("the cell update c", 1, r"\bc must|c = f|c_prev|scale the wrong terms"),
                  Part("the gates", 2, r"gate|candidate|bias|transpose the weights|chunk")],
    "lstm_unroll": [Part("the state carried across steps", 2, r"carried|detached|backpropagation"),
                    Part("the steps in order, one per input", 1, r"backwards|steps for T|over the batch|per step"),
                    Part("collecting h", 1, r"hs (collects|is shifted|is a Python)|collect h|stack"),
                    Part("the final state", 1, r"final state")],
}


STEP_AXES = {"x": "BM", "h": "BH", "c": "BH", "weight_ih": ("4H", "M"), "weight_hh": ("4H", "H"), "bias_ih": ("4H",),
             "bias_hh": ("4H",)}


def _step_cases():
    g = torch.Generator().manual_seed(0)
    out = []
    for B, M, H in ((2, 3, 4), (3, 5, 2)):
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
        out.append((r(B, M), r(B, H), r(B, H), r(4 * H, M), r(4 * H, H), r(4 * H), r(4 * H)))
    return out


def _gates(x, h, W_ih, W_hh, b_ih, b_hh):
    return (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)


def _ifog(x, h, c, W_ih, W_hh, b_ih, b_hh):          # gates read as (i, f, o, g)
    i, f, o, g = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _g_sigmoid(x, h, c, W_ih, W_hh, b_ih, b_hh):     # σ on the candidate instead of tanh
    i, f, g, o = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.sigmoid(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _no_forget(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c = c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _h_from_c_prev(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c_new



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "lstm_step": {
        0: ("the recipe: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, split as (i, f, g, o); c = σ(f) c_prev + σ(i) "
            "tanh(g); h = σ(o) tanh(c)"),
        1: "the recipe: c = σ(f) ⊙ c_prev + σ(i) ⊙ tanh(g), with the gates split as (i, f, g, o)",
    },
}

def check_lstm_step(fn=MISSING):
    mistakes = [
        Mistake("the gates are in the wrong order: torch.nn.LSTMCell stacks them as (i, f, g, o), not (i, f, o, g)", _ifog),
        Mistake("the candidate g uses sigmoid: it must be tanh (it is a new value in [-1, 1], not a gate)", _g_sigmoid),
        Mistake("the forget gate is not applied to c_prev: c = f * c_prev + i * g", _no_forget),
        Mistake("h is computed from c_prev: use the new cell state, h = o * tanh(c)", _h_from_c_prev),
    ]

    def swapped_outputs(fn):
        args = _step_cases()[0]
        got, ref = fn(*args), lstm_step(*args)
        if isinstance(got, tuple) and len(got) == 2 and torch.allclose(got[0], ref[1]) and torch.allclose(got[1], ref[0]):
            return "return (h, c) in that order: you returned (c, h)"
        return None

    shapes = {RuntimeError: lambda e, args: ("x is (B, M) and W_ih is (4H, M): the gates are x @ W_ih.T + b_ih + "
                                             "h @ W_hh.T + b_hh (transpose the weights)") if "mat1 and mat2" in str(e) else None}
    return checked("lstm_step", fn, lstm_step, _step_cases(), mistakes=mistakes, atol=1e-8, errors=shapes,
                   axes=("BH", "BH"), arg_axes=STEP_AXES,
                   probes=[swapped_outputs, _one_gate_at_a_time],
                   recipe=_RECIPES["lstm_step"])


def _one_gate_at_a_time(fn) -> str | None:
    """Zero weights, so each gate is its bias: saturate all gates but one open (+50) or shut (-50), and the
    learner's (h, c) shows whether that one part (c's update, the candidate's tanh, h's tanh, h's use of the
    new c) is right. Names every part that is wrong."""
    B, M, H = 2, 3, 2
    x, h0 = torch.ones(B, M, dtype=torch.float64), torch.ones(B, H, dtype=torch.float64)
    c0 = torch.tensor([[0.7, -1.2], [2.0, 0.3]], dtype=torch.float64)

    def run(i, f, g, o, bias_in="b_ih"):
        b, zero = torch.tensor([i, f, g, o], dtype=torch.float64).repeat_interleave(H), torch.zeros(4 * H, dtype=torch.float64)
        out = fn(x, h0, c0, torch.zeros(4 * H, M, dtype=torch.float64), torch.zeros(4 * H, H, dtype=torch.float64),
                 *((b, zero) if bias_in == "b_ih" else (zero, b)))
        return out if isinstance(out, tuple) and len(out) == 2 else (None, None)

    close = lambda a, b: a is not None and a.shape == b.shape and torch.allclose(a, b, atol=1e-6)  # noqa: E731
    said = []
    h, c = run(-50, 50, 0, 50)                                   # input gate shut, forget gate open: c = c_prev
    if not close(c, c0):
        said.append("with the input gate shut and the forget gate open, c must equal c_prev: c = f ⊙ c_prev + i ⊙ g")
    h, c = run(50, -50, 0.5, 50)                                 # forget shut, input open: c = tanh(0.5) everywhere
    cand = torch.full_like(c0, 0.5)
    if not close(c, cand.tanh()):
        if close(c, cand.sigmoid()):
            said.append("the candidate g uses sigmoid: it must be tanh (a new value in [-1, 1], not a gate)")
        elif close(c, cand):
            said.append("the candidate g must be tanh(W_ig x + W_hg h + b_g); yours passes 0.5 through unchanged (no tanh, or relu)")
        elif close(c, c0 + cand.tanh()):
            said.append("the forget gate is not applied to c_prev: c = f ⊙ c_prev + i ⊙ g")
        elif close(c, c0):
            said.append("the gates scale the wrong terms: c = f ⊙ c_prev + i ⊙ g (the input gate i scales the "
                        "candidate, the forget gate f the old cell)")
        elif not said:
            said.append("with the forget gate shut and the input gate open, c must equal the candidate tanh(g)")
    if h is not None and c is not None and close(h, c0.tanh()) and not close(c, c0):
        said.append("h is computed from c_prev: use the new cell state, h = o ⊙ tanh(c)")
    elif close(c, cand.tanh()) and not close(h, c.tanh()):
        said.append("with the output gate open, h must equal tanh(c)")
    h, c = run(-50, 50, 0, 0.5)                                  # c = c_prev; o = σ(0.5): h = σ(0.5) tanh(c_prev)
    o = torch.sigmoid(torch.tensor(0.5, dtype=torch.float64))
    if close(c, c0) and not close(h, o * c0.tanh()):
        precise = [d for d in said if d.startswith("with the output gate open")]
        said = [d for d in said if d not in precise]                # the half-open gate says more precisely what
        if close(h, o * c0):
            said.append("h has no tanh: h = o ⊙ tanh(c)")
        elif close(h, torch.tanh(torch.tensor(0.5, dtype=torch.float64)) * c0.tanh()):
            said.append("the output gate o uses tanh: gates use sigmoid")
        else:
            said.append("with the output gate half open, h must be σ(o) ⊙ tanh(c)")
    one, other = run(-50, 50, 0, 0.5), run(-50, 50, 0, 0.5, bias_in="b_hh")
    if None not in one + other and not (close(one[0], other[0]) and close(one[1], other[1])):
        said.append("a bias is missing: the gates are W_ih x + b_ih + W_hh h + b_hh, both biases added")
    return "; ".join(said) or None


class _Cell:
    """A fixed random LSTM cell, callable as cell(x, (h, c))."""

    def __init__(self, M, H, seed):
        g = torch.Generator().manual_seed(seed)
        self.p = [torch.randn(4 * H, M, generator=g, dtype=torch.float64), torch.randn(4 * H, H, generator=g, dtype=torch.float64),
                  torch.randn(4 * H, generator=g, dtype=torch.float64), torch.randn(4 * H, generator=g, dtype=torch.float64)]

    def __call__(self, x, state):
        return lstm_step(x, *state, *self.p)


def _unroll_no_carry(xs, h, c, cell):
    hs = [cell(xs[:, t], (h, c))[0] for t in range(xs.shape[1])]
    return torch.stack(hs, 1), cell(xs[:, -1], (h, c))


def _unroll_time_major(xs, h, c, cell):
    hs, (h, c) = lstm_unroll(xs, h, c, cell)
    return hs.transpose(0, 1), (h, c)


class _Counting:
    """A cell whose state shows how it was called: h + x (x is t + 1 at step t) and c + 1."""

    def __call__(self, x, state):
        h, c = state
        return h + x[:, :1], c + 1


def _unroll_parts(fn) -> str | None:
    """Unroll the counting cell over T = 3 steps from h = 0, c = 10: hs must be 1, 3, 6 (each step adds t + 1 to
    the h the previous step returned) and the final state (6, 13). Each wrong part shows as its own pattern."""
    B, T, H = 2, 3, 2
    xs = torch.arange(1.0, T + 1).view(1, T, 1).expand(B, T, H).clone()
    h0, c0 = torch.zeros(B, H), torch.full((B, H), 10.0)
    hs, final = fn(xs, h0, c0, _Counting())
    if isinstance(hs, (list, tuple)):
        return "hs is a Python list: stack it into one (B, T, H) tensor with torch.stack(hs, dim=1)"
    want = torch.tensor([1.0, 3.0, 6.0]).view(1, T, 1).expand(B, T, H)
    said = []
    if hs.dim() == 3 and hs.shape[0] == B and hs.shape[1] != T:
        said.append(f"hs has {hs.shape[1]} steps for T = {T} inputs: call the cell once per step, "
                    "for t in range(xs.shape[1]), on xs[:, t]")
    if hs.shape == (B, T, H) and not torch.allclose(hs, want):
        if torch.allclose(hs, torch.tensor([11.0, 12.0, 13.0]).view(1, T, 1).expand(B, T, H)):
            said.append("hs collects the cell states c: collect h, the first item the cell returns")
        elif torch.allclose(hs, torch.tensor([3.0, 5.0, 6.0]).view(1, T, 1).expand(B, T, H)):
            said.append("the steps run backwards: step t reads xs[:, t] for t = 0, 1, ..., T-1 in that order")
        elif torch.allclose(hs, torch.tensor([0.0, 1.0, 3.0]).view(1, T, 1).expand(B, T, H)):
            said.append("hs is shifted by one: it holds the state before each step; append h after calling the cell")
    if isinstance(final, (tuple, list)) and len(final) == 2 and torch.is_tensor(final[1]):
        if torch.allclose(final[1], c0):
            said.append("the final state returned is the initial one: return the (h, c) of the last step")
    return "; ".join(said) or None


def check_lstm_unroll(fn=MISSING):
    g = torch.Generator().manual_seed(1)
    cases = []
    for B, T, M, H in ((2, 5, 3, 4), (3, 3, 2, 2)):
        cases.append((torch.randn(B, T, M, generator=g, dtype=torch.float64), torch.randn(B, H, generator=g, dtype=torch.float64),
                      torch.randn(B, H, generator=g, dtype=torch.float64), _Cell(M, H, seed=T)))
    mistakes = [
        Mistake("the hidden state is not carried across steps: each step must start from the (h, c) the previous step returned", _unroll_no_carry),
        Mistake("hs is time-major (T, B, H): stack along dim=1 to get (B, T, H)", _unroll_time_major),
    ]
    def over_batch(e, args) -> str | None:
        sizes = {int(n) for n in re.findall(r"\((\d+)\)", str(e))}
        B, T = args[0].shape[:2]
        if "must match" in str(e) and sizes == {B, T}:
            return ("the loop runs over the batch, not over time: `for x in xs` walks the first axis (B). Step t reads "
                    "xs[:, t], for t in range(xs.shape[1])")
        return None

    recipe = {0: "the recipe: for t in range(T): h, c = cell(xs[:, t], (h, c)); keep every h; then "
                 "torch.stack(hs, dim=1) gives (B, T, H)", 1: "the recipe: return the (h, c) of the last step"}
    return checked("lstm_unroll", fn, lstm_unroll, cases, mistakes=mistakes, atol=1e-8, probes=[_unroll_parts],
                   axes=("BTH", ("BH", "BH")), arg_axes={"xs": "BTM", "h": "BH", "c": "BH"},
                   properties=[_gradient_through_time], errors={RuntimeError: over_batch}, recipe=recipe)


def _gradient_through_time(fn) -> str | None:
    """Training backpropagates through the unroll: the last h must depend, with gradient, on the first input and
    on the initial state. A .detach() (or no_grad) on the state cuts that path while the values stay right."""
    g = torch.Generator().manual_seed(5)
    xs, h0, c0 = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((2, 4, 3), (2, 2), (2, 2)))
    hs, _ = fn(xs, h0, c0, _Cell(3, 2, seed=4))
    if not torch.is_tensor(hs) or not hs.requires_grad:
        return ("no gradient flows out of hs: the unroll runs under torch.no_grad() or detaches h; training "
                "backpropagates through every step, so keep the graph")
    first_input, start = (torch.autograd.grad(hs[:, -1].sum(), t, allow_unused=True, retain_graph=True)[0] for t in (xs, h0))
    if first_input is None or not bool(first_input[:, 0].abs().sum() > 0) or start is None:
        return ("the last h gets no gradient from the first input or the initial state: the state carried between "
                "steps is detached (.detach() / .data / no_grad). Values agree, but backpropagation through time stops "
                "at one step: carry h and c as the cell returns them")
    return None
