"""Soft (additive) attention over image regions: Show, Attend and Tell, section 4.2.

Lesson 04 builds it. At each step t the decoder's previous hidden state h scores every region
feature f_p, in the additive form of Bahdanau et al. (2015):

    e_tp = w · tanh(W_f f_p + W_h h + b)      (eq. 4 of Xu et al.; w in R^A)
    α_t  = softmax_p(e_t)                      (eq. 5: a distribution over the P regions)
    z_t  = Σ_p α_tp f_p                         (eq. 6, soft: the expected region vector)

W_f f_p does not depend on t, so `project` computes it once per batch and every step reuses it.

Shapes: B batch, P regions, E encoder dim, H hidden dim, A attention dim.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["SoftAttention"]


class SoftAttention(nn.Module):
    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, attention_dim)         # W_f (and b)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_h
        self.score = nn.Linear(attention_dim, 1, bias=False)             # w

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, P, E) -> W_f f_p + b: (B, P, A). Once per batch, not once per step."""
        return self.encoder_proj(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            features: (B, P, E) region vectors f_p.
            projected: (B, P, A) from `project(features)`.
            h: (B, H) the decoder's previous hidden state.
        Returns:
            context: (B, E) z_t, a convex combination of the regions.
            alpha: (B, P) attention weights, summing to 1 over regions.
        """
        e = self.score(torch.tanh(projected + self.hidden_proj(h).unsqueeze(1))).squeeze(2)  # (B, P)   eq. 4
        alpha = torch.softmax(e, dim=1)                                                       # (B, P)   eq. 5
        context = torch.bmm(alpha.unsqueeze(1), features).squeeze(1)                          # (B, E)   eq. 6
        return context, alpha
