"""Every mistake the lessons promise to diagnose, fed to its check as a learner would write it.

The wrong implementations here are written independently of the checks' own `Mistake`s, so a test
passes only if the check recognises the behaviour, not the code.
"""
import re

import torch
import torch.nn.functional as F

from captionlib.checks import is_reference
from captionlib.exercises import l01, l02, l03, l04


def verdict(capsys, check, fn, reference):
    used = check(fn)
    out = re.sub(r"\n {3,6}(?!Re-read|in your line|The notebook)", " ", capsys.readouterr().out)   # unfolded
    assert is_reference(used, reference), out  # a wrong answer never replaces the reference
    return out


# ---------------------------------------------------------------- lesson 01

def test_l01_to_regions(capsys):
    def view_only(f):
        B, E, h, w = f.shape
        return f.view(B, h * w, E)

    def transposed_grid(f):
        return f.transpose(2, 3).flatten(2).transpose(1, 2)

    assert "scrambled" in verdict(capsys, l01.check_to_regions, view_only, l01.to_regions)
    assert "column-major" in verdict(capsys, l01.check_to_regions, transposed_grid, l01.to_regions)
    assert "(B, E, P)" in verdict(capsys, l01.check_to_regions, lambda f: f.reshape(*f.shape[:2], -1), l01.to_regions)


def test_l01_pool(capsys):
    def wrong_axis(f, how):
        return f.mean(-1) if how == "avg" else f.amax(-1)

    def tuple_max(f, how):
        return f.mean(1) if how == "avg" else torch.max(f, 1)

    assert "feature dimension" in verdict(capsys, l01.check_pool, wrong_axis, l01.pool)
    assert ".values" in verdict(capsys, l01.check_pool, tuple_max, l01.pool)


def test_l01_preprocess_without_normalisation(capsys):
    import numpy as np

    def forgot(img, size):
        a = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        return torch.tensor(a).permute(2, 0, 1)

    assert "normalisation is missing" in verdict(capsys, l01.check_preprocess, forgot, l01.preprocess)


# ---------------------------------------------------------------- lesson 02

def _gates(x, h, Wi, Wh, bi, bh):
    z = x @ Wi.T + bi + h @ Wh.T + bh
    H = h.shape[1]
    return z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]


def test_l02_lstm_step_mistakes(capsys):
    def order_ifog(x, h, c, *w):
        i, f, o, g = _gates(x, h, *w)
        c2 = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c2.tanh(), c2

    def sig_g(x, h, c, *w):
        i, f, g, o = _gates(x, h, *w)
        c2 = f.sigmoid() * c + i.sigmoid() * g.sigmoid()
        return o.sigmoid() * c2.tanh(), c2

    def forgot_f(x, h, c, *w):
        i, f, g, o = _gates(x, h, *w)
        c2 = c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c2.tanh(), c2

    def old_c(x, h, c, *w):
        i, f, g, o = _gates(x, h, *w)
        return o.sigmoid() * c.tanh(), f.sigmoid() * c + i.sigmoid() * g.tanh()

    ref = l02.lstm_step
    assert "(i, f, g, o)" in verdict(capsys, l02.check_lstm_step, order_ifog, ref)
    assert "must be tanh" in verdict(capsys, l02.check_lstm_step, sig_g, ref)
    assert "forget gate is not applied to c_prev" in verdict(capsys, l02.check_lstm_step, forgot_f, ref)
    assert "h is computed from c_prev" in verdict(capsys, l02.check_lstm_step, old_c, ref)


def test_l02_lstm_unroll_without_carrying_state(capsys):
    def forgets(xs, h, c, cell):
        outs = []
        for t in range(xs.shape[1]):
            h_t, c_t = cell(xs[:, t], (h, c))  # never assigned back
            outs.append(h_t)
        return torch.stack(outs, 1), (h_t, c_t)

    assert "not carried across steps" in verdict(capsys, l02.check_lstm_unroll, forgets, l02.lstm_unroll)


# ---------------------------------------------------------------- lesson 03

def test_l03_shift_mistakes(capsys):
    ref = l03.shift_captions
    assert "current word" in verdict(capsys, l03.check_shift_captions, lambda c: (c[:, :-1], c[:, :-1]), ref)
    assert "<start>" in verdict(capsys, l03.check_shift_captions, lambda c: (c[:, :-1], c.clone()), ref)


def test_l03_loss_mistakes(capsys):
    def with_pad(logits, targets, pad_idx=0):
        return F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), targets.flatten())

    def padded_mean(logits, targets, pad_idx=0):
        nll = -F.log_softmax(logits, -1).gather(2, targets.unsqueeze(2)).squeeze(2)
        return (nll * (targets != pad_idx)).mean()

    ref = l03.masked_loss
    assert "<pad> targets are counted" in verdict(capsys, l03.check_masked_loss, with_pad, ref)
    assert "averaged over the padded length" in verdict(capsys, l03.check_masked_loss, padded_mean, ref)


def test_l03_teacher_forcing_mistakes(capsys):
    def predicts_current(decoder, features, captions):
        state, memo = decoder.init_state(features), decoder.prepare(features)
        outs = []
        for t in range(1, captions.shape[1]):
            logits, state, _ = decoder.step(captions[:, t], state, features, memo)
            outs.append(logits)
        return torch.stack(outs, 1)

    assert "shifted the wrong way" in verdict(capsys, l03.check_teacher_forced_logits, predicts_current, l03.teacher_forced_logits)


# ---------------------------------------------------------------- lesson 04

def test_l04_attend_mistakes(capsys):
    def softmax_features(features, projected, h, W_h, w):
        s = torch.tanh(projected + (h @ W_h.T)[:, None, :]).softmax(-1)
        alpha = s @ w
        return torch.einsum("bp,bpe->be", alpha, features), alpha

    def linear_scores(features, projected, h, W_h, w):
        alpha = ((projected + (h @ W_h.T)[:, None, :]) @ w).softmax(1)
        return torch.einsum("bp,bpe->be", alpha, features), alpha

    def not_convex(features, projected, h, W_h, w):
        e = torch.tanh(projected + (h @ W_h.T)[:, None, :]) @ w
        return torch.einsum("bp,bpe->be", e, features), e.softmax(1)

    ref = l04.attend
    assert "feature dimension instead of over the P regions" in verdict(capsys, l04.check_attend, softmax_features, ref)
    assert "tanh is missing" in verdict(capsys, l04.check_attend, linear_scores, ref)
    assert "not a convex combination" in verdict(capsys, l04.check_attend, not_convex, ref)


def test_l04_step_mistakes_and_performance_note(capsys):
    def gated_h(dec, words, state, features, projected):
        h, c = state
        z, alpha = dec.attention(features, projected, h)
        h2, c2 = dec.cell(torch.cat([dec.embedding(words), z], 1), (torch.sigmoid(dec.f_beta(h)) * h, c))
        return dec.fc(h2), (h2, c2), alpha

    assert "applied to h instead of to the context" in verdict(capsys, l04.check_attention_step, gated_h, l04.attention_step)

    def recomputes(dec, words, state, features, projected):
        return l04.attention_step(dec, words, state, features, dec.attention.project(features))

    assert l04.check_attention_step(recomputes) is recomputes  # correct, so it is used...
    assert "performance note" in capsys.readouterr().out       # ...with a note, not a failure


# ---------------------------------------------------------------- lesson 07

def test_l07_bleu_mistakes(capsys):
    import math
    from collections import Counter

    from captionlib.exercises import l07

    def no_clip(hyp, refs, n):
        grams = [tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1)]
        in_refs = {tuple(r[i:i + n]) for r in refs for i in range(len(r) - n + 1)}
        return sum(g in in_refs for g in grams), len(grams)

    assert "no clipping" in verdict(capsys, l07.check_clipped_matches, no_clip, l07.clipped_matches)

    def shortest(c, refs):
        r = sorted(refs)[0]
        return math.exp(1 - r / c) if c <= r else 1.0

    def longest(c, refs):
        r = sorted(refs)[-1]
        return math.exp(1 - r / c) if c <= r else 1.0

    def inverted(c, refs):
        r = min(refs, key=lambda x: (abs(x - c), x))
        return math.exp(1 - c / r) if c <= r else 1.0

    assert "shortest reference" in verdict(capsys, l07.check_brevity_penalty, shortest, l07.brevity_penalty)
    assert "longest reference" in verdict(capsys, l07.check_brevity_penalty, longest, l07.brevity_penalty)
    assert "inverted" in verdict(capsys, l07.check_brevity_penalty, inverted, l07.brevity_penalty)

    def sentence_average(refs, hyps, max_n=4):
        scores = []
        for rs, h in zip(refs, hyps):
            logp = 0.0
            for n in range(1, max_n + 1):
                m, t = l07.clipped_matches(h, rs, n)
                logp += math.log(m / t) / max_n
            scores.append(l07.brevity_penalty(len(h), [len(r) for r in rs]) * math.exp(logp))
        return sum(scores) / len(scores)

    def arithmetic(refs, hyps, max_n=4):
        m, t = Counter(), Counter()
        for rs, h in zip(refs, hyps):
            for n in range(1, max_n + 1):
                a, b = l07.clipped_matches(h, rs, n)
                m[n] += a
                t[n] += b
        c = sum(len(h) for h in hyps)
        r = sum(min((len(x) for x in rs), key=lambda x: (abs(x - len(h)), x)) for rs, h in zip(refs, hyps))
        bp = 1.0 if c > r else math.exp(1 - r / c)
        return bp * sum(m[n] / t[n] for n in range(1, max_n + 1)) / max_n

    assert "average of sentence BLEUs" in verdict(capsys, l07.check_corpus_bleu, sentence_average, l07.corpus_bleu)
    assert "arithmetic mean" in verdict(capsys, l07.check_corpus_bleu, arithmetic, l07.corpus_bleu)


# ---------------------------------------------------------------- lesson 05

def _scheduled(pick_logits, pick_truth, own_where, detach=True, straight_through=False):
    """A learner's scheduled_input, parameterised by what they got wrong."""
    def fn(embedding, captions, logits, t, sample_prob, generator=None):
        u = torch.rand(captions.shape[0], generator=generator)
        prev = pick_logits(logits, t)
        p = F.softmax(prev.detach() if detach else prev, dim=-1)
        own = torch.multinomial(p.detach(), 1, generator=generator)[:, 0]
        use = own_where(u, sample_prob)
        if straight_through:
            hard = F.one_hot(own, p.shape[-1]).float()
            x_own = (hard - p.detach() + p) @ embedding.weight
        else:
            x_own = embedding(own)
        return torch.where(use.unsqueeze(1), x_own, embedding(pick_truth(captions, t)))
    return fn


def test_l05_scheduled_input_mistakes(capsys):
    from captionlib.exercises import l05

    right = dict(pick_logits=lambda lg, t: lg[:, -1], pick_truth=lambda c, t: c[:, t], own_where=lambda u, p: u < p)
    out = capsys.readouterr
    assert l05.check_scheduled_input(_scheduled(**right)) is not l05.scheduled_input
    assert "✅" in out().out
    # no detach at all is fine: an index carries no gradient
    assert l05.check_scheduled_input(_scheduled(**right, detach=False)) is not l05.scheduled_input
    out()

    wrong_step = {**right, "pick_logits": lambda lg, t: lg[:, t - 2]}
    assert "wrong time step" in verdict(capsys, l05.check_scheduled_input, _scheduled(**wrong_step), l05.scheduled_input)
    target_as_input = {**right, "pick_truth": lambda c, t: c[:, t + 1]}
    assert "wrong time step" in verdict(capsys, l05.check_scheduled_input, _scheduled(**target_as_input), l05.scheduled_input)
    inverted = {**right, "own_where": lambda u, p: u > p}
    assert "inverted" in verdict(capsys, l05.check_scheduled_input, _scheduled(**inverted), l05.scheduled_input)
    one_minus = {**right, "own_where": lambda u, p: u < 1 - p}
    assert "inverted" in verdict(capsys, l05.check_scheduled_input, _scheduled(**one_minus), l05.scheduled_input)
    leak = verdict(capsys, l05.check_scheduled_input, _scheduled(**right, detach=False, straight_through=True), l05.scheduled_input)
    assert "gradient flows" in leak and "values are right" in leak


# ---------------------------------------------------------------- lesson 06

def test_l06_beam_step_mistakes(capsys):
    from captionlib.exercises import l06

    def flat_topk(total, k):
        values, index = torch.topk(total.flatten(), k)
        return values, index

    def products(scores, logp, k):
        V = logp.size(1)
        v, i = flat_topk(torch.exp(scores).unsqueeze(1) * torch.exp(logp), k)
        return v, torch.div(i, V, rounding_mode="floor"), torch.remainder(i, V)

    def times_logs(scores, logp, k):
        V = logp.size(1)
        v, i = flat_topk(scores.unsqueeze(1) * logp, k)
        return v, torch.div(i, V, rounding_mode="floor"), torch.remainder(i, V)

    def per_beam(scores, logp, k):
        best, word = (logp + scores.unsqueeze(1)).max(1)       # each beam its best child
        keep = torch.sort(best, descending=True).indices[:k]
        return best[keep], keep, word[keep]

    def mod_div_swapped(scores, logp, k):
        V = logp.size(1)
        v, i = flat_topk(logp + scores.unsqueeze(1), k)
        return v, i % V, i // V

    assert "probabilities are multiplied" in verdict(capsys, l06.check_beam_step, products, l06.beam_step)
    assert "log-probabilities are multiplied" in verdict(capsys, l06.check_beam_step, times_logs, l06.beam_step)
    assert "per beam" in verdict(capsys, l06.check_beam_step, per_beam, l06.beam_step)
    assert "swapped" in verdict(capsys, l06.check_beam_step, mod_div_swapped, l06.beam_step)


def test_l06_collect_finished_mistakes(capsys):
    from captionlib.exercises import l06

    def still_expanding(seqs, scores, finished, length_norm=0.0):
        done = finished + [(s / len(q) ** length_norm, q) for q, s in zip(seqs, scores) if q[-1] == l06.END]
        return seqs, scores, done                               # every hypothesis goes on

    def raw_scores(seqs, scores, finished, length_norm=0.0):
        done = finished + [(s, q) for q, s in zip(seqs, scores) if q[-1] == l06.END]
        live = [(q, s) for q, s in zip(seqs, scores) if q[-1] != l06.END]
        return [q for q, _ in live], [s for _, s in live], done

    assert "keep expanding" in verdict(capsys, l06.check_collect_finished, still_expanding, l06.collect_finished)
    assert "no length normalisation" in verdict(capsys, l06.check_collect_finished, raw_scores, l06.collect_finished)


def test_l00_encode_that_indexes_the_vocabulary_directly_is_told_about_unk(capsys):
    from captionlib.exercises import l00
    from captionlib.vocab import tokenize

    def direct(caption, word_to_idx):
        return [word_to_idx["<start>"]] + [word_to_idx[w] for w in tokenize(caption)] + [word_to_idx["<end>"]]

    out = verdict(capsys, l00.check_encode, direct, l00.encode)
    assert "raised KeyError: 'purple'" in out and "map them to <unk>" in out and "word_to_idx.get" in out


def test_l03_masked_loss_with_the_pad_index_written_as_0_is_told_to_use_pad_idx(capsys):
    def literal_zero(logits, targets, pad_idx=0):
        per = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")          # (B, T)
        mask = (targets != 0).float()
        return (per * mask).sum() / mask.sum()

    out = verdict(capsys, l03.check_masked_loss, literal_zero, l03.masked_loss)
    assert "the pad index is a literal 0: with pad_idx = 3 the padding is counted" in out and "pad_idx argument" in out
