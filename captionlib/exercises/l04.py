"""Lesson 04 exercises: additive attention, and one decoder step with attention and the gate β.

Shapes: B batch, P regions, E encoder dim, H hidden dim, A attention dim, M embed dim, V vocab.
"""
from __future__ import annotations

import torch

from ..checks import MISSING, Mistake, Part, checked, grad_reaches
from ..decoder import DecoderConfig, build_decoder

__all__ = ["PARTS", "attend", "attention_step", "check_attend", "check_attention_step"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "attend": [Part("the context", 1, r"context|averaged|Σ_p|convex"),
               Part("the softmax over the P regions", 1, r"softmax|sums? to 1|over the batch"),
               Part("the scores e = w · tanh(...)", 2, r"tanh|nonlinearity")],
    "attention_step": [Part("the context", 1, r"context is the mean|attention-weighted sum"),
                       Part("the LSTM's input and state", 1, r"concatenated|LSTM cell gets no state|LSTM's input|returned state"),
                       Part("the logits", 1, r"logits|dropout is not applied|output layer"),
                       Part("the gate β", 2, r"β|gate")],
}


def attend(features: torch.Tensor, projected: torch.Tensor, h: torch.Tensor, W_h: torch.Tensor, w: torch.Tensor):
    """e_p = w · tanh(projected_p + W_h h); α = softmax over regions; context = Σ_p α_p f_p.

    features (B, P, E), projected (B, P, A), h (B, H), W_h (A, H), w (A,) -> context (B, E), alpha (B, P).
    """
    e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w        # (B, P)
    alpha = torch.softmax(e, dim=1)                                  # (B, P)
    return (alpha.unsqueeze(2) * features).sum(dim=1), alpha         # (B, E), (B, P)


def attention_step(decoder, words, state, features, projected):
    """One Show-Attend-Tell step: attend with the previous h, gate the context, run the LSTM, predict.

    words (B,), state (h, c) each (B, H) -> logits (B, V), (h, c), alpha (B, P).
    """
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([decoder.embedding(words), beta * context], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def _attend_cases():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return [(r(2, 5, 3), r(2, 5, 4), r(2, 6), r(4, 6), r(4)), (r(3, 4, 2), r(3, 4, 3), r(3, 2), r(3, 2), r(3)),
            (r(1, 5, 3), r(1, 5, 4), r(1, 6), r(4, 6), r(4))]                   # a batch of one



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "attend": {
        0: "the recipe: context = Σ_p α_p f_p, (alpha.unsqueeze(2) * features).sum(1)",
        1: "the recipe: e = tanh(projected + (h W_h^T).unsqueeze(1)) @ w, α = softmax(e, dim=1)",
    },
    "attention_step": {
        None: ("the recipe: attend with the previous h; β = σ(f_β(h)); (h, c) = cell([embedding(words), β ⊙ z], (h, "
               "c)); logits = fc(dropout(h))"),
    },
}

def check_attend(fn=MISSING):
    def feature_softmax(features, projected, h, W_h, w):
        a = torch.softmax(torch.tanh(projected + (h @ W_h.T).unsqueeze(1)), dim=2) @ w
        return (a.unsqueeze(2) * features).sum(1), a

    def batch_softmax(features, projected, h, W_h, w):
        a = torch.softmax(torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w, dim=0)
        return (a.unsqueeze(2) * features).sum(1), a

    def no_tanh(features, projected, h, W_h, w):
        a = torch.softmax((projected + (h @ W_h.T).unsqueeze(1)) @ w, dim=1)
        return (a.unsqueeze(2) * features).sum(1), a

    def raw_scores(features, projected, h, W_h, w):
        e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w
        return (e.unsqueeze(2) * features).sum(1), torch.softmax(e, dim=1)

    mistakes = [
        Mistake("the softmax is over the feature dimension instead of over the P regions: score first (@ w), then softmax(dim=1)", feature_softmax),
        Mistake("the softmax is over the batch (dim=0) instead of over the P regions (dim=1)", batch_softmax),
        Mistake("the tanh is missing: e = w · tanh(W_f f + W_h h)", no_tanh),
        Mistake("the context is not a convex combination: weight the regions by α (after the softmax), not by the raw scores e", raw_scores),
    ]
    return checked("attend", fn, attend, _attend_cases(), mistakes=mistakes, atol=1e-8, probes=[_attend_parts],
                   properties=[_scores_are_trained], notes=[None, None, "with a batch of one (B = 1)"],
                   axes=("BE", "BP"), arg_axes={"features": "BPE", "projected": "BPA", "h": "BH", "W_h": "AH", "w": "A"},
                   recipe=_RECIPES["attend"])


def _scores_are_trained(fn) -> str | None:
    """The score's weights W_h and w learn only through α: the context must carry their gradient."""
    features, projected, h, W_h, w = (t.clone().requires_grad_(True) for t in _attend_cases()[0])
    context, alpha = fn(features, projected, h, W_h, w)
    to_context = grad_reaches(context, W_h, w)
    if not all(to_context):
        return ("no gradient flows from the context back into the scores' weights (W_h, w): α was detached or computed "
                "under no_grad before weighting the features. The values agree, but attention would never learn where "
                "to look: keep α in the graph")
    return None


def _attend_parts(fn) -> str | None:
    """Test the three parts of attention on their own, and name every one that is wrong:
    the normalisation of α (from the learner's own α), the context as Σ α_p f_p (with the learner's own α), and
    the score's tanh (one region whose projection is huge: with the tanh it saturates at 1, without it dominates)."""
    said = []
    g = torch.Generator().manual_seed(4)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    f, pr, h, W_h, w = r(3, 4, 2), r(3, 4, 5), r(3, 6), r(5, 6), r(5)
    context, alpha = fn(f, pr, h, W_h, w)
    if alpha.shape != (3, 4) or context.shape != (3, 2):
        return None                                   # a shape slip: the shape doctor names it, not a guess here
    rows, cols = alpha.sum(1), alpha.sum(0)
    normalised = torch.allclose(rows, torch.ones(3, dtype=rows.dtype))
    if not normalised:
        if torch.allclose(cols, torch.ones(4, dtype=cols.dtype)):
            said.append("α sums to 1 over the batch: take the softmax over the P regions (dim=1)")
        else:
            said.append(f"α must sum to 1 over the P regions (a softmax over dim=1); yours sums to {rows[0].item():.3g}")
    if torch.allclose(context, (alpha.unsqueeze(2) * f).mean(1)):
        said.append("the weighted regions are averaged (mean over P): the context is their sum, Σ_p α_p f_p, "
                    ".sum(dim=1) (α already sums to 1, so the sum is the weighted average)")
    elif not torch.allclose(context, (alpha.unsqueeze(2) * f).sum(1)):
        said.append("the context must be Σ_p α_p f_p, the features weighted by your own α and summed over regions")
    big = torch.zeros(1, 3, 2, dtype=torch.float64)
    big[0, 0] = 100.0                                                  # region 0's projection is huge
    feats = torch.eye(3, 2, dtype=torch.float64).unsqueeze(0)
    _, a = fn(feats, big, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64),
              torch.ones(2, dtype=torch.float64))
    _, want = attend(feats, big, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64),
                     torch.ones(2, dtype=torch.float64))
    if normalised and a.shape == want.shape and not torch.allclose(a, want, atol=1e-6) and a[0, 0] > 0.999:
        said.append("the score's nonlinearity must be tanh, e_p = w · tanh(projected_p + W_h h): with yours (none? relu?) "
                    "one region with a huge projection takes all of α")
    return "; ".join(said) or None


def _decoder():
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=9, encoder_dim=5, embed_dim=3, hidden_dim=5, attention_dim=4, dropout=0.0, attention=True)
    return build_decoder(cfg).eval()  # E == H, so a gate put on h instead of the context is computable


def _step_cases():
    g = torch.Generator().manual_seed(1)
    out = []
    for B in (2, 3):
        dec = _decoder()
        feats = torch.randn(B, 4, 5, generator=g)
        out.append((dec, torch.randint(0, 9, (B,), generator=g), (torch.randn(B, 5, generator=g), torch.randn(B, 5, generator=g)),
                    feats, dec.attention.project(feats).detach()))
    return out


def _recorded(fn, args) -> tuple:
    """fn(*args), and what the decoder's cell, fc and dropout received: {name: inputs} (first call of each)."""
    decoder, seen = args[0], {}
    def keep(name):
        def hook(module, inputs, output):                          # returns None: the output stays as it is
            seen.setdefault(name, inputs)
        return hook

    hooks = [getattr(decoder, name).register_forward_hook(keep(name)) for name in ("cell", "fc", "dropout")]
    try:
        return fn(*args), seen
    finally:
        for hook in hooks:
            hook.remove()


def _step_parts(fn) -> str | None:
    """What the learner hands the LSTM cell, compared part by part with what the step should hand it:
    the state, the word's embedding and the gated context β ⊙ z, in that order."""
    args = _step_cases()[0]
    decoder, words, (h, c), features, projected = args
    _, got = _recorded(fn, args)
    _, want = _recorded(attention_step, args)
    if "cell" not in got:
        return "the LSTM cell is never run: h, c = decoder.cell(x, (h, c)) with x = [embedding, β ⊙ context]"
    if len(got["cell"]) < 2 or got["cell"][1] is None:
        return "the LSTM cell gets no state, so it starts from zeros: pass the previous one, decoder.cell(x, (h, c))"
    x, ref = got["cell"][0], want["cell"][0]
    if x.shape != ref.shape:
        return f"the LSTM input has shape {tuple(x.shape)}, expected {tuple(ref.shape)}: [embedding (M), β ⊙ context (E)]"
    M = decoder.embedding.embedding_dim
    with torch.no_grad():
        emb, z = decoder.embedding(words), decoder.attention(features, projected, h)[0]
        raw_beta = decoder.f_beta(h)
    close = lambda a, b: a.shape == b.shape and torch.allclose(a, b, atol=1e-6)   # noqa: E731
    said = []
    if close(x, torch.cat([ref[:, M:], ref[:, :M]], dim=1)):
        said.append("the LSTM input is concatenated the other way round: torch.cat([embedding, β ⊙ context], dim=1)")
    elif not close(x[:, :M], emb):
        said.append("the LSTM input must start with the word's embedding, decoder.embedding(words)")
    elif not close(x[:, M:], ref[:, M:]):
        if close(x[:, M:], raw_beta * z):
            said.append("β must be a gate in (0, 1): β = σ(f_β(h)), torch.sigmoid(decoder.f_beta(h))")
        elif close(x[:, M:], torch.sigmoid(raw_beta) * features.mean(1)):
            said.append("the context is the mean of the regions: use the attention-weighted sum decoder.attention returns")
        else:
            said.append("the second part of the LSTM input must be β ⊙ z: the gate σ(f_β(h)) times the attention's context")
    if not said and not close(got["cell"][1][0], h):
        said.append("the LSTM cell must get the previous state (h, c) as it came in")
    return "; ".join(said) or None


def _dropout_used(fn) -> str | None:
    """Dropout acts only in training, so eval-mode values cannot show whether it is there: look, in train mode.
    It belongs on h's way to the output layer only: the state handed to the next step and the LSTM's input stay
    as they are (in train mode the reference's (h, c) equal its eval-mode ones)."""
    args = _step_cases()[0]
    decoder = args[0]
    decoder.dropout.p = 0.5
    decoder.train()
    try:
        torch.manual_seed(11)
        (logits, state, _), got = _recorded(fn, args)
        torch.manual_seed(11)
        (_, want_state, _), want = _recorded(attention_step, args)
    finally:
        decoder.dropout.p = 0.0
        decoder.eval()
    if "dropout" not in got:
        return ("dropout is not applied before the output layer: logits = decoder.fc(decoder.dropout(h)) (it acts in "
                "training only, which is why the values above agreed)")
    same = lambda a, b: torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a, b, atol=1e-6)   # noqa: E731
    x_got, x_want = got.get("cell", (None,))[0], want["cell"][0]
    if x_got is not None and x_got.shape == x_want.shape and not same(x_got, x_want):
        return ("in training mode the LSTM's input is changed by dropout: apply dropout only to h on its way to the "
                "output layer, logits = fc(dropout(h)); the input [embedding, β ⊙ z] goes in as it is")
    if isinstance(state, tuple) and len(state) == 2 and not (same(state[0], want_state[0]) and same(state[1], want_state[1])):
        return ("in training mode the returned state (h, c) is changed by dropout: the next step must get the LSTM's own "
                "(h, c); dropout goes only on the copy of h fed to the output layer, logits = fc(dropout(h))")
    return None


def check_attention_step(fn=MISSING):
    def gate_on_h(decoder, words, state, features, projected):
        h, c = state
        context, alpha = decoder.attention(features, projected, h)
        beta = torch.sigmoid(decoder.f_beta(h))
        h, c = decoder.cell(torch.cat([decoder.embedding(words), context], dim=1), (beta * h, c))
        return decoder.fc(h), (h, c), alpha

    def no_gate(decoder, words, state, features, projected):
        h, c = state
        context, alpha = decoder.attention(features, projected, h)
        h, c = decoder.cell(torch.cat([decoder.embedding(words), context], dim=1), (h, c))
        return decoder.fc(h), (h, c), alpha

    def logits_from_old_h(decoder, words, state, features, projected):
        _, (h, c), alpha = attention_step(decoder, words, state, features, projected)
        return decoder.fc(state[0]), (h, c), alpha

    mistakes = [
        Mistake("the gate β is applied to h instead of to the context: β = σ(f_β(h)) scales how much of z_t enters the LSTM", gate_on_h),
        Mistake("the gate β is missing: multiply the context by β = σ(f_β(h)) before concatenating", no_gate),
        Mistake("the logits come from the previous h: predict from the new h the LSTM just returned", logits_from_old_h),
    ]
    result = checked("attention_step", fn, attention_step, _step_cases(), mistakes=mistakes, probes=[_step_parts],
                     axes=("BV", ("BH", "BH"), "BP"), arg_axes={"words": "B", "features": "BPE", "projected": "BPA"},
                     properties=[_dropout_used],
                     recipe=_RECIPES["attention_step"])
    if result is fn:  # correct: one more look, for speed
        args = _step_cases()[0]
        calls = []
        hook = args[0].attention.encoder_proj.register_forward_hook(lambda *a: calls.append(1))
        fn(*args)
        hook.remove()
        if calls:
            print("   ⚡ performance note: the step recomputes the encoder projection W_f f. It does not depend on t: "
                  "use the `projected` argument, computed once per batch.")
    return result
