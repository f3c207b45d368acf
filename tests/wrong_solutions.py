"""Wrong solutions as learners write them, for tests/test_catalogue.py (not a test file).

Written from what the exercise asks, not from the checks' `Mistake`s: several compute the same wrong thing in
another way, and some make a slip no `Mistake` lists, which only a probe can name.
"""
import math
import re
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from captionlib.bleu import corpus_bleu, ngrams, sentence_bleu
from captionlib.vocab import tokenize

END = 2

def b_swapped(scores, logp, k):
    V = logp.shape[1]
    total = scores.unsqueeze(1) + logp
    top, idx = total.view(-1).topk(k)
    return top, idx % V, idx // V

def b_per_beam(scores, logp, k):
    total = scores[:, None] + logp
    best, w = total.max(dim=1)
    vals, order = best.sort(descending=True)
    return vals[:k], order[:k], w[order][:k]

def b_by_K(scores, logp, k):
    K = logp.shape[0]
    top, idx = (scores[:, None] + logp).flatten().topk(k)
    return top, torch.div(idx, K, rounding_mode="floor"), idx % logp.shape[1]

def b_logp_only(scores, logp, k):
    V = logp.shape[1]
    top, idx = logp.flatten().topk(k)
    return top, idx // V, idx % V

def b_true_div(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).flatten().topk(k)
    return top, idx / V, idx % V

def b_in_place(scores, logp, k):
    V = logp.shape[1]
    logp += scores[:, None]
    top, idx = logp.flatten().topk(k)
    return top, idx // V, idx % V

def b_first_k_beams(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:k, None] + logp[:k]).flatten().topk(k)   # "k beams go on, so look at k of them"
    return top, idx // V, idx % V

def f_no_else(seqs, scores, finished, length_norm=0.0):
    done = list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
    return seqs, scores, done

def f_no_norm(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_len_without_end(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / (len(s) - 1) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_times(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc * len(s) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_swapped_pair(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((s, sc / len(s) ** length_norm))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def f_forgot_old(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], []
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done

def bp_first_closest(c, rs):
    r = min(rs, key=lambda x: abs(x - c))
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_shortest(c, rs):
    r = min(rs)
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_no_exp(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return 1.0 if c > r else 1 - r / c

def bp_mean(c, rs):
    r = sum(rs) / len(rs)
    return 1.0 if c > r else math.exp(1 - r / c)

def bp_inverted(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return 1.0 if c > r else math.exp(1 - c / r)

def bp_always(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return math.exp(1 - r / c)

def _closest(rs, c):
    return min((len(r) for r in rs), key=lambda x: (abs(x - c), x))

def _counts(refs, hyps, max_n, clip=True):
    m, t = [0] * (max_n + 1), [0] * (max_n + 1)
    c = r = 0
    for rs, h in zip(refs, hyps):
        for n in range(1, max_n + 1):
            g = ngrams(h, n)
            most = Counter()
            for ref in rs:
                most |= ngrams(ref, n)
            m[n] += sum((g & most).values()) if clip else sum(k for x, k in g.items() if x in most)
            t[n] += sum(g.values())
        c += len(h); r += _closest(rs, len(h))
    return m, t, c, r

def c_avg(refs, hyps, max_n=4):
    return sum(sentence_bleu(r, h, max_n, smoothing=None) for r, h in zip(refs, hyps)) / len(hyps)

def c_unclipped(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n, clip=False)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_arith(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * sum(m[n] / t[n] for n in range(1, max_n + 1)) / max_n

def c_bp_per_sentence(refs, hyps, max_n=4):
    m, t, _, _ = _counts(refs, hyps, max_n)
    bps = [1.0 if len(h) > _closest(rs, len(h)) else math.exp(1 - _closest(rs, len(h)) / len(h)) for rs, h in zip(refs, hyps)]
    return sum(bps) / len(bps) * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_shortest_r(refs, hyps, max_n=4):
    m, t, c, _ = _counts(refs, hyps, max_n)
    r = sum(min(len(x) for x in rs) for rs in refs)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_pooled_over_n(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * sum(m[1:]) / sum(t[1:])

def c_no_bp(refs, hyps, max_n=4):
    m, t, c, r = _counts(refs, hyps, max_n)
    return math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)

def c_always4(refs, hyps, max_n=4):
    return corpus_bleu(refs, hyps, 4)

def k_unclipped(h, refs, n):
    g = ngrams(h, n); seen = set().union(*(ngrams(r, n) for r in refs))
    return sum(k for x, k in g.items() if x in seen), sum(g.values())

def k_first_ref(h, refs, n):
    g, r = ngrams(h, n), ngrams(refs[0], n)
    return sum(min(k, r[x]) for x, k in g.items()), sum(g.values())

def k_min_over_refs(h, refs, n):
    g = ngrams(h, n)
    return sum(min(k, *(ngrams(r, n)[x] for r in refs)) for x, k in g.items()), sum(g.values())

def k_unique_total(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()), len(g)

def k_precision(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()) / sum(g.values())

def k_summed(h, refs, n):
    g, total = ngrams(h, n), Counter()
    for r in refs: total.update(ngrams(r, n))
    return sum(min(k, total[x]) for x, k in g.items()), sum(g.values())

def k_ref_total(h, refs, n):
    g = ngrams(h, n); most = Counter()
    for r in refs: most |= ngrams(r, n)
    return sum((g & most).values()), sum(most.values())



# ---------------------------------------------------------------- lessons 00 and 01
SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def v_no_specials(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w))


def v_specials_last(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w)) + SPECIALS


def v_strict(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return SPECIALS + sorted((w for w in counts if counts[w] > min_freq), key=lambda w: (-counts[w], w))


def v_reverse_sort(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return SPECIALS + [w for w in sorted(counts, key=counts.get, reverse=True) if counts[w] >= min_freq]


def v_lower_split(captions, min_freq):
    counts = Counter(w for c in captions for w in c.lower().split())
    return SPECIALS + sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w))


def v_once_per_caption(captions, min_freq):
    counts = Counter(w for c in captions for w in set(tokenize(c)))
    return SPECIALS + sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w))


def v_rare_first(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return SPECIALS + sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (counts[w], w))


def e_no_specials(caption, word_to_idx):
    return [word_to_idx.get(w, word_to_idx["<unk>"]) for w in tokenize(caption)]


def e_only_start(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, word_to_idx["<unk>"]) for w in tokenize(caption)]


def e_skip_unknown(caption, word_to_idx):
    ids = [word_to_idx[w] for w in tokenize(caption) if w in word_to_idx]
    return [word_to_idx["<start>"]] + ids + [word_to_idx["<end>"]]


def e_lower_split(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, word_to_idx["<unk>"]) for w in caption.lower().split()] + [word_to_idx["<end>"]]


def e_keyerror(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx[w] for w in tokenize(caption)] + [word_to_idx["<end>"]]


def e_words(caption, word_to_idx):
    return ["<start>"] + [w if w in word_to_idx else "<unk>" for w in tokenize(caption)] + ["<end>"]


def e_unk_as_pad(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, 0) for w in tokenize(caption)] + [word_to_idx["<end>"]]


def d_no_stop(ids, idx_to_word):
    return " ".join(idx_to_word[i] for i in ids if idx_to_word[i] not in ("<start>", "<end>", "<pad>"))


def d_keep_start(ids, idx_to_word):
    out = []
    for i in ids:
        if idx_to_word[i] == "<end>":
            break
        if idx_to_word[i] != "<pad>":
            out.append(idx_to_word[i])
    return " ".join(out)


def d_list(ids, idx_to_word):
    out = []
    for i in ids:
        w = idx_to_word[i]
        if w == "<end>":
            break
        if w not in ("<start>", "<pad>"):
            out.append(w)
    return out


def d_include_end(ids, idx_to_word):
    out = []
    for i in ids:
        w = idx_to_word[i]
        if w not in ("<start>", "<pad>"):
            out.append(w)
        if w == "<end>":
            break
    return " ".join(out)


def d_last_end(ids, idx_to_word):
    words = [idx_to_word[i] for i in ids]
    if "<end>" in words:
        words = words[: len(words) - 1 - words[::-1].index("<end>")]
    return " ".join(w for w in words if w not in ("<start>", "<pad>", "<end>"))


def d_no_space(ids, idx_to_word):
    out = []
    for i in ids:
        w = idx_to_word[i]
        if w == "<end>":
            break
        if w not in ("<start>", "<pad>"):
            out.append(w)
    return "".join(out)


def r_reshape(f):
    B, E, h, w = f.shape
    return f.reshape(B, h * w, E)


def r_view(f):
    return f.view(f.shape[0], -1, f.shape[1])


def r_col_major(f):
    return f.transpose(1, 3).reshape(f.shape[0], -1, f.shape[1])


def r_no_transpose(f):
    return f.flatten(2)


def r_flatten_all(f):
    return f.flatten(1)


def r_permute_wrong(f):
    return f.permute(0, 3, 2, 1).flatten(1, 2)


def p_dim2(f, how):
    return f.mean(2) if how == "avg" else f.max(2).values


def p_batch(f, how):
    return f.mean(0) if how == "avg" else f.max(0).values


def p_tuple(f, how):
    return f.mean(1) if how == "avg" else f.max(1)


def p_swapped(f, how):
    return f.max(1).values if how == "avg" else f.mean(1)


def p_sum(f, how):
    return f.sum(1) if how == "avg" else f.max(1).values


def p_indices(f, how):
    return f.mean(1) if how == "avg" else torch.max(f, 1)[1]


def p_wrong_name(f, how):
    return f.mean(1) if how == "average" else f.max(1).values


def _px(im, size):
    return torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32))


def q_no_norm(im, size):
    return _px(im, size).permute(2, 0, 1) / 255


def q_no_scale(im, size):
    return (_px(im, size).permute(2, 0, 1) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def q_channels_last(im, size):
    return (_px(im, size) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)


def q_swapped_mean_std(im, size):
    return (_px(im, size).permute(2, 0, 1) / 255 - torch.tensor(STD).view(3, 1, 1)) / torch.tensor(MEAN).view(3, 1, 1)


def q_half(im, size):
    return (_px(im, size).permute(2, 0, 1) / 255 - 0.5) / 0.5


def q_no_rgb(im, size):
    x = torch.from_numpy(np.asarray(im.resize((size, size)), dtype=np.float32))
    return (x.permute(2, 0, 1) / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def q_transposed(im, size):
    return ((_px(im, size).permute(2, 1, 0) / 255) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def q_float64(im, size):
    x = torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float64))
    return (x.permute(2, 0, 1) / 255 - torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)) / torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)


# ---------------------------------------------------------------- lesson 02
def _g(x, h, W_ih, W_hh, b_ih, b_hh):
    return (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)


def s_ifog(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, o, g = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def s_no_tanh_h(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c, c


def s_two_slips(x, h, c, W_ih, W_hh, b_ih, b_hh):           # sigmoid candidate, and h from c_prev
    i, f, g, o = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.sigmoid(g)
    return torch.sigmoid(o) * torch.tanh(c), c_new


def s_tanh_o(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.tanh(o) * torch.tanh(c), c


def s_no_b_hh(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def s_no_transpose(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih + b_ih + h @ W_hh + b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def s_forget_on_candidate(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c = c + torch.sigmoid(f) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def s_returns_c_h(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _g(x, h, W_ih, W_hh, b_ih, b_hh)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


def u_no_carry(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h_t, c_t = cell(xs[:, t], (h, c))
        hs.append(h_t)
    return torch.stack(hs, dim=1), (h_t, c_t)


def u_time_major(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.stack(hs), (h, c)


def u_collects_c(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(c)
    return torch.stack(hs, dim=1), (h, c)


def u_list(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return hs, (h, c)


def u_shifted(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        hs.append(h)
        h, c = cell(xs[:, t], (h, c))
    return torch.stack(hs, dim=1), (h, c)


def u_initial_state_returned(xs, h0, c0, cell):
    h, c = h0, c0
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.stack(hs, dim=1), (h0, c0)


def u_in_place(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h_new, c_new = cell(xs[:, t], (h, c))
        h[:], c[:] = h_new, c_new
        hs.append(h.clone())
    return torch.stack(hs, dim=1), (h, c)


def u_batch_loop(xs, h, c, cell):
    hs = []
    for x in xs.transpose(0, 1)[:-1]:                      # stops one step early
        h, c = cell(x, (h, c))
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)


# ---------------------------------------------------------------- lessons 03 and 04
def t_own_words(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words, out = captions[:, 0], []
    for t in range(captions.shape[1] - 1):
        logits, state, _ = decoder.step(words, state, features, memo)
        out.append(logits)
        words = logits.argmax(dim=1)
    return torch.stack(out, dim=1)


def t_all_steps(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1]):
        logits, state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits)
    return torch.stack(out, dim=1)


def t_time_major(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits)
    return torch.stack(out)


def t_fresh_state(decoder, features, captions):
    memo = decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, _, _ = decoder.step(captions[:, t], decoder.init_state(features), features, memo)
        out.append(logits)
    return torch.stack(out, dim=1)


def t_next_word(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(1, captions.shape[1]):
        logits, state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits)
    return torch.stack(out, dim=1)


def t_state_not_kept(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, new_state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits)
    return torch.stack(out, dim=1)


def t_softmax(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, state, _ = decoder.step(captions[:, t], state, features, memo)
        out.append(logits.softmax(-1))
    return torch.stack(out, dim=1)


def a_gate_on_h(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([decoder.embedding(words), context], dim=1), (beta * h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def a_no_gate(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    h, c = decoder.cell(torch.cat([decoder.embedding(words), context], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def a_beta_no_sigmoid(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    h, c = decoder.cell(torch.cat([decoder.embedding(words), decoder.f_beta(h) * context], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def a_cat_order(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([beta * context, decoder.embedding(words)], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def a_old_h_logits(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h2, c2 = decoder.cell(torch.cat([decoder.embedding(words), beta * context], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h2, c2), alpha


def a_no_dropout(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([decoder.embedding(words), beta * context], dim=1), (h, c))
    return decoder.fc(h), (h, c), alpha


def a_zero_state(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([decoder.embedding(words), beta * context], dim=1))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def a_mean_context(decoder, words, state, features, projected):
    h, c = state
    _, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    h, c = decoder.cell(torch.cat([decoder.embedding(words), beta * features.mean(1)], dim=1), (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


# ---------------------------------------------------------------- lesson 05
def n_argmax(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = logits[:, t - 1].argmax(dim=-1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def n_raw_logits(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = torch.multinomial(logits[:, t - 1], 1, generator=generator).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def n_one_coin(embedding, captions, logits, t, sample_prob, generator=None):
    if torch.rand(1, generator=generator).item() < sample_prob:
        own = torch.multinomial(F.softmax(logits[:, t - 1], -1), 1, generator=generator).squeeze(1)
        return embedding(own)
    return embedding(captions[:, t])


def n_step_t(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = torch.multinomial(F.softmax(logits[:, t], -1), 1, generator=generator).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def n_no_generator(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0]) < sample_prob
    own = torch.multinomial(F.softmax(logits[:, t - 1].detach(), -1), 1).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def n_inverted(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) > sample_prob
    own = torch.multinomial(F.softmax(logits[:, t - 1].detach(), -1), 1, generator=generator).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def n_next_true(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = torch.multinomial(F.softmax(logits[:, t - 1].detach(), -1), 1, generator=generator).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t + 1]))


def n_soft(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    torch.multinomial(F.softmax(logits[:, t - 1].detach(), -1), 1, generator=generator)
    mine = F.softmax(logits[:, t - 1], -1) @ embedding.weight
    return torch.where(coin[:, None], mine, embedding(captions[:, t]))


def n_words_not_embedded(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = torch.multinomial(F.softmax(logits[:, t - 1].detach(), -1), 1, generator=generator).squeeze(1)
    return torch.where(coin, own, captions[:, t])


# ---------------------------------------------------------------- lesson 06, the start of a batched beam

def fs_zeros(batch, k):
    return torch.zeros(batch, k)


def fs_uniform(batch, k):
    return torch.full((batch, k), math.log(1 / k))                 # "each beam equally likely"


def fs_transposed(batch, k):
    scores = torch.full((k, batch), -math.inf)
    scores[0] = 0.0
    return scores


def fs_all_dead(batch, k):
    return torch.full((batch, k), -math.inf)


def fs_one(batch, k):
    scores = torch.full((batch, k), -math.inf)
    scores[:, 0] = 1.0                                              # "probability 1"
    return scores


def fs_list(batch, k):
    return [[0.0] + [-math.inf] * (k - 1) for _ in range(batch)]


# ---------------------------------------------------------------- held out
# Written after the probes, without looking at them (tests/test_catalogue.py: HELD_OUT).

def h_vocab_specials_order(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    return ["<start>", "<pad>", "<end>", "<unk>"] + sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w))


def h_vocab_no_lower(captions, min_freq):
    counts = Counter(w for c in captions for w in re.findall(r"\w+", c))
    return ["<pad>", "<start>", "<end>", "<unk>"] + sorted((w for w in counts if counts[w] >= min_freq), key=lambda w: (-counts[w], w))


def h_encode_tensor(caption, word_to_idx):
    return torch.tensor([word_to_idx["<start>"]] + [word_to_idx.get(w, word_to_idx["<unk>"]) for w in tokenize(caption)] + [word_to_idx["<end>"]])


def h_decode_stop_at_pad(ids, idx_to_word):
    out = []
    for i in ids:
        w = idx_to_word[i]
        if w == "<pad>":
            break
        if w not in ("<start>", "<end>"):
            out.append(w)
    return " ".join(out)


def h_regions_view_back(f):
    B, E = f.shape[:2]
    return f.flatten(2).transpose(1, 2).contiguous().view(B, E, -1)


def h_pool_amax(f, how):
    return f.mean(1) if how == "avg" else torch.amax(f, dim=(0, 1))


def h_pre_256(im, size):
    x = torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32)).permute(2, 0, 1) / 256
    return (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def h_step_tanh_f(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)
    c = torch.tanh(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def h_step_fi_swapped(x, h, c, W_ih, W_hh, b_ih, b_hh):
    f, i, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def h_unroll_reversed(xs, h, c, cell):
    hs = []
    for t in reversed(range(xs.shape[1])):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.stack(hs, 1), (h, c)


def h_shift_swapped(c):
    return c[:, 1:], c[:, :-1]


def h_loss_per_batch(logits, targets, pad_idx=0):
    per = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (per * (targets != pad_idx)).sum() / targets.shape[0]


def h_tf_always_start(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    out = []
    for t in range(captions.shape[1] - 1):
        logits, state, _ = decoder.step(captions[:, 0], state, features, memo)
        out.append(logits)
    return torch.stack(out, 1)


def h_attend_tanh_on_projected_only(f, p, h, W_h, w):
    e = (torch.tanh(p) + (h @ W_h.T).unsqueeze(1)) @ w
    a = torch.softmax(e, 1)
    return (a.unsqueeze(2) * f).sum(1), a


def h_step_attend_with_new_h(decoder, words, state, features, projected):
    h, c = state
    beta = torch.sigmoid(decoder.f_beta(h))
    context0, _ = decoder.attention(features, projected, h)
    h2, c2 = decoder.cell(torch.cat([decoder.embedding(words), beta * context0], 1), (h, c))
    _, alpha = decoder.attention(features, projected, h2)
    return decoder.fc(decoder.dropout(h2)), (h2, c2), alpha


def h_sched_temperature(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(captions.shape[0], generator=generator) < sample_prob
    own = torch.multinomial(F.softmax(logits[:, t - 1].detach() / 2, -1), 1, generator=generator).squeeze(1)
    return torch.where(coin[:, None], embedding(own), embedding(captions[:, t]))


def h_beam_smallest(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k, largest=False)
    return top, idx // V, idx % V


def h_finished_first_token(seqs, scores, finished, length_norm=0.0):
    live, ls, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[0] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s); ls.append(sc)
    return live, ls, done


def h_bp_flipped_ratio(c, rs):
    r = min(rs, key=lambda x: (abs(x - c), x))
    return 1.0 if c > r else math.exp(r / c - 1)


def h_bleu_all_refs_length(refs, hyps, max_n=4):
    m, t = [0] * (max_n + 1), [0] * (max_n + 1)
    c = r = 0
    for rs, h in zip(refs, hyps):
        for n in range(1, max_n + 1):
            g, most = ngrams(h, n), Counter()
            for ref in rs:
                most |= ngrams(ref, n)
            m[n] += sum((g & most).values()); t[n] += sum(g.values())
        c += len(h); r += sum(len(x) for x in rs)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m[n] / t[n]) for n in range(1, max_n + 1)) / max_n)


def h_clip_window_off(h, refs, n):
    g = Counter(tuple(h[i:i + n]) for i in range(len(h) - n))      # one n-gram short
    most = Counter()
    for r in refs:
        most |= ngrams(r, n)
    return sum((g & most).values()), sum(g.values())


def h_first_live_last(batch, k):
    s = torch.zeros(batch, k)
    s[:, 0] = -math.inf                                              # "the first is special"
    return s


# ------------------------------------------------------------------ issue 29's new exercises: train_step (lesson 03),
# greedy_decode (05), scst_loss (08) and leave_one_out (09), each slip written as a learner writes it

from captionlib.exercises.l03 import masked_loss  # noqa: E402
from captionlib.exercises.l05 import END as G_END, START, greedy_decode  # noqa: E402

def ts_no_zero(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); optimizer.step(); return loss.item()


def ts_clip_after(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); loss.backward(); optimizer.step(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); return loss.item()


def ts_no_clip(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); loss.backward(); optimizer.step(); return loss.item()


def ts_step_first(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); optimizer.step(); loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); return loss.item()


def ts_item_backward(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx).item()
    optimizer.zero_grad(); loss.backward(); optimizer.step(); return loss


def ts_evalmode(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); optimizer.step(); return loss.item()


def ts_new_opt(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    opt=torch.optim.Adam(decoder.parameters(), lr=1e-3)
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); opt.step(); return loss.item()


def ts_wrong_shift(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,:-1],pad_idx)
    optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); optimizer.step(); return loss.item()


def ts_ret_tensor(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); optimizer.step(); return loss


def ts_norm_clip(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(decoder.parameters(), grad_clip); optimizer.step(); return loss.item()


def ts_zero_after(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train(); logits,_=decoder(features,captions); loss=masked_loss(logits,captions[:,1:],pad_idx)
    loss.backward(); optimizer.zero_grad(); torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip); optimizer.step(); return loss.item()


def gd_no_mask(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    words=torch.full((B,),START); caps=[[] for _ in range(B)]; done=torch.zeros(B,dtype=torch.bool)
    for _ in range(max_len):
        logits,state,_=decoder.step(words,state,features,memo); words=logits.argmax(-1)
        for b in range(B):
            if not done[b]: caps[b].append(int(words[b]))
        done|=words==G_END
        if done.all(): break
    return caps


def gd_no_stop(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    words=torch.full((B,),START); caps=[[] for _ in range(B)]
    for _ in range(max_len):
        logits,state,_=decoder.step(words,state,features,memo); logits[:,[0,1]]=-1e9; words=logits.argmax(-1)
        for b in range(B): caps[b].append(int(words[b]))
    return caps


def gd_grows(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    words=torch.full((B,),START); caps=[[] for _ in range(B)]; done=torch.zeros(B,dtype=torch.bool)
    for _ in range(max_len):
        logits,state,_=decoder.step(words,state,features,memo); logits[:,[0,1]]=-1e9; words=logits.argmax(-1)
        for b in range(B): caps[b].append(int(words[b]))
        done|=words==G_END
        if done.all(): break
    return caps


def gd_feeds_start(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    start=torch.full((B,),START); caps=[[] for _ in range(B)]; done=torch.zeros(B,dtype=torch.bool)
    for _ in range(max_len):
        logits,state,_=decoder.step(start,state,features,memo); logits[:,[0,1]]=-1e9; words=logits.argmax(-1)
        for b in range(B):
            if not done[b]: caps[b].append(int(words[b]))
        done|=words==G_END
        if done.all(): break
    return caps


def gd_squeezer(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    words=torch.full((B,),START); caps=[[] for _ in range(B)]; done=torch.zeros(B,dtype=torch.bool)
    for _ in range(max_len):
        logits,state,_=decoder.step(words,state,features,memo); logits[:,[0,1]]=-1e9; words=logits.argmax(-1,keepdim=True).squeeze()
        for b in range(B):
            if not done[b]: caps[b].append(int(words[b]))
        done|=words==G_END
        if done.all(): break
    return caps


def gd_wrong_axis(decoder, features, max_len=20):
    B=features.shape[0]; state,memo=decoder.init_state(features),decoder.prepare(features)
    words=torch.full((B,),START); caps=[[] for _ in range(B)]; done=torch.zeros(B,dtype=torch.bool)
    for _ in range(max_len):
        logits,state,_=decoder.step(words,state,features,memo); logits[:,[0,1]]=-1e9; words=logits.argmax(0)
        for b in range(B):
            if not done[b]: caps[b].append(int(words[b]))
        done|=words==G_END
        if done.all(): break
    return caps


def gd_off_by_one(decoder, features, max_len=20):
    return greedy_decode(decoder, features, max_len - 1)


def gd_with_start(decoder, features, max_len=20):
    return [[START] + c for c in greedy_decode(decoder, features, max_len)]


def gd_no_end_token(decoder, features, max_len=20):
    return [[w for w in c if w != G_END] for c in greedy_decode(decoder, features, max_len)]


def sl_sign(lp,m,r,b): return ((r-b).detach()*(lp*m).sum(1)).mean()


def sl_nobase(lp,m,r,b): return -(r.detach()*(lp*m).sum(1)).mean()


def sl_nodetach(lp,m,r,b): return -((r-b)*(lp*m).sum(1)).mean()


def sl_nomask(lp,m,r,b): return -((r-b).detach()*lp.sum(1)).mean()


def sl_meanwords(lp,m,r,b): return -((r-b).detach()*(lp*m).mean(1)).mean()


def sl_allmean(lp,m,r,b): return -((r-b).detach()[:,None]*(lp*m)).mean()


def sl_summed(lp,m,r,b): return -((r-b).detach()*(lp*m).sum(1)).sum()


def sl_vec(lp,m,r,b): return -((r-b).detach()*(lp*m).sum(1))


def sl_itemed(lp,m,r,b): return torch.tensor(-((r-b).detach()*(lp*m).sum(1)).mean().item())


def loo_allrefs(R,H,s): return s(R,H)


def loo_short(R,H,s):
    K=min(len(r) for r in R); return sum(s([r[:k]+r[k+1:] for r in R],H) for k in range(K-1))/(K-1)


def loo_mx(R,H,s):
    K=min(len(r) for r in R); return max(s([r[:k]+r[k+1:] for r in R],H) for k in range(K))


def loo_per_image(R,H,s):
    K=min(len(r) for r in R); return sum(s([r[:k]+r[k+1:]],[h]) for r,h in zip(R,H) for k in range(K))/(K*len(R))


def loo_byimages(R,H,s):
    K=min(len(r) for r in R); return sum(s([r[:k]+r[k+1:] for r in R],H) for k in range(K))/len(R)


def loo_lastonly(R,H,s): return s([r[:-1] for r in R],H)


def loo_firstK(R,H,s):
    K=min(len(r) for r in R); return sum(s([r[:k]+r[k+1:] for r in R],H) for k in range(K))/3
