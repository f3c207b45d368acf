"""Wrong solutions as learners write them (not as the checks' `Mistake`s are written), each fed to its
exercise's check: the verdict must be wrong and the message must name the part that is wrong.

Issue 19's catalogue: every exercise of lessons 00-07, at least 5 wrong solutions each (those of lesson 03's
shift_captions and masked_loss and lesson 04's attend are here, the rest in wrong_solutions.py).
`test_catalogue_counts` prints caught / named / total.
"""
import contextlib
import io
import re

import pytest
import torch
import torch.nn.functional as F

from captionlib.checks import is_reference
import wrong_solutions as w
from captionlib.exercises import l00, l01, l02, l03, l04, l05, l06, l07, l08, l09


def _ce(logits, targets, **kw):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), **kw)


def _masked(per, targets, pad_idx):
    mask = (targets != pad_idx).float()
    return (per * mask).sum() / mask.sum()


def _in_place_shift(c):
    c[c == 2] = 0                                   # "drop <end>" by overwriting the caller's captions
    return c[:, :-1], c[:, 1:]


def _clone_then_zero(c):
    t = c[:, 1:].clone()
    t.zero_()
    return c[:, :-1], t


# (exercise, what the learner did, their function, words the message must contain)
CATALOGUE = [
    ("shift_captions", "returned the captions unshifted", lambda c: (c, c), "it must be T-1"),
    ("shift_captions", "targets cut from position 2", lambda c: (c[:, :-1], c[:, 2:]), "targets has length 4"),
    ("shift_captions", "sliced the batch axis", lambda c: (c[:-1], c[1:]), "not the batch axis"),
    ("shift_captions", "inputs start after <start>", lambda c: (c[:, 1:], c[:, 1:]), "inputs starts at position 1"),
    ("shift_captions", "targets overwritten with zeros", _clone_then_zero, "targets starts at position 0"),
    ("shift_captions", "changed the caller's captions", _in_place_shift, "changes its input `captions` in place"),
    ("masked_loss", "no mask", lambda l, t, pad_idx=0: _ce(l, t), "<pad> targets are counted"),
    ("masked_loss", "a literal 0 for the pad", lambda l, t, pad_idx=0: _ce(l, t, ignore_index=0), "the pad index is a literal 0"),
    ("masked_loss", "softmax instead of log-softmax",
     lambda l, t, pad_idx=0: _masked(-l.softmax(-1).gather(2, t.unsqueeze(2)).squeeze(2), t, pad_idx), "log_softmax"),
    ("masked_loss", "raw logits as log-probabilities",
     lambda l, t, pad_idx=0: _masked(-l.gather(2, t.unsqueeze(2)).squeeze(2), t, pad_idx), "log_softmax"),
    ("masked_loss", "mean over every position",
     lambda l, t, pad_idx=0: (_ce(l, t, reduction="none") * (t.reshape(-1) != pad_idx)).mean(), "padded length"),
    ("masked_loss", "mean per caption first",
     lambda l, t, pad_idx=0: ((F.cross_entropy(l.transpose(1, 2), t, reduction="none") * (t != pad_idx)).sum(1)
                              / (t != pad_idx).sum(1)).mean(), "per caption"),
    ("masked_loss", "a float64 loss", lambda l, t, pad_idx=0: _ce(l, t, ignore_index=pad_idx).double(), "dtype torch.float64"),
]


def _score(p, h, W_h, w, squash=torch.tanh):
    return squash(p + (h @ W_h.T).unsqueeze(1)) @ w              # (B, P)


def _attention(alpha, f, reduce="sum"):
    return getattr(alpha.unsqueeze(2) * f, reduce)(1), alpha


CATALOGUE += [
    ("attend", "no tanh and a softmax over the batch",
     lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, lambda z: z), 0), f), "over the batch"),
    ("attend", "sigmoid instead of softmax", lambda f, p, h, W, w: _attention(torch.sigmoid(_score(p, h, W, w)), f),
     "must sum to 1 over the P regions"),
    ("attend", "context averaged, not summed", lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w), 1), f, "mean"),
     "Σ_p α_p f_p"),
    ("attend", "relu instead of tanh", lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, torch.relu), 1), f),
     "must be tanh"),
    ("attend", "exp without the normalisation", lambda f, p, h, W, w: _attention(_score(p, h, W, w).exp(), f),
     "must sum to 1"),
    ("attend", "no tanh and the context averaged (both named)",
     lambda f, p, h, W, w: _attention(torch.softmax(_score(p, h, W, w, lambda z: z), 1), f, "mean"), "the weighted regions are averaged (mean over P)"),
]
CATALOGUE += [
    ("beam_step", "back-pointers swapped", w.b_swapped, "back-pointers are swapped"),
    ("beam_step", "each beam keeps its best word", w.b_per_beam, "top-k is taken per beam"),
    ("beam_step", "parent as idx // K", w.b_by_K, "the parent is i // V"),
    ("beam_step", "ranked by the new word alone", w.b_logp_only, "own score is not added"),
    ("beam_step", "true division for the parent", w.b_true_div, "integer indices"),
    ("beam_step", "logp += scores in place", w.b_in_place, "changes its input `logp` in place"),
    ("beam_step", "only the first k beams looked at", w.b_first_k_beams, "only the first beam's continuations"),
    ("collect_finished", "finished ones stay in the beam", w.f_no_else, "keep expanding"),
    ("collect_finished", "no length normalisation", w.f_no_norm, "no length normalisation"),
    ("collect_finished", "length without <end>", w.f_len_without_end, "len(tokens) counts <end>"),
    ("collect_finished", "multiplied by the length", w.f_times, "multiplied by the length"),
    ("collect_finished", "(tokens, score) pairs", w.f_swapped_pair, "(score, tokens), in that order"),
    ("collect_finished", "earlier finished ones forgotten", w.f_forgot_old, "finished at earlier steps are lost"),
    ("clipped_matches", "no clipping", w.k_unclipped, "there is no clipping"),
    ("clipped_matches", "clipped by the first reference", w.k_first_ref, "clipped by one reference only"),
    ("clipped_matches", "clipped by the fewest", w.k_min_over_refs, "clipped by the fewest"),
    ("clipped_matches", "distinct n-grams as the total", w.k_unique_total, "repeats included"),
    ("clipped_matches", "returns the precision", w.k_precision, "return a pair"),
    ("clipped_matches", "clipped at the references' sum", w.k_summed, "total over all references"),
    ("clipped_matches", "the references' n-grams as the total", w.k_ref_total, "repeats included"),
    ("brevity_penalty", "first of two equally close", w.bp_first_closest, "whatever the order"),
    ("brevity_penalty", "shortest reference", w.bp_shortest, "shortest reference"),
    ("brevity_penalty", "no exp", w.bp_no_exp, "BP = exp(1 - r / c)"),
    ("brevity_penalty", "mean reference length", w.bp_mean, "not the mean"),
    ("brevity_penalty", "inverted", w.bp_inverted, "inverted"),
    ("brevity_penalty", "a penalty for long ones too", w.bp_always, "BP = 1 when c > r"),
    ("corpus_bleu", "average of sentence scores", w.c_avg, "average of sentence BLEUs"),
    ("corpus_bleu", "no clipping", w.c_unclipped, "not clipped"),
    ("corpus_bleu", "arithmetic mean", w.c_arith, "arithmetic mean"),
    ("corpus_bleu", "a brevity penalty per sentence", w.c_bp_per_sentence, "computed per sentence"),
    ("corpus_bleu", "the shortest references' length", w.c_shortest_r, "closest to each hypothesis"),
    ("corpus_bleu", "matches pooled over n", w.c_pooled_over_n, "sqrt(1 * 1/4)"),
    ("corpus_bleu", "no brevity penalty", w.c_no_bp, "there is no brevity penalty"),
    ("corpus_bleu", "always BLEU-4", w.c_always4, "max_n is not used"),
]
CATALOGUE += [
    ("build_vocab", "no special tokens", w.v_no_specials, "special tokens are missing"),
    ("build_vocab", "special tokens at the end", w.v_specials_last, "special tokens are at the end"),
    ("build_vocab", "count > min_freq", w.v_strict, "not > min_freq"),
    ("build_vocab", "sorted by count only", w.v_reverse_sort, "break ties alphabetically"),
    ("build_vocab", "lower().split()", w.v_lower_split, "split with tokenize(caption)"),
    ("build_vocab", "a word counted once per caption", w.v_once_per_caption, "count every occurrence"),
    ("build_vocab", "rarest first", w.v_rare_first, "most frequent first"),
    ("encode", "no <start>/<end>", w.e_no_specials, "<start> and <end> are missing"),
    ("encode", "<start> only", w.e_only_start, "<end> is missing"),
    ("encode", "unknown words skipped", w.e_skip_unknown, "unknown words are dropped"),
    ("encode", "lower().split()", w.e_lower_split, "split with tokenize(caption)"),
    ("encode", "word_to_idx[w] for every word", w.e_keyerror, "map them to <unk>"),
    ("encode", "words, not indices", w.e_words, "not the words"),
    ("encode", "unknown words as 0", w.e_unk_as_pad, "must become <unk>"),
    ("decode", "does not stop at <end>", w.d_no_stop, "does not stop at the first <end>"),
    ("decode", "<start> kept", w.d_keep_start, "<start> or <pad> appear"),
    ("decode", "a list of words", w.d_list, "return one string"),
    ("decode", "<end> kept in the text", w.d_include_end, "<end> itself is not part of the text"),
    ("decode", "stops at the last <end>", w.d_last_end, "does not stop at the first <end>"),
    ("decode", "joined without spaces", w.d_no_space, "join the words with a space"),
    ("to_regions", "reshape straight", w.r_reshape, "regions are scrambled"),
    ("to_regions", "view straight", w.r_view, "regions are scrambled"),
    ("to_regions", "transpose(1, 3)", w.r_col_major, "column-major"),
    ("to_regions", "flatten(2) alone", w.r_no_transpose, "you returned (B, E, P)"),
    ("to_regions", "flatten(1)", w.r_flatten_all, "keep three axes"),
    ("to_regions", "permute(0, 3, 2, 1)", w.r_permute_wrong, "column-major"),
    ("pool", "over dim 2", w.p_dim2, "feature dimension"),
    ("pool", "over the batch", w.p_batch, "over the batch"),
    ("pool", "max without .values", w.p_tuple, "take .values"),
    ("pool", "branches swapped", w.p_swapped, "check which branch"),
    ("pool", "sum for avg", w.p_sum, "'avg' is the sum"),
    ("pool", "indices for max", w.p_indices, "integer indices"),
    ("pool", "how == 'average'", w.p_wrong_name, "branch is never taken"),
    ("preprocess", "no normalisation", w.q_no_norm, "normalisation is missing"),
    ("preprocess", "no / 255", w.q_no_scale, "divide by 255"),
    ("preprocess", "channels last", w.q_channels_last, "channels are last"),
    ("preprocess", "mean and std swapped", w.q_swapped_mean_std, "mean and std are swapped"),
    ("preprocess", "0.5 normalisation", w.q_half, "normalised with 0.5"),
    ("preprocess", "no convert('RGB')", w.q_no_rgb, "img.convert('RGB')"),
    ("preprocess", "permute(2, 1, 0)", w.q_transposed, "height and width are swapped"),
    ("preprocess", "float64", w.q_float64, "dtype torch.float64"),
    ("lstm_step", "gates as (i, f, o, g)", w.s_ifog, "wrong order"),
    ("lstm_step", "h = o * c", w.s_no_tanh_h, "h has no tanh"),
    ("lstm_step", "sigmoid candidate and h from c_prev (both named)", w.s_two_slips,
     "uses sigmoid: it must be tanh (a new value in [-1, 1], not a gate); h is computed from c_prev"),
    ("lstm_step", "tanh output gate", w.s_tanh_o, "output gate o uses tanh"),
    ("lstm_step", "b_hh left out", w.s_no_b_hh, "a bias is missing"),
    ("lstm_step", "weights not transposed", w.s_no_transpose, "transpose the weights"),
    ("lstm_step", "forget gate on the candidate", w.s_forget_on_candidate, "the gates scale the wrong terms"),
    ("lstm_step", "returns (c, h)", w.s_returns_c_h, "you returned (c, h)"),
    ("lstm_unroll", "state not carried", w.u_no_carry, "not carried across steps"),
    ("lstm_unroll", "stacked along dim 0", w.u_time_major, "time-major"),
    ("lstm_unroll", "collects c", w.u_collects_c, "collects the cell states c"),
    ("lstm_unroll", "a list", w.u_list, "torch.stack(hs, dim=1)"),
    ("lstm_unroll", "state before each step", w.u_shifted, "shifted by one"),
    ("lstm_unroll", "initial state returned", w.u_initial_state_returned, "final state returned is the initial one"),
    ("lstm_unroll", "h[:] = ...", w.u_in_place, "in place"),
    ("lstm_unroll", "one step short", w.u_batch_loop, "call the cell once per step"),
    ("teacher_forced_logits", "own words fed back", w.t_own_words, "fed its own predictions"),
    ("teacher_forced_logits", "T steps", w.t_all_steps, "run T-1 steps"),
    ("teacher_forced_logits", "stacked along dim 0", w.t_time_major, "time-major"),
    ("teacher_forced_logits", "a new state every step", w.t_fresh_state, "state is not carried"),
    ("teacher_forced_logits", "reads the next word", w.t_next_word, "shifted the wrong way"),
    ("teacher_forced_logits", "the new state thrown away", w.t_state_not_kept, "state is not carried"),
    ("teacher_forced_logits", "softmax of the logits", w.t_softmax, "these are probabilities"),
    ("attention_step", "β on h", w.a_gate_on_h, "applied to h instead of to the context"),
    ("attention_step", "no β", w.a_no_gate, "the gate β is missing"),
    ("attention_step", "β without sigmoid", w.a_beta_no_sigmoid, "β = σ(f_β(h))"),
    ("attention_step", "[context, embedding]", w.a_cat_order, "concatenated the other way round"),
    ("attention_step", "logits from the old h", w.a_old_h_logits, "logits come from the previous h"),
    ("attention_step", "no dropout", w.a_no_dropout, "dropout is not applied"),
    ("attention_step", "no state into the cell", w.a_zero_state, "gets no state"),
    ("attention_step", "mean of the regions as context", w.a_mean_context, "mean of the regions"),
    ("scheduled_input", "argmax", w.n_argmax, "not the argmax"),
    ("scheduled_input", "multinomial on raw logits", w.n_raw_logits, "needs probabilities"),
    ("scheduled_input", "one coin for the batch", w.n_one_coin, "one coin decides for the whole batch"),
    ("scheduled_input", "logits[:, t]", w.n_step_t, "logits[:, t - 1]"),
    ("scheduled_input", "no generator", w.n_no_generator, "pass generator="),
    ("scheduled_input", "coin > p", w.n_inverted, "probability is inverted"),
    ("scheduled_input", "captions[:, t + 1]", w.n_next_true, "wrong time step"),
    ("scheduled_input", "expected embedding", w.n_soft, "expected embedding"),
    ("scheduled_input", "indices, not embeddings", w.n_words_not_embedded, "return the embedded inputs"),
]
CATALOGUE += [
    ("first_scores", "all copies live", w.fs_zeros, "all k copies start live"),
    ("first_scores", "log(1/k) for each", w.fs_uniform, "3 of the 3 copies of <start> are live"),
    ("first_scores", "(k, B)", w.fs_transposed, "the scores are (k, B)"),
    ("first_scores", "all -inf", w.fs_all_dead, "every beam starts dead"),
    ("first_scores", "1 for the live copy", w.fs_one, "the live copy starts at 1"),
    ("first_scores", "a list of lists", w.fs_list, "must be a (B, k) = (2, 3) tensor"),
]
CHECKS = {"shift_captions": (l03.check_shift_captions, l03.shift_captions),
          "masked_loss": (l03.check_masked_loss, l03.masked_loss), "attend": (l04.check_attend, l04.attend),
          "beam_step": (l06.check_beam_step, l06.beam_step), "collect_finished": (l06.check_collect_finished, l06.collect_finished),
          "clipped_matches": (l07.check_clipped_matches, l07.clipped_matches),
          "brevity_penalty": (l07.check_brevity_penalty, l07.brevity_penalty),
          "corpus_bleu": (l07.check_corpus_bleu, l07.corpus_bleu),
          "build_vocab": (l00.check_build_vocab, l00.build_vocab), "encode": (l00.check_encode, l00.encode),
          "decode": (l00.check_decode, l00.decode), "to_regions": (l01.check_to_regions, l01.to_regions),
          "pool": (l01.check_pool, l01.pool), "preprocess": (l01.check_preprocess, l01.preprocess),
          "lstm_step": (l02.check_lstm_step, l02.lstm_step), "lstm_unroll": (l02.check_lstm_unroll, l02.lstm_unroll),
          "teacher_forced_logits": (l03.check_teacher_forced_logits, l03.teacher_forced_logits),
          "attention_step": (l04.check_attention_step, l04.attention_step),
          "scheduled_input": (l05.check_scheduled_input, l05.scheduled_input),
          "first_scores": (l06.check_first_scores, l06.first_scores),
          "train_step": (l03.check_train_step, l03.train_step), "greedy_decode": (l05.check_greedy_decode, l05.greedy_decode),
          "scst_loss": (l08.check_scst_loss, l08.scst_loss), "leave_one_out": (l09.check_leave_one_out, l09.leave_one_out)}


# Issue 29's exercises: the training step, free-running decoding, the self-critical loss, leave-one-out scoring.
CATALOGUE += [
    ("train_step", "no zero_grad", w.ts_no_zero, "call optimizer.zero_grad() before loss.backward()"),
    ("train_step", "clipped after the step", w.ts_clip_after, "clipped after optimizer.step()"),
    ("train_step", "no clipping", w.ts_no_clip, "the gradients are not clipped"),
    ("train_step", "step before backward", w.ts_step_first, "optimizer.step() runs before loss.backward()"),
    ("train_step", "backward on loss.item()", w.ts_item_backward, "loss.item() is a float"),
    ("train_step", "left in eval mode", w.ts_evalmode, "Call decoder.train()"),
    ("train_step", "a new optimizer inside", w.ts_new_opt, "the optimizer you were given never stepped"),
    ("train_step", "loss on the inputs", w.ts_wrong_shift, "captions[:, 1:]"),
    ("train_step", "returns the tensor", w.ts_ret_tensor, "loss.item()"),
    ("train_step", "norm clipping", w.ts_norm_clip, "clipped by their norm"),
    ("train_step", "zero_grad after backward", w.ts_zero_after, "zero_grad() after loss.backward() erased them"),
    ("greedy_decode", "<start> and <pad> not masked", w.gd_no_mask, "Set their logits to -inf"),
    ("greedy_decode", "never stops", w.gd_no_stop, "go on after <end> until max_len"),
    ("greedy_decode", "finished captions grow", w.gd_grows, "a finished caption keeps growing"),
    ("greedy_decode", "feeds <start> every step", w.gd_feeds_start, "every step reads <start>"),
    ("greedy_decode", "squeeze() at B = 1", w.gd_squeezer, "with a batch of one"),
    ("greedy_decode", "argmax over the batch", w.gd_wrong_axis, "the argmax ran over the batch axis"),
    ("greedy_decode", "max_len off by one", w.gd_off_by_one, "run at most max_len steps"),
    ("greedy_decode", "<start> in the captions", w.gd_with_start, "the captions start with <start>"),
    ("greedy_decode", "<end> dropped", w.gd_no_end_token, "<end> is missing"),
    ("scst_loss", "the sign", w.sl_sign, "the sign is flipped"),
    ("scst_loss", "no baseline", w.sl_nobase, "the baseline is not subtracted"),
    ("scst_loss", "baseline with gradient", w.sl_nodetach, "gradient flows into the baseline"),
    ("scst_loss", "mask ignored", w.sl_nomask, "the <pad> positions count"),
    ("scst_loss", "mean over the words", w.sl_meanwords, "averaged over the words"),
    ("scst_loss", "mean over every token", w.sl_allmean, "or over every token of the batch, which is the same"),
    ("scst_loss", "summed over captions", w.sl_summed, "summed over captions"),
    ("scst_loss", "one loss per caption", w.sl_vec, "return one number"),
    ("scst_loss", "an .item() in the loss", w.sl_itemed, "no gradient reaches the log-probabilities"),
    ("leave_one_out", "all references", w.loo_allrefs, "every reference is used"),
    ("leave_one_out", "K - 1 rounds", w.loo_short, "one reference is never left out"),
    ("leave_one_out", "max over rounds", w.loo_mx, "combined by their maximum"),
    ("leave_one_out", "image by image", w.loo_per_image, "each image is scored alone"),
    ("leave_one_out", "divided by the images", w.loo_byimages, "divided by the number of images"),
    ("leave_one_out", "one round only", w.loo_lastonly, "one round only"),
    ("leave_one_out", "a fixed divisor", w.loo_firstK, "divides by a fixed number of rounds"),
]


def _verdict(exercise, fn):
    check, reference = CHECKS[exercise]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        used = check(fn)
    text = re.sub(r"\n {3,6}(?!Re-read|in your line|The notebook)", " ", out.getvalue())   # the verdict unfolded
    said = [line for line in text.splitlines() if "The notebook continues" not in line]
    return is_reference(used, reference), "\n".join(said)                  # the verdict, and a recipe step if any


@pytest.mark.parametrize("exercise, did, fn, names", CATALOGUE, ids=[f"{e}: {d}" for e, d, _, _ in CATALOGUE])
def test_each_learner_mistake_is_caught_and_named(exercise, did, fn, names):
    caught, line = _verdict(exercise, fn)
    assert caught and line.startswith("❌"), line
    assert names in line, line


def test_catalogue_counts(capsys):
    rows = [(e, *_verdict(e, fn), names) for e, _, fn, names in CATALOGUE]
    with capsys.disabled():
        for exercise in CHECKS:
            mine = [r for r in rows if r[0] == exercise]
            print(f"\n{exercise}: caught {sum(r[1] for r in mine)} / named {sum(r[1] and r[3] in r[2] for r in mine)} "
                  f"/ total {len(mine)}")
    assert all(len([r for r in rows if r[0] == e]) >= 5 for e in CHECKS)


def test_the_generic_fallback_shows_a_tiny_example_and_the_recipe_step():
    """A slip no probe knows (here the regions read from the wrong corner) still gets the 2 x 3 block around the
    first wrong value, expected next to got, and the step of the recipe to re-read."""
    caught, said = _verdict("to_regions", lambda f: f.flatten(2).transpose(1, 2).flip(1))
    assert caught and said.startswith("❌ to_regions: on test input 1 of 2")
    assert "from index (0, 0, 0): expected [" in said and "], got [" in said
    assert said.splitlines()[1].strip().startswith("Re-read the recipe: flatten h and w")


# Held out: wrong solutions written after the probes, without looking at them. Each is caught; where the check
# names the slip the phrase is asserted, where it only shows the difference (and a recipe step) the entry says None.
HELD_OUT = [
    ("build_vocab", w.h_vocab_specials_order, "out of order"),
    ("build_vocab", w.h_vocab_no_lower, "split with tokenize(caption)"),
    ("encode", w.h_encode_tensor, "a Python list of ints"),
    ("decode", w.h_decode_stop_at_pad, "does not stop at the first <end>"),
    ("to_regions", w.h_regions_view_back, "the E axis and the P axis are swapped"),
    ("pool", w.h_pool_amax, "the B axis is missing"),
    ("preprocess", w.h_pre_256, None),
    ("lstm_step", w.h_step_tanh_f, "with the forget gate shut"),      # where, not what (tanh for σ)
    ("lstm_step", w.h_step_fi_swapped, "the gates scale the wrong terms"),
    ("lstm_unroll", w.h_unroll_reversed, "the steps run backwards"),
    ("shift_captions", w.h_shift_swapped, "inputs and targets are swapped"),
    ("masked_loss", w.h_loss_per_batch, "divided by the number of captions"),
    ("teacher_forced_logits", w.h_tf_always_start, None),
    ("attend", w.h_attend_tanh_on_projected_only, None),
    ("attention_step", w.h_step_attend_with_new_h, None),
    ("scheduled_input", w.h_sched_temperature, None),
    ("beam_step", w.h_beam_smallest, "keeps the lowest scores"),
    ("collect_finished", w.h_finished_first_token, "must leave the beam"),
    ("brevity_penalty", w.h_bp_flipped_ratio, "BP = exp(1 - r / c)"),
    ("corpus_bleu", w.h_bleu_all_refs_length, "closest to each hypothesis"),
    ("clipped_matches", w.h_clip_window_off, "the n-gram window stops one short"),
    ("first_scores", w.h_first_live_last, "copies of <start> are live"),
]


@pytest.mark.parametrize("exercise, fn, names", HELD_OUT, ids=[fn.__name__ for _, fn, _ in HELD_OUT])
def test_held_out_wrong_solutions_are_caught_and_named_where_listed(exercise, fn, names):
    caught, said = _verdict(exercise, fn)
    assert caught and said.startswith("❌"), said
    if names is not None:
        assert names in said, said
    else:                                   # not named: the difference, the 2x3 block and the recipe step instead
        assert "Re-read the recipe" in said, said


# Issue 30's blind held-out list (tests/blind_wrong_solutions.py): 99 mistakes written without seeing the checks.
import blind_wrong_solutions as blind  # noqa: E402


@pytest.mark.parametrize("exercise, sid, description, fn", blind.BLIND, ids=[sid for _, sid, _, _ in blind.BLIND])
def test_blind_held_out_wrong_solutions_are_caught(exercise, sid, description, fn):
    caught, said = _verdict(exercise, fn)
    assert caught and said.startswith("❌"), (description, said)


# The blind held-out list of issue 29's four exercises (tests/blind_new_exercises.py), written after their probes.
import blind_new_exercises as blind_new  # noqa: E402


@pytest.mark.parametrize("exercise, sid, description, fn", blind_new.BLIND_NEW, ids=[sid for _, sid, _, _ in blind_new.BLIND_NEW])
def test_blind_held_out_wrong_solutions_of_the_new_exercises_are_caught(exercise, sid, description, fn):
    caught, said = _verdict(exercise, fn)
    assert caught and said.startswith("❌"), (description, said)
