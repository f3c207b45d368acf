import pytest
import numpy as np
from PIL import Image

from captionlib.__main__ import main
from captionlib.decoder import DecoderConfig, build_decoder
from captionlib.data import load_split
from captionlib.evaluate import attention_in_box, hallucination, object_mentions, reference_ceiling, region_box_overlap
from captionlib.shapes import Scene, ShapeObject
from captionlib.utils import atomic_save
from captionlib.vocab import Vocab


def test_reference_ceiling():
    same = [["a red circle is here"] * 3, ["two blue boxes are here"] * 3]
    assert reference_ceiling(same)["BLEU-4"] == 1.0
    mixed = [["a red circle is here now", "a red ball is there now", "one red circle is here now"]]
    assert 0 < reference_ceiling(mixed)["BLEU-4"] < 1


def test_region_box_overlap_and_attention_in_box():
    cover = region_box_overlap((0, 0, 112, 112), grid=2, size=224)
    assert cover.tolist() == [1.0, 0.0, 0.0, 0.0]  # the top-left cell, row-major
    assert np.isclose(region_box_overlap((0, 0, 56, 224), 2, 224), [0.5, 0, 0.5, 0]).all()
    scene = Scene([ShapeObject("circle", "red", "small", (0, 0, 112, 112)),
                   ShapeObject("square", "blue", "large", (112, 112, 224, 224))], (200, 200, 200), (0, 0, 0), 0)
    alphas = np.array([[0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0]])
    got = attention_in_box(scene, ["a", "red", "box"], alphas, grid=2)
    assert got == [("red", 0.7, 0.25), ("box", 1.0, 0.25)]
    assert attention_in_box(scene, ["green"], alphas[:1], grid=2) == []  # nothing green to grade against


def test_object_mentions_and_hallucination():
    scene = Scene([ShapeObject("circle", "red", "small", (0, 0, 50, 50)),
                   ShapeObject("circle", "red", "small", (100, 0, 150, 50)),
                   ShapeObject("square", "blue", "large", (112, 112, 224, 224))], (200, 200, 200), (0, 0, 0), 0)
    assert object_mentions(scene, "two small red balls above a big blue box".split()) == [
        ("red balls", True), ("blue box", True)]
    assert object_mentions(scene, "a blue circle and a green triangle".split()) == [
        ("blue circle", False), ("green triangle", False)]
    h = hallucination([scene, scene], ["a red circle".split(), "a blue circle and a blue square".split()])
    assert h == {"CHAIR_i": 1 / 3, "CHAIR_s": 0.5, "recall": 0.5}   # 3 mentions, 1 wrong; 2 of 4 kinds named


def test_human_captions_never_hallucinate_and_name_most_objects():
    """Every reference of the shapes grammar passes the check: the parser reads the real captions."""
    val = load_split("shapes", "val")
    scenes = val.scenes[:200]
    for k in range(5):
        h = hallucination(scenes, [s.captions[k].split() for s in scenes])
        assert h["CHAIR_i"] == 0 and h["CHAIR_s"] == 0
        assert h["recall"] > 0.9


def _checkpoint(tmp_path, backbone="efficientnet-lite0", dim=1280, grid=7, end_bias=None, name="model.pt"):
    import torch

    torch.manual_seed(0)
    vocab = Vocab.build(["a red circle", "a blue square"])
    cfg = DecoderConfig(vocab_size=len(vocab), encoder_dim=dim, embed_dim=8, hidden_dim=16, attention_dim=8)
    dec = build_decoder(cfg)
    if end_bias is not None:                                           # +: ends at once; -: never ends
        with torch.no_grad():
            dec.fc.bias[vocab.end_idx] = end_bias
    path = tmp_path / name
    atomic_save({"model": dec.state_dict(), "decoder_config": cfg.__dict__, "vocab": vocab.state_dict(),
                 "meta": {"dataset": "shapes", "backbone": backbone, "grid": grid}}, path)
    return path


def test_caption_command_prints_a_caption_and_reports_bad_images(tmp_path, capsys):
    ck = _checkpoint(tmp_path)
    Image.new("RGB", (90, 60), (200, 20, 20)).save(tmp_path / "photo.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    code = main(["caption", str(tmp_path / "photo.jpg"), str(tmp_path / "broken.jpg"), "--checkpoint", str(ck), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1 and "photo.jpg:" in out and "log p" in out
    assert "broken.jpg" in err and "error:" in err


def test_caption_command_uses_the_encoder_the_checkpoint_names(tmp_path, capsys):
    """A model trained on stride-16 features (14x14x112) gets them back from the checkpoint's meta."""
    ck = _checkpoint(tmp_path, "efficientnet-lite0-s16", 112, 14)
    Image.new("RGB", (90, 60), (200, 20, 20)).save(tmp_path / "photo.jpg")
    assert main(["caption", str(tmp_path / "photo.jpg"), "--checkpoint", str(ck), "--device", "cpu"]) == 0
    assert "photo.jpg:" in capsys.readouterr().out


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["caption", "x.jpg", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "captionlib train" in capsys.readouterr().err


def test_caption_uses_the_shipped_model_unless_asked_and_says_which(tmp_path, capsys, monkeypatch):
    import captionlib.utils as utils

    shipped = _checkpoint(tmp_path)
    monkeypatch.setattr(utils, "shipped_checkpoint", lambda *a, **k: shipped)
    own = tmp_path / "data" / "cache" / "checkpoints" / "shapes-efficientnet-lite0.pt"
    own.parent.mkdir(parents=True)
    own.write_bytes(shipped.read_bytes())
    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    Image.new("RGB", (90, 60), (200, 20, 20)).save(tmp_path / "photo.jpg")
    assert main(["caption", str(tmp_path / "photo.jpg"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint: {shipped}" in err and f"pass --checkpoint {own}" in err


def test_caption_batches_several_images_writes_attention_figures_and_notes_cut_captions(tmp_path, capsys):
    ck = _checkpoint(tmp_path, end_bias=-50.0)                         # never says <end>: every caption is cut
    paths = []
    for k, colour in enumerate([(200, 20, 20), (20, 20, 200), (20, 200, 20)]):
        paths.append(str(tmp_path / f"p{k}.jpg"))
        Image.new("RGB", (64 + k, 48), colour).save(paths[-1])
    alone = []
    for p in paths:                                                    # one at a time: the same captions as batched
        assert main(["caption", p, "--checkpoint", str(ck), "--device", "cpu", "--max-len", "3"]) == 0
        alone.append(capsys.readouterr().out.splitlines()[0])
    assert main(["caption", *paths, "--checkpoint", str(ck), "--device", "cpu", "--max-len", "3",
                 "--attention", str(tmp_path / "att.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if not line.startswith("  attention")] == alone
    for k in range(3):
        assert (tmp_path / f"att-p{k}.png").stat().st_size > 1000
    assert all("cut at --max-len 3: no <end> yet" in line for line in alone)
    ends = _checkpoint(tmp_path, end_bias=50.0, name="ends.pt")          # says <end> at once: nothing is cut
    assert main(["caption", paths[0], "--checkpoint", str(ends), "--device", "cpu", "--max-len", "3"]) == 0
    assert "cut at" not in capsys.readouterr().out


def test_export_makes_a_small_float16_checkpoint_that_loads_with_weights_only(tmp_path, capsys):
    import json

    import torch

    from captionlib.train import load_model

    ck = _checkpoint(tmp_path)
    (tmp_path / "scores.json").write_text(json.dumps({"split": "val", "scores": {"beam 3": {"BLEU-4": 0.25}}}))
    assert main(["export", str(ck), str(tmp_path / "small.pt"), "--scores", str(tmp_path / "scores.json"),
                 "--length-norm", "0.5"]) == 0
    raw = torch.load(tmp_path / "small.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    assert raw["notes"]["val"]["scores"]["beam 3"]["BLEU-4"] == 0.25 and "optimizer" not in raw
    assert raw["meta"]["length_norm"] == 0.5 and raw["meta"]["dataset"] == "shapes"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(tmp_path / "p.jpg")   # caption uses the length normalisation it records
    assert main(["caption", str(tmp_path / "p.jpg"), "--checkpoint", str(tmp_path / "small.pt"), "--device", "cpu"]) == 0
    assert "log p / length^0.5" in capsys.readouterr().out
    decoder, vocab, _ = load_model(tmp_path / "small.pt", device="cpu")
    assert next(decoder.parameters()).dtype == torch.float32 and len(vocab) == raw["decoder_config"]["vocab_size"]


def test_unsupported_mentions_groups_synonyms_and_counts_per_caption():
    from captionlib.evaluate import unsupported_mentions

    refs = [[["a", "woman", "with", "a", "dog"], ["a", "lady", "and", "her", "dogs"]],
            [["two", "boys", "on", "grass"], ["kids", "in", "a", "field"]]]
    hyps = [["a", "man", "with", "a", "red", "dog"],                    # gender wrong, colour unsupported, dog backed
            ["two", "guys", "on", "the", "grass", "with", "a", "ball"]]   # gender backed ("boys"), number backed, ball not
    got = unsupported_mentions(hyps, refs)
    assert got["gender"]["captions"] == 2 and got["gender"]["unsupported"] == 1 and got["gender"]["examples"] == [(0, ["man"])]
    assert got["colour"] == {"captions": 1, "unsupported": 1, "rate": 1.0, "examples": [(0, ["red"])]}
    assert got["number"]["unsupported"] == 0 and got["number"]["captions"] == 1
    assert got["object"]["captions"] == 2 and got["object"]["examples"] == [(1, ["ball"])]


def test_the_model_and_the_humans_are_scored_on_the_same_references():
    """against_humans: in round k both the model's caption and the k-th reference are scored against the same K - 1."""
    from captionlib.evaluate import against_humans, leave_one_out

    refs = [[["a", "dog"], ["the", "dog"], ["a", "puppy"]], [["two", "cats"], ["cats"], ["a", "cat"]]]
    hyps = [["a", "dog", "runs"], ["two", "cats"]]
    calls = []

    def score(references, hypotheses):
        calls.append((references, hypotheses))
        return float(len(calls))

    out = against_humans(refs, hyps, score)
    assert out["references per caption"] == 2 and len(calls) == 6
    for k in range(3):
        (model_refs, model_hyps), (human_refs, human_hyps) = calls[2 * k], calls[2 * k + 1]
        assert model_refs == human_refs == [[r for j, r in enumerate(rs) if j != k] for rs in refs]
        assert model_hyps == hyps and human_hyps == [rs[k] for rs in refs]
    assert out["model"] == (1 + 3 + 5) / 3 and out["humans"] == (2 + 4 + 6) / 3
    from captionlib.bleu import bleu_scores
    assert against_humans(refs, hyps, bleu_scores)["model"]["BLEU-1"] == pytest.approx(
        leave_one_out(refs, hyps, lambda r, h: bleu_scores(r, h)["BLEU-1"]))
