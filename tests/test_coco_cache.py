"""coco_metrics keeps its (deterministic) results under data/cache/metrics/: asked the same question again it
answers from there, and other captions are scored anew."""
import json
import shutil

import pytest

from captionlib import bleu
from captionlib.utils import data_root

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs Java")


def test_the_same_question_is_answered_from_the_cache(monkeypatch):
    refs = [["a red circle above a blue square", "a red ball over a blue box"], ["two green triangles", "a pair of green triangles"]]
    hyps = ["a red circle above a square", "two triangles"]
    first = bleu.coco_metrics(refs, hyps)
    cached = list((data_root() / "cache" / "metrics").glob("coco-*.json"))
    assert any(json.loads(p.read_text()) == first for p in cached)
    monkeypatch.setattr(bleu, "_coco_metrics", lambda *a: pytest.fail("scored again instead of read from the cache"))
    assert bleu.coco_metrics(refs, hyps) == first
    monkeypatch.undo()
    other = bleu.coco_metrics(refs, ["a blue circle", "two triangles"])
    assert other != first and other == bleu.coco_metrics(refs, ["a blue circle", "two triangles"], cache=False)
