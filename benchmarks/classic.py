"""Baselines for comparison only: the classic Show-Attend-Tell training loop and per-image beam search.

The training loop follows the widely copied tutorial implementation (the course's "seeds"): sort
the batch by caption length, shrink the batch at each step to the captions still running,
recompute the encoder's attention projection at every step, and apply the output layer per step.
It reuses the weights of a captionlib ShowAttendTellDecoder, so both compute the same loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from captionlib.beam import beam_search


def classic_loss(dec, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor, alpha_c: float) -> torch.Tensor:
    """The tutorial's forward pass and loss, on `dec`'s parameters. features (B, P, E), captions (B, T)."""
    lengths, order = lengths.sort(descending=True)
    features, captions = features[order], captions[order]
    B, P, _ = features.shape
    h = torch.tanh(dec.init_h(features.mean(1)))
    c = torch.tanh(dec.init_c(features.mean(1)))
    embeddings = dec.embedding(captions)                                   # (B, T, M)
    decode_lengths = (lengths - 1).tolist()
    T = max(decode_lengths)
    predictions = features.new_zeros(B, T, dec.fc.out_features)
    alphas = features.new_zeros(B, T, P)
    for t in range(T):
        bt = sum(l > t for l in decode_lengths)                            # captions still running
        att1 = dec.attention.encoder_proj(features[:bt])                   # recomputed every step
        att2 = dec.attention.hidden_proj(h[:bt])
        e = dec.attention.score(torch.tanh(att1 + att2.unsqueeze(1))).squeeze(2)
        alpha = torch.softmax(e, dim=1)
        context = (features[:bt] * alpha.unsqueeze(2)).sum(1)
        gate = torch.sigmoid(dec.f_beta(h[:bt]))
        h, c = dec.cell(torch.cat([embeddings[:bt, t], gate * context], 1), (h[:bt], c[:bt]))
        predictions[:bt, t] = dec.fc(dec.dropout(h))
        alphas[:bt, t] = alpha
    scores = pack_padded_sequence(predictions, decode_lengths, batch_first=True).data
    targets = pack_padded_sequence(captions[:, 1:], decode_lengths, batch_first=True).data
    loss = F.cross_entropy(scores, targets)
    return loss + alpha_c * ((1.0 - alphas.sum(1)) ** 2).sum(1).mean()


def per_image_beam(dec, features: torch.Tensor, beam_size: int, max_len: int) -> list:
    """The classic caption script: one image at a time (here with captionlib's beam step, so captions match)."""
    return [beam_search(dec, features[i:i + 1], beam_size, max_len)[0] for i in range(features.shape[0])]
