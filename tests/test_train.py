import numpy as np
import pytest
import torch

from captionlib.decoder import DecoderConfig
from captionlib.train import TrainConfig, Trainer, load_model, penalty_weight, sampling_prob
from captionlib.utils import atomic_save
from captionlib.vocab import Vocab

N, P, E = 40, 4, 6
COLOURS = ["red", "blue", "green", "yellow"]


def toy(describe=lambda colour: [f"there is a {colour} circle", f"a {colour} circle is here"]):
    """Features whose first channel encodes a colour; captions (describe(colour)) name it. Learnable in a few steps."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, N)
    feats = rng.normal(0, 0.1, (N, P, E)).astype(np.float16)
    feats[np.arange(N), :, 0] = labels[:, None]
    return feats, [describe(COLOURS[k]) for k in labels]


def trainer(tmp_path, name="ck.pt", **kw):
    feats, captions = toy()
    vocab = Vocab.build([c for cs in captions for c in cs])
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=E, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.3)
    tc = TrainConfig(**{"epochs": 3, "batch_size": 8, "seed": 0, "device": "cpu", "patience": 10, **kw})
    return Trainer(dc, vocab, feats, captions, range(30), feats, captions, range(30, 40), tc, tmp_path / name)


def test_killed_and_resumed_training_gives_identical_weights(tmp_path):
    full = trainer(tmp_path, "full.pt")
    full.fit(progress=False)
    part = trainer(tmp_path, "part.pt")
    part.fit(stop_after_steps=11, progress=False)  # mid-epoch 2 (8 batches an epoch)
    del part  # "killed": a new process would start from the file alone
    resumed = trainer(tmp_path, "part.pt")
    resumed.fit(resume=True, progress=False)
    for (n, a), (_, b) in zip(full.decoder.state_dict().items(), resumed.decoder.state_dict().items()):
        assert torch.equal(a, b), n
    assert full.history["val_bleu4"] == resumed.history["val_bleu4"]


def test_training_learns_and_checkpoint_loads_with_weights_only(tmp_path):
    t = trainer(tmp_path, epochs=8, lr=3e-2)
    h = t.fit(progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0] and max(h["val_bleu4"]) > 0.5
    raw = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert {"model", "optimizer", "vocab", "decoder_config", "epoch", "history"} <= set(raw)
    decoder, vocab, meta = load_model(tmp_path / "ck.pt", device="cpu")
    assert len(vocab) == raw["decoder_config"]["vocab_size"] and not decoder.training


def test_early_stopping_on_bleu(tmp_path):
    t = trainer(tmp_path, epochs=20, lr=0.0, patience=2)  # nothing changes, so BLEU never improves
    h = t.fit(progress=False)
    assert len(h["val_bleu4"]) == 3


def test_mismatched_checkpoints_are_clear_errors(tmp_path):
    t = trainer(tmp_path)
    t.fit(stop_after_steps=1, progress=False)
    other = trainer(tmp_path, "ck.pt")
    other.decoder_config.hidden_dim = 32
    with pytest.raises(ValueError, match="trained with decoder"):
        other.load(tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    state["vocab"]["idx_to_word"] = state["vocab"]["idx_to_word"] + ["zebra"]
    atomic_save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="expects .* words but the vocabulary has"):
        load_model(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable captionlib checkpoint"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="captionlib train"):
        load_model(tmp_path / "missing.pt")


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    atomic_save({"a": torch.ones(2)}, tmp_path / "c.pt")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": torch.zeros(2)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_sampling_schedules_are_bengio_et_als_in_updates():
    """ε_i, the teacher-forcing probability, decays per update; the own word's chance 1 - ε_i is capped."""
    from captionlib.train import teacher_forcing_prob

    lin = TrainConfig(sampling="linear", sampling_max=0.5)
    assert [sampling_prob(lin, i, 100) for i in (0, 25, 50, 99)] == [0.0, 0.25, 0.5, 0.5]          # capped at 0.5
    inv = TrainConfig(sampling="inverse_sigmoid", sampling_max=1.0, sampling_k=20)
    eps = [teacher_forcing_prob(inv, i, 1000) for i in range(0, 200, 10)]
    assert eps == sorted(eps, reverse=True) and abs(eps[0] - 20 / 21) < 1e-12                      # starts near 1
    assert eps[0] - eps[3] < 0.15 and eps[6] - eps[9] > 0.3                                          # slow, then fast
    assert teacher_forcing_prob(TrainConfig(), 7, 10) == 1.0 and sampling_prob(TrainConfig(), 7, 10) == 0.0


def test_penalty_weight_is_one_over_the_regions_unless_set():
    """The paper's λ = 1 averaged over regions: 1/49 on 7x7 features, 1/196 on 14x14; 0 switches it off."""
    assert penalty_weight(TrainConfig(), 49) == 1 / 49 and penalty_weight(TrainConfig(), 196) == 1 / 196
    assert penalty_weight(TrainConfig(alpha_c=0.0), 196) == 0.0 and penalty_weight(TrainConfig(alpha_c=0.5), 49) == 0.5


def test_self_critical_phase_follows_cross_entropy_and_resumes_exactly(tmp_path):
    """scst_epochs run after the cross-entropy ones, from their best weights; a run killed in the middle of
    the self-critical phase resumes to the same weights as an uninterrupted one."""
    kw = dict(epochs=2, scst_epochs=2, scst_images=4, scst_samples=3, scst_lr=1e-3, lr=3e-2)
    full = trainer(tmp_path, "full.pt", **kw)
    h = full.fit(progress=False)
    assert h["phase"] == ["xe", "xe", "scst", "scst"] and len(h["scst_reward"]) == 2 * 8   # 30 images / 4 per step
    assert np.isnan(h["train_loss"][2]) and not np.isnan(h["train_loss"][1])
    part = trainer(tmp_path, "part.pt", **kw)
    part.fit(stop_after_steps=8 + 8 + 3, progress=False)                 # 3 steps into the self-critical phase
    del part
    resumed = trainer(tmp_path, "part.pt", **kw)
    resumed.fit(resume=True, progress=False)
    for (n, a), (_, b) in zip(full.decoder.state_dict().items(), resumed.decoder.state_dict().items()):
        assert torch.equal(a, b), n
    assert resumed.history["val_bleu4"] == h["val_bleu4"] and resumed.phase == "scst"


def test_early_stopped_cross_entropy_moves_on_to_self_critical_training(tmp_path):
    t = trainer(tmp_path, epochs=20, lr=0.0, patience=2, scst_epochs=1, scst_images=10, scst_samples=2, scst_lr=0.0)
    h = t.fit(progress=False)
    assert h["phase"] == ["xe"] * 3 + ["scst"]                           # 3 cross-entropy epochs, then one SCST epoch


def test_mirrored_views_and_weight_averaging_resume_exactly_and_change_training(tmp_path):
    """With mirrored features and an EMA of the weights, a killed run still resumes to identical weights;
    the average is what is validated and kept as best."""
    feats, _ = toy()
    mirror = feats[:, ::-1].copy()                                      # stand-in for the flipped photos' features
    def run(name, **kw):
        t = trainer(tmp_path, name, ema=0.9, lr=3e-2)
        t.mirror = mirror
        return t
    full = run("full.pt")
    h = full.fit(progress=False)
    part = run("part.pt")
    part.fit(stop_after_steps=11, progress=False)
    resumed = run("part.pt")
    resumed.fit(resume=True, progress=False)
    for (n, a), (_, b) in zip(full.decoder.state_dict().items(), resumed.decoder.state_dict().items()):
        assert torch.equal(a, b), n
    assert resumed.history["val_bleu4"] == h["val_bleu4"]
    assert all(torch.equal(full.ema[k], resumed.ema[k]) for k in full.ema)
    plain = trainer(tmp_path, "plain.pt", lr=3e-2)
    plain.fit(progress=False)
    assert not torch.equal(plain.decoder.fc.weight, full.decoder.fc.weight)
    flips = full._flips(0)
    assert 0.2 < flips.float().mean() < 0.8 and torch.equal(flips, full._flips(0)) and not torch.equal(flips, full._flips(1))


def test_mirrored_split_flips_images_and_keeps_captions():
    from captionlib.data import load_split, mirrored

    train = load_split("shapes", "train")
    m = mirrored(train)
    a, b = np.asarray(train.images[0]), np.asarray(m.images[0])
    assert np.array_equal(a[:, ::-1], b) and m.captions is train.captions and m.fingerprint != train.fingerprint


_CACHED_RUN = """
import sys, time
sys.path.insert(0, sys.argv[2])
import test_train
from captionlib.train import Trainer
fit = Trainer._fit
def slow_fit(self, *a, **kw):                     # holds the lock until the test says so, as a long run would
    print("locked", flush=True)
    release = __import__("pathlib").Path(sys.argv[3])
    for _ in range(600):
        if release.exists():
            break
        time.sleep(0.2)
    return fit(self, *a, **kw)
Trainer._fit = slow_fit
import torch
steps = []
step = torch.optim.Adam.step
torch.optim.Adam.step = lambda self, *a, **kw: (steps.append(1), step(self, *a, **kw))[1]
t = test_train.trainer(__import__("pathlib").Path(sys.argv[1])).cached()
history = t.fit(progress=False)
print("trained", len(steps), "steps", flush=True)
print("epochs", len(history["val_bleu4"]), "weights", float(sum(p.double().sum() for p in t.decoder.parameters())), flush=True)
"""


def test_a_cached_run_of_a_model_another_process_is_training_waits_for_it_and_loads_it(tmp_path):
    """Two notebooks (or make test's two workers) asking for the same cached model: the second is not refused;
    it waits for the first, then finds the finished run and loads it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(_CACHED_RUN)
    env = {**os.environ, "CAPTIONLIB_DATA": str(tmp_path / "data")}
    here = str(Path(__file__).parent)
    release = tmp_path / "release"
    first = subprocess.Popen([sys.executable, str(script), str(tmp_path), here, str(release)], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert first.stdout.readline().strip() == "locked"
    second = subprocess.Popen([sys.executable, str(script), str(tmp_path), here, str(tmp_path / "at-once")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    (tmp_path / "at-once").touch()                    # the second, once it holds the lock, goes on at once
    said = second.stdout.readline()                   # blocks until the second reaches the lock (a slow start is fine)
    release.touch()                                   # now the first may train and finish
    out_first = first.communicate(timeout=300)[0]
    out, err = second.communicate(timeout=300)
    out_second = said + out
    assert first.returncode == 0 and second.returncode == 0, err[-2000:]
    assert f"waiting for process {first.pid}" in said, said
    assert "trained 0 steps" in out_second and "trained 0 steps" not in out_first      # it loaded the finished run:
    assert out_first.splitlines()[-1] == out_second.splitlines()[-1]                    # the same epochs and weights
