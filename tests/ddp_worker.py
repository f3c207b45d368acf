"""One process of the small distributed runs tests/test_distributed.py starts with torchrun (not a test itself).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT.pt [--resume] [--die-at N]

--die-at N: rank 1 kills itself (SIGKILL, no cleanup) right after the checkpoint of global step N, in the
middle of an epoch; torchrun then stops the other process, as it does when one GPU's process dies.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

import test_train                                      # tests/ is this script's folder, so on its path
from captionlib import distributed
from captionlib.decoder import DecoderConfig
from captionlib.train import TrainConfig, Trainer
from captionlib.vocab import Vocab

def toy():
    """test_train's toy data with captions of 3 and 10 words, so the shards of a batch hold different numbers of
    real tokens (where a mean of per-process means would be wrong). The 29 training images give 58 captions:
    batches of 19, 19, 19 and 1, so in the last one rank 1 has none."""
    return test_train.toy(lambda colour: [f"a {colour} circle", f"there is one {colour} circle here on the left side"])


def trainer(checkpoint, world=None, **kw) -> Trainer:
    feats, captions = toy()
    vocab = Vocab.build([c for cs in captions for c in cs])
    # dropout 0: one process and two draw different dropout masks, so only without it are the numbers the same
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=test_train.E, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
    tc = TrainConfig(**{"epochs": 3, "batch_size": 19, "lr": 1e-2, "seed": 0, "device": "cpu", "patience": 10,
                        "alpha_c": 1.0, "checkpoint_every": 1, **kw})
    return Trainer(dc, vocab, feats, captions, range(29), feats, captions, range(30, 40), tc, checkpoint, world=world)


class Pictures:
    """100 small pictures, each its own colour; number 37 cannot be read (as a broken file)."""

    def __len__(self) -> int:
        return 100

    def __getitem__(self, i: int):
        from PIL import Image

        from captionlib.images import ImageLoadError

        if i == 37:
            raise ImageLoadError("image 37 is damaged")
        return Image.new("RGB", (16, 16), (i * 2, 255 - i, (i * 7) % 256))


def tiny_encoder():
    import torch
    from torch import nn

    from captionlib.encoder import Encoder

    torch.manual_seed(0)
    return Encoder(nn.Conv2d(3, 4, 4, stride=4), dim=4, grid=2, image_size=16)


def extract(root, world=None):
    """Pictures' features into root/k: with a World, this process's share of the blocks."""
    from captionlib.features import extract_features

    return extract_features(tiny_encoder(), Pictures(), "k", root, upto=70, batch_size=4, progress=False, workers=0,
                            commit_every=0.0, world=world)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--die-at", type=int, default=0)
    p.add_argument("--extract", action="store_true", help="extract Pictures into the folder CHECKPOINT instead")
    p.add_argument("--device", default="cpu", help="cuda: NCCL, one GPU per process")
    p.add_argument("--fine-tune", action="store_true", help="test_finetune's run: the tiny CNN's last block trains too")
    a = p.parse_args()
    world = distributed.init(a.device)
    if a.fine_tune:
        from pathlib import Path

        import test_finetune

        path = Path(a.checkpoint)
        test_finetune.trainer(path.parent, path.name, world=world).fit(progress=False)
        distributed.close()
        return 0
    if a.extract:
        store = extract(a.checkpoint, world)
        print(f"rank {world.rank}: {len(store.valid())} valid", flush=True)
        distributed.close()
        return 0
    t = trainer(a.checkpoint, world, device=a.device)
    if a.die_at and world.rank == 1:
        save = t.save

        def save_then_die():
            save()
            if t.global_step == a.die_at:
                os.kill(os.getpid(), signal.SIGKILL)
        t.save = save_then_die
    t.fit(resume=a.resume, progress=False)
    distributed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
