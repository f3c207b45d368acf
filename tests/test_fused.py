"""The fast paths against the readable code the lessons build: training's hand-written backward
(fused.attend_lstm_unroll) against autograd, and search's fused.SearchStep against decoder.step."""
import torch

from captionlib.decoder import DecoderConfig, _Decoder, build_decoder, sequence_loss
from captionlib.fused import SearchStep, attend_lstm_unroll

N_RUNNING = [3, 3, 2, 1]           # four steps over three captions of 4, 3 and 2 steps: N = 9
B, P, E, M, H, A = 3, 5, 6, 4, 3, 2


def inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    shapes = [(sum(N_RUNNING), M), (B, P, A), (B, P, E), (B, H), (B, H), (A, H), (E, H), (E,), (4 * H, H), (A,),
              (4 * H, M + E), (4 * H,)]
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def test_gradients_of_every_input_pass_gradcheck():
    """Embedded words, projected regions, the regions themselves, h0, c0 and every weight, in float64."""
    args = inputs()
    assert torch.autograd.gradcheck(lambda *a: attend_lstm_unroll(*a, N_RUNNING), args, atol=1e-7)


def test_only_hidden_states_or_only_attention_used():
    """A loss on one output only (the other's gradient is None) is handled."""
    args = inputs()
    assert torch.autograd.gradcheck(lambda *a: attend_lstm_unroll(*a, N_RUNNING)[0].sum(), args, atol=1e-7)
    assert torch.autograd.gradcheck(lambda *a: (attend_lstm_unroll(*a, N_RUNNING)[1] ** 2).sum(), args, atol=1e-7)


def _decoder():
    torch.manual_seed(0)
    return build_decoder(DecoderConfig(vocab_size=11, encoder_dim=E, embed_dim=M, hidden_dim=7, attention_dim=4,
                                       dropout=0.0)).double()


def _batch():
    torch.manual_seed(1)
    caps = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 4, 2, 0, 0, 0, 0], [1, 9, 8, 7, 6, 5, 2], [1, 3, 2, 0, 0, 0, 0]])
    return torch.randn(4, P, E, dtype=torch.float64, requires_grad=True), caps


def test_training_loss_equals_the_readable_loop_with_the_same_gradients():
    """decoder.loss (packed rows, fused unroll) = sequence_loss of the step-by-step loop the lessons build,
    in value and in the gradient of every parameter and of the features (a fine-tuned encoder gets them)."""
    dec = _decoder()
    feats, caps = _batch()
    fast = dec.loss(feats, caps, alpha_c=0.7)
    logits, alphas = _Decoder.forward(dec, feats, caps)
    ref = sequence_loss(logits, caps, alphas, alpha_c=0.7)
    assert abs(fast.item() - ref.item()) < 1e-12
    wrt = [feats] + list(dec.parameters())
    for a, b, name in zip(torch.autograd.grad(fast, wrt), torch.autograd.grad(ref, wrt),
                          ["features"] + [n for n, _ in dec.named_parameters()]):
        assert torch.allclose(a, b, atol=1e-12), name


def test_backward_twice_with_retain_graph_gives_the_same_gradients():
    dec = _decoder()
    feats, caps = _batch()
    loss = dec.loss(feats, caps, alpha_c=0.7)
    first = torch.autograd.grad(loss, list(dec.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(dec.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_loss_with_scheduled_sampling_takes_the_readable_path():
    """sample_prob > 0 cannot use the packed unroll (inputs depend on outputs): it must still work."""
    dec = _decoder()
    feats, caps = _batch()
    torch.manual_seed(3)
    a = dec.loss(feats, caps, alpha_c=0.7, sample_prob=0.5)
    torch.manual_seed(3)
    logits, alphas = dec(feats, caps, sample_prob=0.5)
    assert torch.equal(a, sequence_loss(logits, caps, alphas, alpha_c=0.7))


def test_the_benchmarks_classic_training_loop_computes_the_same_loss():
    """benchmarks/classic.py's tutorial loop is the baseline the speed-up is measured against."""
    from benchmarks.classic import classic_loss

    dec = _decoder()
    feats, caps = _batch()
    lengths = (caps != 0).sum(dim=1)
    assert abs(classic_loss(dec, feats, caps, lengths, 0.7).item() - dec.loss(feats, caps, alpha_c=0.7).item()) < 1e-12


def test_search_step_equals_the_readable_step_with_several_beams_per_image():
    """SearchStep (one matmul on h, tanh through sigmoid, shared buffer) = decoder.step, in float64,
    with G = 4 rows per image as in beam search, and twice in a row (the reused buffer)."""
    dec = _decoder().eval()
    feats = torch.randn(3, P, E, dtype=torch.float64)
    fast = dec.for_search()
    assert isinstance(fast, SearchStep)
    G = 4
    h, c = (torch.randn(3 * G, 7, dtype=torch.float64) for _ in range(2))
    words = torch.randint(0, 11, (3 * G,))
    state_ref = state_fast = (h, c)
    memo_ref, memo_fast = dec.prepare(feats), fast.prepare(feats)
    for _ in range(2):
        ref = dec.step(words, state_ref, feats, memo_ref)
        out = fast.step(words, state_fast, feats, memo_fast)
        for a, b in zip((ref[0], *ref[1], ref[2]), (out[0], *out[1], out[2])):
            assert torch.allclose(a, b, atol=1e-12, rtol=0)
        state_ref, state_fast = ref[1], out[1]


def test_the_lessons_own_lstm_cell_keeps_the_readable_step():
    dec = build_decoder(DecoderConfig(vocab_size=11, encoder_dim=E, embed_dim=M, hidden_dim=7, attention_dim=4,
                                      cell="captionlib"))
    assert dec.for_search() is dec
