"""Distributed training (captionlib/distributed.py) on this CPU: 2 gloo processes started by torchrun give the
same numbers as one process, and a run whose process dies mid-epoch resumes to the same weights."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ddp_worker
from captionlib import distributed
from captionlib.features import FeatureStore
from captionlib.train import load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(*args, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and r.returncode:
        raise AssertionError(f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def weights(path) -> dict:
    return load_checkpoint(path)["model"]


def test_two_gloo_processes_train_like_one_with_the_exact_token_mean(tmp_path):
    one = ddp_worker.trainer(tmp_path / "one.pt")
    one.fit(progress=False)
    torchrun(tmp_path / "two.pt")
    two = load_checkpoint(tmp_path / "two.pt")
    assert two["global_step"] == one.global_step == 12 and len(two["rng_ranks"]) == 2
    assert torch.allclose(torch.tensor(two["history"]["step_loss"]), torch.tensor(one.history["step_loss"]), atol=1e-5)
    # Float tolerance: the all-reduce adds in another order, and Adam scales up the noise of gradients near 0
    # (here at most 1.2e-5). A plain mean of the per-process means lands 4e-2 away.
    for name, w in one.decoder.state_dict().items():
        assert torch.allclose(two["model"][name], w, atol=1e-4), name
    assert two["history"]["val_bleu4"] == pytest.approx(one.history["val_bleu4"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL, one per process)")
def test_two_gpus_with_nccl_train_like_one(tmp_path):
    one = ddp_worker.trainer(tmp_path / "one.pt", device="cuda")
    one.fit(progress=False)
    torchrun(tmp_path / "two.pt", "--device", "cuda")
    two = load_checkpoint(tmp_path / "two.pt")
    assert torch.allclose(torch.tensor(two["history"]["step_loss"]), torch.tensor(one.history["step_loss"]), atol=1e-4)
    for name, w in one.decoder.state_dict().items():
        assert torch.allclose(two["model"][name], w.cpu(), atol=1e-3), name


def test_the_share_weights_are_what_makes_the_mean_exact():
    """Per-process means averaged (what plain DDP gives) differ from the batch's token mean when shards hold
    different numbers of tokens; weighted by `_share`, the average of the two gradients is the batch's gradient."""
    t = ddp_worker.trainer(None)
    batch = list(range(19))
    grads = {}

    def grad(ks, w=(1.0, 1.0)):
        feats, caps, _, _ = t._xe_batch(ks, None)
        t.decoder.zero_grad()
        ce, pen = t.decoder.loss(feats, caps, 1.0, t.vocab.pad_idx, parts=True)
        (w[0] * ce + w[1] * pen).backward()
        return torch.cat([p.grad.flatten() for p in t.decoder.parameters()])

    whole = grad(batch)
    t.world = distributed.World(0, 2, 0, torch.device("cpu"))
    shares = []
    for rank in (0, 1):
        t.world = distributed.World(rank, 2, 0, torch.device("cpu"))
        mine, w = t._share(batch)
        assert mine == batch[rank::2] and w != (1.0, 1.0)
        grads[rank] = (grad(mine, w), grad(mine))
        shares.append(w)
    assert torch.allclose((grads[0][0] + grads[1][0]) / 2, whole, atol=1e-6)
    assert not torch.allclose((grads[0][1] + grads[1][1]) / 2, whole, atol=1e-4)     # the plain mean of means
    t.world = distributed.World(1, 2, 0, torch.device("cpu"))
    assert t._share([5]) == ([5], (0.0, 0.0))                                       # nothing for rank 1: weight 0


def test_a_distributed_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    torchrun(tmp_path / "full.pt")
    died = torchrun(tmp_path / "part.pt", "--die-at", 6, check=False)
    assert died.returncode != 0
    stopped = load_checkpoint(tmp_path / "part.pt")
    assert 5 <= stopped["global_step"] <= 6 and 0 < stopped["step_in_epoch"] < 4      # mid-epoch 2 of 3
    torchrun(tmp_path / "part.pt", "--resume")
    full, resumed = load_checkpoint(tmp_path / "full.pt"), load_checkpoint(tmp_path / "part.pt")
    assert resumed["global_step"] == full["global_step"] == 12
    for name, w in full["model"].items():
        assert torch.equal(resumed["model"][name], w), name
    assert resumed["history"]["val_bleu4"] == full["history"]["val_bleu4"]


def test_self_critical_training_is_refused_in_a_distributed_run_with_what_to_do():
    with pytest.raises(ValueError, match="one process only.*--resume --scst-epochs"):
        ddp_worker.trainer(None, world=distributed.World(0, 2, 0, torch.device("cpu")), scst_epochs=1)


def test_two_processes_extract_their_shares_into_one_cache_the_same_as_one_process(tmp_path):
    r = torchrun(tmp_path / "two", "--extract")
    assert "rank 0: 95 valid" in r.stdout and "rank 1: 95 valid" in r.stdout, r.stdout   # 96 rows (3 blocks) - image 37
    alone = ddp_worker.extract(tmp_path / "one")
    two = tmp_path / "two" / "k"
    assert not list(two.glob("blocks.rank*.json"))                   # merged into the cache's own files
    assert json.loads((two / "bad.json").read_text()) == {"37": "image 37 is damaged"}
    assert sorted(json.loads((two / "blocks.json").read_text())["sums"]) == ["0", "1", "2"]
    merged = FeatureStore(two)
    assert merged.done.sum() == 96 and 37 in merged.bad
    np.testing.assert_array_equal(np.asarray(merged.features)[:70], np.asarray(alone.features)[:70])


def test_torchrun_prepare_and_train_through_the_command_line(tmp_path):
    """What the README tells a user with several GPUs to type, here with 2 CPU processes (gloo): `prepare`
    shares the feature extraction, `train` shares the batches; rank 0 alone speaks and writes the checkpoint."""
    import os

    from test_datasets import kaggle

    folder, _ = kaggle(tmp_path)
    env = {**os.environ, "CAPTIONLIB_DATA": str(tmp_path / "data")}
    run = lambda *args: subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                        "-m", "captionlib", *args], capture_output=True, text=True, env=env, timeout=600)
    prep = run("prepare", "--dataset", "flickr8k", "--root", str(folder), "--min-freq", "1", "--device", "cpu")
    assert prep.returncode == 0, prep.stderr[-3000:]
    assert prep.stdout.count("train: features of 12 of 12 images cached") == 1, prep.stdout
    ckpt = tmp_path / "f8.pt"
    train = run("train", "--dataset", "flickr8k", "--root", str(folder), "--epochs", "2", "--min-freq", "1",
                "--batch-size", "16", "--checkpoint", str(ckpt), "--device", "cpu", "--checkpoint-every", "1")
    assert train.returncode == 0, train.stderr[-3000:]
    assert train.stdout.count("2 processes (gloo), a batch of 16 shared by them") == 1, train.stdout
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 2 and len(state["rng_ranks"]) == 2 and len(state["history"]["val_bleu4"]) == 2
    assert state["train_config"]["checkpoint_every"] == 1
    assert not list(tmp_path.glob("data/cache/features/*/blocks.rank*.json"))


def test_what_a_killed_distributed_extraction_finished_is_kept_and_the_rest_extracted_once(tmp_path):
    """Rank 1 of 2 finished its blocks (its progress file is on disk), then the run died. A later run in one
    process reads those blocks as done, bad image included, extracts only the others, and folds the file in."""
    from captionlib import features

    calls = []

    class Counted(ddp_worker.Pictures):
        def __getitem__(self, i):
            calls.append(i)
            return super().__getitem__(i)

    enc, folder = ddp_worker.tiny_encoder(), tmp_path / "k"
    folder.mkdir()
    features._open_or_lay_out(enc, Counted(), folder, "k", torch.device("cpu"))
    features._extract(enc, Counted(), folder, "k", 70, 4, "cpu", False, 0, 0.0, None, distributed.World(1, 2, 0, torch.device("cpu")))
    assert sorted(json.loads((folder / "blocks.rank1.json").read_text())["sums"]) == ["1"]      # rows 32-63, image 37
    store = FeatureStore(folder)
    assert store.done[32:64].all() and not store.done[:32].any() and 37 in store.bad
    calls.clear()
    store = features.extract_features(enc, Counted(), "k", tmp_path, upto=70, batch_size=4, progress=False, workers=0)
    assert set(calls) == set(range(32)) | set(range(64, 70))                                    # the rest, once
    assert not list(folder.glob("blocks.rank*.json")) and store.done[:70].all() and 37 in store.bad
    alone = ddp_worker.extract(tmp_path / "alone")
    np.testing.assert_array_equal(np.asarray(store.features)[:70], np.asarray(alone.features)[:70])
