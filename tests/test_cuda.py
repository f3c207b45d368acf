"""The GPU paths: mixed precision, the fused training path, batched beam search and feature extraction on CUDA,
and device="auto" choosing the GPU. Skipped without one (CI's CPU job); the `gpu` job of
.github/workflows/ci.yml runs them. The CPU half of mixed precision (its note, autocast's dtypes) runs anywhere."""
import os

import numpy as np
import pytest
import torch

from captionlib.beam import beam_search, greedy
from captionlib.decoder import DecoderConfig, build_decoder
from captionlib.utils import pick_device

import ddp_worker

# The gpu CI job sets CAPTIONLIB_REQUIRE_CUDA=1: there a GPU that torch cannot see fails these instead of skipping them.
cuda = pytest.mark.skipif(not torch.cuda.is_available() and not os.environ.get("CAPTIONLIB_REQUIRE_CUDA"),
                          reason="no CUDA GPU here (the gpu CI job runs these)")


def test_amp_on_cpu_says_it_trains_in_float32_and_changes_nothing(capsys):
    plain, amp = ddp_worker.trainer(None), ddp_worker.trainer(None, amp=True)
    assert "speeds up CUDA GPUs; this run is on cpu, so it trains in float32" in capsys.readouterr().err
    plain.fit(progress=False)
    amp.fit(progress=False)
    for name, w in plain.decoder.state_dict().items():
        assert torch.equal(amp.decoder.state_dict()[name], w), name


def test_the_training_step_runs_under_autocast_without_dtype_clashes():
    """bfloat16 autocast on the CPU stands in for the GPU's: the fused unroll, the packed loss and the penalty
    mix autocast's low-precision outputs with float32 state; a clash would raise here, not first on a GPU."""
    plain, low = ddp_worker.trainer(None, epochs=3, alpha_c=None), ddp_worker.trainer(None, epochs=3, alpha_c=None)
    low.amp_dtype = torch.bfloat16
    a, b = np.array(plain.fit(progress=False)["step_loss"]), np.array(low.fit(progress=False)["step_loss"])
    assert np.isfinite(b).all() and b[-4:].mean() < b[:4].mean()              # it learns
    assert not np.array_equal(a, b) and np.allclose(a, b, rtol=1e-2)         # in bfloat16 (not a no-op), close to float32


@cuda
def test_auto_picks_cuda_and_the_trainer_lives_there():
    assert pick_device("auto").type == "cuda"
    t = ddp_worker.trainer(None, device="auto")
    assert next(t.decoder.parameters()).is_cuda


@cuda
@pytest.mark.parametrize("amp", [False, True])
def test_training_on_cuda_learns_with_and_without_amp(amp):
    t = ddp_worker.trainer(None, device="cuda", amp=amp, epochs=6)
    assert (t.amp_dtype is not None) == amp
    h = t.fit(progress=False)
    assert np.isfinite(h["step_loss"]).all() and h["step_loss"][-1] < h["step_loss"][0]


@cuda
def test_the_fused_path_and_batched_beam_search_on_cuda_match_the_cpu():
    torch.manual_seed(0)
    dec = build_decoder(DecoderConfig(vocab_size=30, encoder_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)).eval()
    feats = torch.randn(5, 9, 16)
    caps = torch.randint(4, 30, (5, 7))
    caps[:, 0], caps[2, 5:] = 1, 0
    cpu_loss = dec.loss(feats, caps, alpha_c=0.5)
    gpu = dec.to("cuda")
    assert torch.allclose(gpu.loss(feats.cuda(), caps.cuda(), alpha_c=0.5).cpu(), cpu_loss, atol=1e-5)
    on_gpu = beam_search(gpu, feats.cuda(), 3, 12)
    on_cpu = beam_search(gpu.cpu(), feats, 3, 12)
    assert [c.tokens for c in on_gpu] == [c.tokens for c in on_cpu]
    assert [c.tokens for c in greedy(gpu.cuda(), feats.cuda(), 12)] == [c.tokens for c in greedy(gpu.cpu(), feats, 12)]


@cuda
def test_feature_extraction_on_cuda_matches_the_cpu(tmp_path):
    store_gpu = ddp_worker.extract(tmp_path / "gpu")
    from captionlib.features import extract_features

    store_cpu = extract_features(ddp_worker.tiny_encoder(), ddp_worker.Pictures(), "k", tmp_path / "cpu", upto=70,
                                 batch_size=4, progress=False, workers=0, device="cpu")
    np.testing.assert_allclose(np.asarray(store_gpu.features, dtype=np.float32)[:70],
                               np.asarray(store_cpu.features, dtype=np.float32)[:70], atol=2e-3)
