"""Show-Attend-Tell's fast paths: the teacher-forced unroll with a hand-written backward (training), and
a decoding step for search without gradients (greedy, sampling, beam search).

Not a lesson of its own: both compute exactly what lessons 02-04 build (the LSTM of eqs. 1-6 in
`lstm.py`, the soft attention of Xu et al. eqs. 4-6 in `attention.py`, the gate β of sec. 4.2.1).
`ShowAttendTellDecoder.loss` and `.fast_forward` (decoder.py) call `attend_lstm_unroll`, and
`ShowAttendTellDecoder.for_search` gives the `beam.py` searches a `SearchStep`. tests/test_fused.py checks
both against the readable step-by-step code, and the unroll's gradients with `torch.autograd.gradcheck`
in float64.

Why a hand-written backward is faster than autograd here (benchmarks/RESULTS.md measures it):
* the weight gradients are summed over time in one large matmul each (dW = Σ_t g_tᵀ x_t = Gᵀ X over
  all steps' rows stacked), instead of one small matmul per step;
* the gradient of the projected regions accumulates in place, where autograd would zero-fill a
  (B, P, A) tensor for every step's slice;
* no graph: a few hundred small autograd nodes per batch are gone;
* nothing of size N x P x A is kept: the backward recomputes each step's attention activations in a
  reused buffer (fresh memory that large cost more in page faults than the recomputation);
* tanh through sigmoid (see `_squashed_scores`) and (b, 1, E) @ (b, E, P) products, the layouts
  torch's CPU kernels run fastest;
* few, large operations per step: each step's products from h accumulate in place into rows of one
  (N, A + E + 4H) buffer that starts as the biases plus the words' part of the gates, the LSTM's local
  derivatives are computed for all steps before the backward loop, and the constant factor 2w of the
  attention's gradient is applied once at the end, not at every step (fewer passes over (b, P, A)).

The rows are *packed*: the captions are sorted by length (longest first), step t works on the
first b_t = running[t] of them, and its rows sit at offset Σ_{s<t} b_s of an (N, ...) tensor,
N = Σ_t b_t, the number of real (non-<pad>) decoding steps.

Shapes: B batch (images), G queries per image (beams), N packed rows (steps of all captions), P regions,
E encoder dim, H hidden dim, A attention dim, M embedding dim, V vocabulary.
"""
from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

__all__ = ["attend_lstm_unroll", "SearchStep"]


def _offsets(running: list[int]) -> list[int]:
    """Where each step's rows start in the packed (N, ...) tensors."""
    out, n = [], 0
    for b in running:
        out.append(n)
        n += b
    return out


def _squashed_scores(projected2: torch.Tensor, query2: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """σ(2y) for eq. 4's y = W_f f + b + W_h h, written into `out`: (b, P, A).

    tanh(y) = 2σ(2y) - 1, and torch's CPU sigmoid is several times faster than its tanh. The scores
    σ(2y)·2w = tanh(y)·w + Σw differ from eq. 4's by a constant, which the softmax ignores. Both terms
    come doubled, projected2 (b, P, A) = 2(W_f f + b) and query2 (b, A) = 2 W_h h (W_h's rows of W_from_h
    are doubled), so that this is one add and one sigmoid, in place. The backward pass recomputes it
    instead of keeping it for every step (N x P x A floats).
    """
    return torch.add(projected2, query2.unsqueeze(-2), out=out).sigmoid_()


class _AttendLSTMUnroll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, embedded, projected2, features, h, c, W_from_h, b_from_h, w_score, W_ih, b_ih, running):
        A, E, H = projected2.shape[2], features.shape[2], h.shape[1]
        (N, M), P = embedded.shape, features.shape[1]
        new = embedded.new_empty
        X = new(N, M + E)                                                  # the LSTM inputs x_t = [embedding, β ⊙ z]
        X[:, :M] = embedded
        # every step's [2 W_h h, f_β(h), LSTM pre-activations] accumulates in its rows of from_h (N, A + E + 4H),
        # which start as the biases plus the words' part of the gates, computed for all steps at once
        from_h = torch.cat([b_from_h[:A + E].expand(N, A + E),
                            torch.addmm(b_ih + b_from_h[A + E:], embedded, W_ih[:, :M].t())], dim=1)
        att, gates = from_h[:, :A], from_h[:, A + E:]
        work, w_score2 = new(projected2.shape), 2 * w_score               # one step's σ(2y), reused
        alphas, H_prev, C_prev = new(N, P), new(N, H), new(N, H)
        Z, beta, tanh_c, hs = new(N, E), new(N, E), new(N, H), new(N, H)
        for b, r0 in zip(running, _offsets(running)):
            r = slice(r0, r0 + b)
            h, c = h[:b], c[:b]
            H_prev[r], C_prev[r] = h, c
            att_h, gate, g = from_h[r].addmm_(h, W_from_h.t()).split([A, E, 4 * H], dim=1)
            s = _squashed_scores(projected2[:b], att_h, work[:b])                        # (b, P, A)
            alpha = torch.softmax(s @ w_score2, dim=1)                                   # (b, P)   eqs. 4-5
            alphas[r] = alpha
            z = torch.bmm(alpha.unsqueeze(1), features[:b], out=Z[r].unsqueeze(1)).squeeze(1)   # (b, E)   eq. 6
            x = torch.mul(torch.sigmoid(gate, out=beta[r]), z, out=X[r, M:])            # (b, E)   β ⊙ z
            g.addmm_(x, W_ih[:, M:].t())                                                 # (b, 4H) (i, f, g, o)
            g[:, 2 * H: 3 * H] *= 2                                                      # tanh(y) = 2σ(2y) - 1, as above
            g.sigmoid_()
            g[:, 2 * H: 3 * H].mul_(2).sub_(1)
            i, f, gg, o = g.chunk(4, dim=1)
            c = torch.addcmul(f * c, i, gg)                                              # eq. 5
            h = torch.mul(o, torch.tanh(c, out=tanh_c[r]), out=hs[r])                    # eq. 6
        ctx.running = running
        ctx.save_for_backward(projected2, features, W_from_h, w_score, W_ih, X, att, alphas, H_prev, C_prev, Z, beta,
                              gates, tanh_c)
        return hs, alphas

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_alphas):
        projected2, features, W_from_h, w_score, W_ih, X, att, alphas, H_prev, C_prev, Z, beta, gates, tanh_c = ctx.saved_tensors
        running = ctx.running
        B, P, E = features.shape
        N, A, H, M = att.shape[0], att.shape[1], H_prev.shape[1], X.shape[1] - features.shape[2]
        d_h, d_c = H_prev.new_zeros(B, H), H_prev.new_zeros(B, H)         # rows past a caption's end stay 0
        d_projected = torch.zeros_like(projected2)                         # Σ_t s(1 - s) de; times 2w at the end
        work = torch.empty_like(projected2)                                # one step's σ(2y), reused
        d_features = torch.zeros_like(features) if ctx.needs_input_grad[2] else None
        d_w = w_score.new_zeros(A)                                         # Σ de s; doubled at the end
        w_score2 = 2 * w_score
        d_from_h = gates.new_empty(N, A + E + 4 * H)                       # the gradient of [2 W_h h, f_β(h), W_hh h]
        d_gates = d_from_h[:, A + E:]                                      # of the LSTM pre-activations, (N, 4H)
        # every step's local derivatives at once, (N, ...): σ' = σ(1 - σ), tanh' = 1 - tanh²
        i, f, g, o = gates.chunk(4, dim=1)
        via_c = torch.cat([g * i * (1 - i), C_prev * f * (1 - f), i * (1 - g * g)], dim=1).view(N, 3, H)   # d(i, f, g)/dc
        via_h = tanh_c * o * (1 - o)                                       # d o / dh
        h_to_c = o * (1 - tanh_c * tanh_c)                                 # through h = o tanh(c)
        gate_local = Z * beta * (1 - beta)                                 # d(β ⊙ z)/d f_β, per unit of dx
        offsets = _offsets(running)
        for t in reversed(range(len(running))):
            b = running[t]
            r = slice(offsets[t], offsets[t] + b)
            dh = d_h[:b] + d_hs[r]
            dc = torch.addcmul(d_c[:b], dh, h_to_c[r])
            torch.mul(dc, f[r], out=d_c[:b])
            dg = d_gates[r]
            torch.mul(via_c[r], dc.unsqueeze(1), out=dg[:, :3 * H].unflatten(1, (3, H)))
            torch.mul(via_h[r], dh, out=dg[:, 3 * H:])
            dx = dg @ W_ih[:, M:]                                          # (b, E)
            dr = d_from_h[r]
            torch.mul(dx, gate_local[r], out=dr[:, A: A + E])
            dz = dx.mul_(beta[r])
            alpha = alphas[r]
            # (b, 1, E) @ (b, E, P): on CPU about 8x faster than the same product as (b, P, E) @ (b, E, 1)
            d_alpha = torch.baddbmm(d_alphas[r].unsqueeze(1), dz.unsqueeze(1), features[:b].transpose(1, 2)).squeeze(1)
            if d_features is not None:
                d_features[:b].baddbmm_(alpha.unsqueeze(2), dz.unsqueeze(1))
            de = alpha * (d_alpha - (alpha * d_alpha).sum(dim=1, keepdim=True))          # softmax backward, (b, P)
            s = _squashed_scores(projected2[:b], att[r], work[:b])                       # (b, P, A) again
            d_w += (de.reshape(1, -1) @ s.reshape(-1, A)).squeeze(0)                     # Σ_p de = 0, so Σ de tanh(y) = 2 Σ de s
            s.addcmul_(s, s, value=-1)                                                   # s(1 - s) = d s / d(2y)
            torch.mul(torch.bmm(de.unsqueeze(1), s).squeeze(1), w_score2, out=dr[:, :A])  # Σ_p over de ⊗ w
            d_projected[:b].addcmul_(s, de.unsqueeze(2))
            torch.mm(dr, W_from_h, out=d_h[:b])
        d_projected.mul_(w_score2)
        # the weight gradients, Σ over all steps at once: one large matmul each
        d_W_from_h, d_W_ih = d_from_h.t() @ H_prev, d_gates.t() @ X
        d_embedded = d_gates @ W_ih[:, :M]
        d_b_from_h = d_from_h.sum(dim=0)                                   # its last 4H: the gates' bias, b_ih's too
        return (d_embedded, d_projected, d_features, d_h, d_c, d_W_from_h, d_b_from_h, 2 * d_w, d_W_ih,
                d_b_from_h[A + E:], None)


def _stacked_from_h(W_h, W_beta, b_beta, W_hh, b_gates=None):
    """Everything computed from h in one matmul: [2 W_h; W_β; W_hh] (A + E + 4H, H) and its bias
    [0; b_β; b_gates or 0]. W_h comes doubled for `_squashed_scores`."""
    zeros = W_h.new_zeros
    bias = torch.cat([zeros(W_h.shape[0]), b_beta, zeros(W_hh.shape[0]) if b_gates is None else b_gates])
    return torch.cat([2 * W_h, W_beta, W_hh]), bias


def attend_lstm_unroll(embedded: torch.Tensor, projected: torch.Tensor, features: torch.Tensor, h: torch.Tensor,
                       c: torch.Tensor, W_h: torch.Tensor, W_beta: torch.Tensor, b_beta: torch.Tensor, W_hh: torch.Tensor,
                       w_score: torch.Tensor, W_ih: torch.Tensor, b_ih: torch.Tensor,
                       running: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the attention LSTM over packed teacher-forced steps; differentiable in every tensor argument.

    Args:
        embedded: (N, M) each step's input word, embedded.
        projected: (B, P, A) W_f f_p + b, from `SoftAttention.project`.
        features: (B, P, E) the regions f_p, captions sorted longest first.
        h, c: (B, H) the initial state.
        W_h: (A, H) the attention's; W_beta: (E, H) and b_beta: (E,) the gate's f_β; W_hh: (4H, H) the LSTM's.
        w_score: (A,) the attention's w.
        W_ih: (4H, M + E) the LSTM's input weights, for x_t = [embedding, β ⊙ z]; b_ih: (4H,) its bias (b_ih + b_hh).
        running: b_t for every step t, non-increasing, Σ b_t = N.
    Returns:
        hs: (N, H) the hidden state after each step; alphas: (N, P) the attention of each step.
    """
    assert all(a >= b for a, b in zip(running, running[1:])) and sum(running) == embedded.shape[0], running
    # The hand-written backward needs one dtype throughout. Under autocast (train --amp) some arguments come in
    # bfloat16/float16 and the state in float32: the recurrence then runs in float32, the output layer after it
    # in low precision.
    args = (embedded, projected, features, h, c, W_h, W_beta, b_beta, W_hh, w_score, W_ih, b_ih)
    dtype = functools.reduce(torch.promote_types, (x.dtype for x in args))
    with torch.autocast(embedded.device.type, enabled=False):
        embedded, projected, features, h, c, W_h, W_beta, b_beta, W_hh, w_score, W_ih, b_ih = (x.to(dtype) for x in args)
        W_from_h, b_from_h = _stacked_from_h(W_h, W_beta, b_beta, W_hh)   # autograd takes the 2s back out
        return _AttendLSTMUnroll.apply(embedded, 2 * projected, features, h, c, W_from_h, b_from_h, w_score, W_ih, b_ih,
                                       list(running))


class SearchStep:
    """`ShowAttendTellDecoder.step` for decoding without gradients: the same numbers, faster (benchmarks/RESULTS.md).

    It has a decoder's search interface (init_state, prepare, step), so `beam.py` runs on either. Made
    once per search (`decoder.for_search()`), it stacks W_h, f_β and W_hh into one matmul on h, and
    `prepare` keeps 2(W_f f + b) so that each step's attention is one add and one in-place sigmoid in a
    buffer reused across steps: tanh(y) = 2σ(2y) - 1 as in `_squashed_scores`, the constant dropped by
    the softmax. What the decoder computes is unchanged (tests/test_fused.py).
    """

    @torch.no_grad()
    def __init__(self, decoder):
        att, cell = decoder.attention, decoder.cell
        self.decoder, self.A, self.E = decoder, att.hidden_proj.weight.shape[0], decoder.f_beta.weight.shape[0]
        self.W_from_h, self.b_from_h = _stacked_from_h(att.hidden_proj.weight, decoder.f_beta.weight, decoder.f_beta.bias,
                                                       cell.weight_hh, cell.bias_ih + cell.bias_hh)
        self.w_score2 = 2 * att.score.weight.view(-1)                                                # (A,)
        self.work = None                                                   # σ(2y), grown to the largest step

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.init_state(features)

    @torch.no_grad()
    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, P, E) -> 2 (W_f f_p + b): (B, P, A)."""
        return self.decoder.prepare(features).mul_(2)                     # fresh: doubled in place

    @torch.no_grad()                                                       # searching only: no gradients flow
    def step(self, words: torch.Tensor, state, features: torch.Tensor, memo: torch.Tensor):
        """words (B*G,), state (h, c) each (B*G, H), features (B, P, E), memo (B, P, A) from `prepare`
        -> logits (B*G, V), new (h, c), alpha (B*G, P). G rows per image, adjacent, as in `SoftAttention`.
        The LSTM's tanh stay: on (B*G, H) they cost little, unlike the attention's (B*G, P, A)."""
        h, c = state
        (B, P, E), n, A = features.shape, h.shape[0], self.A
        query2, gate, gates = torch.addmm(self.b_from_h, h, self.W_from_h.t()).split([A, E, 4 * h.shape[1]], dim=1)
        if self.work is None or self.work.numel() < n * P * A:
            self.work = memo.new_empty(n * P * A)
        s = _squashed_scores(memo.unsqueeze(1), query2.view(B, -1, A), self.work[: n * P * A].view(B, -1, P, A))
        alpha = torch.softmax((s @ self.w_score2).view(n, P), dim=1)                                 # eqs. 4-5
        context = torch.bmm(alpha.view(B, -1, P), features).view(n, E)                               # eq. 6
        x = torch.cat([self.decoder.embedding(words), torch.sigmoid(gate) * context], dim=1)         # (n, M + E)
        i, f, g, o = gates.addmm_(x, self.decoder.cell.weight_ih.t()).chunk(4, dim=1)                # as nn.LSTMCell
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return self.decoder.fc(self.decoder.dropout(h)), (h, c), alpha
