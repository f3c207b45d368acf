"""Evaluating a captioner beyond one number: the people's score on the same references, and where attention looks.

Lessons 04, 07 and 09 use it.

* **The people's score, and the model's on the same references.** Score each reference caption against the other
  references of its image (corpus BLEU, leave-one-out, averaged over which reference is left out), and the model's
  caption against those same references in each round (`against_humans`, `leave_one_out`). Only that pair compares:
  a model scored against all K references has one more to match than a person scored against K - 1.
* **Attention in box.** For each generated word that names a colour or shape present in a shapes
  scene, the attention mass that falls inside the boxes of the objects it can name. Uniform
  attention would put mass equal to the boxes' share of the image there, so we report both.
* **Mentions the references do not back (real photos).** Real datasets have no object labels
  here, so the references stand in for the truth: for a class of words (gender, colour, number,
  frequent objects), how often the model names a word of that class that none of the image's
  references uses (synonyms grouped: "man"/"guy", "dog"/"dogs"). References miss things, so this
  over-counts a little; it is a way to find failure cases, not a precise error rate.
* **Hallucination (CHAIR).** Rohrbach et al. 2018, "Object Hallucination in Image Captioning":
  of the objects a caption names, how many are not in the image (CHAIR_i), and how many captions
  name at least one such object (CHAIR_s). On shapes an object is a (colour, shape) pair and the
  scene says exactly what is there, so it needs no synonym lists. Lesson 09 uses it to show what
  BLEU misses.

Shapes: L caption length, P regions (g*g).
"""
from __future__ import annotations

import numpy as np

from .bleu import bleu_scores
from .shapes import COLOURS, SHAPE_WORDS, PLURAL
from .vocab import tokenize

__all__ = ["reference_ceiling", "leave_one_out", "against_humans", "score_beams", "PUBLISHED", "WORD_CLASSES", "unsupported_mentions", "region_box_overlap", "attention_in_box",
           "object_mentions", "hallucination"]

# Published test scores to compare with: Xu et al. 2015, Table 1 (their BLEU is defined without the brevity penalty).
PUBLISHED = {
    "flickr8k": {
        "Xu et al. 2015, soft attention": {"BLEU-1": 0.670, "BLEU-2": 0.448, "BLEU-3": 0.299, "BLEU-4": 0.195, "METEOR": 0.1893},
        "Xu et al. 2015, hard attention": {"BLEU-1": 0.670, "BLEU-2": 0.457, "BLEU-3": 0.314, "BLEU-4": 0.213, "METEOR": 0.2030},
    },
}

# Word classes for `unsupported_mentions`, each a list of synonym groups (frequent words of Flickr8k's captions).
WORD_CLASSES = {
    "gender": [{"man", "men", "boy", "boys", "guy", "guys", "gentleman", "he", "his", "him"},
               {"woman", "women", "girl", "girls", "lady", "ladies", "she", "her"}],
    "colour": [{"red"}, {"blue"}, {"green"}, {"yellow"}, {"black"}, {"white"}, {"brown"}, {"orange"}, {"pink"},
               {"purple"}, {"gray", "grey"}, {"tan"}],
    "number": [{"two"}, {"three"}, {"four"}, {"five"}, {"group", "crowd", "several", "many"}],
    "object": [{w, w + "s"} for w in ("dog", "ball", "bike", "rock", "camera", "hat", "jacket", "toy", "wall", "building",
                                      "stick", "skateboard", "car", "tree", "baby", "bench", "helmet", "fence", "frisbee",
                                      "boat", "motorcycle", "rope", "swing", "ramp", "table", "bicycle", "horse", "sign",
                                      "flag", "bag", "umbrella", "guitar", "bird", "cat", "sheep", "cow", "bus")]
              + [{w} for w in ("water", "grass", "snow", "beach", "pool", "ocean", "sand", "mountain", "lake", "street",
                               "field", "road", "sidewalk", "hill", "park", "river", "waves")],
}

_SHAPE_OF = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_SHAPE_OF.update({PLURAL[w]: s for w, s in list(_SHAPE_OF.items())})


def reference_ceiling(captions: list, tokenizer: str = "words") -> dict:
    """BLEU-1..4 of references against the others of the same image; captions[i] = image i's references."""
    k = min(len(c) for c in captions)
    if k < 2:
        raise ValueError("the ceiling needs at least 2 references per image")
    runs = []
    for j in range(k):
        hyps = [tokenize(c[j], tokenizer) for c in captions]
        refs = [[tokenize(r, tokenizer) for m, r in enumerate(c) if m != j] for c in captions]
        runs.append(bleu_scores(refs, hyps))
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


def leave_one_out(references: list, hypotheses: list, score) -> float:
    """A model's score on the references a person is scored on (lesson 09's exercise).

    references[i]: the K token lists of image i; hypotheses[i]: the model's caption of image i (tokens);
    score(references, hypotheses) -> float, a corpus metric. Returns the mean over k of the score against every
    image's references but its k-th: K - 1 references each time, as `reference_ceiling` scores a person."""
    K = min(len(r) for r in references)
    if K < 2:
        raise ValueError("leaving one reference out needs at least 2 references per image")
    return sum(score([r[:k] + r[k + 1:] for r in references], hypotheses) for k in range(K)) / K


def against_humans(references: list, hypotheses: list, score) -> dict:
    """The model and the people on the same references: in round k, every image's k-th reference is set aside;
    the model's caption and that k-th reference (a person's caption) are both scored against the other K - 1.

    references[i]: token lists; hypotheses[i]: tokens; score(references, hypotheses) -> a number or a dict of them.
    Returns {"model": ..., "humans": ..., "references per caption": K - 1}, each the mean over the K rounds."""
    K = min(len(r) for r in references)
    if K < 2:
        raise ValueError("scoring against the other references needs at least 2 references per image")
    model, humans = [], []
    for k in range(K):
        others = [r[:k] + r[k + 1:] for r in references]                  # the same K - 1 references for both
        model.append(score(others, hypotheses))
        humans.append(score(others, [r[k] for r in references]))
    mean = lambda runs: ({key: float(np.mean([r[key] for r in runs])) for key in runs[0]}   # noqa: E731
                         if isinstance(runs[0], dict) else float(np.mean(runs)))
    return {"model": mean(model), "humans": mean(humans), "references per caption": K - 1}


def score_beams(decoder, vocab, features, indices, references: list, beams=(1, 3, 5), device="cpu", max_len: int = 20,
                length_norm: float = 0.0, coco: bool | None = None) -> tuple[dict, dict]:
    """Caption images `indices` at each beam size and score them: the table papers report.

    Args:
        features: (N, P, E) array-like; references[k]: the reference strings of image indices[k].
        coco: pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr (PTB tokenizer; needs Java) when True,
            captionlib's BLEU-1..4 when False; None: coco when Java is installed.
    Returns:
        ({beam: {metric: score}}, {beam: [Caption per image]}).
    """
    import shutil

    from .bleu import coco_metrics
    from .train import caption_all, score_captions

    coco = (shutil.which("java") is not None or vocab.tokenizer != "words") if coco is None else coco
    scores, decoded = {}, {}
    for k in beams:
        decoded[k] = caption_all(decoder, features, indices, device, max_len, k, length_norm=length_norm)
        bleu, hyps = score_captions(decoded[k], vocab, references)
        scores[k] = coco_metrics(references, hyps, vocab.tokenizer) if coco else bleu
    return scores, decoded


def unsupported_mentions(hypotheses: list, references: list, classes: dict | None = None) -> dict:
    """For each word class: how many captions name one of its words, and how many name one no reference backs.

    Args:
        hypotheses: token lists, one per image; references[k]: the token lists of image k.
        classes: {name: [synonym group (set of words), ...]} (default WORD_CLASSES).
    Returns:
        {name: {"captions": n naming a word of the class, "unsupported": n of those with a group no
        reference uses, "rate": their ratio, "examples": [(k, words named without support)]}}
    """
    out = {}
    for name, groups in (classes or WORD_CLASSES).items():
        naming, wrong, examples = 0, 0, []
        for k, (hyp, refs) in enumerate(zip(hypotheses, references)):
            said = [g for g in groups if g & set(hyp)]
            if not said:
                continue
            naming += 1
            backed = set().union(*map(set, refs))
            missing = [sorted(g & set(hyp))[0] for g in said if not g & backed]
            if missing:
                wrong += 1
                examples.append((k, missing))
        out[name] = {"captions": naming, "unsupported": wrong, "rate": wrong / max(naming, 1), "examples": examples}
    return out


def region_box_overlap(box: tuple, grid: int, size: int) -> np.ndarray:
    """(P,) fraction of each grid cell (row-major) covered by box (x0, y0, x1, y1) in pixels."""
    edges = np.linspace(0, size, grid + 1)
    x0, y0, x1, y1 = box
    ox = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None) / (size / grid)  # (g,)
    oy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None) / (size / grid)  # (g,)
    return np.outer(oy, ox).reshape(-1)                                                          # (P,)


def attention_in_box(scene, words: list, alphas: np.ndarray, grid: int, size: int = 224) -> list:
    """[(word, mass inside the named objects' boxes, uniform baseline)] for colour/shape words.

    Args:
        scene: a shapes Scene; words: the generated words; alphas: (L, P) one row per word.
    """
    out = []
    for t, w in enumerate(words):
        if w in COLOURS:
            named = [o for o in scene.objects if o.colour == w]
        elif w in _SHAPE_OF:
            named = [o for o in scene.objects if o.shape == _SHAPE_OF[w]]
        else:
            continue
        if not named:
            continue  # the model named something that is not there: no box to grade against
        cover = np.clip(sum(region_box_overlap(o.box, grid, size) for o in named), 0, 1)          # (P,)
        out.append((w, float((alphas[t] * cover).sum()), float(cover.mean())))
    return out


def _named(words: list) -> list[tuple]:
    """[(colour or None, shape, word)] for every shape word of a caption.

    In the shapes grammar a colour comes right before its shape word ("two small red balls").
    """
    return [(words[t - 1] if t > 0 and words[t - 1] in COLOURS else None, _SHAPE_OF[w], w)
            for t, w in enumerate(words) if w in _SHAPE_OF]


def object_mentions(scene, words: list) -> list[tuple[str, bool]]:
    """[(phrase, present)] for every shape word of a caption, e.g. ("red circle", True); a colour, when given, must match too."""
    return [(f"{colour} {w}" if colour else w,
             any(o.shape == shape and colour in (None, o.colour) for o in scene.objects))
            for colour, shape, w in _named(words)]


def hallucination(scenes: list, captions: list) -> dict:
    """CHAIR_i, CHAIR_s and recall over a corpus; captions[i] = the word list for scenes[i].

    recall: the share of each scene's kinds of object, (colour, shape), that its caption names.
    """
    mentions = wrong = bad_captions = named = kinds = 0
    for scene, words in zip(scenes, captions):
        found = object_mentions(scene, words)
        mentions += len(found)
        wrong += sum(not ok for _, ok in found)
        bad_captions += any(not ok for _, ok in found)
        present = {(o.colour, o.shape) for o in scene.objects}
        named += len(present & {(colour, shape) for colour, shape, _ in _named(words)})
        kinds += len(present)
    return {"CHAIR_i": wrong / max(mentions, 1), "CHAIR_s": bad_captions / max(len(captions), 1),
            "recall": named / max(kinds, 1)}
