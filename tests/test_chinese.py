"""The Chinese track (issue 32): tokenizers that travel with the vocabulary, a Chinese dataset in Flickr8K-CN's
format that prepares, trains and captions, and evaluation over jieba words that agrees with pycocoevalcap."""
import json

import pytest
import torch
from PIL import Image

from captionlib.__main__ import main
from captionlib.bleu import bleu_scores, coco_metrics
from captionlib.train import load_model
from captionlib.vocab import Vocab, tokenize

# captions written for these tests (not from any dataset): animals and colours, a few words each
SENTENCES = ["一只黑狗在草地上奔跑。", "一只白猫坐在窗台上。", "两个孩子在海边玩沙子。", "一个男人在骑自行车。",
             "一只小狗在雪地里玩耍。", "一个女人在公园里散步。", "红色的汽车停在路边。", "一群鸟在天空中飞翔。"]


def test_the_tokenizer_travels_with_the_vocabulary_and_the_checkpoint(tmp_path):
    for how in ("jieba", "chars"):
        v = Vocab.build(SENTENCES, tokenizer=how)
        again = Vocab.from_state_dict(json.loads(json.dumps(v.state_dict())))
        assert again.tokenizer == how and again.idx_to_word == v.idx_to_word
        assert again.encode(SENTENCES[0]) == v.encode(SENTENCES[0]) != Vocab.build(SENTENCES, tokenizer="words").encode(SENTENCES[0])
        assert v.text(v.encode(SENTENCES[0])) == "".join(tokenize(SENTENCES[0], how))   # joined without spaces


def test_the_space_tokenizer_on_chinese_says_so_and_names_the_options():
    with pytest.warns(UserWarning, match="written without spaces between words .* tokenizer='jieba' .* 'chars'"):
        Vocab.build(SENTENCES)


def test_jieba_segments_words_and_chars_split_characters():
    assert tokenize("一只黑狗在草地上奔跑。", "jieba") == ["一只", "黑狗", "在", "草地", "上", "奔跑"]
    assert tokenize("一只黑狗", "chars") == ["一", "只", "黑", "狗"]
    assert tokenize("穿着T恤的NBA球员", "jieba")[:2] == ["穿着", "t恤"]                 # case folded after segmenting


def _flickr8k_cn(tmp_path, n=12):
    """A folder in Flickr8K-CN's layout, with its photos in a flickr8k folder beside it."""
    names = [f"{3000 + k}_cn.jpg" for k in range(n)]
    images = tmp_path / "flickr8k" / "Images"
    images.mkdir(parents=True)
    for k, name in enumerate(names):
        Image.new("RGB", (40 + k, 30), [(200, 30, 30), (30, 200, 30), (30, 30, 200)][k % 3]).save(images / name)
    folder = tmp_path / "flickr8k-cn"
    folder.mkdir()
    lines = [f"{name}#zhc#{j} {SENTENCES[(k + j) % len(SENTENCES)]}" for k, name in enumerate(names) for j in range(5)]
    (folder / "flickr8kzhc.caption.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for split, part in (("train", names[:8]), ("val", names[8:10]), ("test", names[10:])):
        (folder / f"flickr8k{split}.txt").write_text("\n".join(n[:-4] for n in part) + "\n")
    translated = [f"{name}#zhm#{j} {SENTENCES[j]}" for name in names[10:] for j in range(5)]
    (folder / "flickr8kzhmtest.captions.txt").write_text("\n".join(translated) + "\n", encoding="utf-8")
    return folder


def test_a_chinese_dataset_prepares_trains_evaluates_and_captions(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    folder = _flickr8k_cn(tmp_path)
    assert main(["prepare", "--dataset", "flickr8k-cn", "--root", str(folder), "--min-freq", "1"]) == 0
    out = capsys.readouterr().out
    assert "flickr8k-cn captions" in out and "train: 8 images, 40 captions" in out and "tokenizer jieba" in out
    ckpt = str(tmp_path / "zh.pt")
    assert main(["train", "--dataset", "flickr8k-cn", "--root", str(folder), "--epochs", "1", "--min-freq", "1",
                 "--scst-epochs", "0", "--mirror", "0", "--checkpoint", ckpt]) == 0
    decoder, vocab, state = load_model(ckpt, device="cpu")
    assert vocab.tokenizer == "jieba" and "狗" in "".join(vocab.idx_to_word)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", ckpt, "--split", "test", "--beam-size", "1", "--metrics", "bleu"]) == 0
    assert "flickr8k-cn/test: 2 images" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", ckpt, "--split", "test", "--references", "translated", "--beam-size", "1",
                 "--metrics", "bleu"]) == 0
    capsys.readouterr()
    photo = tmp_path / "p.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(photo)
    assert main(["caption", str(photo), "--checkpoint", ckpt, "--beam-size", "1", "--attention", str(tmp_path / "a.png")]) == 0
    said = capsys.readouterr().out
    assert f"{photo}: " in said and " " not in said.split(": ", 1)[1].split("   (")[0]        # Chinese, joined without spaces
    assert (tmp_path / "a.png").exists()


def test_captionlib_bleu_and_pycocoevalcap_agree_on_jieba_words():
    refs = [[SENTENCES[0], SENTENCES[4]], [SENTENCES[2], SENTENCES[5]], [SENTENCES[3], SENTENCES[6]]]
    hyps = ["一只 小狗 在 草地 上 跑", "两个 孩子 在 海边 玩耍", "一个 男人 在 骑 自行车"]
    ours = bleu_scores([[tokenize(r, "jieba") for r in rs] for rs in refs], [h.split() for h in hyps])
    theirs = coco_metrics(refs, hyps, "jieba")
    for n in (1, 2, 3):                                    # every hypothesis has n-grams of these orders: no convention differs
        assert ours[f"BLEU-{n}"] == pytest.approx(theirs[f"BLEU-{n}"], abs=1e-6)
    assert "METEOR" not in theirs and "CIDEr" in theirs


def test_caption_lang_zh_uses_the_chinese_model(capsys):
    import matplotlib
    from pathlib import Path

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    assert main(["caption", str(photo), "--lang", "zh", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "flickr8k-cn-efficientnet-lite0.pt" in captured.err
    text = captured.out.split(": ", 1)[1].split("   (")[0]
    assert text and all("\u4e00" <= ch <= "\u9fff" for ch in text), text
