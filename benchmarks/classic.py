"""Baselines for comparison only: the classic Show-Attend-Tell training loop, per-image beam search, and
feature extraction with decoding in the main process.

The first two follow the widely copied tutorial implementation (the course's "seeds") and reuse the weights
of a captionlib ShowAttendTellDecoder, so they compute the same loss and the same captions.

* Training: sort the batch by caption length, shrink the batch at each step to the captions still
  running, recompute the encoder's attention projection at every step, apply the output layer per step.
* Captioning: one image at a time; its features expanded to the k live beams; the attention module
  called as a whole at every step, so the projection of the regions is recomputed every step; a
  finished beam leaves the batch. Its search rule is captionlib's (`captionlib.beam`): a finished
  hypothesis keeps its score and its place among the k best until k live ones beat it, and the
  search stops once the best finished hypothesis beats every live one. (The tutorial instead
  shrinks k for good when a beam finishes; that rule can pick other captions, so equality could
  not be checked.)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from captionlib.beam import END, PAD, START, beam_search


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
    """captionlib's own beam search called one image at a time: isolates what batching images gains."""
    return [beam_search(dec, features[i:i + 1], beam_size, max_len)[0] for i in range(features.shape[0])]


@torch.no_grad()
def classic_beam(dec, features: torch.Tensor, beam_size: int, max_len: int) -> list[list[int]]:
    """The tutorial's caption script over every image, one at a time. features (B, P, E) -> tokens per image."""
    return [_classic_one(dec, features[i], beam_size, max_len) for i in range(features.shape[0])]


def _classic_one(dec, regions: torch.Tensor, k: int, max_len: int) -> list[int]:
    P, E = regions.shape
    h, c = dec.init_state(regions.unsqueeze(0))                            # (1, H)
    live_seqs, live_alphas = [[]], [[]]                                    # the live beams' words and attention maps
    live_scores = regions.new_zeros(1)
    words = torch.full((1,), START, dtype=torch.long, device=regions.device)
    finished: list[tuple[float, list, list]] = []                          # (score, words, alphas), frozen
    for _ in range(max_len):
        n = len(live_seqs)
        encoder_out = regions.unsqueeze(0).expand(n, P, E)                 # (n, P, E)
        att1 = dec.attention.encoder_proj(encoder_out)                     # recomputed every step
        att2 = dec.attention.hidden_proj(h)
        alpha = torch.softmax(dec.attention.score(torch.tanh(att1 + att2.unsqueeze(1))).squeeze(2), dim=1)
        context = (encoder_out * alpha.unsqueeze(2)).sum(dim=1)            # (n, E)
        gate = torch.sigmoid(dec.f_beta(h))
        h, c = dec.cell(torch.cat([dec.embedding(words), gate * context], dim=1), (h, c))
        logp = torch.log_softmax(dec.fc(h), dim=1)                         # (n, V)
        logp[:, PAD] = logp[:, START] = float("-inf")
        V = logp.shape[1]
        # the k best of: every live beam's continuations, and the finished hypotheses as they are
        candidates = torch.cat([(live_scores.unsqueeze(1) + logp).view(-1),
                                regions.new_tensor([s for s, _, _ in finished])])
        top, idx = candidates.topk(min(k, candidates.numel()))
        keep_finished, rows, new_words, new_scores = [], [], [], []
        for score, i in zip(top.tolist(), idx.tolist()):
            if score == float("-inf"):
                continue
            if i >= n * V:
                keep_finished.append(finished[i - n * V])
                continue
            beam, word = divmod(i, V)
            if word == END:
                keep_finished.append((score, live_seqs[beam] + [word], live_alphas[beam] + [alpha[beam]]))
            else:
                rows.append(beam)
                new_words.append(word)
                new_scores.append(score)
        finished = keep_finished
        live_seqs = [live_seqs[b] + [w] for b, w in zip(rows, new_words)]
        live_alphas = [live_alphas[b] + [alpha[b]] for b in rows]
        if not live_seqs or max([s for s, _, _ in finished], default=float("-inf")) > max(new_scores):
            break                                                          # live scores can only fall
        rows_t = torch.tensor(rows, device=regions.device)
        h, c, words, live_scores = h[rows_t], c[rows_t], rows_t.new_tensor(new_words), regions.new_tensor(new_scores)
    hyps = finished + list(zip(new_scores, live_seqs, live_alphas))
    return max(hyps, key=lambda x: x[0])[1]


def naive_extract(encoder, images, folder, batch_size: int = 4) -> np.ndarray:
    """Feature extraction as captionlib did it before the DataLoader (and as most tutorials do): each batch
    decoded and resized in the main process, then the CNN, then the rows flushed and the progress files
    written atomically after every batch. Returns the (N, P, E) float16 features."""
    import json
    from pathlib import Path

    from captionlib.utils import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        probe, _ = encoder(encoder.preprocess(images[0]))
        out = np.memmap(folder / "features.f16", np.float16, "w+", shape=(len(images), *probe.shape[1:]))
        done = np.zeros(len(images), dtype=bool)
        for start in range(0, len(images), batch_size):
            idx = list(range(start, min(start + batch_size, len(images))))
            x = encoder.preprocess([images[i] for i in idx]).contiguous(memory_format=torch.channels_last)
            feats, _ = encoder(x)
            out[idx] = feats.float().numpy().astype(np.float16)
            out.flush()
            done[idx] = True
            atomic_write(folder / "done.npy", lambda f: np.save(f, done))
            atomic_write(folder / "bad.json", lambda f: f.write(json.dumps({}).encode()))
    return np.array(out)
