"""Careless and hostile input: each case gets a correct result or one message that names the problem and the fix,
never a traceback, a hang or a silently wrong number, and no file runs code. One test (or parameter) per case."""
import ast
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captionlib.__main__ import main
from captionlib.images import ImageLoadError, load_image, to_rgb
from captionlib.train import load_model
from captionlib.utils import atomic_save, atomic_write, load_checkpoint
from captionlib.vocab import tokenize

from test_train import trainer

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ command-line values, before any work

@pytest.mark.parametrize("argv, says", [
    (["train", "--beam-size", "0"], "--beam-size: 0 is outside the valid range [1, inf)"),
    (["evaluate", "--beam-size", "3", "-2"], "--beam-size: -2 is outside the valid range [1, inf)"),
    (["train", "--epochs", "0"], "--epochs: 0 is outside the valid range [1, inf)"),
    (["train", "--max-len", "0"], "--max-len: 0 is outside"),
    (["train", "--grid", "0"], "--grid: 0 is outside"),
    (["train", "--batch-size", "-1"], "--batch-size: -1 is outside"),
    (["train", "--patience", "0"], "--patience: 0 is outside"),
    (["train", "--hidden-dim", "0"], "--hidden-dim: 0 is outside"),
    (["train", "--alpha-c", "-1"], "--alpha-c: -1 is outside the valid range [0, inf)"),
    (["train", "--lr", "inf"], "--lr: inf is outside the valid range (0, inf)"),
    (["train", "--lr", "nan"], "--lr: nan is outside"),
    (["train", "--lr", "0"], "--lr: 0 is outside the valid range (0, inf)"),
    (["train", "--dropout", "1"], "--dropout: 1 is outside the valid range [0, 1)"),
    (["train", "--lr-decay", "0"], "--lr-decay: 0 is outside the valid range (0, 1]"),
    (["train", "--epochs", "three"], "--epochs: 'three' is not an integer"),
    (["evaluate", "--split", "bogus"], "invalid choice: 'bogus'"),
    (["train", "--dataset", "flikr8k"], "invalid choice: 'flikr8k'"),
    (["caption", "--checkpoint", "", "x.jpg"], "--checkpoint: the path is empty (an unset shell variable?). Leave --checkpoint out"),
    (["prepare", "--dataset", "flickr8k", "--root", ""], "--root: the folder is empty"),
    (["prepare", "--dataset", "flickr8k", "--root", str(REPO / "README.md")], "is a file, not a folder"),
])
def test_option_values_are_refused_at_parse_time_with_the_valid_range(argv, says, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("where, says", [("folder", "is a folder; give a file name"),
                                         ("file/under.pt", "is a file, so nothing can be written under it")])
def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, where, says):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--checkpoint", str(tmp_path / where)]) == 2
    assert says in capsys.readouterr().err                    # and no features were extracted first: it returns at once


def test_train_never_overwrites_a_finished_run_unless_told(tmp_path, capsys):
    done = tmp_path / "run.pt"
    done.write_bytes(b"a finished run")
    assert main(["train", "--checkpoint", str(done)]) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint" in err and "--resume" in err and "--overwrite" in err
    assert done.read_bytes() == b"a finished run"


def test_ctrl_c_says_where_the_last_checkpoint_is(tmp_path, capsys, monkeypatch):
    import captionlib.__main__ as cli

    def interrupted(a):
        Path(a.checkpoint).write_bytes(b"saved")
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_train", interrupted)
    assert cli.main(["train", "--checkpoint", str(tmp_path / "r.pt")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and str(tmp_path / "r.pt") in err and "--resume" in err and "Traceback" not in err


# ------------------------------------------------------------------ images

def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header that declares width x height pixels, with (almost) no pixel data."""
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _bad_files(folder: Path) -> dict:
    """name -> (how to make it, what the message must say)."""
    return {
        "bomb.png": (lambda p: p.write_bytes(_png_declaring(100_000, 100_000)), "declares 10000000000 pixels"),
        "big.png": (lambda p: p.write_bytes(_png_declaring(11_000, 11_000)), "declares 121000000 pixels"),  # PIL only warns
        "pipe.jpg": (lambda p: os.mkfifo(p), "not a regular file"),
        "folder.jpg": (lambda p: p.mkdir(), "is a folder, not an image file"),
        "empty.jpg": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        "text.jpg": (lambda p: p.write_text("hello"), "not an image file PIL can read"),
        "loop.jpg": (lambda p: (os.symlink(folder / "loop2.jpg", p), os.symlink(p, folder / "loop2.jpg")), "cannot be reached"),
        "missing.jpg": (lambda p: None, "no such file"),
    }


@pytest.mark.parametrize("name", list(_bad_files(Path("."))))
def test_each_bad_image_file_gets_its_own_message_and_none_hangs(tmp_path, name):
    make, says = _bad_files(tmp_path)[name]
    make(tmp_path / name)
    with pytest.raises(ImageLoadError, match=re.escape(says)):
        load_image(tmp_path / name)


def test_an_empty_path_and_an_unreadable_file(tmp_path):
    with pytest.raises(ImageLoadError, match="empty path"):
        load_image("")
    if os.geteuid() == 0:
        pytest.skip("root reads every file: the permission case needs another user")
    locked = tmp_path / "locked.jpg"
    Image.new("RGB", (4, 4)).save(locked)
    locked.chmod(0)
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_image(locked)


def test_32_bit_and_nan_holding_grayscale_keep_their_picture():
    ramp = np.linspace(-70_000, 2_000_000, 64, dtype=np.float64).reshape(8, 8)
    wide = np.asarray(to_rgb(Image.fromarray(ramp.astype(np.int32), mode="I")))[..., 0]
    assert wide.min() == 0 and wide.max() == 255 and len(np.unique(wide)) > 30        # not flat white
    floats = ramp.astype(np.float32)
    floats[0, 0] = np.nan
    shown = np.asarray(to_rgb(Image.fromarray(floats, mode="F")))[..., 0]
    assert shown.max() == 255 and len(np.unique(shown)) > 30                           # not flat black


def test_a_caption_batch_with_bad_images_captions_the_good_ones_and_lists_the_bad(tmp_path, capsys):
    import matplotlib

    good = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    (tmp_path / "bomb.png").write_bytes(_png_declaring(100_000, 100_000))
    os.mkfifo(tmp_path / "pipe.jpg")
    assert main(["caption", str(tmp_path / "bomb.png"), str(good), str(tmp_path / "pipe.jpg"), "--beam-size", "1"]) == 1
    captured = capsys.readouterr()
    assert f"{good}: " in captured.out
    assert "2 of 3 images could not be read" in captured.err and "decompression bomb" in captured.err


def test_a_bad_first_image_is_skipped_like_any_other(tmp_path):
    from captionlib.encoder import Encoder
    from captionlib.features import extract_features

    class Images:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            if i == 0:
                raise ImageLoadError("first.jpg: the file is corrupt")
            return Image.new("RGB", (40, 40), (i * 80, 0, 0))
    with pytest.warns(UserWarning, match="skipping image 0: first.jpg"):
        store = extract_features(Encoder(), Images(), "k", tmp_path, device="cpu", progress=False, workers=0)
    assert store.valid().tolist() == [1, 2] and 0 in store.bad


# ------------------------------------------------------------------ the feature cache

@pytest.mark.parametrize("damage", ["truncate features", "break meta.json", "break done.npy", "break bad.json"])
def test_a_damaged_feature_cache_is_rebuilt_never_read(tmp_path, damage):
    from captionlib.encoder import Encoder
    from captionlib.features import extract_features

    images = [Image.new("RGB", (32, 32), (i * 60, 20, 200 - i * 60)) for i in range(3)]
    encoder = Encoder()
    first = extract_features(encoder, images, "k", tmp_path, device="cpu", progress=False, workers=0)
    want = np.array(first.features)
    folder = tmp_path / "k"
    file, content = {"truncate features": ("features.f16", None), "break meta.json": ("meta.json", b"{not json"),
                     "break done.npy": ("done.npy", b"garbage"), "break bad.json": ("bad.json", b"[1, 2")}[damage]
    if content is None:
        (folder / file).write_bytes((folder / file).read_bytes()[:100])
    else:
        (folder / file).write_bytes(content)
    with pytest.warns(UserWarning, match=f"feature cache {folder} is damaged"):
        again = extract_features(encoder, images, "k", tmp_path, device="cpu", progress=False, workers=0)
    np.testing.assert_array_equal(np.array(again.features), want)


# ------------------------------------------------------------------ checkpoints

class _RunsCode:
    """Unpickling this calls os.system: a checkpoint from a hostile classmate."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, capsys):
    marker, evil = tmp_path / "it-ran", tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker), "decoder_config": {}, "vocab": {}}, evil)
    with pytest.raises(ValueError) as e:
        load_checkpoint(evil)
    assert "never unpickled" in str(e.value) and "weights_only=False" not in str(e.value)
    assert main(["caption", "--checkpoint", str(evil), str(REPO / "README.md")]) == 2
    assert main(["evaluate", "--checkpoint", str(evil)]) == 2
    assert main(["export", str(evil), str(tmp_path / "out.pt")]) == 2
    assert "weights_only=False" not in capsys.readouterr().err
    assert not marker.exists()
    with pytest.raises(ValueError):                                      # resume, too
        trainer(tmp_path, "evil.pt").fit(resume=True, progress=False)
    assert not marker.exists()


def _trained(tmp_path) -> tuple[Path, dict]:
    t = trainer(tmp_path, "good.pt", epochs=1)
    t.fit(progress=False)
    return tmp_path / "good.pt", torch.load(tmp_path / "good.pt", weights_only=True)


def test_unexpected_checkpoint_contents_are_named(tmp_path):
    path, good = _trained(tmp_path)
    cases = {
        "random bytes": (np.random.default_rng(0).bytes(4096), "truncated, damaged or not a torch file"),
        "truncated": (path.read_bytes()[:2000], "truncated, damaged or not a torch file"),
    }
    for name, (content, says) in cases.items():
        (tmp_path / "x.pt").write_bytes(content)
        with pytest.raises(ValueError, match=says):
            load_model(tmp_path / "x.pt", device="cpu")
    objects = {
        "an int": (7, "holds a int, not a captionlib checkpoint"),
        "no vocabulary": ({k: v for k, v in good.items() if k != "vocab"}, "no 'vocab'"),
        "a newer config": ({**good, "decoder_config": {**good["decoder_config"], "layers": 2}}, "newer captionlib"),
        "NaN weights": ({**good, "best_model": {k: v * float("nan") if v.is_floating_point() else v
                                                for k, v in good["best_model"].items()}}, "hold NaN or inf"),
        "an empty vocabulary": ({**good, "vocab": {"idx_to_word": []}}, "not a captionlib vocabulary"),
    }
    for name, (content, says) in objects.items():
        torch.save(content, tmp_path / "x.pt")
        with pytest.raises(ValueError, match=says):
            load_model(tmp_path / "x.pt", device="cpu")


def test_a_folder_given_as_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_resuming_from_an_exported_model_is_refused(tmp_path):
    from captionlib.train import export_model

    path, _ = _trained(tmp_path)
    export_model(path, tmp_path / "small.pt")
    with pytest.raises(ValueError, match="cannot be resumed"):
        trainer(tmp_path, "small.pt", epochs=1).fit(resume=True, progress=False)


# ------------------------------------------------------------------ training faults

def test_a_non_finite_loss_stops_training_and_keeps_the_good_checkpoint(tmp_path):
    t = trainer(tmp_path, "run.pt", epochs=2)
    t.fit(progress=False, stop_after_steps=4)
    saved = (tmp_path / "run.pt").read_bytes()
    for group in t.optimizer.param_groups:
        group["lr"] = float("inf")                                    # what --lr inf did before it was refused
    real = t.decoder.loss
    calls = []

    def loss(*args, **kw):                                            # the step after the infinite update diverges
        calls.append(1)
        value = real(*args, **kw)
        nan = float("nan") if len(calls) > 1 else 1.0
        return (value[0] * nan, value[1]) if isinstance(value, tuple) else value * nan
    t.decoder.loss = loss
    with pytest.raises(RuntimeError, match=r"the loss is nan at epoch 1, step 6 .*last good checkpoint is .*run\.pt"):
        t.fit(resume=False, progress=False)
    assert (tmp_path / "run.pt").read_bytes() == saved                # nothing non-finite was saved


def test_non_finite_features_stop_training_with_the_fix(tmp_path):
    t = trainer(tmp_path, epochs=1)
    features = np.array(t.pairs.features)
    features[3, 0, 0] = np.nan
    t.pairs.features = features
    with pytest.raises(RuntimeError, match="hold NaN or inf .*delete data/cache/features"):
        t.fit(progress=False)


# ------------------------------------------------------------------ files and words

def test_saved_files_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "f.json", lambda f: f.write(b"{}"))
        saved = atomic_save({"a": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(saved.stat().st_mode) == 0o644


def test_the_tokenizer_keeps_letters_of_every_script():
    assert tokenize("Un café au lait.") == ["un", "café", "au", "lait"]
    assert tokenize("Der Hund läuft über die Straße!") == ["der", "hund", "läuft", "über", "die", "straße"]
    assert tokenize("cafe\u0301") == ["café"]                        # a combining accent joins its letter
    assert tokenize("一只狗。") == ["一只狗"]                              # not "no caption"
    assert tokenize("a dog's ball, (red)") == ["a", "dog", "s", "ball", "red"]   # punctuation still goes


def test_splits_and_real_folders_import_no_circle():
    imports = {}
    for name in ("data", "datasets", "split"):
        tree = ast.parse((REPO / "captionlib" / f"{name}.py").read_text())
        imports[name] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        imports[name] |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and not n.module
                          for a in n.names}
    assert "data" not in imports["datasets"] and not {"data", "datasets"} & imports["split"]
    assert "datasets" in imports["data"]
    assert subprocess.run([sys.executable, "-c", "import captionlib.datasets, captionlib.data"], cwd=REPO).returncode == 0


# ------------------------------------------------------------------ dataset folders

def test_a_kaggle_file_with_a_byte_order_mark_and_a_latin_1_token_file_are_read(tmp_path):
    from captionlib.data import load_split
    from test_datasets import flickr8k_token, kaggle

    folder, _ = kaggle(tmp_path / "bom")
    (folder / "captions.txt").write_bytes(b"\xef\xbb\xbf" + (folder / "captions.txt").read_bytes())   # Windows' BOM
    assert len(load_split("flickr8k", "train", folder=folder)) > 0
    folder, names = flickr8k_token(tmp_path / "latin")
    token = folder / "Flickr8k.token.txt"
    token.write_bytes(token.read_bytes().replace(b"something", "caf\u00e9".encode("latin-1")))
    split = load_split("flickr8k", "train", folder=folder)
    assert any("café" in c for caps in split.captions for c in caps)
    assert any("not UTF-8" in n and "Latin-1" in n for n in check_folder_notes(folder))


def check_folder_notes(folder):
    from captionlib.datasets import check_folder

    return check_folder("flickr8k", folder).notes


def test_every_malformed_caption_line_is_listed_with_its_number(tmp_path):
    from captionlib.datasets import DatasetError, check_folder
    from test_datasets import flickr8k_token

    folder, _ = flickr8k_token(tmp_path)
    token = folder / "Flickr8k.token.txt"
    lines = token.read_text().splitlines()
    lines[2], lines[9] = "no tab here", "1001_abc.jpg no hash"
    token.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        check_folder("flickr8k", folder)
    assert "2 line(s)" in str(e.value) and "line 3:" in str(e.value) and "line 10:" in str(e.value)


def test_karpathy_json_variants(tmp_path):
    import json

    from captionlib.data import load_split
    from captionlib.datasets import DatasetError, check_folder
    from test_datasets import karpathy

    folder = karpathy(tmp_path, "flickr30k")
    path = folder / "dataset_flickr30k.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({"images": {str(k): im for k, im in enumerate(data["images"])}}))   # keyed by id
    assert len(load_split("flickr30k", "train", folder=folder)) == 5
    data["images"][4]["sentences"] = None                                                      # no captions at all
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="1 test images have no caption, e.g. flickr30k_4.jpg"):
        check_folder("flickr30k", folder)
    del data["images"][1]["filename"]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="image entry 1 has no 'filename'"):
        check_folder("flickr30k", folder)


def test_duplicates_and_test_images_in_train_are_warned_about(tmp_path):
    from captionlib.datasets import check_folder
    from test_datasets import flickr8k_token

    folder, names = flickr8k_token(tmp_path)
    (folder / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:5] + [names[7], names[0]]) + "\n")
    token = folder / "Flickr8k.token.txt"
    token.write_text(token.read_text() + f"{names[1]}#5\ta {names[1]} again\n{names[1]}#6\ta {names[1]} again\n")
    notes = "\n".join(check_folder("flickr8k", folder).notes)
    assert "1 train image(s) are listed more than once" in notes
    assert "1 train image(s) have the same caption twice" in notes
    assert "1 image(s) are in both train and test" in notes


def test_two_runs_on_one_checkpoint_the_second_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    from captionlib.utils import RunLock

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "ck.pt.lock").write_text(str(other.pid))              # a run in another process holds it
        with pytest.raises(RuntimeError, match=f"another run \\(process {other.pid}\\) is training into"):
            trainer(tmp_path, epochs=1).fit(progress=False)
        assert not (tmp_path / "ck.pt").exists()
    finally:
        other.kill()
        other.wait()
    trainer(tmp_path, epochs=1).fit(progress=False)                        # its process is gone: taken over
    assert (tmp_path / "ck.pt").exists() and not (tmp_path / "ck.pt.lock").exists()
    with RunLock(tmp_path / "x.pt"):
        assert (tmp_path / "x.pt.lock").read_text() == f"{os.getpid()} {socket.gethostname()}"
    assert not (tmp_path / "x.pt.lock").exists()


def test_with_wait_a_second_run_waits_for_the_first_and_goes_on_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    """`train --wait` (lesson 09 uses it: its student and solution copies may train one checkpoint at once): the second
    run waits for the first, then resumes from what it wrote instead of being refused or training over it."""
    first = trainer(tmp_path, epochs=2)
    first.fit(progress=False)
    import threading

    import captionlib.utils as utils

    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", "import pathlib, time\n"
                               f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.1)"])
    (tmp_path / "ck.pt.lock").write_text(f"{holder.pid} {socket.gethostname()}")   # the first run, still writing
    waiting = threading.Event()
    sleep = utils.time.sleep
    monkeypatch.setattr(utils.time, "sleep", lambda s: (waiting.set(), sleep(s)))

    def first_run_ends():
        waiting.wait(120)                                 # once the second run waits (however slow its start) ...
        release.touch()                                   # ... the first ends,
        holder.wait()                                     # and is reaped (a zombie would look alive)
    threading.Thread(target=first_run_ends).start()
    second = trainer(tmp_path, epochs=2)
    second.wait = True
    history = second.fit(resume=True, progress=False)
    assert f"waiting for process {holder.pid}" in capsys.readouterr().out
    assert len(history["val_bleu4"]) == 2 and not (tmp_path / "ck.pt.lock").exists()   # the finished run, loaded
    assert all(torch.equal(a, b) for a, b in zip(first.decoder.state_dict().values(), second.decoder.state_dict().values()))


def test_a_lock_held_from_another_machine_is_not_taken_for_a_dead_runs(tmp_path):
    """On a shared file system (torchrun over several machines) the holder's process cannot be looked up here:
    its lock is respected, with the machine named, instead of being taken over as a killed run's."""
    from captionlib.utils import RunLock

    (tmp_path / "ck.pt.lock").write_text("999999999 node-17")           # no such process here, but it is not here
    with pytest.raises(RuntimeError, match="process 999999999 on node-17"):
        with RunLock(tmp_path / "ck.pt"):
            pass
    (tmp_path / "ck.pt.lock").write_text(f"999999999 {socket.gethostname()}")   # this machine's, and dead: taken over
    with RunLock(tmp_path / "ck.pt"):
        pass
    assert not (tmp_path / "ck.pt.lock").exists()


def test_the_same_seed_gives_the_same_numbers_on_cpu(tmp_path):
    """Training (with scheduled sampling, which draws the model's own words) and sample() repeat exactly."""
    from captionlib.beam import sample

    runs = []
    for name in ("a.pt", "b.pt"):
        t = trainer(tmp_path, name, epochs=2, sampling="linear")
        runs.append((t.fit(progress=False)["step_loss"], t.decoder.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    t.decoder.eval()
    features = torch.from_numpy(np.asarray(t.pairs.features[:4], dtype=np.float32))
    draws = [[c.tokens for c in sample(t.decoder, features, generator=torch.Generator().manual_seed(3))] for _ in range(2)]
    assert draws[0] == draws[1]


def test_a_byte_flipped_inside_a_checkpoints_weights_is_refused(tmp_path):
    from captionlib.train import export_model

    path, good = _trained(tmp_path)
    export_model(path, tmp_path / "small.pt")
    for name in ("good.pt", "small.pt"):
        s = torch.load(tmp_path / name, weights_only=True)
        assert set(s["digests"]) == {"weights", "vocabulary", "decoder settings", "encoder and decoding settings"}
        key = "best_model" if s.get("best_model") else "model"
        first = next(k for k, v in s[key].items() if v.is_floating_point())
        s[key][first].view(-1)[0] += 1e-3                                    # one weight changed, as a bad copy would
        torch.save(s, tmp_path / "damaged.pt")
        with pytest.raises(ValueError, match="do not match the checksum"):
            load_model(tmp_path / "damaged.pt", device="cpu")
    load_model(tmp_path / "small.pt", device="cpu")                          # the intact ones load


def test_a_killed_saves_temporary_file_is_swept_by_the_next_save(tmp_path):
    stale, fresh = tmp_path / "ck.pt.abc123.tmp", tmp_path / "ck.pt.def456.tmp"
    stale.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"another process, saving right now")
    os.utime(stale, (0, 0))                                              # written long ago: its process is gone
    atomic_save({"w": torch.zeros(2)}, tmp_path / "ck.pt")
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "ck.pt.def456.tmp"]


def test_killed_in_the_middle_of_a_checkpoint_write_the_good_one_stays_and_resume_is_exact(tmp_path, monkeypatch):
    import captionlib.utils as utils

    full = trainer(tmp_path, "full.pt")
    full.fit(progress=False)
    real, calls = torch.save, []

    def dies_halfway(obj, f):                       # the second save is killed after writing some bytes
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt
        real(obj, f)
    monkeypatch.setattr(utils.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path, "part.pt").fit(progress=False)
    monkeypatch.setattr(utils.torch, "save", real)
    assert load_checkpoint(tmp_path / "part.pt")["epoch"] == 1              # the first epoch's checkpoint, intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("part.pt.")] == []   # no half file left
    resumed = trainer(tmp_path, "part.pt")
    resumed.fit(resume=True, progress=False)
    for (n, a), (_, b) in zip(full.decoder.state_dict().items(), resumed.decoder.state_dict().items()):
        assert torch.equal(a, b), n


# ------------------------------------------------------------------ feature cache integrity and concurrency

def test_a_changed_block_of_the_feature_cache_is_refused_naming_its_rows(tmp_path):
    from captionlib.features import BLOCK, FeatureCacheError, FeatureStore, extract_features
    from test_features import Images, tiny_encoder

    store = extract_features(tiny_encoder(), Images(40), "k", tmp_path, batch_size=4, progress=False, workers=0)
    want = np.array(store.features)
    row = np.memmap(tmp_path / "k" / "features.f16", np.float16, "r+", shape=store.shape)
    row[BLOCK + 1, 0, 0] += 1                                        # a disk error in the second block
    row.flush()
    del row
    damaged = FeatureStore(tmp_path / "k")
    np.testing.assert_array_equal(damaged[3], want[3])               # the intact block is read
    for read in (lambda: damaged[BLOCK + 1], lambda: damaged.features[[0, 35]], lambda: np.asarray(damaged.features)):
        with pytest.raises(FeatureCacheError, match=f"rows {BLOCK}-39 do not match the checksum.*Delete {tmp_path / 'k'}"):
            read()


def test_rows_flushed_and_checksummed_before_a_kill_are_not_extracted_again(tmp_path, monkeypatch):
    import captionlib.features as features
    from test_features import Images, tiny_encoder

    real = features.atomic_write

    def killed_before_done(path, fn):
        if path.name == "done.npy" and (path.parent / "blocks.json").exists() \
                and json.loads((path.parent / "blocks.json").read_text())["sums"]:
            raise KeyboardInterrupt                                  # killed after the checksums, before done.npy
        return real(path, fn)
    monkeypatch.setattr(features, "atomic_write", killed_before_done)
    with pytest.raises(KeyboardInterrupt):
        features.extract_features(tiny_encoder(), Images(40), "k", tmp_path, batch_size=4, progress=False, workers=0)
    monkeypatch.setattr(features, "atomic_write", real)
    assert not np.load(tmp_path / "k" / "done.npy").any()           # done.npy never said so ...
    imgs = Images(40)
    store = features.extract_features(tiny_encoder(), imgs, "k", tmp_path, batch_size=4, progress=False, workers=0)
    assert imgs.calls == 0 and store.done.all()                     # ... but the checksummed blocks count as done
    fresh = features.extract_features(tiny_encoder(), Images(40), "k", tmp_path / "b", batch_size=4, progress=False)
    np.testing.assert_array_equal(np.asarray(store.features), np.asarray(fresh.features))


_EXTRACT = """
import sys, time, torch, torch.nn as nn
from PIL import Image
from captionlib.encoder import Encoder
from captionlib.features import extract_features

class Slow:
    def __len__(self): return 24
    def __getitem__(self, i):
        time.sleep(0.05)
        return Image.new("RGB", (16, 16), (i * 10, 50, 100))

torch.manual_seed(0)
enc = Encoder(nn.Conv2d(3, 4, 4, stride=4), dim=4, grid=2, image_size=16)
store = extract_features(enc, Slow(), "k", sys.argv[1], batch_size=2, progress=False, workers=0, commit_every=0.1)
print("done", bool(store.done.all()))
"""


def test_two_extractions_into_one_cache_at_once_the_second_waits_and_nothing_is_corrupted(tmp_path):
    script = tmp_path / "extract.py"
    script.write_text(_EXTRACT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache")], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outs = [r.communicate(timeout=300)[0] for r in runs]
    assert all(r.returncode == 0 for r in runs) and all("done True" in o for o in outs), outs
    assert sum("waiting for process" in o for o in outs) >= 1, outs          # one of them waited for the other
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "alone")], env=env, check=True)
    assert alone.returncode == 0
    a, b = ((tmp_path / f / "k" / "features.f16").read_bytes() for f in ("cache", "alone"))
    assert a == b
    assert json.loads((tmp_path / "cache" / "k" / "blocks.json").read_text()) == \
        json.loads((tmp_path / "alone" / "k" / "blocks.json").read_text())
    assert not (tmp_path / "cache" / "k" / "features.lock").exists()


def test_an_image_replaced_by_another_of_the_same_size_changes_the_split_fingerprint(tmp_path):
    import captionlib.datasets as datasets
    from captionlib.data import load_split
    from test_datasets import flickr8k_token

    folder, names = flickr8k_token(tmp_path)
    before = load_split("flickr8k", "train", folder=folder).fingerprint
    path = folder / "Flicker8k_Dataset" / names[0]
    os.utime(path, (0, 0))                                           # touched or copied: the same bytes, the same key
    datasets._SCANNED.clear()
    assert load_split("flickr8k", "train", folder=folder).fingerprint == before
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF                                                 # another picture, the very same size
    path.write_bytes(bytes(data))
    datasets._SCANNED.clear()                                        # a new process: the scan is cached per process
    assert load_split("flickr8k", "train", folder=folder).fingerprint != before


# ------------------------------------------------------------------ the commands, with what learners really have

def test_caption_reads_every_kind_of_photo_file_from_a_path_with_spaces_and_accents(tmp_path, capsys):
    import matplotlib
    from test_cli_evaluate import _checkpoint

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    folder = tmp_path / "mes photos d'été"
    folder.mkdir()
    paths = {"animated.gif": lambda p: photo.save(p, save_all=True, append_images=[photo.rotate(90)], duration=100),
             "photo.webp": lambda p: photo.save(p), "cmyk.jpg": lambda p: photo.convert("CMYK").save(p),
             "one pixel.png": lambda p: photo.resize((1, 1)).save(p), "panorama.png": lambda p: photo.resize((600, 3)).save(p)}
    for name, save in paths.items():
        save(folder / name)
    assert main(["caption", *(str(folder / n) for n in paths), "--checkpoint", str(_checkpoint(tmp_path)),
                 "--device", "cpu", "--beam-size", "1"]) == 0
    out = capsys.readouterr().out
    assert all(f"{folder / n}: " in out for n in paths), out


def test_a_checkpoint_whose_backbone_gives_other_widths_is_named_not_a_matrix_error(tmp_path, capsys):
    from test_cli_evaluate import _checkpoint

    ck = _checkpoint(tmp_path, "efficientnet-lite0", dim=112, grid=7)      # the decoder reads 112 channels
    Image.new("RGB", (40, 40)).save(tmp_path / "p.png")
    assert main(["caption", str(tmp_path / "p.png"), "--checkpoint", str(ck), "--device", "cpu"]) == 2
    assert "its decoder reads 112-channel features, but its backbone 'efficientnet-lite0' gives 1280" in capsys.readouterr().err


def test_evaluate_on_another_dataset_than_the_checkpoints_says_so_and_does_it(tmp_path, capsys, monkeypatch):
    from test_cli_evaluate import _checkpoint
    from test_datasets import flickr8k_token

    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    folder, names = flickr8k_token(tmp_path)
    ck = _checkpoint(tmp_path)                                             # trained on shapes, says its metadata
    assert main(["evaluate", "--checkpoint", str(ck), "--dataset", "flickr8k", "--root", str(folder), "--device", "cpu",
                 "--beam-size", "1", "--split", "test"]) == 0
    captured = capsys.readouterr()
    assert "the model was trained on shapes; evaluating it on flickr8k, as --dataset says" in captured.err
    assert "flickr8k" in captured.out


# ------------------------------------------------------------------ issue 33: the last crashes, digests, messages

def test_a_folder_where_a_dataset_image_should_be_is_listed_and_skipped_not_a_traceback(tmp_path, capsys, monkeypatch):
    from test_datasets import kaggle

    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    folder, names = kaggle(tmp_path)
    (folder / "Images" / names[3]).unlink()
    (folder / "Images" / names[3]).mkdir()                                  # Images/x.jpg/ is a directory
    with pytest.warns(UserWarning, match="is a folder, not an image file"):
        assert main(["prepare", "--dataset", "flickr8k", "--root", str(folder), "--min-freq", "1"]) == 0
    out = capsys.readouterr().out
    assert f"warning: 1 train image(s) cannot be read and will be skipped: {names[3]} (a folder)" in out \
        or f"warning: 1 val image(s) cannot be read" in out or f"warning: 1 test image(s) cannot be read" in out, out
    assert "features of 11 of 12 images cached" in out or "features of 1 of 2 images cached" in out, out


@pytest.mark.parametrize("verb", [["caption", "x.jpg"], ["evaluate"], ["prepare", "--dataset", "flickr8k"], ["train"]])
def test_captionlib_data_naming_a_file_is_explained(tmp_path, capsys, monkeypatch, verb):
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "afile"))
    assert main(verb) == 2
    err = capsys.readouterr().err
    assert f"CAPTIONLIB_DATA={tmp_path / 'afile'} names a file, not a folder" in err and "keeps datasets and caches" in err


def _edited(tmp_path, change) -> Path:
    path, good = _trained(tmp_path)
    s = torch.load(path, weights_only=True)
    change(s)
    torch.save(s, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


def test_a_reordered_vocabulary_is_refused_by_the_checkpoints_digest(tmp_path):
    def swap(s):
        words = s["vocab"]["idx_to_word"]
        words[4], words[5] = words[5], words[4]                             # same size, other order
    with pytest.raises(ValueError, match="its vocabulary changed after the weights were saved"):
        load_model(_edited(tmp_path, swap), device="cpu")


def test_edited_decoder_settings_and_encoder_metadata_are_refused_by_name(tmp_path):
    def dropout(s):
        s["decoder_config"]["dropout"] = 0.1
    with pytest.raises(ValueError, match="its decoder settings changed"):
        load_model(_edited(tmp_path, dropout), device="cpu")

    def backbone(s):
        s["meta"]["backbone"] = "efficientnet-lite0-s16"
    with pytest.raises(ValueError, match="its encoder and decoding settings changed"):
        load_model(_edited(tmp_path, backbone), device="cpu")


@pytest.mark.parametrize("key, value, says", [("grid", 0, "its encoder grid = 0 is not a whole number"),
                                               ("hidden_dim", -3, "its decoder setting hidden_dim = -3 is not a positive"),
                                               ("dropout", 1.5, "its decoder setting dropout = 1.5 is not in [0, 1)")])
def test_a_config_value_that_breaks_the_model_is_refused_on_load(tmp_path, key, value, says):
    def change(s):
        (s["meta"] if key == "grid" else s["decoder_config"])[key] = value
        s.pop("digests")                                                    # an old file, with no digest to catch it
    with pytest.raises(ValueError, match=re.escape(says)):
        load_model(_edited(tmp_path, change), device="cpu")


def test_weights_of_another_architecture_are_named_as_such_not_as_disk_damage(tmp_path):
    def swap(s):                                                          # another model's weights: every size doubled
        for key in ("model", "best_model"):
            s[key] = {k: torch.zeros(*(2 * d for d in v.shape)) if v.is_floating_point() else v for k, v in s[key].items()}
    with pytest.raises(ValueError, match="its weights are another model's .* where its settings give"):
        load_model(_edited(tmp_path, swap), device="cpu")


def test_a_beam_wider_than_memory_is_refused_before_any_work(tmp_path, capsys):
    from test_cli_evaluate import _checkpoint

    Image.new("RGB", (40, 40)).save(tmp_path / "p.png")
    assert main(["caption", str(tmp_path / "p.png"), "--checkpoint", str(_checkpoint(tmp_path)), "--device", "cpu",
                 "--beam-size", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "--beam-size 1000000000: a beam that wide needs about" in err and "the widest that fits is about" in err


def test_a_beam_wider_than_every_possible_caption_keeps_nothing_more():
    from captionlib.beam import beam_search, possible_captions
    from captionlib.decoder import DecoderConfig, build_decoder

    assert possible_captions(7, 4) == 341                                  # lesson 06's brute force counts 341
    torch.manual_seed(0)
    dec = build_decoder(DecoderConfig(vocab_size=7, encoder_dim=8, embed_dim=4, hidden_dim=8, attention_dim=4, dropout=0.0)).eval()
    f = torch.randn(2, 4, 8)
    wide, wider = beam_search(dec, f, 341, max_len=4, return_all=True), beam_search(dec, f, 10 ** 9, max_len=4, return_all=True)
    assert [[c.tokens for c in w.alternatives] for w in wide] == [[c.tokens for c in w.alternatives] for w in wider]


def test_a_full_disk_while_saving_says_so_and_the_old_checkpoint_stays(tmp_path):
    script = f"""
import resource, signal, torch
from captionlib.utils import atomic_save, DiskFullError
atomic_save({{"w": torch.zeros(10)}}, {str(tmp_path / 'ck.pt')!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                 # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    atomic_save({{"w": torch.zeros(100_000)}}, {str(tmp_path / 'ck.pt')!r})
except DiskFullError as e:
    print(e)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"could not write {tmp_path / 'ck.pt'}: a file-size limit (ulimit -f) is reached" in r.stdout, r.stdout
    assert f"The previous {tmp_path / 'ck.pt'} is intact" in r.stdout
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["w"].shape == (10,)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]                 # no temporary file left behind


def test_captionlibs_own_warnings_print_as_one_line_without_source_file(tmp_path):
    script = "from captionlib.utils import warn; warn('feature cache x is damaged; extracting its features again')"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.stderr == "warning: feature cache x is damaged; extracting its features again\n"


def test_captionlibs_own_warnings_print_as_one_line_in_a_notebook_too(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from captionlib.utils import warn\nwarn('image 3 skipped: not an image')")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert text == "warning: image 3 skipped: not an image\n", nb.cells[0].outputs


@pytest.mark.parametrize("how", ["empty pipe", "terminal"])
def test_caption_from_standard_input(tmp_path, how):
    from test_cli_evaluate import _checkpoint

    ck = str(_checkpoint(tmp_path))
    cmd = [sys.executable, "-m", "captionlib", "caption", "-", "--checkpoint", ck, "--device", "cpu", "--beam-size", "1"]
    if how == "empty pipe":
        r = subprocess.run(cmd, input=b"", capture_output=True, timeout=120)
        assert b"standard input (-) is empty: nothing was piped in" in r.stderr, r.stderr
    photo = tmp_path / "p.png"
    Image.new("RGB", (40, 40), (200, 0, 0)).save(photo)
    with open(photo, "rb") as f:
        r = subprocess.run(cmd, stdin=f, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(b"-: "), r.stderr


def test_caption_on_a_folder_named_like_a_photo_says_what_it_holds(tmp_path, capsys):
    from test_cli_evaluate import _checkpoint

    ck = str(_checkpoint(tmp_path))
    (tmp_path / "trip.jpg").mkdir()
    assert main(["caption", str(tmp_path / "trip.jpg"), "--checkpoint", ck, "--device", "cpu"]) == 1
    assert "trip.jpg is a folder, not an image file (it holds no image files)" in capsys.readouterr().err
    Image.new("RGB", (40, 40)).save(tmp_path / "trip.jpg" / "beach.png")
    assert main(["caption", str(tmp_path / "trip.jpg"), "--checkpoint", ck, "--device", "cpu"]) == 1
    assert f"It holds 1 image file(s); name them, e.g. {tmp_path / 'trip.jpg' / 'beach.png'}" in capsys.readouterr().err
