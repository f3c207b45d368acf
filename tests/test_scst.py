"""Self-critical training: the pieces of the policy gradient, each against a direct computation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from captionlib.beam import END, START
from captionlib.cider import CiderD
from captionlib.decoder import DecoderConfig, build_decoder
from captionlib.scst import sample_captions, scst_loss, self_critical_advantage, sequence_logprob
from captionlib.vocab import Vocab


def _model(seed=0):
    torch.manual_seed(seed)
    vocab = Vocab.build(["a red circle", "a blue square", "two green balls"])
    dec = build_decoder(DecoderConfig(vocab_size=len(vocab), encoder_dim=6, embed_dim=8, hidden_dim=16, attention_dim=8))
    return dec.eval(), vocab, torch.randn(3, 4, 6)


def test_the_baseline_is_the_mean_of_the_other_samples():
    r = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])                     # two images, three samples each
    assert self_critical_advantage(r, 3).tolist() == [1 - 4, 2 - 3.5, 6 - 1.5, 0 - 1.5, 0 - 1.5, 3 - 0]


def test_sampled_captions_are_well_formed_and_reproducible():
    dec, _, feats = _model()
    caps, tokens = sample_captions(dec, feats, 4, 6, torch.Generator().manual_seed(1))
    again, _ = sample_captions(dec, feats, 4, 6, torch.Generator().manual_seed(1))
    assert caps.shape[0] == 12 and torch.equal(caps, again) and (caps[:, 0] == START).all()
    for row, t in zip(caps, tokens):
        assert row[1:1 + len(t)].tolist() == t and (row[1 + len(t):] == 0).all()
        assert END not in t[:-1] and len(t) <= 6


def test_sequence_logprob_is_the_sum_of_the_step_by_step_log_probabilities():
    dec, _, feats = _model()
    caps, tokens = sample_captions(dec, feats, 2, 6, torch.Generator().manual_seed(2))
    got = sequence_logprob(dec, feats.repeat_interleave(2, 0), caps)
    for r, t in enumerate(tokens):
        f = feats[r // 2: r // 2 + 1]
        state, memo = dec.init_state(f), dec.prepare(f)
        total, word = 0.0, torch.tensor([START])
        for w in t:
            logits, state, _ = dec.step(word, state, f, memo)
            total += F.log_softmax(logits, -1)[0, w].item()
            word = torch.tensor([w])
        assert abs(got[r].item() - total) < 1e-4


def test_a_step_makes_the_better_samples_likelier():
    """One gradient step on the SCST loss raises the log-probability of the samples that scored above
    their siblings and lowers it for those below."""
    dec, vocab, feats = _model()
    refs = [[["a", "red", "circle"]], [["a", "blue", "square"]], [["two", "green", "balls"]]]
    cider = CiderD(refs)
    g = torch.Generator().manual_seed(3)
    caps, tokens = sample_captions(dec, feats, 4, 6, torch.Generator().manual_seed(3))
    rewards = torch.tensor(cider.scores([i for i in range(3) for _ in range(4)], [vocab.decode(t, join=False) for t in tokens]))
    adv = self_critical_advantage(rewards.float(), 4)
    before = sequence_logprob(dec, feats.repeat_interleave(4, 0), caps).detach()
    loss, mean_reward = scst_loss(dec, feats, [0, 1, 2], cider.scores, vocab, k=4, max_len=6, generator=g)
    assert abs(mean_reward - rewards.mean().item()) < 1e-6                # the same samples (same generator seed)
    loss.backward()
    with torch.no_grad():
        for p in dec.parameters():
            p -= 1e-2 * p.grad
    change = sequence_logprob(dec, feats.repeat_interleave(4, 0), caps).detach() - before
    moved = adv.abs() > 1e-6
    assert moved.any() and (torch.sign(change[moved]) == torch.sign(adv[moved])).float().mean() >= 0.75


def test_one_sample_per_image_is_refused():
    dec, vocab, feats = _model()
    with pytest.raises(ValueError, match="k must be >= 2"):
        scst_loss(dec, feats, [0, 1, 2], CiderD([[["a"]]] * 3).scores, vocab, k=1)


def test_the_reward_adds_the_meteor_part_when_asked():
    from captionlib.meteor import meteor_exact
    from captionlib.scst import Reward

    refs = [[["a", "red", "circle"], ["one", "red", "ball"]], [["a", "blue", "square"]]]
    caps = [["a", "red", "ball"], ["a", "square"]]
    plain, mixed = Reward(refs)([0, 1], caps), Reward(refs, meteor=2.0)([0, 1], caps)
    assert np.allclose(plain, CiderD(refs).scores([0, 1], caps))
    assert np.allclose(mixed - plain, [2 * meteor_exact(c, refs[i]) for i, c in enumerate(caps)])
