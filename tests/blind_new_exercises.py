"""Blind held-out mistakes for issue 29's exercises (train_step, greedy_decode, scst_loss, leave_one_out), written
after the probes by a writer who saw only the task statements and reference solutions, never the checks. Kept as a
held-out list: tests/test_catalogue.py asserts that every one is caught. Fix kinds, never one item.

Each function has the exercise's signature and one plausible learner mistake.
"""
import torch
import torch.nn.functional as F

PAD, START, END = 0, 1, 2


def masked_loss(logits, targets, pad_idx=0):
    """Mean cross-entropy over real tokens. logits (B, T, V), targets (B, T) -> scalar."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_idx)


# ----------------------------------------------------------------------------------------------
# Exercise A: train_step
# ----------------------------------------------------------------------------------------------

def ts_no_zero_grad(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_zero_grad_before_step(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def ts_clip_after_step(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    return loss.item()


def ts_clamp_not_in_place(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    for p in decoder.parameters():
        if p.grad is not None:
            p.grad.clamp(-grad_clip, grad_clip)
    optimizer.step()
    return loss.item()


def ts_no_clip(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_clip_norm(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_no_train_mode(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_train_after_forward(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    logits, _ = decoder(features, captions)
    decoder.train()
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_returns_tensor(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss


def ts_unshifted_targets(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, :-1], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_no_ignore_index(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    targets = captions[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def ts_no_step(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    return loss.item()


def ts_loss_after_update(decoder, optimizer, features, captions, pad_idx=0, grad_clip=5.0):
    decoder.train()
    logits, _ = decoder(features, captions)
    loss = masked_loss(logits, captions[:, 1:], pad_idx)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(decoder.parameters(), grad_clip)
    optimizer.step()
    with torch.no_grad():
        logits, _ = decoder(features, captions)
        return masked_loss(logits, captions[:, 1:], pad_idx).item()


# ----------------------------------------------------------------------------------------------
# Exercise B: greedy_decode
# ----------------------------------------------------------------------------------------------

def gd_no_mask_special(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_mask_only_pad(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, PAD] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_stop_at_first_end(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in range(B):
            captions[b].append(int(words[b]))
        if (words == END).any():
            break
    return captions


def gd_append_after_end(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in range(B):
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_drop_end(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        done |= words == END
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        if done.all():
            break
    return captions


def gd_keep_start(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[START] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_no_feedback(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        best = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(best[b]))
        done |= best == END
        if done.all():
            break
    return captions


def gd_state_not_updated(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, _, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_squeeze_batch_one(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1).squeeze()
        for b, w in enumerate(words.tolist()):
            if not done[b]:
                captions[b].append(w)
                done[b] = w == END
        if all(done):
            break
    return captions


def gd_mask_wrong_axis(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[[PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_max_len_off_by_one(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(1, max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done |= words == END
        if done.all():
            break
    return captions


def gd_tensor_items(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(words[b])
        done |= words == END
        if done.all():
            break
    return captions


def gd_done_not_accumulated(decoder, features, max_len=20):
    B = features.shape[0]
    state, memo = decoder.init_state(features), decoder.prepare(features)
    words = torch.full((B,), START, dtype=torch.long, device=features.device)
    captions = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(words, state, features, memo)
        logits[:, [PAD, START]] = float("-inf")
        words = logits.argmax(dim=-1)
        for b in (~done).nonzero().flatten().tolist():
            captions[b].append(int(words[b]))
        done = words == END
        if done.all():
            break
    return captions


# ----------------------------------------------------------------------------------------------
# Exercise C: scst_loss
# ----------------------------------------------------------------------------------------------

def sc_no_detach(log_probs, mask, rewards, baseline):
    advantage = rewards - baseline
    return -(advantage * (log_probs * mask).sum(dim=1)).mean()


def sc_detach_reward_only(log_probs, mask, rewards, baseline):
    advantage = rewards.detach() - baseline
    return -(advantage * (log_probs * mask).sum(dim=1)).mean()


def sc_plus_sign(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return (advantage * (log_probs * mask).sum(dim=1)).mean()


def sc_baseline_minus_reward(log_probs, mask, rewards, baseline):
    advantage = (baseline - rewards).detach()
    return -(advantage * (log_probs * mask).sum(dim=1)).mean()


def sc_no_baseline(log_probs, mask, rewards, baseline):
    advantage = rewards.detach()
    return -(advantage * (log_probs * mask).sum(dim=1)).mean()


def sc_no_mask(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * log_probs.sum(dim=1)).mean()


def sc_inverted_mask(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * (log_probs * (1 - mask)).sum(dim=1)).mean()


def sc_mean_over_tokens(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * (log_probs * mask).mean(dim=1)).mean()


def sc_length_normalised(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * (log_probs * mask).sum(dim=1) / mask.sum(dim=1)).mean()


def sc_sum_over_batch(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * (log_probs * mask).sum(dim=1)).sum()


def sc_mean_over_all_elements(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage.unsqueeze(1) * log_probs * mask).mean()


def sc_keepdim_broadcast(log_probs, mask, rewards, baseline):
    advantage = (rewards - baseline).detach()
    return -(advantage * (log_probs * mask).sum(dim=1, keepdim=True)).mean()


def sc_loss_detached(log_probs, mask, rewards, baseline):
    advantage = rewards - baseline
    return -(advantage * (log_probs * mask).sum(dim=1)).mean().detach()


# ----------------------------------------------------------------------------------------------
# Exercise D: leave_one_out
# ----------------------------------------------------------------------------------------------

def loo_drop_image(references, hypotheses, score):
    K = min(len(r) for r in references)
    total = 0.0
    for k in range(K):
        total += score(references[:k] + references[k + 1:], hypotheses[:k] + hypotheses[k + 1:])
    return total / K


def loo_keep_only_kth(references, hypotheses, score):
    K = min(len(r) for r in references)
    return sum(score([[r[k]] for r in references], hypotheses) for k in range(K)) / K


def loo_nothing_removed(references, hypotheses, score):
    K = min(len(r) for r in references)
    return sum(score([r[:k] + r[k:] for r in references], hypotheses) for k in range(K)) / K


def loo_rotate_in_place(references, hypotheses, score):
    K = min(len(r) for r in references)
    total = 0.0
    for k in range(K):
        left_out = [r.pop(k) for r in references]
        total += score(references, hypotheses)
        for r, ref in zip(references, left_out):
            r.append(ref)
    return total / K


def loo_truncate_in_place(references, hypotheses, score):
    K = min(len(r) for r in references)
    for r in references:
        del r[K:]
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / K


def loo_divide_by_images(references, hypotheses, score):
    K = min(len(r) for r in references)
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / len(references)


def loo_divide_by_k_minus_1(references, hypotheses, score):
    K = min(len(r) for r in references)
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / (K - 1)


def loo_sentence_average(references, hypotheses, score):
    K = min(len(r) for r in references)
    per_image = []
    for r, h in zip(references, hypotheses):
        per_image.append(sum(score([r[:k] + r[k + 1:]], [h]) for k in range(K)) / K)
    return sum(per_image) / len(per_image)


def loo_k_from_first_image(references, hypotheses, score):
    K = len(references[0])
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / K


def loo_k_max(references, hypotheses, score):
    K = max(len(r) for r in references)
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / K


def loo_single_round(references, hypotheses, score):
    return score([r[:-1] for r in references], hypotheses)


def loo_skip_round_zero(references, hypotheses, score):
    K = min(len(r) for r in references)
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(1, K)) / (K - 1)


def loo_max_over_rounds(references, hypotheses, score):
    K = min(len(r) for r in references)
    return max(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K))


BLIND_NEW = [
    # --- train_step ---
    ("train_step", "ts_no_zero_grad", ts_no_zero_grad,
     "Never calls optimizer.zero_grad(), so loss.backward() adds this batch's gradient to the leftover .grad of earlier "
     "steps; zero the gradients before backward."),
    ("train_step", "ts_zero_grad_before_step", ts_zero_grad_before_step,
     "Calls optimizer.zero_grad() after backward and clipping, just before optimizer.step(), wiping the gradient just "
     "computed so the step updates nothing; zero_grad must come before loss.backward()."),
    ("train_step", "ts_clip_after_step", ts_clip_after_step,
     "Clips the gradients after optimizer.step(), so the update uses the unclipped gradients; clip between backward "
     "and step."),
    ("train_step", "ts_clamp_not_in_place", ts_clamp_not_in_place,
     "Clips with p.grad.clamp(...), which returns a new tensor and leaves .grad unclipped; clip in place "
     "(clip_grad_value_ or clamp_) between backward and step."),
    ("train_step", "ts_no_clip", ts_no_clip,
     "Leaves out gradient clipping, so grad_clip is ignored; clip every value to [-grad_clip, grad_clip] with "
     "clip_grad_value_ before step."),
    ("train_step", "ts_clip_norm", ts_clip_norm,
     "Uses clip_grad_norm_ (rescales the total norm to grad_clip) instead of clip_grad_value_ (clamps each value to "
     "[-grad_clip, grad_clip])."),
    ("train_step", "ts_no_train_mode", ts_no_train_mode,
     "Never calls decoder.train(), so a decoder left in eval mode trains without dropout; set train mode at the start "
     "of each step."),
    ("train_step", "ts_train_after_forward", ts_train_after_forward,
     "Calls decoder.train() only after the forward pass, so the forward (and the loss) ran in whatever mode the "
     "decoder was in; switch to train mode before the forward."),
    ("train_step", "ts_returns_tensor", ts_returns_tensor,
     "Returns the loss tensor (with its graph) instead of the Python float loss.item()."),
    ("train_step", "ts_unshifted_targets", ts_unshifted_targets,
     "Uses captions[:, :-1] as targets, so each logit is scored against its own input word; the targets are the "
     "shifted captions[:, 1:]."),
    ("train_step", "ts_no_ignore_index", ts_no_ignore_index,
     "Computes cross-entropy without ignore_index=pad_idx, so <pad> positions count as targets; use masked_loss "
     "(ignore_index=pad_idx)."),
    ("train_step", "ts_no_step", ts_no_step,
     "Forgets optimizer.step(), so the parameters never change; call step after clipping."),
    ("train_step", "ts_loss_after_update", ts_loss_after_update,
     "Returns the loss of a second forward pass made after the update (and without dropout) instead of the loss the "
     "step was computed from."),
    # --- greedy_decode ---
    ("greedy_decode", "gd_no_mask_special", gd_no_mask_special,
     "Does not set the <pad> and <start> logits to -inf, so greedy decoding can pick them; mask both before argmax."),
    ("greedy_decode", "gd_mask_only_pad", gd_mask_only_pad,
     "Masks only <pad>, so <start> can still be chosen as a word; set both <pad> and <start> logits to -inf."),
    ("greedy_decode", "gd_stop_at_first_end", gd_stop_at_first_end,
     "Stops the whole batch as soon as any caption says <end>, cutting the unfinished ones short; stop only when every "
     "caption has finished (or at max_len)."),
    ("greedy_decode", "gd_append_after_end", gd_append_after_end,
     "Keeps appending words to captions that already said <end>; a finished caption must get no more words."),
    ("greedy_decode", "gd_drop_end", gd_drop_end,
     "Marks captions finished before appending the step's words, so the <end> token is never kept; a finished caption "
     "keeps its <end> as last token."),
    ("greedy_decode", "gd_keep_start", gd_keep_start,
     "Starts every returned caption with <start>; the output must not contain <start>."),
    ("greedy_decode", "gd_no_feedback", gd_no_feedback,
     "Stores the chosen word in a new variable and keeps feeding <start> as the input; the chosen word must be fed back "
     "as the next step's input."),
    ("greedy_decode", "gd_state_not_updated", gd_state_not_updated,
     "Discards the new LSTM state returned by decoder.step, so every step restarts from the initial state; thread the "
     "returned state into the next step."),
    ("greedy_decode", "gd_squeeze_batch_one", gd_squeeze_batch_one,
     "Squeezes the (B,) argmax, which for a batch of one becomes a 0-d tensor that cannot be iterated or fed to step; "
     "keep the batch axis."),
    ("greedy_decode", "gd_mask_wrong_axis", gd_mask_wrong_axis,
     "Writes logits[[PAD, START]] = -inf, which wipes batch rows 0 and 1 instead of the vocabulary columns; index the "
     "word axis, logits[:, [PAD, START]]."),
    ("greedy_decode", "gd_max_len_off_by_one", gd_max_len_off_by_one,
     "Loops over range(1, max_len), so at most max_len - 1 words are decoded; run max_len steps."),
    ("greedy_decode", "gd_tensor_items", gd_tensor_items,
     "Appends 0-d tensors words[b] instead of Python ints; return lists of int word indices."),
    ("greedy_decode", "gd_done_not_accumulated", gd_done_not_accumulated,
     "Overwrites done with this step's words == END instead of OR-ing it, so a finished caption is revived when its "
     "next word is not <end>; accumulate done |= words == END."),
    # --- scst_loss ---
    ("scst_loss", "sc_no_detach", sc_no_detach,
     "Does not detach rewards - baseline, so gradient flows into the reward and the baseline; detach the advantage."),
    ("scst_loss", "sc_detach_reward_only", sc_detach_reward_only,
     "Detaches the reward but not the baseline, so gradient still flows into the baseline; detach the whole advantage."),
    ("scst_loss", "sc_plus_sign", sc_plus_sign,
     "Drops the minus sign, so minimising the loss makes better-than-baseline captions less likely; loss = "
     "-(r - b) * sum log p."),
    ("scst_loss", "sc_baseline_minus_reward", sc_baseline_minus_reward,
     "Uses baseline - reward as the advantage, flipping the sign of the update; the advantage is reward - baseline."),
    ("scst_loss", "sc_no_baseline", sc_no_baseline,
     "Ignores the baseline and weights by the raw reward; subtract the baseline (REINFORCE with a baseline)."),
    ("scst_loss", "sc_no_mask", sc_no_mask,
     "Sums log-probabilities over all positions including <pad>; multiply by the mask before summing."),
    ("scst_loss", "sc_inverted_mask", sc_inverted_mask,
     "Multiplies by 1 - mask, keeping the <pad> positions and dropping the real words; multiply by mask."),
    ("scst_loss", "sc_mean_over_tokens", sc_mean_over_tokens,
     "Averages the masked log-probabilities over the T positions instead of summing them over the caption's words."),
    ("scst_loss", "sc_length_normalised", sc_length_normalised,
     "Divides each caption's log-probability by its length; the loss uses the plain sum over the caption's words."),
    ("scst_loss", "sc_sum_over_batch", sc_sum_over_batch,
     "Sums over the captions instead of averaging them; take the mean over the batch."),
    ("scst_loss", "sc_mean_over_all_elements", sc_mean_over_all_elements,
     "Takes the mean over all B*T elements (dividing by T as well) instead of summing over time and averaging over "
     "captions."),
    ("scst_loss", "sc_keepdim_broadcast", sc_keepdim_broadcast,
     "Sums with keepdim=True, so the (B, 1) sums broadcast against the (B,) advantages into a (B, B) table whose mean "
     "mixes captions; multiply per caption, shapes (B,) * (B,)."),
    ("scst_loss", "sc_loss_detached", sc_loss_detached,
     "Detaches the whole loss (not just the advantage), so no gradient reaches the log-probabilities; detach only "
     "rewards - baseline."),
    # --- leave_one_out ---
    ("leave_one_out", "loo_drop_image", loo_drop_image,
     "Leaves out the k-th image (and its hypothesis) instead of the k-th reference of every image."),
    ("leave_one_out", "loo_keep_only_kth", loo_keep_only_kth,
     "Keeps only the k-th reference of each image instead of all references but the k-th."),
    ("leave_one_out", "loo_nothing_removed", loo_nothing_removed,
     "Slices r[:k] + r[k:], which is the whole list, so nothing is left out; use r[:k] + r[k + 1:]."),
    ("leave_one_out", "loo_rotate_in_place", loo_rotate_in_place,
     "Pops the k-th reference from the caller's lists and appends it back at the end, reordering them so later rounds "
     "leave out the wrong reference and the caller's references are changed; build new lists instead."),
    ("leave_one_out", "loo_truncate_in_place", loo_truncate_in_place,
     "Truncates the caller's reference lists in place to K, which drops extra references from the scores and mutates "
     "the input; never edit the caller's lists."),
    ("leave_one_out", "loo_divide_by_images", loo_divide_by_images,
     "Divides the sum of the K round scores by the number of images instead of by K."),
    ("leave_one_out", "loo_divide_by_k_minus_1", loo_divide_by_k_minus_1,
     "Divides the sum of the K round scores by K - 1 (the number of references kept) instead of by the K rounds."),
    ("leave_one_out", "loo_sentence_average", loo_sentence_average,
     "Scores each image on its own and averages, which is not the corpus metric; call score on the whole corpus each "
     "round."),
    ("leave_one_out", "loo_k_from_first_image", loo_k_from_first_image,
     "Takes K from the first image's reference count instead of the minimum over images, wrong when images have "
     "different numbers of references."),
    ("leave_one_out", "loo_k_max", loo_k_max,
     "Uses the largest reference count as K, so some rounds leave nothing out of the images with fewer references; "
     "K is the minimum count."),
    ("leave_one_out", "loo_single_round", loo_single_round,
     "Scores once with the last reference left out instead of averaging the K rounds that each leave out one reference."),
    ("leave_one_out", "loo_skip_round_zero", loo_skip_round_zero,
     "Loops k over range(1, K), skipping the round that leaves out the first reference; average all K rounds."),
    ("leave_one_out", "loo_max_over_rounds", loo_max_over_rounds,
     "Combines the K rounds with max instead of the mean."),
]
# The requested order is (exercise_name, short_id, description, function):
BLIND_NEW = [(ex, sid, desc, fn) for ex, sid, fn, desc in BLIND_NEW]
