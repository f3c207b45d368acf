"""Blind held-out set of realistic learner mistakes (issue 30), written by a writer who saw only each lesson's task
statement and reference solution, never checks.py, the probes or the catalogues. Kept as a second held-out list:
tests/test_catalogue.py asserts that every one is caught. Do not tune a probe to one item of it; fix the kind.

Each function below has exactly the signature of the exercise it answers, and is written the way a
learner might plausibly write it. `BLIND` at the end lists them with a teacher's description.
"""
import math
import re
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from captionlib.vocab import tokenize
from captionlib.bleu import closest_ref_length

END = 2   # lesson 06: the <end> token's index (vocab.end_idx)


def ref_clipped_matches(hypothesis, references, n):
    """The reference clipped_matches (lesson 07, exercise 1), used by the corpus_bleu mistakes below."""
    grams = lambda s: Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    hyp = grams(hypothesis)
    most = Counter()
    for ref in references:
        most |= grams(ref)
    return sum(min(k, most[g]) for g, k in hyp.items()), sum(hyp.values())


# =====================================================================================
# Lesson 00: build_vocab
# =====================================================================================

def build_vocab_ties_first_seen(captions, min_freq):
    counts = Counter(w for c in captions for w in tokenize(c))
    kept = [w for w, n in counts.most_common() if n >= min_freq]   # most frequent first
    return ["<pad>", "<start>", "<end>", "<unk>"] + kept


def build_vocab_strict_min_freq(captions, min_freq):
    counts = Counter()
    for c in captions:
        counts.update(tokenize(c))
    kept = sorted((w for w, n in counts.items() if n > min_freq), key=lambda w: (-counts[w], w))
    return ["<pad>", "<start>", "<end>", "<unk>"] + kept


def build_vocab_split_no_tokenize(captions, min_freq):
    counts = Counter(w for c in captions for w in c.lower().split())
    kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    return ["<pad>", "<start>", "<end>", "<unk>"] + kept


def build_vocab_ascii_regex(captions, min_freq):
    counts = Counter()
    for c in captions:
        counts.update(re.findall(r"[a-z0-9]+", c.lower()))   # words = runs of letters and digits
    kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    return ["<pad>", "<start>", "<end>", "<unk>"] + kept


# =====================================================================================
# Lesson 00: encode / decode
# =====================================================================================

def encode_no_unk_fallback(caption, word_to_idx):
    return [word_to_idx["<start>"]] + [word_to_idx[w] for w in tokenize(caption)] + [word_to_idx["<end>"]]


def encode_drops_unknown(caption, word_to_idx):
    ids = [word_to_idx["<start>"]]
    for w in tokenize(caption):
        if w in word_to_idx:          # unknown words would crash, so skip them
            ids.append(word_to_idx[w])
    ids.append(word_to_idx["<end>"])
    return ids


def encode_split_no_tokenize(caption, word_to_idx):
    unk = word_to_idx["<unk>"]
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, unk) for w in caption.split()] + [word_to_idx["<end>"]]


def encode_missing_end(caption, word_to_idx):
    unk = word_to_idx["<unk>"]
    return [word_to_idx["<start>"]] + [word_to_idx.get(w, unk) for w in tokenize(caption)]


def decode_skips_end(ids, idx_to_word):
    words = []
    for i in ids:
        word = idx_to_word[i]
        if word in ("<start>", "<end>", "<pad>"):
            continue
        words.append(word)
    return " ".join(words)


def decode_drops_first_token(ids, idx_to_word):
    words = []
    for i in ids[1:]:                      # skip the <start> at the front
        word = idx_to_word[i]
        if word == "<end>":
            break
        if word != "<pad>":
            words.append(word)
    return " ".join(words)


def decode_trailing_space(ids, idx_to_word):
    text = ""
    for i in ids:
        word = idx_to_word[i]
        if word == "<end>":
            break
        if word not in ("<start>", "<pad>"):
            text += word + " "
    return text


def decode_index_of_end(ids, idx_to_word):
    end = idx_to_word.index("<end>")
    ids = list(ids)
    body = ids[:ids.index(end)]            # everything before the first <end>
    return " ".join(idx_to_word[i] for i in body if idx_to_word[i] not in ("<start>", "<pad>"))


# =====================================================================================
# Lesson 01: preprocess
# =====================================================================================

def preprocess_default_resample(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32)
    x = torch.from_numpy(x).permute(2, 0, 1) / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def preprocess_reshape_channels(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(x).reshape(3, size, size) / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def preprocess_no_rgb_convert(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(x).permute(2, 0, 1) / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def preprocess_float64(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR)) / 255.0
    x = torch.from_numpy(x).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def preprocess_normalise_before_scale(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(x).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x / 255.0


def preprocess_numpy_T(img, size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(x.T)) / 255.0          # channels first
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


# =====================================================================================
# Lesson 01: to_regions, pool
# =====================================================================================

def to_regions_plain_reshape(fmap):
    B, E, h, w = fmap.shape
    return fmap.reshape(B, h * w, E)


def to_regions_column_major(fmap):
    B, E, h, w = fmap.shape
    return fmap.permute(0, 3, 2, 1).reshape(B, h * w, E)


def to_regions_one_image(fmap):
    x = fmap.squeeze(0)                          # (E, h, w)
    return x.flatten(1).T.unsqueeze(0)           # (1, P, E)


def pool_keepdim(features, how):
    if how == "avg":
        return features.mean(dim=1, keepdim=True)
    return features.max(dim=1, keepdim=True).values


def pool_max_namedtuple(features, how):
    if how == "avg":
        return features.mean(dim=1)
    return features.max(dim=1)


def pool_squeeze_batch_one(features, how):
    if how == "avg":
        v = features.mean(dim=1)
    else:
        v = features.max(dim=1).values
    return v.squeeze()


def pool_over_channels(features, how):
    if how == "avg":
        return features.mean(dim=-1)
    return features.max(dim=-1).values


# =====================================================================================
# Lesson 02: lstm_step, lstm_unroll
# =====================================================================================

def lstm_step_gate_order_ifog(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, o, g = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_step_sigmoid_all(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = torch.sigmoid(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)
    i, f, g, o = gates.chunk(4, dim=1)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_step_h_from_old_c(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    h_new = o * torch.tanh(c)
    c_new = f * c + i * g
    return h_new, c_new


def lstm_step_chunk_dim0(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, g, o = gates.chunk(4)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_step_one_bias(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = x @ weight_ih.T + h @ weight_hh.T + bias_ih
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_unroll_cat(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.cat(hs, dim=1), (h, c)


def lstm_unroll_time_first(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
    return torch.stack(hs), (h, c)


def lstm_unroll_state_not_carried(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h_t, c_t = cell(xs[:, t], (h, c))
        hs.append(h_t)
    return torch.stack(hs, dim=1), (h_t, c_t)


def lstm_unroll_detach_state(xs, h, c, cell):
    hs = []
    for t in range(xs.shape[1]):
        h, c = cell(xs[:, t], (h, c))
        hs.append(h)
        h, c = h.detach(), c.detach()          # keep the graph small
    return torch.stack(hs, dim=1), (h, c)


def lstm_unroll_loop_over_batch(xs, h, c, cell):
    hs = []
    for x in xs:
        h, c = cell(x, (h, c))
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)


# =====================================================================================
# Lesson 03: shift_captions, masked_loss, teacher_forced_logits
# =====================================================================================

def shift_captions_batch_axis(captions):
    return captions[:-1], captions[1:]


def shift_captions_swapped(captions):
    inputs = captions[:, 1:]
    targets = captions[:, :-1]
    return inputs, targets


def shift_captions_full_inputs(captions):
    return captions, captions[:, 1:]


def masked_loss_log_of_softmax(logits, targets, pad_idx=0):
    probs = torch.softmax(logits, dim=-1)
    nll = -torch.log(probs.gather(2, targets.unsqueeze(2)).squeeze(2))
    mask = (targets != pad_idx).float()
    return (nll * mask).sum() / mask.sum()


def masked_loss_mean_over_all(logits, targets, pad_idx=0):
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(2, targets.unsqueeze(2)).squeeze(2)
    mask = (targets != pad_idx).float()
    return (nll * mask).mean()


def masked_loss_ignore_zero(logits, targets, pad_idx=0):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=0)


def masked_loss_per_caption_mean(logits, targets, pad_idx=0):
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(2, targets.unsqueeze(2)).squeeze(2)
    mask = (targets != pad_idx).float()
    per_caption = (nll * mask).sum(dim=1) / mask.sum(dim=1)
    return per_caption.mean()


def masked_loss_softmax_time_axis(logits, targets, pad_idx=0):
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(2, targets.unsqueeze(2)).squeeze(2)
    mask = (targets != pad_idx).float()
    return (nll * mask).sum() / mask.sum()


def teacher_forced_logits_one_step_too_many(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    logits = []
    for t in range(captions.shape[1]):
        out, state, _ = decoder.step(captions[:, t], state, features, memo)
        logits.append(out)
    return torch.stack(logits, dim=1)


def teacher_forced_logits_state_not_updated(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    logits = []
    for t in range(captions.shape[1] - 1):
        out, _, _ = decoder.step(captions[:, t], state, features, memo)
        logits.append(out)
    return torch.stack(logits, dim=1)


def teacher_forced_logits_time_first(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    logits = []
    for t in range(captions.shape[1] - 1):
        out, state, _ = decoder.step(captions[:, t], state, features, memo)
        logits.append(out)
    return torch.stack(logits)


def teacher_forced_logits_feeds_target(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    logits = []
    for t in range(1, captions.shape[1]):
        out, state, _ = decoder.step(captions[:, t], state, features, memo)   # the word of step t
        logits.append(out)
    return torch.stack(logits, dim=1)


def teacher_forced_logits_no_grad(decoder, features, captions):
    with torch.no_grad():
        state, memo = decoder.init_state(features), decoder.prepare(features)
    logits = []
    for t in range(captions.shape[1] - 1):
        out, state, _ = decoder.step(captions[:, t], state, features, memo)
        logits.append(out)
    return torch.stack(logits, dim=1)


def teacher_forced_logits_softmax(decoder, features, captions):
    state, memo = decoder.init_state(features), decoder.prepare(features)
    probs = []
    for t in range(captions.shape[1] - 1):
        out, state, _ = decoder.step(captions[:, t], state, features, memo)
        probs.append(torch.softmax(out, dim=-1))
    return torch.stack(probs, dim=1)


def teacher_forced_logits_memo_none(decoder, features, captions):
    state = decoder.init_state(features)
    logits = []
    for t in range(captions.shape[1] - 1):
        out, state, _ = decoder.step(captions[:, t], state, features, None)
        logits.append(out)
    return torch.stack(logits, dim=1)


# =====================================================================================
# Lesson 04: attend, attention_step
# =====================================================================================

def attend_softmax_over_batch(features, projected, h, W_h, w):
    e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w
    alpha = torch.softmax(e, dim=0)
    context = (alpha.unsqueeze(2) * features).sum(dim=1)
    return context, alpha


def attend_context_mean(features, projected, h, W_h, w):
    e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w
    alpha = torch.softmax(e, dim=1)
    context = (alpha.unsqueeze(2) * features).mean(dim=1)
    return context, alpha


def attend_bmm_no_squeeze(features, projected, h, W_h, w):
    e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w
    alpha = torch.softmax(e, dim=1)
    context = torch.bmm(alpha.unsqueeze(1), features)          # (B, 1, P) @ (B, P, E)
    return context, alpha


def attend_squeeze_all(features, projected, h, W_h, w):
    e = (torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w.unsqueeze(1)).squeeze()
    alpha = torch.softmax(e, dim=-1)
    context = (alpha.unsqueeze(-1) * features).sum(dim=-2)
    return context, alpha


def attend_W_h_not_transposed(features, projected, h, W_h, w):
    e = torch.tanh(projected + (h @ W_h).unsqueeze(1)) @ w
    alpha = torch.softmax(e, dim=1)
    context = (alpha.unsqueeze(2) * features).sum(dim=1)
    return context, alpha


def attend_alpha_detached(features, projected, h, W_h, w):
    e = torch.tanh(projected + (h @ W_h.T).unsqueeze(1)) @ w
    alpha = torch.softmax(e, dim=1).detach()      # alpha is only for plotting
    context = (alpha.unsqueeze(2) * features).sum(dim=1)
    return context, alpha


def attention_step_no_dropout(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    x = torch.cat([decoder.embedding(words), beta * context], dim=1)
    h, c = decoder.cell(x, (h, c))
    return decoder.fc(h), (h, c), alpha


def attention_step_dropout_into_state(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    x = torch.cat([decoder.embedding(words), beta * context], dim=1)
    h, c = decoder.cell(x, (h, c))
    h = decoder.dropout(h)
    return decoder.fc(h), (h, c), alpha


def attention_step_dropout_on_input(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    x = decoder.dropout(torch.cat([decoder.embedding(words), beta * context], dim=1))
    h, c = decoder.cell(x, (h, c))
    return decoder.fc(h), (h, c), alpha


def attention_step_no_gate(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    x = torch.cat([decoder.embedding(words), context], dim=1)
    h, c = decoder.cell(x, (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def attention_step_gate_no_sigmoid(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = decoder.f_beta(h)
    x = torch.cat([decoder.embedding(words), beta * context], dim=1)
    h, c = decoder.cell(x, (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


def attention_step_cat_order(decoder, words, state, features, projected):
    h, c = state
    context, alpha = decoder.attention(features, projected, h)
    beta = torch.sigmoid(decoder.f_beta(h))
    x = torch.cat([beta * context, decoder.embedding(words)], dim=1)
    h, c = decoder.cell(x, (h, c))
    return decoder.fc(decoder.dropout(h)), (h, c), alpha


# =====================================================================================
# Lesson 05: scheduled_input
# =====================================================================================

def scheduled_input_logits_of_step_t(embedding, captions, logits, t, sample_prob, generator=None):
    B = captions.shape[0]
    coin = torch.rand(B, generator=generator) < sample_prob
    probs = F.softmax(logits[:, t].detach(), dim=-1)
    own = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return embedding(torch.where(coin, own, captions[:, t]))


def scheduled_input_coin_inverted(embedding, captions, logits, t, sample_prob, generator=None):
    B = captions.shape[0]
    coin = torch.rand(B, generator=generator) < sample_prob
    probs = F.softmax(logits[:, t - 1].detach(), dim=-1)
    own = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return embedding(torch.where(coin, captions[:, t], own))


def scheduled_input_samples_before_coins(embedding, captions, logits, t, sample_prob, generator=None):
    B = captions.shape[0]
    probs = F.softmax(logits[:, t - 1].detach(), dim=-1)
    own = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    coin = torch.rand(B, generator=generator) < sample_prob
    return embedding(torch.where(coin, own, captions[:, t]))


def scheduled_input_argmax(embedding, captions, logits, t, sample_prob, generator=None):
    B = captions.shape[0]
    coin = torch.rand(B, generator=generator) < sample_prob
    own = logits[:, t - 1].detach().argmax(dim=-1)
    return embedding(torch.where(coin, own, captions[:, t]))


def scheduled_input_own_not_squeezed(embedding, captions, logits, t, sample_prob, generator=None):
    B = captions.shape[0]
    coin = torch.rand(B, generator=generator) < sample_prob
    probs = F.softmax(logits[:, t - 1].detach(), dim=-1)
    own = torch.multinomial(probs, 1, generator=generator)
    return embedding(torch.where(coin, own, captions[:, t]))


def scheduled_input_one_coin(embedding, captions, logits, t, sample_prob, generator=None):
    coin = torch.rand(1, generator=generator) < sample_prob       # one flip for the batch
    probs = F.softmax(logits[:, t - 1].detach(), dim=-1)
    own = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return embedding(torch.where(coin, own, captions[:, t]))


def scheduled_input_all_no_grad(embedding, captions, logits, t, sample_prob, generator=None):
    with torch.no_grad():
        B = captions.shape[0]
        coin = torch.rand(B, generator=generator) < sample_prob
        probs = F.softmax(logits[:, t - 1], dim=-1)
        own = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return embedding(torch.where(coin, own, captions[:, t]))


# =====================================================================================
# Lesson 06: beam_step, collect_finished, first_scores
# =====================================================================================

def beam_step_one_child_per_beam(scores, logp, k):
    best, words = (scores[:, None] + logp).max(dim=1)       # best continuation of each beam
    top, parent = best.topk(k)
    return top, parent, words[parent]


def beam_step_divide_by_K(scores, logp, k):
    K = logp.shape[0]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx // K, idx % K


def beam_step_ignores_scores(scores, logp, k):
    V = logp.shape[1]
    top, idx = logp.reshape(-1).topk(k)
    return scores[idx // V] + top, idx // V, idx % V


def beam_step_true_division(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx / V, idx % V


def beam_step_no_broadcast_axis(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores + logp).reshape(-1).topk(k)
    return top, idx // V, idx % V


def collect_finished_len_without_end(seqs, scores, finished, length_norm=0.0):
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / (len(s) - 1) ** length_norm, s))     # words only, <end> is not a word
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def collect_finished_keeps_finished_live(seqs, scores, finished, length_norm=0.0):
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        live.append(s)
        live_scores.append(sc)
    return live, live_scores, done


def collect_finished_pair_order(seqs, scores, finished, length_norm=0.0):
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((s, sc / len(s) ** length_norm))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def collect_finished_forgets_previous(seqs, scores, finished, length_norm=0.0):
    live, live_scores, done = [], [], []
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def collect_finished_power_of_ratio(seqs, scores, finished, length_norm=0.0):
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append(((sc / len(s)) ** length_norm, s))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def collect_finished_mutates_input(seqs, scores, finished, length_norm=0.0):
    live, live_scores = [], []
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            finished.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, finished


def first_scores_large_negative(batch, k):
    scores = torch.full((batch, k), -1e9)
    scores[:, 0] = 0.0
    return scores


def first_scores_first_row(batch, k):
    scores = torch.full((batch, k), -math.inf)
    scores[0] = 0.0
    return scores


def first_scores_flat(batch, k):
    one = torch.tensor([0.0] + [-math.inf] * (k - 1))
    return one.repeat(batch)


# =====================================================================================
# Lesson 07: clipped_matches, brevity_penalty, corpus_bleu
# =====================================================================================

def clipped_matches_distinct(hypothesis, references, n):
    grams = lambda s: set(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    hyp = grams(hypothesis)
    ref = set()
    for r in references:
        ref |= grams(r)
    return len(hyp & ref), len(hyp)


def clipped_matches_sum_over_refs(hypothesis, references, n):
    grams = lambda s: Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    hyp = grams(hypothesis)
    most = Counter()
    for ref in references:
        most += grams(ref)
    return sum(min(k, most[g]) for g, k in hyp.items()), sum(hyp.values())


def clipped_matches_unclipped(hypothesis, references, n):
    grams = lambda s: [tuple(s[i:i + n]) for i in range(len(s) - n + 1)]
    hyp = grams(hypothesis)
    ref_grams = set(g for r in references for g in grams(r))
    return sum(1 for g in hyp if g in ref_grams), len(hyp)


def clipped_matches_last_gram_missed(hypothesis, references, n):
    grams = lambda s: Counter(tuple(s[i:i + n]) for i in range(len(s) - n))
    hyp = grams(hypothesis)
    most = Counter()
    for ref in references:
        most |= grams(ref)
    return sum(min(k, most[g]) for g, k in hyp.items()), sum(hyp.values())


def clipped_matches_total_formula(hypothesis, references, n):
    grams = lambda s: Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    hyp = grams(hypothesis)
    most = Counter()
    for ref in references:
        most |= grams(ref)
    return sum(min(k, most[g]) for g, k in hyp.items()), len(hypothesis) - n + 1


def clipped_matches_min_over_refs(hypothesis, references, n):
    grams = lambda s: Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    hyp = grams(hypothesis)
    most = grams(references[0])
    for ref in references[1:]:
        most &= grams(ref)
    return sum(min(k, most[g]) for g, k in hyp.items()), sum(hyp.values())


def brevity_penalty_tie_first_listed(hyp_len, ref_lens):
    r = min(ref_lens, key=lambda x: abs(x - hyp_len))
    return 1.0 if hyp_len > r else math.exp(1 - r / hyp_len)


def brevity_penalty_shortest_ref(hyp_len, ref_lens):
    r = min(ref_lens)
    return 1.0 if hyp_len > r else math.exp(1 - r / hyp_len)


def brevity_penalty_inverted_ratio(hyp_len, ref_lens):
    r = min(ref_lens, key=lambda x: (abs(x - hyp_len), x))
    return 1.0 if hyp_len > r else math.exp(1 - hyp_len / r)


def brevity_penalty_integer_division(hyp_len, ref_lens):
    r = min(ref_lens, key=lambda x: (abs(x - hyp_len), x))
    return 1.0 if hyp_len > r else math.exp(1 - r // hyp_len)


def corpus_bleu_mean_of_sentences(references, hypotheses, max_n=4):
    scores = []
    for refs, hyp in zip(references, hypotheses):
        logs = 0.0
        for n in range(1, max_n + 1):
            m, t = ref_clipped_matches(hyp, refs, n)
            logs += math.log(m / t)
        r = closest_ref_length(refs, len(hyp))
        bp = 1.0 if len(hyp) > r else math.exp(1 - r / len(hyp))
        scores.append(bp * math.exp(logs / max_n))
    return sum(scores) / len(scores)


def corpus_bleu_orders_one_short(references, hypotheses, max_n=4):
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        for n in range(1, max_n):
            m, t = ref_clipped_matches(hyp, refs, n)
            matches[n] += m
            totals[n] += t
        hyp_len += len(hyp)
        ref_len += closest_ref_length(refs, len(hyp))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(math.log(matches[n] / totals[n]) for n in range(1, max_n)) / max_n)


def corpus_bleu_log2(references, hypotheses, max_n=4):
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        for n in range(1, max_n + 1):
            m, t = ref_clipped_matches(hyp, refs, n)
            matches[n] += m
            totals[n] += t
        hyp_len += len(hyp)
        ref_len += closest_ref_length(refs, len(hyp))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(np.log2(matches[n] / totals[n]) for n in range(1, max_n + 1)) / max_n)


def corpus_bleu_shortest_ref(references, hypotheses, max_n=4):
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        for n in range(1, max_n + 1):
            m, t = ref_clipped_matches(hyp, refs, n)
            matches[n] += m
            totals[n] += t
        hyp_len += len(hyp)
        ref_len += min(len(r) for r in refs)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(math.log(matches[n] / totals[n]) for n in range(1, max_n + 1)) / max_n)


def corpus_bleu_arithmetic_mean(references, hypotheses, max_n=4):
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        for n in range(1, max_n + 1):
            m, t = ref_clipped_matches(hyp, refs, n)
            matches[n] += m
            totals[n] += t
        hyp_len += len(hyp)
        ref_len += closest_ref_length(refs, len(hyp))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * sum(matches[n] / totals[n] for n in range(1, max_n + 1)) / max_n


def corpus_bleu_bp_per_sentence(references, hypotheses, max_n=4):
    matches, totals = [0] * (max_n + 1), [0] * (max_n + 1)
    bp = 1.0
    for refs, hyp in zip(references, hypotheses):
        for n in range(1, max_n + 1):
            m, t = ref_clipped_matches(hyp, refs, n)
            matches[n] += m
            totals[n] += t
        r = closest_ref_length(refs, len(hyp))
        bp *= 1.0 if len(hyp) > r else math.exp(1 - r / len(hyp))
    return bp * math.exp(sum(math.log(matches[n] / totals[n]) for n in range(1, max_n + 1)) / max_n)


# =====================================================================================
BLIND = [
    # --- build_vocab
    ("build_vocab", "bv_ties_first_seen",
     "uses Counter.most_common(), which breaks ties in count by first appearance instead of alphabetically (a-z) as required",
     build_vocab_ties_first_seen),
    ("build_vocab", "bv_strict_min_freq",
     "keeps words with count > min_freq instead of count >= min_freq, so words seen exactly min_freq times are dropped",
     build_vocab_strict_min_freq),
    ("build_vocab", "bv_split_no_tokenize",
     "splits captions with str.lower().split() instead of tokenize(), so punctuation stays attached to words ('circle.' and 'circle' count as different words)",
     build_vocab_split_no_tokenize),
    ("build_vocab", "bv_ascii_regex",
     "extracts words with the ASCII-only regex [a-z0-9]+, which cuts non-ASCII words apart (e.g. 'café' -> 'caf') instead of using tokenize(), which keeps letters of any script",
     build_vocab_ascii_regex),
    # --- encode
    ("encode", "enc_no_unk_fallback",
     "looks words up with word_to_idx[w], which raises KeyError on a word not in the vocabulary instead of mapping it to <unk> (word_to_idx.get(w, unk))",
     encode_no_unk_fallback),
    ("encode", "enc_drops_unknown",
     "skips unknown words instead of encoding them as <unk>, so the encoded caption is shorter than the caption",
     encode_drops_unknown),
    ("encode", "enc_split_no_tokenize",
     "splits the caption with str.split() instead of tokenize(), so upper-case words and words with punctuation attached become <unk>",
     encode_split_no_tokenize),
    ("encode", "enc_missing_end",
     "forgets to append the <end> index after the words; the encoding must be [<start>] + words + [<end>]",
     encode_missing_end),
    # --- decode
    ("decode", "dec_skips_end",
     "skips <end> like <start>/<pad> instead of stopping at the first <end>, so tokens after <end> are kept",
     decode_skips_end),
    ("decode", "dec_drops_first_token",
     "drops the first id unconditionally assuming it is <start>, so a sequence that does not begin with <start> loses its first word (it should filter <start> by value)",
     decode_drops_first_token),
    ("decode", "dec_trailing_space",
     "concatenates word + ' ' for every word, leaving a trailing space, instead of joining the words with single spaces (' '.join)",
     decode_trailing_space),
    ("decode", "dec_index_of_end",
     "slices up to ids.index(<end>), which raises ValueError when the ids contain no <end> (e.g. a caption cut at the maximum length) instead of decoding all of them",
     decode_index_of_end),
    # --- preprocess
    ("preprocess", "pre_default_resample",
     "calls resize((size, size)) without Image.BILINEAR, so Pillow's default filter (bicubic) is used instead of the bilinear filter asked for",
     preprocess_default_resample),
    ("preprocess", "pre_reshape_channels",
     "moves channels first with reshape(3, S, S) instead of permute(2, 0, 1), which scrambles the pixels instead of transposing the (S, S, 3) array",
     preprocess_reshape_channels),
    ("preprocess", "pre_no_rgb_convert",
     "omits img.convert('RGB'), so a grayscale (or RGBA) image gives an array without exactly 3 channels and the code fails; images must be converted to RGB first",
     preprocess_no_rgb_convert),
    ("preprocess", "pre_float64",
     "divides the uint8 array by 255.0 in numpy without dtype=float32, so the result is a float64 tensor instead of float32",
     preprocess_float64),
    ("preprocess", "pre_normalise_before_scale",
     "subtracts the mean and divides by the std on 0-255 pixel values and only then divides by 255, instead of scaling to [0, 1] before normalising",
     preprocess_normalise_before_scale),
    ("preprocess", "pre_numpy_T",
     "uses numpy .T on the (S, S, 3) array, which reverses all axes to (3, W, H) and so transposes the image (rows and columns swapped) instead of permute(2, 0, 1) giving (3, H, W)",
     preprocess_numpy_T),
    # --- to_regions
    ("to_regions", "tr_plain_reshape",
     "reshapes (B, E, h, w) straight to (B, h*w, E), which scrambles channels and positions instead of flattening the grid and transposing (flatten(2).transpose(1, 2))",
     to_regions_plain_reshape),
    ("to_regions", "tr_column_major",
     "permutes to (B, w, h, E) before reshaping, so regions are ordered column-major (p = col*h + row) instead of row-major (p = row*w + col)",
     to_regions_column_major),
    ("to_regions", "tr_one_image",
     "written for a single image: squeeze(0) then .T and unsqueeze(0), which only works for a batch of one; with B > 1 the shape is wrong instead of (B, P, E)",
     to_regions_one_image),
    # --- pool
    ("pool", "pool_keepdim",
     "pools with keepdim=True, returning (B, 1, E) instead of (B, E)",
     pool_keepdim),
    ("pool", "pool_max_namedtuple",
     "returns features.max(dim=1) itself, a (values, indices) named tuple, instead of its .values tensor for how='max'",
     pool_max_namedtuple),
    ("pool", "pool_squeeze_batch_one",
     "calls .squeeze() with no dim on the pooled result, which also removes the batch axis for a batch of one (returns (E,) instead of (1, E))",
     pool_squeeze_batch_one),
    ("pool", "pool_over_channels",
     "reduces over the last axis (the feature channels, dim=-1) instead of over the regions (dim=1), returning (B, P)",
     pool_over_channels),
    # --- lstm_step
    ("lstm_step", "ls_gate_order_ifog",
     "unpacks the chunks in the order i, f, o, g instead of the stated gate order i, f, g, o, so the candidate and output gates are swapped",
     lstm_step_gate_order_ifog),
    ("lstm_step", "ls_sigmoid_all",
     "applies sigmoid to all four pre-activations, including the candidate g, which must use tanh",
     lstm_step_sigmoid_all),
    ("lstm_step", "ls_h_from_old_c",
     "computes h = o * tanh(c) from the previous cell state instead of from the updated c",
     lstm_step_h_from_old_c),
    ("lstm_step", "ls_chunk_dim0",
     "chunks the gates with chunk(4) along dim 0 (the batch axis) instead of dim=1 (the 4H gate axis)",
     lstm_step_chunk_dim0),
    ("lstm_step", "ls_one_bias",
     "adds only bias_ih and forgets bias_hh; both biases must be added to the pre-activations",
     lstm_step_one_bias),
    # --- lstm_unroll
    ("lstm_unroll", "lu_cat",
     "joins the hidden states with torch.cat(dim=1), giving (B, T*H) instead of torch.stack(dim=1) giving (B, T, H)",
     lstm_unroll_cat),
    ("lstm_unroll", "lu_time_first",
     "stacks the hidden states along dim 0, giving (T, B, H) instead of (B, T, H) (stack with dim=1)",
     lstm_unroll_time_first),
    ("lstm_unroll", "lu_state_not_carried",
     "feeds the initial (h, c) to every step instead of the state returned by the previous step",
     lstm_unroll_state_not_carried),
    ("lstm_unroll", "lu_detach_state",
     "detaches h and c after every step, cutting the gradient through time and returning a final state with no graph (backpropagation through time needs the state to stay in the graph)",
     lstm_unroll_detach_state),
    ("lstm_unroll", "lu_loop_over_batch",
     "loops 'for x in xs', which iterates over the batch axis instead of over time (xs[:, t])",
     lstm_unroll_loop_over_batch),
    # --- shift_captions
    ("shift_captions", "sc_batch_axis",
     "slices along the batch axis (captions[:-1], captions[1:]) instead of the time axis (captions[:, :-1], captions[:, 1:])",
     shift_captions_batch_axis),
    ("shift_captions", "sc_swapped",
     "returns the shifted-left tokens as inputs and the shifted-right as targets (inputs must be captions[:, :-1], targets captions[:, 1:])",
     shift_captions_swapped),
    ("shift_captions", "sc_full_inputs",
     "returns the whole caption as inputs (B, T) instead of dropping its last token (captions[:, :-1], (B, T-1))",
     shift_captions_full_inputs),
    # --- masked_loss
    ("masked_loss", "ml_log_of_softmax",
     "takes torch.log of softmax instead of F.log_softmax: for large logits a probability underflows to 0 and log(0) = -inf makes the loss inf or NaN (inf * 0 at masked positions)",
     masked_loss_log_of_softmax),
    ("masked_loss", "ml_mean_over_all",
     "averages the masked losses with .mean() over all B*T positions, padding included, instead of dividing by the number of non-pad tokens",
     masked_loss_mean_over_all),
    ("masked_loss", "ml_ignore_zero",
     "hard-codes ignore_index=0 instead of using the pad_idx argument, so a pad index other than 0 is not masked",
     masked_loss_ignore_zero),
    ("masked_loss", "ml_per_caption_mean",
     "averages within each caption and then over captions, instead of one mean over all real tokens of the batch (captions of different lengths get unequal weight)",
     masked_loss_per_caption_mean),
    ("masked_loss", "ml_softmax_time_axis",
     "applies log_softmax over dim=1 (time) instead of over the vocabulary (dim=-1)",
     masked_loss_softmax_time_axis),
    # --- teacher_forced_logits
    ("teacher_forced_logits", "tf_one_step_too_many",
     "loops over all T positions instead of T-1, so it also feeds the last token and returns (B, T, V) instead of (B, T-1, V)",
     teacher_forced_logits_one_step_too_many),
    ("teacher_forced_logits", "tf_state_not_updated",
     "discards the state returned by decoder.step and reuses the initial state at every step instead of carrying it forward",
     teacher_forced_logits_state_not_updated),
    ("teacher_forced_logits", "tf_time_first",
     "stacks the per-step logits along dim 0, giving (T-1, B, V) instead of (B, T-1, V)",
     teacher_forced_logits_time_first),
    ("teacher_forced_logits", "tf_feeds_target",
     "feeds captions[:, t] for t = 1..T-1 (the word to be predicted) instead of the previous word starting from <start> (captions[:, t] for t = 0..T-2)",
     teacher_forced_logits_feeds_target),
    ("teacher_forced_logits", "tf_no_grad",
     "computes the initial state and the attention projection under torch.no_grad(), so no gradient flows into init_state's and the attention projection's weights",
     teacher_forced_logits_no_grad),
    ("teacher_forced_logits", "tf_softmax",
     "returns softmax probabilities instead of the raw logits the decoder step produced",
     teacher_forced_logits_softmax),
    ("teacher_forced_logits", "tf_memo_none",
     "passes None as memo instead of decoder.prepare(features), which only works for Show and Tell; the attention decoder needs its projected features",
     teacher_forced_logits_memo_none),
    # --- attend
    ("attend", "at_softmax_over_batch",
     "takes the softmax over the batch axis (dim=0) instead of over the regions (dim=1)",
     attend_softmax_over_batch),
    ("attend", "at_context_mean",
     "averages alpha * features over the regions (mean) instead of summing them, so the context is divided by P",
     attend_context_mean),
    ("attend", "at_bmm_no_squeeze",
     "computes the context with bmm(alpha.unsqueeze(1), features) and forgets to squeeze, returning (B, 1, E) instead of (B, E)",
     attend_bmm_no_squeeze),
    ("attend", "at_squeeze_all",
     "calls .squeeze() with no dim on the scores, which also drops the batch axis for a batch of one, returning alpha (P,) and context (E,) instead of (1, P) and (1, E)",
     attend_squeeze_all),
    ("attend", "at_W_h_not_transposed",
     "multiplies h @ W_h without transposing W_h (A, H), which fails when A != H (and is wrong when A == H); it must be h @ W_h.T",
     attend_W_h_not_transposed),
    ("attend", "at_alpha_detached",
     "detaches alpha, so no gradient flows through the attention weights into the scores (the context and anything using alpha lose that gradient)",
     attend_alpha_detached),
    # --- attention_step
    ("attention_step", "as_no_dropout",
     "computes the logits as fc(h) without decoder.dropout, so in training mode no dropout is applied before the output layer",
     attention_step_no_dropout),
    ("attention_step", "as_dropout_into_state",
     "overwrites h with dropout(h) and returns the dropped-out h as the new state, instead of applying dropout only to the fc input and keeping the cell's h in the state",
     attention_step_dropout_into_state),
    ("attention_step", "as_dropout_on_input",
     "applies dropout to the LSTM input x instead of to h before the output layer fc",
     attention_step_dropout_on_input),
    ("attention_step", "as_no_gate",
     "feeds the raw context into the LSTM without the gate beta = sigmoid(f_beta(h)) multiplying it",
     attention_step_no_gate),
    ("attention_step", "as_gate_no_sigmoid",
     "uses f_beta(h) directly as the gate, forgetting the sigmoid",
     attention_step_gate_no_sigmoid),
    ("attention_step", "as_cat_order",
     "concatenates [beta * context, embedding] instead of [embedding, beta * context], so the LSTM input is in the wrong order",
     attention_step_cat_order),
    # --- scheduled_input
    ("scheduled_input", "si_logits_of_step_t",
     "samples from logits[:, t] (which does not exist: logits holds steps 0..t-1) instead of the prediction of step t-1, logits[:, t - 1]",
     scheduled_input_logits_of_step_t),
    ("scheduled_input", "si_coin_inverted",
     "uses the true word where the coin says 'own word' and the sample elsewhere (the arguments of torch.where are swapped)",
     scheduled_input_coin_inverted),
    ("scheduled_input", "si_samples_before_coins",
     "draws the multinomial samples before the coins, so the random draws from the generator are in the wrong order (coins first, then samples)",
     scheduled_input_samples_before_coins),
    ("scheduled_input", "si_argmax",
     "takes the argmax of step t-1's logits (greedy) instead of sampling the own word with torch.multinomial",
     scheduled_input_argmax),
    ("scheduled_input", "si_own_not_squeezed",
     "keeps the (B, 1) result of torch.multinomial without squeeze(1), so torch.where broadcasts to (B, B) and the embedding is (B, B, M) instead of (B, M)",
     scheduled_input_own_not_squeezed),
    ("scheduled_input", "si_one_coin",
     "flips one coin for the whole batch (torch.rand(1)) instead of one coin per caption (torch.rand(B))",
     scheduled_input_one_coin),
    ("scheduled_input", "si_all_no_grad",
     "wraps everything, including the embedding lookup, in torch.no_grad(), so the returned embedding carries no gradient to the embedding weights; only the sampling must be cut from the graph",
     scheduled_input_all_no_grad),
    # --- beam_step
    ("beam_step", "bs_one_child_per_beam",
     "keeps only the best word of each beam and ranks the beams, instead of one top-k over all K*V continuations (a strong beam may keep several children)",
     beam_step_one_child_per_beam),
    ("beam_step", "bs_divide_by_K",
     "recovers parent and word with idx // K and idx % K instead of idx // V and idx % V (V = vocabulary size, the row length of the flattened table)",
     beam_step_divide_by_K),
    ("beam_step", "bs_ignores_scores",
     "takes the top-k of the next-word log-probs alone, ignoring the beams' running scores, instead of the top-k of scores[:, None] + logp",
     beam_step_ignores_scores),
    ("beam_step", "bs_true_division",
     "computes the parent with true division idx / V, giving float (fractional) parents, instead of integer division idx // V",
     beam_step_true_division),
    ("beam_step", "bs_no_broadcast_axis",
     "adds scores + logp without scores[:, None], which broadcasts (K,) along the vocabulary axis (or fails when K != V) instead of adding each beam's score to its row",
     beam_step_no_broadcast_axis),
    # --- collect_finished
    ("collect_finished", "cf_len_without_end",
     "normalises by (len(s) - 1) ** length_norm, not counting <end>, whereas the length must count <end> (len(s))",
     collect_finished_len_without_end),
    ("collect_finished", "cf_keeps_finished_live",
     "adds a finished hypothesis to the finished list but also keeps it in the live beams, instead of removing it from the beam",
     collect_finished_keeps_finished_live),
    ("collect_finished", "cf_pair_order",
     "stores finished pairs as (tokens, score) instead of (score, tokens)",
     collect_finished_pair_order),
    ("collect_finished", "cf_forgets_previous",
     "starts the finished list empty, dropping the hypotheses finished at earlier steps, instead of extending a copy of `finished`",
     collect_finished_forgets_previous),
    ("collect_finished", "cf_power_of_ratio",
     "computes (score / len) ** length_norm instead of score / len ** length_norm: raising the negative score ratio to a fractional power (operator precedence)",
     collect_finished_power_of_ratio),
    ("collect_finished", "cf_mutates_input",
     "appends to the caller's `finished` list in place instead of building a new list (list(finished)), so the input argument is modified",
     collect_finished_mutates_input),
    # --- first_scores
    ("first_scores", "fs_large_negative",
     "fills the dead beams with the finite -1e9 instead of -inf",
     first_scores_large_negative),
    ("first_scores", "fs_first_row",
     "sets row 0 to zero (all beams of the first image live, none of the others) instead of column 0 (the first beam of every image)",
     first_scores_first_row),
    ("first_scores", "fs_flat",
     "returns a flat (B*k,) vector by repeating one image's scores, instead of a (B, k) tensor",
     first_scores_flat),
    # --- clipped_matches
    ("clipped_matches", "cm_distinct",
     "counts distinct n-grams (sets) instead of clipped counts: repeated n-grams are counted once in both the matches and the total",
     clipped_matches_distinct),
    ("clipped_matches", "cm_sum_over_refs",
     "adds the reference counts over all references (Counter +) instead of taking the maximum count in any single reference (Counter |)",
     clipped_matches_sum_over_refs),
    ("clipped_matches", "cm_unclipped",
     "counts every hypothesis n-gram that occurs in some reference, without clipping by the reference counts",
     clipped_matches_unclipped),
    ("clipped_matches", "cm_last_gram_missed",
     "builds n-grams with range(len(s) - n), an off-by-one that misses the last n-gram of every sentence (must be range(len(s) - n + 1))",
     clipped_matches_last_gram_missed),
    ("clipped_matches", "cm_total_formula",
     "returns len(hypothesis) - n + 1 as the total, which is negative when the hypothesis is shorter than n - 1 tokens, instead of the number of n-grams (0 then)",
     clipped_matches_total_formula),
    ("clipped_matches", "cm_min_over_refs",
     "intersects the references' counts (Counter &, the minimum over references) instead of taking their maximum (Counter |)",
     clipped_matches_min_over_refs),
    # --- brevity_penalty
    ("brevity_penalty", "bp_tie_first_listed",
     "picks the closest reference length by |r - c| only, so on a tie it takes whichever comes first in the list instead of the shorter one",
     brevity_penalty_tie_first_listed),
    ("brevity_penalty", "bp_shortest_ref",
     "uses the shortest reference length instead of the reference length closest to the hypothesis length",
     brevity_penalty_shortest_ref),
    ("brevity_penalty", "bp_inverted_ratio",
     "computes exp(1 - c / r) instead of exp(1 - r / c) (the ratio is inverted)",
     brevity_penalty_inverted_ratio),
    ("brevity_penalty", "bp_integer_division",
     "computes r // c with integer division instead of the true ratio r / c",
     brevity_penalty_integer_division),
    # --- corpus_bleu
    ("corpus_bleu", "cb_mean_of_sentences",
     "averages per-sentence BLEU scores instead of pooling the clipped matches, totals and lengths over the corpus before combining",
     corpus_bleu_mean_of_sentences),
    ("corpus_bleu", "cb_orders_one_short",
     "uses range(1, max_n), stopping one n-gram order short, so the max_n-gram precision is left out",
     corpus_bleu_orders_one_short),
    ("corpus_bleu", "cb_log2",
     "takes the logarithm of the precisions in base 2 (np.log2) but exponentiates with exp (base e), instead of the natural log",
     corpus_bleu_log2),
    ("corpus_bleu", "cb_shortest_ref",
     "sums the shortest reference length of each sentence instead of the reference length closest to the hypothesis (closest_ref_length)",
     corpus_bleu_shortest_ref),
    ("corpus_bleu", "cb_arithmetic_mean",
     "combines the precisions with an arithmetic mean instead of the geometric mean exp(mean of log p_n)",
     corpus_bleu_arithmetic_mean),
    ("corpus_bleu", "cb_bp_per_sentence",
     "multiplies per-sentence brevity penalties instead of one brevity penalty from the summed hypothesis and reference lengths",
     corpus_bleu_bp_per_sentence),
]
