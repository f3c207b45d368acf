"""Real-dataset loaders on small generated fixtures in every supported format, and clear errors."""
import json

import pytest
from PIL import Image

from captionlib.__main__ import main
from captionlib.data import load_split
from captionlib.datasets import DatasetError, check_folder

COLOURS = ["red", "green", "blue", "yellow", "purple"]


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + k, 30), COLOURS[k % 5]).save(folder / n)


def _caps(name, k):
    c = COLOURS[k % 5]
    return [f"a {c} picture number {k} .", f"A {c.upper()} square", f"{c} things here", f"something {c}", f"the {c} one"]


def karpathy(root, dataset, n=8, coco=False):
    folder = root / dataset
    images, names = [], []
    for k in range(n):
        sub = ("train2014" if k % 2 else "val2014") if coco else ""
        name = f"{dataset}_{k}.jpg"
        split = ["train", "train", "train", "val", "test", "restval", "train", "test"][k % 8]
        sents = [{"raw": c, "tokens": c.lower().replace(".", "").split()} for c in _caps(dataset, k)]
        images.append({"filepath": sub, "filename": name, "split": split, "sentences": sents, "imgid": k} if coco
                      else {"filename": name, "split": split, "sentences": sents, "imgid": k})
        names.append(f"{sub}/{name}" if coco else name)
    _images(folder / ("." if coco else ("Images" if dataset == "flickr8k" else "flickr30k-images")), names)
    (folder / f"dataset_{dataset}.json").write_text(json.dumps({"images": images, "dataset": dataset}))
    return folder


def flickr8k_token(root, n=8):
    folder = root / "flickr8k"
    names = [f"{1000 + k}_abc.jpg" for k in range(n)]
    _images(folder / "Flicker8k_Dataset", names)
    lines = [f"{f}#{j}\t{c}" for k, f in enumerate(names) for j, c in enumerate(_caps("f8", k))]
    (folder / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, part in (("train", names[:5]), ("dev", names[5:7]), ("test", names[7:])):
        (folder / f"Flickr_8k.{split}Images.txt").write_text("\n".join(part) + "\n")
    return folder, names


def kaggle(root, n=16):
    folder = root / "flickr8k"
    names = [f"{2000 + k}_xyz.jpg" for k in range(n)]
    _images(folder / "Images", names)
    rows = ["image,caption"] + [f'{f},"{c}, with a comma"' for k, f in enumerate(names) for c in _caps("k", k)]
    (folder / "captions.txt").write_text("\n".join(rows) + "\n")
    return folder, names


@pytest.mark.parametrize("dataset", ["flickr8k", "flickr30k", "coco"])
def test_karpathy_json(tmp_path, dataset):
    folder = karpathy(tmp_path, dataset, coco=dataset == "coco")
    splits = {s: load_split(dataset, s, folder=folder) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [5, 1, 2]     # restval is training data
    train = splits["train"]
    assert train.captions[0][0] == "a red picture number 0"                    # Karpathy's tokens, joined
    assert train.images[1].mode == "RGB" and train.images[1].size == (41, 30)
    assert check_folder(dataset, folder).format == "karpathy"


def test_flickr8k_token_format(tmp_path):
    folder, names = flickr8k_token(tmp_path)
    train, val, test = (load_split("flickr8k", s, folder=folder) for s in ("train", "val", "test"))
    assert train.image_ids == names[:5] and val.image_ids == names[5:7] and test.image_ids == names[7:]
    assert len(train.captions[0]) == 5 and train.captions[0][1] == "A RED square"
    assert test.images[0].size == (47, 30)


def test_flickr8k_phantom_entry_is_skipped_with_a_note(tmp_path, capsys):
    """Flickr8k.token.txt names `2258277193_586949ec62.jpg.1`, an image that exists nowhere: prepare says
    so and carries on; an image with captions that no split lists is mentioned too."""
    folder, names = flickr8k_token(tmp_path)
    phantom = "2258277193_586949ec62.jpg.1"
    with (folder / "Flickr8k.token.txt").open("a") as f:
        f.write("".join(f"{phantom}#{j}\tpeople waiting\n" for j in range(5)))
        f.write(f"{names[0][:-4]}_extra.jpg#0\ta caption of an unlisted image\n")
    _images(folder / "Flicker8k_Dataset", [f"{names[0][:-4]}_extra.jpg"])
    assert main(["prepare", "--dataset", "flickr8k", "--root", str(folder), "--min-freq", "1", "--no-features"]) == 0
    out = capsys.readouterr().out
    assert f"skipped 1 name(s) in Flickr8k.token.txt with no image file and in no split list: {phantom} (5 captions)" in out
    assert "1 image(s) with captions are in no split list" in out and "train: 5 images, 25 captions" in out


def test_kaggle_captions_csv_gets_a_deterministic_split(tmp_path):
    folder, names = kaggle(tmp_path)
    splits = [load_split("flickr8k", s, folder=folder) for s in ("train", "val", "test")]
    assert [len(s) for s in splits] == [12, 2, 2]                                 # 75 / 12.5 / 12.5 %
    ids = [i for s in splits for i in s.image_ids]
    assert sorted(ids) == sorted(names)                                           # a partition
    again = load_split("flickr8k", "val", folder=folder)
    assert again.image_ids == splits[1].image_ids and again.fingerprint == splits[1].fingerprint
    assert splits[0].captions[0][0].endswith(", with a comma")                   # the CSV's quoting respected


def test_default_folder_is_under_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path))
    karpathy(tmp_path, "flickr30k")
    assert len(load_split("flickr30k", "train")) == 5


def test_broken_folders_say_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        check_folder("flickr8k", tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        check_folder("flickr8k", empty)
    msg = str(e.value)
    assert "no image folder" in msg and "no caption file" in msg and "captions.txt" in msg and "README" in msg

    folder, names = flickr8k_token(tmp_path / "a")
    (folder / "Flickr_8k.devImages.txt").unlink()
    with pytest.raises(DatasetError, match="Flickr_8k.devImages.txt"):
        check_folder("flickr8k", folder)

    folder, names = flickr8k_token(tmp_path / "b")
    (folder / "Flicker8k_Dataset" / names[0]).unlink()
    (folder / "Flicker8k_Dataset" / names[1]).unlink()
    with pytest.raises(DatasetError, match=r"2 of 5 train images are missing"):
        check_folder("flickr8k", folder)


def test_prepare_on_a_broken_folder_exits_non_zero(tmp_path, capsys):
    folder, names = kaggle(tmp_path)
    (folder / "Images" / names[3]).unlink()
    assert main(["prepare", "--dataset", "flickr8k", "--root", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "images are missing" in err and names[3] in err


def test_prepare_then_train_and_evaluate_on_a_fixture(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    folder, _ = kaggle(tmp_path)
    assert main(["prepare", "--dataset", "flickr8k", "--root", str(folder), "--min-freq", "1"]) == 0
    out = capsys.readouterr().out
    assert "kaggle-captions" in out and "train: 12 images, 60 captions" in out and "features of 12 of 12" in out
    ckpt = str(tmp_path / "f8.pt")
    assert main(["train", "--dataset", "flickr8k", "--root", str(folder), "--epochs", "1", "--min-freq", "1",
                 "--checkpoint", ckpt]) == 0
    assert main(["evaluate", "--checkpoint", ckpt, "--split", "val"]) == 0         # the folder comes from the checkpoint
    assert "flickr8k/val: 2 images" in capsys.readouterr().out


def test_the_caption_file_is_read_once_for_all_splits_until_it_changes(tmp_path, monkeypatch):
    from captionlib import datasets

    folder, names = kaggle(tmp_path)
    calls = []
    real = datasets.READERS["kaggle-captions"]
    monkeypatch.setitem(datasets.READERS, "kaggle-captions", lambda layout: calls.append(1) or real(layout))
    check_folder("flickr8k", folder)
    for s in ("train", "val", "test"):
        load_split("flickr8k", s, folder=folder)
    assert len(calls) == 1
    text = (folder / "captions.txt").read_text()
    (folder / "captions.txt").write_text(text + f"{names[0]},one more caption\n")   # a changed file is read again
    splits = [load_split("flickr8k", s, folder=folder) for s in ("train", "val", "test")]
    assert len(calls) == 2
    assert any("one more caption" in caps for s in splits for caps in s.captions)
