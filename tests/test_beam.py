import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from captionlib.beam import END, PAD, START, beam_search, greedy, sample
from captionlib.decoder import DecoderConfig, build_decoder

WORDS = [END, 3, 4, 5]  # what a caption can contain (V = 6: <pad>, <start> are never generated)


def tiny(seed, attention=True):
    torch.manual_seed(seed)
    cfg = DecoderConfig(vocab_size=6, encoder_dim=4, embed_dim=3, hidden_dim=5, attention_dim=3, dropout=0.0, attention=attention)
    dec = build_decoder(cfg).eval()
    with torch.no_grad():
        dec.fc.weight.mul_(4)  # sharper distributions, so greedy and the arg-max often differ
    return dec


def log_prob(dec, feats, seq):
    state, memo = dec.init_state(feats), dec.prepare(feats)
    words, total = torch.tensor([START]), 0.0
    for w in seq:
        logits, state, _ = dec.step(words, state, feats, memo)
        logp = F.log_softmax(logits, -1)
        logp[:, [PAD, START]] = float("-inf")
        total += logp[0, w].item()
        words = torch.tensor([w])
    return total


def brute_force(dec, feats, L):
    """Every caption of at most L tokens: ends with <end>, or is cut at L (beam's max_len)."""
    best = (float("-inf"), None)
    for n in range(1, L + 1):
        for seq in itertools.product(WORDS, repeat=n):
            if END in seq[:-1] or (n < L and seq[-1] != END):
                continue
            best = max(best, (log_prob(dec, feats, list(seq)), list(seq)), key=lambda x: x[0])
    return best


@pytest.mark.parametrize("seed", range(5))
def test_wide_beam_finds_the_brute_force_argmax(seed):
    dec, L = tiny(seed), 3
    torch.manual_seed(100 + seed)
    feats = torch.randn(1, 2, 4)
    score, seq = brute_force(dec, feats, L)
    out = beam_search(dec, feats, beam_size=len(WORDS) ** L, max_len=L)[0]
    assert out.tokens == seq and abs(out.score - score) < 1e-4


def test_greedy_can_lose_to_the_argmax_somewhere():
    found = False
    for seed in range(40):
        dec = tiny(seed)
        feats = torch.randn(1, 2, 4)
        g = greedy(dec, feats, max_len=3)[0]
        score, _ = brute_force(dec, feats, 3)
        found |= g.score < score - 1e-6
    assert found  # otherwise the brute-force test above would not distinguish beam from greedy


@pytest.mark.parametrize("attention", [True, False])
def test_beam_of_one_equals_greedy(attention):
    dec = tiny(0, attention)
    feats = torch.randn(7, 2, 4)
    g = greedy(dec, feats, max_len=6)
    b = beam_search(dec, feats, beam_size=1, max_len=6)
    assert [x.tokens for x in g] == [x.tokens for x in b]
    assert all(abs(x.score - y.score) < 1e-5 for x, y in zip(g, b))


def test_batched_equals_one_image_at_a_time():
    dec = tiny(3)
    feats = torch.randn(9, 2, 4)
    batched = beam_search(dec, feats, beam_size=4, max_len=7, return_all=True)
    for i in range(9):
        single = beam_search(dec, feats[i:i + 1], beam_size=4, max_len=7, return_all=True)[0]
        assert single.tokens == batched[i].tokens and abs(single.score - batched[i].score) < 1e-5
        assert [h.tokens for h in single.alternatives] == [h.tokens for h in batched[i].alternatives]
        assert torch.allclose(single.alphas, batched[i].alphas, atol=1e-6)


def test_beam_larger_than_vocab_and_all_hypotheses():
    dec = tiny(1)
    feats = torch.randn(2, 2, 4)
    out = beam_search(dec, feats, beam_size=50, max_len=2, return_all=True)
    for c in out:
        assert 1 <= len(c.alternatives) <= 50
        scores = [h.score for h in c.alternatives]
        assert scores == sorted(scores, reverse=True) and len({tuple(h.tokens) for h in c.alternatives}) == len(scores)


def test_length_normalisation_changes_the_ranking_as_defined():
    dec = tiny(2)
    feats = torch.randn(1, 2, 4)
    c = beam_search(dec, feats, beam_size=10, max_len=5, length_norm=1.0, return_all=True)[0]
    plain = beam_search(dec, feats, beam_size=10, max_len=5, return_all=True)[0]
    by_tokens = {tuple(h.tokens): h.score for h in plain.alternatives}
    for h in c.alternatives:
        assert abs(h.score - by_tokens[tuple(h.tokens)] / len(h.tokens)) < 1e-5


def test_attention_maps_and_sampling():
    dec = tiny(0)
    feats = torch.randn(3, 2, 4)
    c = beam_search(dec, feats, beam_size=3, max_len=5)[0]
    assert c.alphas.shape == (len(c.tokens), 2) and torch.allclose(c.alphas.sum(1), torch.ones(len(c.tokens)))
    g = torch.Generator().manual_seed(0)
    s1 = sample(dec, feats, temperature=1.0, generator=g)
    g = torch.Generator().manual_seed(0)
    assert [x.tokens for x in s1] == [x.tokens for x in sample(dec, feats, temperature=1.0, generator=g)]
    assert all(PAD not in x.tokens and START not in x.tokens for x in s1)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_stopping_once_a_finished_caption_beats_every_live_one_changes_nothing(K):
    """The early stop (off with return_all) gives the caption, score and attention of the full search."""
    for seed in range(8):
        dec = tiny(seed)
        with torch.no_grad():
            dec.fc.bias[END] += 1.0                       # captions that finish at different steps
        feats = torch.randn(9, 2, 4)
        early = beam_search(dec, feats, beam_size=K, max_len=8)
        full = beam_search(dec, feats, beam_size=K, max_len=8, return_all=True)
        for e, f in zip(early, full):
            assert e.tokens == f.tokens and abs(e.score - f.score) < 1e-6
            assert torch.allclose(e.alphas, f.alphas)


def peaked(seed, vocab, regions, sizes, sharpen, images):
    """An attention decoder of sizes (E, M, H, A) with its output layer scaled by `sharpen`, and random regions."""
    torch.manual_seed(seed)
    E, M, H, A = sizes
    dec = build_decoder(DecoderConfig(vocab_size=vocab, encoder_dim=E, embed_dim=M, hidden_dim=H, attention_dim=A,
                                      dropout=0.0)).eval()
    with torch.no_grad():
        dec.fc.weight.mul_(sharpen)
    return dec, torch.randn(images, regions, E)


@pytest.mark.parametrize("K", [1, 3, 5])
def test_the_benchmarks_independent_per_image_search_finds_the_same_captions(K):
    """benchmarks/classic.py re-implements the search the tutorial's way (one image, its own attention and
    bookkeeping, finished hypotheses kept in a list): the benchmark's 'captions identical' relies on it."""
    from benchmarks.classic import classic_beam

    dec, feats = peaked(4, vocab=12, regions=4, sizes=(6, 4, 5, 3), sharpen=3, images=30)
    assert classic_beam(dec, feats, K, 8) == [c.tokens for c in beam_search(dec, feats, K, 8)]


def test_searches_give_the_same_captions_with_the_fast_step_as_with_the_readable_one():
    """greedy and beam search decode with decoder.for_search() (fused.SearchStep); seen through its
    readable interface only, the decoder gives the lessons' decoder.step: same captions, scores, attention."""
    dec, feats = peaked(5, vocab=40, regions=9, sizes=(16, 8, 12, 10), sharpen=5, images=24)
    readable = SimpleNamespace(init_state=dec.init_state, prepare=dec.prepare, step=dec.step)
    for search in (lambda d: greedy(d, feats, 12), lambda d: beam_search(d, feats, 4, 12)):
        fast, ref = search(dec), search(readable)
        assert [c.tokens for c in fast] == [c.tokens for c in ref]
        assert all(abs(a.score - b.score) < 1e-4 and torch.allclose(a.alphas, b.alphas, atol=1e-5) for a, b in zip(fast, ref))
