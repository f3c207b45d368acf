"""The decoders: Show and Tell (Vinyals et al., 2015) and Show, Attend and Tell (Xu et al., 2015).

Lessons 03 (Show and Tell, teacher forcing) and 04 (attention) build this module. Both model

    p(y_1..y_T | I) = Π_t p(y_t | y_<t, I)

with an LSTM that reads the previous word and writes a distribution over the next one. Both have
the same step interface, which training, greedy decoding and beam search share:

    state = decoder.init_state(features)                 # (h, c), each (B, H)
    memo = decoder.prepare(features)                     # per-batch work, done once
    logits, state, alpha = decoder.step(words, state, features, memo)

Shapes: B batch, T time, V vocab, P regions, E encoder dim, M embed dim, H hidden dim, A attention dim.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SoftAttention
from .fused import SearchStep, attend_lstm_unroll
from .lstm import LSTMCell

__all__ = ["DecoderConfig", "ShowTellDecoder", "ShowAttendTellDecoder", "build_decoder", "scheduled_input", "sequence_loss",
           "attention_penalty"]


@dataclass
class DecoderConfig:
    vocab_size: int                 # V
    encoder_dim: int = 1280         # E (EfficientNet-Lite0)
    embed_dim: int = 256            # M
    hidden_dim: int = 512           # H
    attention_dim: int = 256        # A
    dropout: float = 0.5            # on h before the output layer
    attention: bool = True          # Show-Attend-Tell; False: Show and Tell
    image_as: str = "state"         # Show and Tell only: image vector -> h0/c0 ("state") or first input ("input")
    cell: str = "torch"             # "torch": nn.LSTMCell (fused kernels); "captionlib": lstm.LSTMCell (same weights)


def _cell(config: DecoderConfig, input_size: int) -> nn.Module:
    if config.cell == "torch":
        return nn.LSTMCell(input_size, config.hidden_dim)
    if config.cell == "captionlib":
        return LSTMCell(input_size, config.hidden_dim)
    raise ValueError(f"cell must be 'torch' or 'captionlib', got {config.cell!r}")


class _Decoder(nn.Module):
    """What both decoders share: embedding, output layer, and the teacher-forced unroll."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)   # (V, M)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden_dim, config.vocab_size)            # H -> V

    def forward(self, features: torch.Tensor, captions: torch.Tensor, sample_prob: float = 0.0,
                generator: torch.Generator | None = None, next_input=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: the input at step t is the true word y_{t-1} (captions shifted by one).

        Args:
            features: (B, P, E) region features.
            captions: (B, T) padded, <start> ... <end> <pad>...
            sample_prob: scheduled sampling (lesson 05): the chance that a step's input is the
                model's own sample from step t-1 instead of the true word.
            next_input: the function that picks a step's input embedding (default `scheduled_input`
                when sample_prob > 0; lesson 05 plugs the learner's in). It gets the logits of the
                steps so far, detached.
        Returns:
            logits: (B, T-1, V) predicting captions[:, 1:].
            alphas: (B, T-1, P) attention weights (None for Show and Tell).
        """
        choose = next_input or (scheduled_input if sample_prob > 0 else None)
        state, memo = self.init_state(features), self.prepare(features)
        x = self.embedding(captions[:, 0])                                 # (B, M) <start>
        logits, alphas, seen = [], [], None
        for t in range(captions.shape[1] - 1):
            if t > 0:
                x = self.embedding(captions[:, t]) if choose is None else \
                    choose(self.embedding, captions, seen[:, :t], t, sample_prob, generator)
            out, state, alpha = self.step_embedded(x, state, features, memo)
            logits.append(out)
            alphas.append(alpha)
            if choose is not None:   # the steps so far, for the choice; a view, so no O(T^2) re-stacking
                seen = out.new_empty(out.shape[0], captions.shape[1] - 1, out.shape[1]) if seen is None else seen
                seen[:, t] = out.detach()                                  # no gradient through the choice
        logits = torch.stack(logits, dim=1)                                # (B, T-1, V)
        return logits, (torch.stack(alphas, dim=1) if alphas[0] is not None else None)  # (B, T-1, P)

    def loss(self, features: torch.Tensor, captions: torch.Tensor, alpha_c: float = 0.0, pad_idx: int = 0,
             sample_prob: float = 0.0, generator: torch.Generator | None = None, parts: bool = False):
        """The training loss: `sequence_loss` of `forward`'s predictions. features (B, P, E), captions (B, T).
        parts=True: (the mean over real tokens, the penalty's mean over captions) apart, for distributed.py."""
        logits, alphas = self(features, captions, sample_prob=sample_prob, generator=generator)
        return sequence_loss(logits, captions, alphas, alpha_c, pad_idx, parts)

    def step(self, words: torch.Tensor, state, features: torch.Tensor, memo):
        """words (B,) -> logits (B, V), new (h, c), alpha (B, P) or None."""
        return self.step_embedded(self.embedding(words), state, features, memo)


def scheduled_input(embedding: nn.Embedding, captions: torch.Tensor, logits: torch.Tensor, t: int,
                    sample_prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The input of decoding step t >= 1 under scheduled sampling (Bengio et al., 2015; lesson 05).

    Each caption flips a coin: with probability `sample_prob` its input is the model's own word,
    sampled from step t-1's prediction, otherwise the true word captions[:, t]. No gradient flows
    through the choice (the sample is an index; the paper does not backpropagate through it).

    Args:
        captions: (B, T) true words; logits: (B, t, V) outputs of steps 0..t-1 (step s predicts captions[:, s+1]).
        generator: coins first (torch.rand(B)), then the samples (torch.multinomial), both from it.
    Returns:
        (B, M) the embedded input words.
    """
    words = captions[:, t]                                                 # (B,) teacher forcing
    if sample_prob > 0:
        coin = torch.rand(words.shape, device=words.device, generator=generator) < sample_prob
        probs = F.softmax(logits[:, t - 1].detach().float(), dim=-1)      # (B, V) step t-1 predicted word t
        own = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        words = torch.where(coin, own, words)
    return embedding(words)


class ShowTellDecoder(_Decoder):
    """The image's pooled vector conditions the LSTM once, at the start; no attention."""

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        H, E, M = config.hidden_dim, config.encoder_dim, config.embed_dim
        if config.image_as == "state":
            self.init_h, self.init_c = nn.Linear(E, H), nn.Linear(E, H)
        elif config.image_as == "input":
            self.image_embed = nn.Linear(E, M)  # the image as word "-1", in the embedding space
        else:
            raise ValueError(f"image_as must be 'state' or 'input', got {config.image_as!r}")
        self.cell = _cell(config, M)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = features.mean(dim=1)                                           # (B, E) pooled image vector
        if self.config.image_as == "state":
            return torch.tanh(self.init_h(v)), torch.tanh(self.init_c(v))  # (B, H) each
        zeros = v.new_zeros(v.shape[0], self.config.hidden_dim)
        return self.cell(self.image_embed(v), (zeros, zeros))             # x_{-1} = W_I v (Vinyals eq. 10)

    def prepare(self, features: torch.Tensor) -> None:
        return None

    def step_embedded(self, x, state, features, memo):
        """x (B, M) embedded word -> logits (B, V), new (h, c), alpha None."""
        h, c = self.cell(x, state)                                         # (B, H)
        return self.fc(self.dropout(h)), (h, c), None


class ShowAttendTellDecoder(_Decoder):
    """At every step, attend over the P regions with the previous h, and feed the gated context in."""

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        H, E, M, A = config.hidden_dim, config.encoder_dim, config.embed_dim, config.attention_dim
        self.attention = SoftAttention(E, H, A)
        self.init_h, self.init_c = nn.Linear(E, H), nn.Linear(E, H)        # from the mean annotation (Xu sec. 3.1.2)
        self.f_beta = nn.Linear(H, E)                                      # gating scalar β (Xu sec. 4.2.1), per channel
        self.cell = _cell(config, M + E)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = features.mean(dim=1)                                        # (B, E)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        return self.attention.project(features)                           # (B, P, A), once per batch

    def for_search(self):
        """What the searches in beam.py decode with: a `fused.SearchStep`, the same numbers as `step`, faster.
        Made per search (it reads the weights once); the lesson's own LSTM cell keeps the readable `step`."""
        return SearchStep(self) if self.config.cell == "torch" else self

    def _fast_path_applies(self, sample_prob: float, next_input) -> bool:
        return sample_prob == 0 and next_input is None and self.config.cell == "torch"

    def forward(self, features, captions, sample_prob: float = 0.0, generator=None, next_input=None):
        """Teacher forcing; the fast path below when it applies (the same numbers: tests/test_decoder.py,
        tests/test_fused.py)."""
        if not self._fast_path_applies(sample_prob, next_input):
            return super().forward(features, captions, sample_prob, generator, next_input)
        return self.fast_forward(features, captions)

    def loss(self, features, captions, alpha_c: float = 0.0, pad_idx: int = 0, sample_prob: float = 0.0, generator=None,
             parts: bool = False):
        """`sequence_loss` of `forward`; on the fast path computed on the real steps only, never padded."""
        if not self._fast_path_applies(sample_prob, None):
            return super().loss(features, captions, alpha_c, pad_idx, sample_prob, generator, parts)
        logits, alphas, caption, t = self._packed_unroll(features, captions, pad_idx)
        loss = F.cross_entropy(logits, captions[caption, t + 1])          # mean over the N real target words
        penalty = loss.new_zeros(())
        if alpha_c > 0:
            coverage = alphas.new_zeros(captions.shape[0], alphas.shape[1]).index_add(0, caption, alphas)   # (B, P)
            penalty = attention_penalty(coverage, alpha_c)
        return (loss, penalty) if parts else loss + penalty

    def fast_forward(self, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward`'s teacher-forced unroll, reorganised for speed (see `_packed_unroll` and benchmarks/).

        Real (non-<pad>) positions get the same logits and alphas as the step-by-step loop; positions
        past a caption's end get logits 0 and attention 0, which the masked loss ignores.
        Returns logits (B, T-1, V) and alphas (B, T-1, P).
        """
        B, T = captions.shape
        logits, alphas, caption, t = self._packed_unroll(features, captions, pad_idx)
        where = caption * (T - 1) + t                                      # (N,) position in (B, T-1)
        logits = logits.new_zeros(B * (T - 1), logits.shape[1]).index_copy(0, where, logits)
        alphas = alphas.new_zeros(B * (T - 1), alphas.shape[1]).index_copy(0, where, alphas)
        return logits.view(B, T - 1, -1), alphas.view(B, T - 1, -1)

    def _packed_unroll(self, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = 0):
        """The teacher-forced unroll on the real decoding steps only, packed as N rows:

        * captions sorted by length, and each step computes only the captions still running;
        * everything computed from h at a step (W_h h for attention, f_β(h), W_hh h) is one matmul;
        * the word half of the LSTM input projection, the output layer, and every weight gradient
          run once on all N rows;
        * the recurrence has a hand-written backward (`fused.attend_lstm_unroll`).
        Returns logits (N, V), alphas (N, P), and for each row its caption (N,) and step t (N,):
        row n predicts captions[caption[n], t[n] + 1].
        """
        cell, T = self.cell, captions.shape[1]
        steps = (captions != pad_idx).sum(dim=1) - 1                       # (B,) decoding steps per caption
        order = steps.argsort(descending=True)
        real = torch.arange(T - 1, device=steps.device) < steps[order].unsqueeze(1)   # (B, T-1) sorted
        running = [b for b in real.sum(dim=0).tolist() if b > 0]           # b_t: captions still going at step t
        features = features[order]
        t, j = real.t().nonzero(as_tuple=True)                             # (N,) step-major: step t's rows are captions 0..b_t-1
        caption = order[j]
        h, c = self.init_state(features)
        hs, alphas = attend_lstm_unroll(self.embedding(captions[caption, t]), self.prepare(features), features, h, c,
                                        self.attention.hidden_proj.weight, self.f_beta.weight, self.f_beta.bias,
                                        cell.weight_hh, self.attention.score.weight.view(-1), cell.weight_ih,
                                        cell.bias_ih + cell.bias_hh, running)
        return self.fc(self.dropout(hs)), alphas, caption, t               # (N, V), (N, P), (N,), (N,)

    def step_embedded(self, x, state, features, memo):
        """x (B, M) embedded word -> logits (B, V), new (h, c), alpha (B, P)."""
        h, c = state
        context, alpha = self.attention(features, memo, h)                 # (B, E), (B, P)
        beta = torch.sigmoid(self.f_beta(h))                               # (B, E) how much to look
        x = torch.cat([x, beta * context], dim=1)                          # (B, M + E)
        h, c = self.cell(x, (h, c))                                        # (B, H)
        return self.fc(self.dropout(h)), (h, c), alpha


def build_decoder(config: DecoderConfig) -> _Decoder:
    return ShowAttendTellDecoder(config) if config.attention else ShowTellDecoder(config)


def sequence_loss(logits: torch.Tensor, captions: torch.Tensor, alphas: torch.Tensor | None = None,
                  alpha_c: float = 0.0, pad_idx: int = 0, parts: bool = False):
    """Masked cross-entropy of the teacher-forced predictions, plus the doubly stochastic penalty.

    Args:
        logits: (B, T-1, V) from the decoder; captions: (B, T), targets are captions[:, 1:].
        alphas: (B, T-1, P) attention weights; alpha_c: λ of λ Σ_p (1 - Σ_t α_tp)^2 (Xu eq. 14).
        parts: return the two terms apart (distributed training weighs them by different counts).
    Returns:
        a scalar: mean negative log-likelihood per real (non-<pad>) target token (+ penalty);
        with parts=True, (that mean, the penalty averaged over captions).
    """
    targets = captions[:, 1:]                                              # (B, T-1), shifted by one
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_idx)
    penalty = loss.new_zeros(())
    if alphas is not None and alpha_c > 0:
        mask = (targets != pad_idx).unsqueeze(2).to(alphas.dtype)          # (B, T-1, 1): no attention on padding
        coverage = (alphas * mask).sum(dim=1)                              # (B, P) total attention per region
        penalty = attention_penalty(coverage, alpha_c)
    return (loss, penalty) if parts else loss + penalty


def attention_penalty(coverage: torch.Tensor, alpha_c: float) -> torch.Tensor:
    """λ Σ_p (1 - Σ_t α_tp)^2, averaged over captions (Xu eq. 14). coverage: (B, P), Σ_t α_tp per caption."""
    return alpha_c * ((1.0 - coverage) ** 2).sum(dim=1).mean()
