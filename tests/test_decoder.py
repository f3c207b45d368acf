import pytest
import torch
import torch.nn.functional as F

from captionlib.attention import SoftAttention
from captionlib.decoder import DecoderConfig, build_decoder, sequence_loss

B, P, E, V = 3, 6, 8, 11


def small(attention=True, **kw):
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=V, encoder_dim=E, embed_dim=5, hidden_dim=7, attention_dim=4, dropout=0.0,
                        attention=attention, **kw)
    return build_decoder(cfg).eval()


def batch():
    torch.manual_seed(1)
    feats = torch.randn(B, P, E)
    caps = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 4, 2, 0, 0, 0, 0], [1, 9, 8, 7, 6, 5, 2]])
    return feats, caps


def test_attention_gradcheck_and_convexity():
    torch.manual_seed(0)
    att = SoftAttention(4, 3, 5).double()
    f = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, h: att(f, att.project(f), h), (f, h))
    ctx, alpha = att(f, att.project(f), h)
    assert torch.allclose(alpha.sum(1), torch.ones(2, dtype=torch.float64)) and (alpha >= 0).all()
    assert torch.allclose(ctx, (alpha.unsqueeze(2) * f).sum(1))


def test_several_queries_per_image_equal_copies_of_the_image():
    """Beam search passes each image once with its K beams' states: same as K copies of the image."""
    torch.manual_seed(0)
    att = SoftAttention(4, 3, 5).double()
    f = torch.randn(2, 6, 4, dtype=torch.float64)
    h = torch.randn(2 * 3, 3, dtype=torch.float64)                        # G = 3 queries per image, adjacent
    copies = f.repeat_interleave(3, dim=0)                                   # (6, P, E)
    shared, copied = att(f, att.project(f), h), att(copies, att.project(copies), h)
    assert torch.allclose(shared[0], copied[0]) and torch.allclose(shared[1], copied[1])


@pytest.mark.parametrize("attention,image_as", [(True, "state"), (False, "state"), (False, "input")])
def test_teacher_forced_loss_equals_a_step_by_step_loop(attention, image_as):
    dec = small(attention, image_as=image_as)
    feats, caps = batch()
    logits, alphas = dec(feats, caps)
    assert logits.shape == (B, 6, V)
    assert (alphas is not None) == attention
    # Reference: one image at a time, one step at a time, summing -log p of each real target.
    total, count = 0.0, 0
    for b in range(B):
        state, memo = dec.init_state(feats[b:b + 1]), dec.prepare(feats[b:b + 1])
        length = int((caps[b] != 0).sum())
        for t in range(length - 1):
            out, state, _ = dec.step(caps[b, t:t + 1], state, feats[b:b + 1], memo)
            total -= F.log_softmax(out, -1)[0, caps[b, t + 1]].item()
            count += 1
    assert abs(sequence_loss(logits, caps).item() - total / count) < 1e-5


def test_padding_contributes_zero_loss_and_zero_gradient():
    dec = small(True)
    feats, caps = batch()
    logits, alphas = dec(feats, caps)
    logits.retain_grad()
    sequence_loss(logits, caps, alphas, alpha_c=1.0).backward()
    pad = caps[:, 1:] == 0
    assert pad.any() and (logits.grad[pad] == 0).all() and (logits.grad[~pad] != 0).any()


def test_captionlib_cell_gives_the_same_decoder():
    a = small(True)
    torch.manual_seed(0)
    b = build_decoder(DecoderConfig(vocab_size=V, encoder_dim=E, embed_dim=5, hidden_dim=7, attention_dim=4,
                                    dropout=0.0, cell="captionlib")).eval()
    b.load_state_dict(a.state_dict())
    feats, caps = batch()
    real = caps[:, 1:] != 0  # a takes the fast path, which leaves positions past <end> at 0
    assert torch.allclose(a(feats, caps)[0][real], b(feats, caps)[0][real], atol=1e-5)


def test_encoder_projection_is_computed_once_per_batch():
    dec = small(True)
    calls = []
    dec.attention.encoder_proj.register_forward_hook(lambda *a: calls.append(1))
    feats, caps = batch()
    dec(feats, caps)
    assert len(calls) == 1


def test_scheduled_sampling_with_probability_zero_is_teacher_forcing_and_one_ignores_the_truth():
    dec = small(True)
    feats, caps = batch()
    assert torch.equal(dec(feats, caps)[0], dec(feats, caps, sample_prob=0.0)[0])
    wrong = caps.clone()
    wrong[:, 2:] = 3
    torch.manual_seed(5)
    a = dec(feats, caps, sample_prob=1.0)[0]
    torch.manual_seed(5)
    b = dec(feats, wrong, sample_prob=1.0)[0]
    assert torch.allclose(a, b)  # inputs after the first come from the model, not the caption


@pytest.mark.parametrize("attention", [True, False])
def test_scheduled_sampling_equals_a_step_by_step_loop_and_sees_every_earlier_step(attention):
    from captionlib.decoder import scheduled_input

    dec = small(attention)
    feats, caps = batch()
    state, memo = dec.init_state(feats), dec.prepare(feats)
    g = torch.Generator().manual_seed(3)
    x, outs = dec.embedding(caps[:, 0]), []
    for t in range(caps.shape[1] - 1):                    # the loop written plainly, stacking every step
        if t > 0:
            x = scheduled_input(dec.embedding, caps, torch.stack(outs, 1), t, 0.5, g)
        out, state, _ = dec.step_embedded(x, state, feats, memo)
        outs.append(out)
    expected = torch.stack(outs, 1)

    seen = []
    def spy(embedding, captions, logits, t, p, generator=None):
        seen.append((t, logits.clone(), logits.requires_grad))
        return scheduled_input(embedding, captions, logits, t, p, generator)

    got, _ = dec(feats, caps, sample_prob=0.5, generator=torch.Generator().manual_seed(3), next_input=spy)
    assert torch.allclose(got, expected, atol=1e-6)
    assert [t for t, _, _ in seen] == list(range(1, caps.shape[1] - 1))
    for t, logits, needs_grad in seen:                    # steps 0..t-1, detached
        assert logits.shape == (B, t, V) and not needs_grad
        assert torch.allclose(logits, got[:, :t].detach(), atol=1e-6)


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="image_as"):
        small(False, image_as="hat")
    with pytest.raises(ValueError, match="cell"):
        small(True, cell="gru")


def test_fast_teacher_forcing_equals_the_step_by_step_reference():
    """The fast path (sorted, shrinking batch, fused matmuls) computes what the lessons' loop computes."""
    from captionlib.decoder import _Decoder

    dec = small(True)
    feats, caps = batch()
    fast_logits, fast_alphas = dec(feats, caps)                    # fast path (cell="torch", no sampling)
    ref_logits, ref_alphas = _Decoder.forward(dec, feats, caps)    # the readable loop over `step`
    real = caps[:, 1:] != 0
    assert torch.allclose(fast_logits[real], ref_logits[real], atol=1e-5)
    assert torch.allclose(fast_alphas[real], ref_alphas[real], atol=1e-6)
    fast_loss = sequence_loss(fast_logits, caps, fast_alphas, alpha_c=0.5)
    ref_loss = sequence_loss(ref_logits, caps, ref_alphas, alpha_c=0.5)
    assert abs(fast_loss.item() - ref_loss.item()) < 1e-5
    g_fast = torch.autograd.grad(fast_loss, list(dec.parameters()))
    g_ref = torch.autograd.grad(ref_loss, list(dec.parameters()))
    for (name, _), a, b in zip(dec.named_parameters(), g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-5), name
