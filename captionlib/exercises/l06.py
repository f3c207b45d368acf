"""Lesson 06 exercises: one beam-search step, collecting finished hypotheses, and where a batched beam starts.

`beam_step` is the heart of beam search for one image: extend each of the K hypotheses by every
word, score the K*V continuations by summed log-probability, keep the best k, and remember where
each came from. `collect_finished` moves hypotheses that produced <end> out of the beam (the
classic per-image loop then continues with fewer beams) and ranks them, optionally normalised
by length. `first_scores` is the start of the batched search: the K beams of an image begin as copies of
the one <start> hypothesis, so only one of them may be live.
"""
from __future__ import annotations

import math

import torch

from ..checks import MISSING, Mistake, Part, checked

__all__ = ["PARTS", "beam_step", "collect_finished", "first_scores", "check_beam_step", "check_collect_finished",
           "check_first_scores", "END"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "beam_step": [Part("the ranking over all K*V continuations", 2,
                       r"accumulated|own score|lowest|first beam|per beam|compete|multiplied|topk"),
                  Part("the back-pointers", 2, r"back-pointers|parent|the word is|integer indices|floor division")],
    "collect_finished": [Part("finished ones leave the beam", 1, r"leave the beam|keep expanding"),
                         Part("the earlier finished ones kept", 1, r"finished at earlier|finished list|in place"),
                         Part("length normalisation", 2, r"length|len\(|complex")],
    "first_scores": [Part("the live one at 0", 1, r"starts at 1"),
                     Part("the others dead (-inf)", 1, r"-1e\+09"),
                     Part("one live copy per image", 2, r"copies|copy|live|row")],
}

END = 2  # captionlib.vocab: <pad> 0, <start> 1, <end> 2


def beam_step(scores: torch.Tensor, logp: torch.Tensor, k: int):
    """scores (K,) summed log-probs of the live hypotheses; logp (K, V) next-word log-probs.
    Returns (new scores (k,), parent beam (k,), word (k,)), best first."""
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)       # over all K*V continuations
    return top, idx // V, idx % V


def _multiplied_logp(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] * logp).reshape(-1).topk(k)
    return top, idx // V, idx % V


def _probabilities(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores.exp()[:, None] * logp.exp()).reshape(-1).topk(k)
    return top, idx // V, idx % V


def _best_word_per_beam(scores, logp, k):
    top, words = (scores[:, None] + logp).max(dim=1)              # each beam keeps its own best word
    order = top.argsort(descending=True)[:k]
    return top[order], order, words[order]


def _topk_of_first_beams(scores, logp, k):
    top, words = (scores[:, None] + logp).topk(k, dim=1)          # (K, k) per beam, then the first k found
    return top.reshape(-1)[:k], torch.arange(logp.shape[0]).repeat_interleave(k)[:k], words.reshape(-1)[:k]


def _swapped(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx % V, idx // V


def _by_k(scores, logp, k):
    V = logp.shape[1]
    top, idx = (scores[:, None] + logp).reshape(-1).topk(k)
    return top, idx // k, idx % V


def _not_accumulated(scores, logp, k):
    V = logp.shape[1]
    _, idx = logp.reshape(-1).topk(k)
    return (scores[:, None] + logp).reshape(-1)[idx], idx // V, idx % V


def _beam_cases():
    g = torch.Generator().manual_seed(6)
    cases = []
    for K, V, k in [(3, 7, 3), (4, 9, 4), (2, 6, 2), (5, 11, 3), (1, 6, 3)]:
        logp = torch.log_softmax(2 * torch.randn(K, V, generator=g), dim=1)
        scores = -3 * torch.rand(K, generator=g) - 1.0                 # earlier words' summed log-probs
        cases.append((scores, logp, k))
    return cases


# What each case of _beam_cases probes, said when only it fails.
_BEAM_NOTES = [None, None, None, "when k < K (only 3 of 5 beams go on)",
               "with one live hypothesis and k = 3 (the first step: the k beams are all children of the <start> "
               "hypothesis, so they must come from the K*V = 6 continuations of that one beam)"]


def _beam_parts(fn) -> str | None:
    """Inputs where one part of the step alone decides the answer; names every part that is wrong. The scores are
    judged by their values first, so that wrong back-pointers are only named when the ranking itself is right."""
    said = []
    first = lambda x: float(torch.as_tensor(x).reshape(-1)[0])           # noqa: E731
    # A good history with a likely word beats a bad history with a very likely one: the scores must be added.
    scores, logp = torch.tensor([-10.0, -1.0]), torch.log_softmax(torch.tensor([[8.0, 0, 0, 0], [1.0, 0, 0, 0]]), dim=1)
    top = first(fn(scores, logp, 1)[0])
    want = float(scores[1] + logp[1, 0])
    ranked_right = abs(top - want) < 1e-4
    # The mirror image: beam 0 has the good history, beam 1 the very likely word.
    flipped = first(fn(scores.flip(0), logp.flip(0), 1)[0])
    if not ranked_right and abs(flipped - want) < 1e-4:
        said.append("only the first beam's continuations are ranked: all K*V continuations compete in one top-k "
                    "over the flattened (K*V) scores")
    elif not ranked_right:
        if abs(top - float(scores[0] + logp[0, 0])) < 1e-4 or abs(top - float(logp[0, 0])) < 1e-4:
            said.append("the hypothesis's own score is not added: beam 1 (score -1) with a likely word must beat beam 0 "
                        "(score -10) with a very likely one; rank by scores[:, None] + logp")
        elif top <= float((scores[:, None] + logp).min()) + 1e-4:
            said.append("the top-k keeps the lowest scores: keep the largest (log-probabilities closest to 0), "
                        "topk(k) with its default largest=True")
        elif abs(top - math.exp(want)) < 1e-4:
            said.append("the scores are probabilities: keep summed log-probabilities, scores[:, None] + logp")
        else:
            said.append(f"the best score is {top:.4g}, expected {want:.4g} = scores[1] + logp[1, 0]: a hypothesis's "
                        "score is the sum of its words' log-probabilities, scores[:, None] + logp")
    # One beam far ahead: its 3 best continuations beat every other beam's.
    logp = torch.log_softmax(torch.tensor([[3.0, 2, 1, 0], [0, 1, 2, 3], [1, 1, 1, 1]]), dim=1)
    top = torch.as_tensor(fn(torch.tensor([0.0, -50.0, -50.0]), logp, 3)[0]).reshape(-1)
    if ranked_right and top.numel() == 3 and bool((top < -40).any()):
        said.append("all K*V continuations must compete in one top-k over the flattened scores: here beam 0 is far "
                    "ahead, so all 3 kept hypotheses are its children, but yours keep children of other beams")
    # The best continuation is word 3 of beam 2, with V = 5 and K = 3 (so i // V, i // K and i % K all differ).
    if ranked_right:
        logp = torch.full((3, 5), -10.0)
        logp[2, 3] = -0.1
        _, parent, word = fn(torch.full((3,), -1.0), logp, 1)
        parent, word = torch.as_tensor(parent), torch.as_tensor(word)
        if parent.is_floating_point() or word.is_floating_point():
            return "the parent beams and words must be integer indices: use floor division idx // V, not idx / V"
        parent, word = int(first(parent)), int(first(word))
        if (parent, word) == (3, 2):
            said.append("the back-pointers are swapped: for flattened index i over K*V, the parent is i // V, the word i % V")
        else:
            if parent != 2:
                said.append(f"the parent beam is {parent} where the best continuation is word 3 of beam 2: for "
                            "flattened index i over K*V, the parent is i // V")
            if word != 3:
                said.append(f"the word is {word}, expected 3: for flattened index i, the word is i % V")
    return "; ".join(said) or None



# The step of each exercise to re-read, by the output that differs (checks.check's `recipe`).
_RECIPES = {
    "beam_step": {
        0: "the recipe, steps 1-2: add scores[:, None] + logp, then one top-k over the flattened K*V table",
        1: "the recipe, step 3: the parent of flattened index i is i // V",
        2: "the recipe, step 3: the word of flattened index i is i % V",
    },
    "collect_finished": {
        None: ("the recipe: for each hypothesis: ends with <end>? append (score / len ** length_norm, tokens) to a "
               "copy of finished; else keep it live"),
    },
    "first_scores": {
        None: "the recipe: a (B, k) tensor of -inf, then column 0 set to 0",
    },
}

def check_beam_step(fn=MISSING):
    per_beam = ("top-k is taken per beam: all K*V continuations compete in one top-k over the flattened (K*V) "
                "scores, so a strong beam may keep several children and a weak one none")
    mistakes = [
        Mistake("log-probabilities are multiplied: scores of a sequence add up in log space (log p1p2 = log p1 + "
                "log p2), so the continuation's score is scores[:, None] + logp", _multiplied_logp),
        Mistake("probabilities are multiplied: the ranking is the same, but the scores are probabilities that "
                "underflow to 0 for long captions; add log-probabilities instead", _probabilities),
        Mistake(per_beam, _best_word_per_beam),
        Mistake(per_beam, _topk_of_first_beams),
        Mistake("back-pointers are swapped: in the flattened index i over K*V continuations, the parent beam is "
                "i // V and the word i % V", _swapped),
        Mistake("the parent beam is computed with k: in the flattened index i over K*V continuations, the parent "
                "is i // V (V words per beam), the word i % V", _by_k),
        Mistake("the scores are not accumulated: continuations are ranked by the new word's log-prob alone; "
                "rank by the whole hypothesis, scores[:, None] + logp", _not_accumulated),
    ]
    return checked("beam_step", fn, beam_step, _beam_cases(), mistakes=mistakes, notes=_BEAM_NOTES, probes=[_beam_parts],
                   axes=("k", "k", "k"), arg_axes={"scores": "K", "logp": "KV"},
                   recipe=_RECIPES["beam_step"])


def collect_finished(seqs: list, scores: list, finished: list, length_norm: float = 0.0):
    """Move the hypotheses that end with END from the beam to `finished`.

    Args:
        seqs: k token lists, each ending with the word chosen at this step; scores: their k summed log-probs.
        finished: (score, tokens) pairs found so far; a new one is scored score / len(tokens) ** length_norm
            (len counts END; length_norm 0 is the plain log-probability).
    Returns:
        (live seqs, live scores, finished): the hypotheses that go on, and the new finished list.
    """
    live, live_scores, done = [], [], list(finished)
    for s, sc in zip(seqs, scores):
        if s[-1] == END:
            done.append((sc / len(s) ** length_norm, s))
        else:
            live.append(s)
            live_scores.append(sc)
    return live, live_scores, done


def _keep_expanding(seqs, scores, finished, length_norm=0.0):
    _, _, done = collect_finished(seqs, scores, finished, length_norm)
    return list(seqs), list(scores), done


def _no_norm(seqs, scores, finished, length_norm=0.0):
    return collect_finished(seqs, scores, finished, 0.0)


def _dropped(seqs, scores, finished, length_norm=0.0):
    live, live_scores, _ = collect_finished(seqs, scores, finished, length_norm)
    return live, live_scores, list(finished)


def _finished_cases():
    A, B_, C = [5, 6, END], [5, 7, 8], [4, 4, 6, 9, END]
    return [([A, B_, C], [-1.5, -2.0, -2.6], [(-0.9, [7, END])], 0.7),
            ([B_, A], [-2.0, -2.2], [], 1.0),
            ([C, B_, [9, END]], [-3.0, -3.1, -1.2], [(-0.5, [END])], 0.5)]


def _finished_parts(fn) -> str | None:
    """One hypothesis of each kind at a time: how a finished one is scored and stored, whether the earlier finished
    ones are kept, and whether a finished one leaves the beam. Names every part that is wrong."""
    said = []
    _, _, rooted = fn([[4, 4, 4, END]], [-6.0], [], 0.5)              # -6 / 4 ** 0.5 = -3
    if rooted and isinstance(rooted[-1], (tuple, list)) and isinstance(rooted[-1][0], complex):
        return ("the score came out a complex number: (score / len) ** length_norm raises a negative number to a "
                "fractional power. Only the length is raised: score / len(tokens) ** length_norm (** binds tighter than /)")
    live, _, done = fn([[4, 4, 4, END]], [-6.0], [], 1.0)             # 4 tokens, <end> included: -6 / 4 = -1.5
    entry = done[-1] if done else None
    if entry is not None and isinstance(entry, (tuple, list)) and len(entry) == 2:
        score, tokens = entry
        if isinstance(score, list) and not isinstance(tokens, list):
            said.append("each finished entry is (score, tokens), in that order (the score first, so they sort by it)")
        elif isinstance(score, complex):
            said.append("the score came out a complex number: (score / len) ** length_norm raises a negative number to a "
                        "fractional power. Only the length is raised: score / len(tokens) ** length_norm (** binds "
                        "tighter than /)")
        elif isinstance(score, (int, float)):
            for value, why in ((-6.0, "it is not normalised: divide the score by len(tokens) ** length_norm"),
                               (-2.0, "len(tokens) counts <end>: divide by len(s) ** length_norm, with <end> in s"),
                               (-24.0, "the score is multiplied by the length: divide by len(tokens) ** length_norm")):
                if abs(score - value) < 1e-9:
                    said.append(f"a finished hypothesis of 4 tokens (<end> included) with score -6 and length_norm 1 "
                                f"must get -1.5, yours gets {value:g}: {why}")
    if live:
        said.append("a hypothesis that produced <end> must leave the beam (return it in finished, not in the live seqs)")
    _, _, done = fn([[5, 6]], [-1.0], [(-0.5, [END])], 0.0)
    if not any(isinstance(d, (tuple, list)) and list(d[1:2]) == [[END]] for d in done):
        said.append("the hypotheses finished at earlier steps are lost: start from the finished list you are given "
                    "(e.g. done = list(finished)) and append to it")
    return "; ".join(said) or None


def check_collect_finished(fn=MISSING):
    mistakes = [
        Mistake("finished hypotheses keep expanding: one that produced <end> must leave the beam (it is complete), "
                "or it grows words after <end>", _keep_expanding),
        Mistake("no length normalisation: a finished hypothesis is ranked by score / len(tokens) ** length_norm "
                "when length_norm > 0 (otherwise short captions always win)", _no_norm),
        Mistake("finished hypotheses are dropped: append each (score, tokens) that ended with <end> to finished, "
                "and return the new list", _dropped),
    ]
    return checked("collect_finished", fn, collect_finished, _finished_cases(), mistakes=mistakes, atol=1e-9,
                   probes=[_finished_parts],
                   recipe=_RECIPES["collect_finished"])


def first_scores(batch: int, k: int) -> torch.Tensor:
    """(B, k) the scores the k beams of each image start with: one live copy of the <start> hypothesis (score 0,
    log 1: nothing is said yet), the others -inf, so that the first top-k cannot pick the same word k times."""
    scores = torch.full((batch, k), float("-inf"))
    scores[:, 0] = 0.0
    return scores


def _as_start(scores):
    """Which beam is live does not matter: compare each row's scores sorted, very negative ones read as -inf (that
    they must be -inf itself, `_truly_dead` says)."""
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        return scores
    return scores.masked_fill(scores < -1e8, float("-inf")).sort(dim=-1, descending=True).values


def _start_parts(fn) -> str | None:
    """What the first step of beam_step makes of the learner's start, for one image whose k copies predict alike."""
    scores = fn(2, 3)
    if not torch.is_tensor(scores) or scores.shape != (2, 3):
        shape = tuple(scores.shape) if torch.is_tensor(scores) else type(scores).__name__
        return f"the scores must be a (B, k) = (2, 3) tensor, one row per image; got {shape}"
    if bool((scores[0] > -1e8).all()) and bool((scores[1] <= -1e8).all()):
        return ("the first image's row is all live and the second image's all dead: scores[0] = 0 sets a row (an "
                "image). One live beam per image is the first column: scores[:, 0] = 0")
    row = scores[0]
    live = row > -1e8
    if not bool(live.any()):
        return "every beam starts dead (-inf): one per image must be live, with score 0 = log 1 (nothing said yet)"
    if int(live.sum()) > 1:
        logp = torch.log_softmax(torch.tensor([3.0, 1.0, 0.5, 0.0]), dim=0).expand(3, -1)   # the 3 copies predict alike
        _, _, words = beam_step(row, logp, 3)
        return (f"{int(live.sum())} of the 3 copies of <start> are live: the first top-k then picks the same best word "
                f"from each (here words {words.tolist()}), and the beam holds copies of one caption. Keep one copy at "
                "0 and set the others to -inf")
    if float(row[live][0]) != 0.0:
        return f"the live copy starts at {float(row[live][0]):g}: a score is a sum of log-probabilities, 0 for no word yet"
    return None


def _truly_dead(fn) -> str | None:
    """-1e9 looks dead, but beam search tells a beam that never held a hypothesis by its -inf score (torch.isinf):
    -1e9 plus a log-probability is a (terrible) live hypothesis, kept whenever k exceeds the words there are."""
    scores = fn(2, 3)
    dead = scores[scores < -1e6]
    if dead.numel() and bool(torch.isfinite(dead).any()):
        return (f"the other copies start at {float(dead[0]):g}, not -inf: beam search tells an empty beam by its -inf "
                "score (torch.isinf), and -1e9 + a log-probability is a (very bad) live hypothesis that a wide beam "
                "keeps. Use float('-inf') (torch.full(..., float('-inf')))")
    return None


def check_first_scores(fn=MISSING):
    cases = [(1, 3), (2, 4), (3, 1), (4, 5)]
    mistakes = [
        Mistake("all k copies start live at 0: the first top-k over k identical rows then picks the same word k times. "
                "Keep one copy at 0 and set the others to -inf", lambda b, k: torch.zeros(b, k)),
        Mistake("the scores are (k, B): one row per image, (B, k)", lambda b, k: first_scores(b, k).T),
    ]
    return checked("first_scores", fn, first_scores, cases, mistakes=mistakes, normalize=_as_start,
                   probes=[_start_parts], properties=[_truly_dead],
                   recipe=_RECIPES["first_scores"])
