"""The command line: train, evaluate, and caption images.

    captionlib train --dataset shapes [--epochs 8] [--device auto] [--checkpoint PATH]
    captionlib evaluate [--checkpoint PATH] [--split test] [--beam-size 3]
    captionlib caption IMAGE... [--checkpoint PATH] [--beam-size 3]
    captionlib prepare --dataset flickr8k --root PATH     (real data: check the folder, vocabulary, features)

(also `python -m captionlib ...`). Features are extracted once and cached (data/cache/features).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main"]


def _default_checkpoint(dataset: str, backbone: str) -> Path:
    from .utils import data_root

    return data_root() / "cache" / "checkpoints" / f"{dataset}-{backbone}.pt"


def _encoder(backbone: str, grid: int):
    from .encoder import Encoder

    return Encoder(backbone, grid=grid)


def _trained(a):
    """The checkpoint's decoder, vocabulary and metadata, and the encoder its features came from."""
    from .train import load_model

    checkpoint = Path(a.checkpoint) if a.checkpoint else _default_checkpoint(a.dataset, a.backbone)
    decoder, vocab, state = load_model(checkpoint, a.device)
    meta = state.get("meta", {})
    encoder = _encoder(meta.get("backbone", a.backbone), meta.get("grid", a.grid))
    return decoder, vocab, meta, encoder, next(decoder.parameters()).device


def _options(dataset: str, root: str | None) -> dict:
    """load_split options: a real dataset's folder, when one is given."""
    return {"folder": root} if root and dataset != "shapes" else {}


def _min_freq(a) -> int:
    return a.min_freq if a.min_freq is not None else (1 if a.dataset == "shapes" else 5)   # 5: the usual for Flickr/COCO


def cmd_prepare(a) -> int:
    """Check a real dataset's folder, build its vocabulary and extract (cache) its features."""
    from .data import load_split
    from .datasets import check_folder
    from .features import features_for
    from .utils import atomic_write, data_root
    from .vocab import Vocab

    if a.dataset == "shapes":
        print("shapes is embedded: nothing to prepare (its features are extracted on first use)")
        return 0
    layout = check_folder(a.dataset, a.root or data_root() / a.dataset)
    print(f"{a.dataset}: {layout.format} captions in {layout.caption_file}, images in {layout.image_dir}")
    for note in layout.notes:
        print(f"  note: {note}")
    splits = {s: load_split(a.dataset, s, **_options(a.dataset, a.root)) for s in ("train", "val", "test")}
    for s, split in splits.items():
        print(f"  {s}: {len(split)} images, {sum(map(len, split.captions))} captions")
    vocab = Vocab.build([c for caps in splits["train"].captions for c in caps], min_freq=_min_freq(a))
    path = data_root() / "cache" / "vocab" / f"{a.dataset}-min{_min_freq(a)}.json"
    payload = json.dumps(vocab.state_dict()).encode()
    atomic_write(path, lambda f: f.write(payload))
    print(f"vocabulary: {len(vocab)} words at min frequency {_min_freq(a)} -> {path}")
    if a.no_features:
        return 0
    encoder = _encoder(a.backbone, a.grid)
    for s, split in splits.items():
        n = min(a.subset or len(split), len(split))
        store = features_for(split, encoder, upto=n, device=a.device)
        print(f"  {s}: features of {len(store.valid(n))} of {n} images cached")
    return 0


def cmd_train(a) -> int:
    from .data import load_split
    from .decoder import DecoderConfig
    from .features import features_for
    from .train import TrainConfig, Trainer
    from .vocab import Vocab

    start = time.time()
    torch.manual_seed(a.seed)
    options = _options(a.dataset, a.root)
    train, val = load_split(a.dataset, "train", **options), load_split(a.dataset, "val", **options)
    encoder = _encoder(a.backbone, a.grid)
    n_train = min(a.subset or len(train), len(train))
    tf = features_for(train, encoder, upto=n_train, device=a.device)
    vf = features_for(val, encoder, device=a.device)
    vocab = Vocab.build([c for i in tf.valid(n_train) for c in train.captions[i]], min_freq=_min_freq(a), max_len=a.max_len)
    checkpoint = Path(a.checkpoint) if a.checkpoint else _default_checkpoint(a.dataset, a.backbone)
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=encoder.dim, attention=not a.no_attention,
                       hidden_dim=a.hidden_dim, embed_dim=a.embed_dim, attention_dim=a.attention_dim, dropout=a.dropout)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, device=a.device,
                     patience=a.patience, max_len=a.max_len, sampling=a.sampling, alpha_c=a.alpha_c)
    meta = {"dataset": a.dataset, "backbone": a.backbone, "grid": encoder.grid, "train_images": int(n_train), **options}
    trainer = Trainer(dc, vocab, tf.features, train.captions, tf.valid(n_train), vf.features, val.captions,
                      vf.valid(), tc, checkpoint, meta)
    if a.resume and checkpoint.exists():
        print(f"resuming from {checkpoint} (delete it to train from scratch)")
    print(f"training on {len(trainer.pairs)} captions of {n_train} images, vocabulary {len(vocab)}, device {trainer.device}")
    history = trainer.fit(resume=a.resume)
    print(f"best val BLEU-4 {max(history['val_bleu4']):.4f}; checkpoint {checkpoint}; {time.time() - start:.0f} s in all")
    return 0


def cmd_evaluate(a) -> int:
    from .data import load_split
    from .evaluate import attention_in_box, reference_ceiling
    from .features import features_for
    from .train import caption_all, score_captions

    decoder, vocab, meta, encoder, device = _trained(a)
    dataset = meta.get("dataset", a.dataset)
    split = load_split(dataset, a.split, **_options(dataset, a.root or meta.get("folder")))
    store = features_for(split, encoder, device=a.device)
    idx = store.valid()
    captions = caption_all(decoder, store.features, idx, device, a.max_len, a.beam_size)   # decoded once
    scores, hyps = score_captions(captions, vocab, [split.captions[i] for i in idx])
    ceiling = reference_ceiling([split.captions[i] for i in idx])
    print(f"{split.dataset}/{a.split}: {len(idx)} images, beam {a.beam_size}")
    print(f"{'':10} {'model':>8} {'ceiling':>8} {'ratio':>6}")
    for k in scores:
        print(f"{k:10} {scores[k]:8.4f} {ceiling[k]:8.4f} {scores[k] / ceiling[k] if ceiling[k] > 0 else float('nan'):6.2f}")
    if split.scenes is not None and decoder.config.attention:
        inside, uniform = [], []
        for i, c in zip(idx, captions):
            for _, m, u in attention_in_box(split.scenes[i], vocab.decode(c.tokens, join=False), c.alphas.numpy(), encoder.grid):
                inside.append(m)
                uniform.append(u)
        print(f"attention in the named objects' boxes: {np.mean(inside):.3f} of the mass "
              f"(uniform attention: {np.mean(uniform):.3f}; {len(inside)} object words)")
    for i in range(min(3, len(idx))):
        print(f"  [{idx[i]}] {hyps[i]!r}   refs: {split.captions[idx[i]][:2]}")
    return 0


def cmd_caption(a) -> int:
    from .beam import beam_search
    from .images import ImageLoadError, load_image

    decoder, vocab, _, encoder, device = _trained(a)
    encoder = encoder.to(device).eval()
    status = 0
    for path in a.images:
        try:
            image = load_image(path)
        except ImageLoadError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        with torch.no_grad():
            feats, _ = encoder(encoder.preprocess(image).to(device))
        c = beam_search(decoder, feats, a.beam_size, a.max_len)[0]
        print(f"{path}: {vocab.decode(c.tokens)}   (log p = {c.score:.2f})")
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="captionlib", description="Train, evaluate and run a Show-Attend-Tell captioner.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "evaluate", "caption", "prepare"):
        s = sub.add_parser(name)
        s.add_argument("--dataset", default="shapes", help="shapes (embedded), flickr8k, flickr30k or coco")
        s.add_argument("--root", help="a real dataset's folder (default: data/DATASET); see data/DATASET/README.md")
        s.add_argument("--backbone", default="efficientnet-lite0",
                       help="efficientnet-lite0 (7x7x1280, offline), efficientnet-lite0-s16 (14x14x112: sharper attention), "
                            "resnet50/101[-s16] (weights from the torch hub cache)")
        s.add_argument("--grid", type=int, default=None, help="pool the feature map to GRID x GRID regions (default: its own size)")
        s.add_argument("--device", default="auto")
        s.add_argument("--checkpoint", help="default: data/cache/checkpoints/DATASET-BACKBONE.pt")
        s.add_argument("--beam-size", type=int, default=3)
        s.add_argument("--max-len", type=int, default=20)
        if name == "train":
            s.add_argument("--epochs", type=int, default=4)
            s.add_argument("--batch-size", type=int, default=64)
            s.add_argument("--lr", type=float, default=1e-3)
            s.add_argument("--patience", type=int, default=3)
            s.add_argument("--subset", type=int, default=2000,
                           help="train on the first N training images (default 2000: about 4 minutes on a 2-core CPU; 0: all)")
            s.add_argument("--min-freq", type=int, default=None, help="default: 1 for shapes, 5 for real datasets")
            s.add_argument("--embed-dim", type=int, default=128)
            s.add_argument("--hidden-dim", type=int, default=256)
            s.add_argument("--attention-dim", type=int, default=128)
            s.add_argument("--dropout", type=float, default=0.5)
            s.add_argument("--sampling", default="none", choices=["none", "linear", "inverse_sigmoid"])
            s.add_argument("--alpha-c", type=float, default=None,
                           help="weight of the doubly stochastic attention penalty (default 1/P; 0 lets attention stay on one object)")
            s.add_argument("--no-attention", action="store_true", help="Show and Tell instead of Show-Attend-Tell")
            s.add_argument("--resume", action="store_true")
            s.add_argument("--seed", type=int, default=0)
        if name == "evaluate":
            s.add_argument("--split", default="test")
        if name == "caption":
            s.add_argument("images", nargs="+")
        if name == "prepare":
            s.add_argument("--min-freq", type=int, default=None, help="default: 5 (1 for shapes)")
            s.add_argument("--subset", type=int, default=0, help="extract features of the first N images per split (0: all)")
            s.add_argument("--no-features", action="store_true", help="only check the folder and build the vocabulary")
    a = p.parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "caption": cmd_caption, "prepare": cmd_prepare}[a.cmd](a)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
