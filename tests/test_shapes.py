import numpy as np
import pytest

from captionlib.shapes import (COLOURS, NUMBERS, PLURAL, RELATIONS, SHAPE_WORDS, SIZE_WORDS, ShapesConfig,
                               generate_split, load_shapes, render)
from captionlib.vocab import tokenize

SMALL = ShapesConfig(seed=3, n_train=300, n_val=20, n_test=20)
GRAMMAR = ({"a", "another", "there", "is", "are", "and", "with", "next", "to", "the", "of", "on", "at", "left",
            "right", "top", "bottom"} | set(COLOURS) | set(NUMBERS.values()) | set(PLURAL) | set(PLURAL.values())
           | {w for ws in SIZE_WORDS.values() for w in ws} | {w for ws in RELATIONS.values() for r in ws for w in r.split()})
SHAPE_OF = {w: s for s, ws in SHAPE_WORDS.items() for w in ws} | {PLURAL[w]: s for s, ws in SHAPE_WORDS.items() for w in ws}


@pytest.fixture(scope="module")
def scenes():
    return generate_split(SMALL, "train")


def test_same_seed_same_data_different_seed_different():
    a, b = generate_split(SMALL, "val"), generate_split(SMALL, "val")
    assert [s.captions for s in a] == [s.captions for s in b]
    assert np.array_equal(np.asarray(render(a[0])), np.asarray(render(b[0])))
    c = generate_split(ShapesConfig(seed=4, n_val=20), "val")
    assert [s.captions for s in a] != [s.captions for s in c]
    assert [s.captions for s in generate_split(SMALL, "test")] != [s.captions for s in a]


def test_five_different_captions_from_the_grammar(scenes):
    for s in scenes:
        assert len(s.captions) == 5 and len(set(s.captions)) == 5
        for c in s.captions:
            assert set(tokenize(c)) <= GRAMMAR, c


def test_refs_point_at_objects_with_the_named_colour_and_shape(scenes):
    checked = 0
    for s in scenes:
        for caption, refs in zip(s.captions, s.refs):
            words = caption.split()
            assert len(words) == len(refs)
            for w, ids in zip(words, refs):
                for i in ids:
                    o = s.objects[i]
                    if w in COLOURS:
                        assert w == o.colour, (caption, o)
                        checked += 1
                    if w in SHAPE_OF:
                        assert SHAPE_OF[w] == o.shape, (caption, o)
                    if w in SIZE_WORDS["small"] or w in SIZE_WORDS["large"]:
                        assert w in SIZE_WORDS[o.size], (caption, o)
    assert checked > 500


def test_relations_are_true_of_the_picture(scenes):
    seen = 0
    for s in scenes:
        for caption, refs in zip(s.captions, s.refs):
            words = caption.split()
            for rel, key in (("above", "above"), ("over", "above"), ("below", "below"), ("under", "below"), ("beneath", "below")):
                if rel in words:
                    k = words.index(rel)
                    first = next(ids for ids in refs[:k][::-1] if ids)
                    second = next(ids for ids in refs[k:] if ids)
                    if len(first) == 1 and len(second) == 1:
                        (a,), (b,) = first, second
                        ya = (s.objects[a].box[1] + s.objects[a].box[3]) / 2
                        yb = (s.objects[b].box[1] + s.objects[b].box[3]) / 2
                        assert (ya < yb) == (key == "above"), caption
                        seen += 1
    assert seen > 50


def test_counting_words_match_the_number_of_identical_objects(scenes):
    for s in scenes:
        for caption, refs in zip(s.captions, s.refs):
            words = caption.split()
            for k, w in enumerate(words):
                if w in ("two", "three"):
                    assert len(refs[k]) == {"two": 2, "three": 3}[w]


def test_boxes_inside_the_canvas_and_apart(scenes):
    for s in scenes:
        assert 1 <= len(s.objects) <= 3
        for i, o in enumerate(s.objects):
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
            for p in s.objects[i + 1:]:
                assert x1 <= p.box[0] or p.box[2] <= x0 or y1 <= p.box[1] or p.box[3] <= y0


def test_render_paints_objects_where_their_boxes_are(scenes):
    s = scenes[0]
    img = np.asarray(render(s), dtype=np.float32)
    assert img.shape == (224, 224, 3) and img.dtype == np.float32
    o = s.objects[0]
    cx, cy = (o.box[0] + o.box[2]) // 2, (o.box[1] + o.box[3]) // 2
    centre = img[cy - 2:cy + 3, cx - 2:cx + 3].reshape(-1, 3).mean(0)
    assert np.abs(centre - np.asarray(COLOURS[o.colour])).max() < 45


def test_the_mix_has_every_kind_of_scene(scenes):
    counts = {n: sum(len(s.objects) == n for s in scenes) for n in (1, 2, 3)}
    assert all(c > 30 for c in counts.values()), counts
    assert sum(any("two" in c.split() or "three" in c.split() for c in s.captions) for s in scenes) > 30


def test_cache_round_trip(tmp_path):
    first = load_shapes(SMALL, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1
    again = load_shapes(SMALL, tmp_path)
    assert [s.captions for s in again["train"]] == [s.captions for s in first["train"]]
    assert again["val"][3].objects == first["val"][3].objects
    assert np.array_equal(np.asarray(render(again["test"][5])), np.asarray(render(first["test"][5])))
