import torch
import torch.nn as nn

from captionlib.lstm import LSTMCell, lstm_step, lstm_unroll


def _pair(M=5, H=7, dtype=torch.float32):
    torch.manual_seed(0)
    ours, ref = LSTMCell(M, H).to(dtype), nn.LSTMCell(M, H).to(dtype)
    ours.load_state_dict(ref.state_dict())  # same parameter names and layout (gates i, f, g, o)
    return ours, ref


def test_forward_and_gradients_equal_torch_lstmcell_float32():
    ours, ref = _pair()
    x = torch.randn(4, 5)
    h0, c0 = torch.randn(4, 7), torch.randn(4, 7)
    (h, c), (hr, cr) = ours(x, (h0, c0)), ref(x, (h0, c0))
    assert torch.allclose(h, hr, atol=1e-6) and torch.allclose(c, cr, atol=1e-6)
    (h.sum() + c.pow(2).sum()).backward()
    (hr.sum() + cr.pow(2).sum()).backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n


def test_float64_to_1e12_and_weights_copy_back():
    ours, ref = _pair(dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    (h, c), (hr, cr) = ours(x), ref(x)
    assert (h - hr).abs().max() < 1e-12 and (c - cr).abs().max() < 1e-12
    gx, = torch.autograd.grad(h.sum(), x)
    gxr, = torch.autograd.grad(hr.sum(), x)
    assert (gx - gxr).abs().max() < 1e-12
    back = nn.LSTMCell(5, 7).double()
    back.load_state_dict(ours.state_dict())
    assert torch.allclose(back(x)[0], h, atol=1e-12)


def test_gradcheck_lstm_step():
    torch.manual_seed(1)
    args = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    W = [torch.randn(8, 3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    b = [torch.randn(8, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    x, h, c = args[0], torch.randn(2, 2, dtype=torch.float64, requires_grad=True), torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    W_hh = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: lstm_step(*a), (x, h, c, W[0], W_hh, b[0], b[1]))


def test_unroll_equals_nn_lstm():
    torch.manual_seed(2)
    ours = LSTMCell(4, 6)
    ref = nn.LSTM(4, 6, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name + "_l0").copy_(getattr(ours, name))
    xs = torch.randn(3, 9, 4)
    h0, c0 = torch.zeros(3, 6), torch.zeros(3, 6)
    hs, (h, c) = lstm_unroll(xs, h0, c0, ours)
    out, (hr, cr) = ref(xs)
    assert hs.shape == (3, 9, 6)
    assert torch.allclose(hs, out, atol=1e-6) and torch.allclose(c, cr[0], atol=1e-6)
