"""The model the course ships (data/checkpoints/): it loads safely, agrees with itself, captions a photo
deterministically, and (when Flickr8k is on this machine) still scores what its model card says."""
import json
import os
from pathlib import Path

import matplotlib
import pytest
import torch

from captionlib.beam import beam_search
from captionlib.encoder import Encoder
from captionlib.images import load_image
from captionlib.train import content_digests, load_model
from captionlib.utils import CHECKOUT, shipped_checkpoint

SHIPPED = shipped_checkpoint()
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
FLICKR8K = Path(os.environ.get("CAPTIONLIB_FLICKR8K", CHECKOUT.parent / "shared" / "datasets" / "flickr8k"))
# BLEU-4 (captionlib's, beam 3) of the shipped model on the first 100 val photos, measured when it was
# exported (MODEL_CARD.md); the floor leaves room for float differences between machines, not for regressions.
VAL100_BLEU4 = 0.2719
FLOOR = VAL100_BLEU4 - 0.015


def test_the_shipped_checkpoint_loads_with_weights_only_and_agrees_with_itself():
    assert SHIPPED.exists(), f"{SHIPPED} is missing"
    assert SHIPPED.stat().st_size <= 30 * 2 ** 20
    raw = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert raw["format"] == "captionlib-release" and "optimizer" not in raw
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    assert raw["decoder_config"]["vocab_size"] == len(raw["vocab"]["idx_to_word"])
    assert raw["meta"]["dataset"] == "flickr8k" and raw["meta"]["backbone"] in SHIPPED.name
    assert (SHIPPED.parent / "MODEL_CARD.md").exists()
    card = (SHIPPED.parent / "MODEL_CARD.md").read_text()
    line = next(l for l in card.splitlines() if l.startswith("| Checksums (sha256) |"))
    for part, digest in content_digests(raw).items():                     # weights, vocabulary, settings: all of it
        assert f"{part} `{digest}`" in line, f"the shipped {part} is not what the model card describes"
    decoder, vocab, state = load_model(SHIPPED, device="cpu")
    assert decoder.fc.out_features == len(vocab) and decoder.config.encoder_dim == Encoder(state["meta"]["backbone"]).dim


def _caption(decoder, encoder, image, k=3):
    with torch.no_grad():
        feats, _ = encoder(encoder.preprocess(image))
    return beam_search(decoder, feats, k)[0]


def test_the_shipped_model_captions_a_photo_deterministically_in_its_own_words():
    decoder, vocab, state = load_model(SHIPPED, device="cpu")
    encoder = Encoder(state["meta"]["backbone"], grid=state["meta"]["grid"]).eval()
    photo = load_image(PHOTO)
    first, again = _caption(decoder, encoder, photo), _caption(decoder, encoder, photo)
    assert first.tokens == again.tokens and first.score == again.score
    words = vocab.decode(first.tokens, join=False)
    assert len(words) >= 3 and all(w in vocab and w != "<unk>" for w in words), words


@pytest.mark.skipif(not (FLICKR8K / "Flickr8k.token.txt").exists(),
                    reason=f"Flickr8k is not at {FLICKR8K} (set CAPTIONLIB_FLICKR8K to its folder to run this check)")
def test_the_shipped_model_still_scores_its_model_card_on_100_val_photos(tmp_path):
    from captionlib.data import load_split
    from captionlib.features import features_for
    from captionlib.train import evaluate_bleu

    decoder, vocab, state = load_model(SHIPPED, device="cpu")
    encoder = Encoder(state["meta"]["backbone"], grid=state["meta"]["grid"])
    val = load_split("flickr8k", "val", folder=FLICKR8K)
    store = features_for(val, encoder, upto=100, device="cpu", root=tmp_path, progress=False)
    scores, hyps = evaluate_bleu(decoder, store.features, val.captions, vocab, store.valid(100), torch.device("cpu"),
                                 beam_size=3)
    assert scores["BLEU-4"] >= FLOOR, (scores, hyps[:3], json.dumps(state.get("notes", {}))[:300])



# ------------------------------------------------------------------ the Chinese model (Flickr8K-CN)

SHIPPED_ZH = shipped_checkpoint("flickr8k-cn")
FLICKR8K_CN = Path(os.environ.get("CAPTIONLIB_FLICKR8K_CN", CHECKOUT.parent / "shared" / "datasets" / "flickr8k-cn"))
# captionlib BLEU-4 over jieba words of the first 100 val photos, beam 5, length normalisation 0.7, when it was exported
VAL100_ZH_BLEU4 = 0.2362


def test_the_chinese_checkpoint_loads_with_weights_only_and_captions_a_photo_in_chinese_deterministically():
    assert SHIPPED_ZH.exists() and SHIPPED_ZH.stat().st_size <= 30 * 2 ** 20
    raw = torch.load(SHIPPED_ZH, map_location="cpu", weights_only=True)
    assert raw["format"] == "captionlib-release" and raw["vocab"]["tokenizer"] == "jieba"
    assert raw["digests"] == content_digests(raw)                        # weights, vocabulary, settings: as written
    decoder, vocab, state = load_model(SHIPPED_ZH, device="cpu")
    assert vocab.tokenizer == "jieba" and state["meta"]["length_norm"] == 0.7
    encoder = Encoder(state["meta"]["backbone"], grid=state["meta"]["grid"]).eval()
    photo = load_image(PHOTO)
    with torch.no_grad():
        feats, _ = encoder(encoder.preprocess(photo))
    first, again = (beam_search(decoder, feats, 5, length_norm=0.7)[0] for _ in range(2))
    assert first.tokens == again.tokens and first.score == again.score
    text = vocab.text(first.tokens)
    assert text and all("\u4e00" <= ch <= "\u9fff" for ch in text), text     # Chinese characters, no spaces


@pytest.mark.skipif(not (FLICKR8K_CN / "flickr8kzhc.caption.txt").exists(),
                    reason=f"Flickr8K-CN is not at {FLICKR8K_CN} (set CAPTIONLIB_FLICKR8K_CN to its folder to run this check)")
def test_the_chinese_model_still_scores_its_model_card_on_100_val_photos(tmp_path):
    from captionlib.data import load_split
    from captionlib.features import features_for
    from captionlib.train import caption_all, score_captions

    decoder, vocab, state = load_model(SHIPPED_ZH, device="cpu")
    val = load_split("flickr8k-cn", "val", folder=FLICKR8K_CN)
    store = features_for(val, Encoder(state["meta"]["backbone"], grid=state["meta"]["grid"]), upto=100, device="cpu",
                         root=tmp_path, progress=False)
    idx = store.valid(100)
    caps = caption_all(decoder, store.features, idx, torch.device("cpu"), beam_size=5, length_norm=0.7)
    scores, _ = score_captions(caps, vocab, [val.captions[i] for i in idx])
    assert scores["BLEU-4"] >= VAL100_ZH_BLEU4 - 0.015, scores
