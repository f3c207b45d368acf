"""The LSTM, written from its equations (Hochreiter & Schmidhuber, 1997; the form of Zaremba et al., 2014).

Lesson 02 builds it. One step, with x_t (B, M) the input and (h, c) the state (B, H):

    i = σ(W_ii x + b_ii + W_hi h + b_hi)     input gate       (eq. 1)
    f = σ(W_if x + b_if + W_hf h + b_hf)     forget gate      (eq. 2)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)  candidate cell   (eq. 3)
    o = σ(W_io x + b_io + W_ho h + b_ho)     output gate      (eq. 4)
    c' = f ⊙ c + i ⊙ g                                        (eq. 5)
    h' = o ⊙ tanh(c')                                          (eq. 6)

The four gates' weights are stacked in the order (i, f, g, o), exactly as torch.nn.LSTMCell stores
them, so weights copy either way and tests compare the two.

Shapes: B batch, T time, M input dim, H hidden dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["lstm_step", "lstm_unroll", "LSTMCell"]


def lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
              bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step.

    Args:
        x: (B, M) input; h, c: (B, H) previous state.
        weight_ih: (4H, M); weight_hh: (4H, H); bias_ih, bias_hh: (4H,). Gate order i, f, g, o.
    Returns:
        h, c: (B, H) the new state.
    """
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh    # (B, 4H): all four pre-activations at once
    i, f, g, o = gates.chunk(4, dim=1)                               # 4 x (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)  # eqs. 1-4
    c = f * c + i * g                                                # eq. 5
    h = o * torch.tanh(c)                                            # eq. 6
    return h, c


class LSTMCell(nn.Module):
    """nn.LSTMCell's interface and parameter names, computed by `lstm_step`."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # torch's default initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x: (B, M); state: (h, c) each (B, H), zeros when None. Returns (h, c)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return lstm_step(x, *state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


def lstm_unroll(xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, cell: nn.Module) -> tuple[torch.Tensor, tuple]:
    """Run a cell over a sequence, carrying the state from each step to the next.

    Args:
        xs: (B, T, M) inputs; h, c: (B, H) initial state; cell: maps (x, (h, c)) -> (h, c).
    Returns:
        hs: (B, T, H) the hidden state after every step; (h, c): the final state.
    """
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)  # (B, T, H)
