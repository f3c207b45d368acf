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
            h: (B*G, H) the decoder's previous hidden state: G >= 1 queries per image, adjacent rows
               (G = 1 in training; in beam search the K beams of an image share its regions, which are
               then stored and read once instead of K times).
        Returns:
            context: (B*G, E) z_t, a convex combination of the regions.
            alpha: (B*G, P) attention weights, summing to 1 over regions.
        """
        B, P, E = features.shape
        query = self.hidden_proj(h).view(B, -1, 1, projected.shape[2])                      # (B, G, 1, A)
        e = self.score(torch.tanh(projected.unsqueeze(1) + query)).view(-1, P)              # (B*G, P)  eq. 4
        alpha = torch.softmax(e, dim=1)                                                     # (B*G, P)  eq. 5
        context = torch.bmm(alpha.view(B, -1, P), features).view(-1, E)                     # (B*G, E)  eq. 6
        return context, alpha
