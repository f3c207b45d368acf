"""Fine-tuning the encoder's last blocks with the decoder (captionlib/finetune.py, `train --fine-tune-encoder K`):
on this CPU, with a tiny CNN and then with the real EfficientNet through the command line."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from captionlib.decoder import DecoderConfig
from captionlib.encoder import Encoder
from captionlib.finetune import load_encoder
from captionlib.train import TrainConfig, Trainer, export_model, load_checkpoint
from captionlib.vocab import Vocab

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


def pictures():
    """24 small pictures, each one colour with noise, and captions that name it."""
    rng = np.random.default_rng(0)
    names = [list(COLOURS)[k % 3] for k in range(24)]
    images = [Image.fromarray(np.clip(np.array(COLOURS[n]) + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8))
              for n in names]
    return images, [[f"a {n} square", f"the square is {n}"] for n in names]


def tiny_encoder():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 6, 1))
    return Encoder(trunk, grid=2, dim=6, image_size=16)      # blocks: conv, bn, relu, conv


def trainer(tmp_path, name="ft.pt", world=None, **kw):
    images, captions = pictures()
    vocab = Vocab.build([c for cs in captions for c in cs])
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=6, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
    tc = TrainConfig(**{"epochs": 2, "batch_size": 8, "lr": 1e-2, "seed": 0, "device": "cpu", "fine_tune_encoder": 1,
                        "encoder_lr": 1e-2, **kw})
    return Trainer(dc, vocab, None, captions, range(18), None, captions, range(18, 24), tc, tmp_path / name,
                   encoder=tiny_encoder(), images=images, val_images=images, world=world)


def test_fine_tuning_moves_the_last_block_only_keeps_batch_norm_statistics_and_saves_the_encoder(tmp_path):
    before = {k: v.clone() for k, v in tiny_encoder().trunk.state_dict().items()}
    t = trainer(tmp_path)
    assert [g["lr"] for g in t.optimizer.param_groups] == [1e-2, 1e-2] and len(t.optimizer.param_groups[1]["params"]) == 2
    t.fit(progress=False)
    after = t.encoder.trunk.state_dict()
    assert not torch.equal(after["3.weight"], before["3.weight"])                      # the last block trained
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        assert torch.equal(after[name], before[name]), name                              # the rest, and BN's statistics
    state = load_checkpoint(tmp_path / "ft.pt")
    assert torch.equal(state["best_encoder_model"]["3.weight"], after["3.weight"])
    assert not torch.equal(state["encoder_model"]["3.weight"], before["3.weight"])


def test_images_decoded_by_loader_workers_train_exactly_as_decoded_in_the_process(tmp_path):
    """The training images come through DataLoader workers (finetune.pixel_batches), in the batches' order."""
    here, ahead = trainer(tmp_path, "here.pt"), trainer(tmp_path, "ahead.pt")
    here.loader_workers, ahead.loader_workers = 0, 2
    here.fit(progress=False)
    ahead.fit(progress=False)
    for (n, x), (_, y) in zip(here.encoder.trunk.state_dict().items(), ahead.encoder.trunk.state_dict().items()):
        assert torch.equal(x, y), n
    assert here.history["step_loss"] == ahead.history["step_loss"]


def test_a_fine_tuning_run_resumes_exactly_and_refuses_another_k(tmp_path):
    full = trainer(tmp_path, "full.pt")
    full.fit(progress=False)
    part = trainer(tmp_path, "part.pt")
    part.fit(stop_after_steps=3, progress=False)                                        # mid-epoch 1 of 2 (5 steps each)
    resumed = trainer(tmp_path, "part.pt")
    resumed.fit(resume=True, progress=False)
    for a, b in ((full.decoder, resumed.decoder), (full.encoder.trunk, resumed.encoder.trunk)):
        for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), n
    with pytest.raises(ValueError, match="--fine-tune-encoder 1, not 2"):
        trainer(tmp_path, "part.pt", fine_tune_encoder=2).load(tmp_path / "part.pt")


def test_the_exported_model_carries_its_fine_tuned_encoder(tmp_path, monkeypatch):
    t = trainer(tmp_path)
    t.fit(progress=False)
    export_model(tmp_path / "ft.pt", tmp_path / "small.pt")
    state = load_checkpoint(tmp_path / "small.pt")
    assert state["encoder_model"]["3.weight"].dtype == torch.float16
    import captionlib.encoder as encoder_module
    monkeypatch.setattr(encoder_module, "load_backbone", lambda name: tiny_encoder().backbone)
    state["meta"] = {"backbone": "tiny", "grid": 2}
    enc = load_encoder(state, "tiny", 2)
    assert enc.name.startswith("custom-ft") and torch.allclose(enc.trunk.state_dict()["3.weight"],
                                                                  t.encoder.trunk.state_dict()["3.weight"], atol=1e-3)


def test_fine_tuning_needs_the_images_and_not_self_critical_training(tmp_path):
    images, captions = pictures()
    vocab = Vocab.build([c for cs in captions for c in cs])
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=6, embed_dim=8, hidden_dim=16, attention_dim=8)
    with pytest.raises(ValueError, match="needs the encoder= and the images="):
        Trainer(dc, vocab, None, captions, range(18), None, captions, range(18, 24), TrainConfig(fine_tune_encoder=1))
    with pytest.raises(ValueError, match="self-critical training reads cached features"):
        trainer(tmp_path, scst_epochs=1)


def test_train_fine_tune_encoder_through_the_command_line_then_caption_and_evaluate_use_it(tmp_path, capsys, monkeypatch):
    """The real EfficientNet-Lite0, its last block (the 1x1 head conv) unfrozen, on a 16-image fixture."""
    from captionlib.__main__ import main
    from test_datasets import kaggle

    monkeypatch.setenv("CAPTIONLIB_DATA", str(tmp_path / "data"))
    folder, names = kaggle(tmp_path)
    ckpt = tmp_path / "ft.pt"
    assert main(["train", "--dataset", "flickr8k", "--root", str(folder), "--epochs", "1", "--min-freq", "1",
                 "--batch-size", "16", "--fine-tune-encoder", "1", "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuning the last 1 of 18 blocks of efficientnet-lite0 (lr 0.0001), from the images" in out
    assert not (tmp_path / "data" / "cache" / "features").exists()                      # nothing was cached
    state = load_checkpoint(ckpt)
    frozen = Encoder("efficientnet-lite0").trunk.state_dict()
    key = "net._conv_head.weight"
    assert not torch.equal(state["encoder_model"][key], frozen[key])                    # the head conv moved
    assert torch.equal(state["encoder_model"]["net._conv_stem.weight"], frozen["net._conv_stem.weight"])
    assert main(["evaluate", "--checkpoint", str(ckpt), "--split", "val", "--metrics", "bleu"]) == 0
    captured = capsys.readouterr()
    assert "efficientnet-lite0-ft" in captured.err and "flickr8k/val: 2 images" in captured.out
    assert any("-ft" in p.name for p in (tmp_path / "data" / "cache" / "features").iterdir())   # cached apart
    photo = next((folder / "Images").iterdir())
    assert main(["caption", str(photo), "--checkpoint", str(ckpt)]) == 0
    assert "efficientnet-lite0-ft" in capsys.readouterr().err


def test_two_gloo_processes_fine_tune_like_one(tmp_path):
    """DDP averages the encoder's gradients too (distributed.LossModule runs the encoder in its forward)."""
    from test_distributed import torchrun

    one = trainer(tmp_path, "one.pt")
    one.fit(progress=False)
    torchrun(tmp_path / "two.pt", "--fine-tune")
    two = load_checkpoint(tmp_path / "two.pt")
    for name, w in one.encoder.trunk.state_dict().items():
        assert torch.allclose(two["encoder_model"][name].float(), w.float(), atol=1e-4), name
    for name, w in one.decoder.state_dict().items():
        assert torch.allclose(two["model"][name], w, atol=1e-4), name
