"""The command line: train, evaluate, and caption images.

    captionlib train --dataset shapes [--epochs 8] [--device auto] [--checkpoint PATH]
    captionlib evaluate [--checkpoint PATH] [--split test] [--beam-size 3]
    captionlib caption IMAGE... [--checkpoint PATH] [--beam-size 3] [--attention out.png]
    captionlib prepare --dataset flickr8k --root PATH     (real data: check the folder, vocabulary, features)
    captionlib export RUN.pt SMALL.pt [--scores val.json test.json] [--length-norm L]  (float16, no optimiser state)

(also `python -m captionlib ...`). Features are extracted once and cached (data/cache/features).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main"]


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite int or float within [low, high] (an end excluded when *_open), else a usage
    error that states the valid range, before any work starts."""
    ends = ("(" if low_open else "[") + (str(low) if low is not None else "-inf") + ", " + \
        (str(high) if high is not None else "inf") + (")" if high_open or high is None else "]")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not np.isfinite(value) or (low is not None and (value < low or (low_open and value == low))) \
                or (high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError(f"{text} is outside the valid range {ends}")
        return value
    parse.__name__ = kind.__name__          # argparse names the type in its messages
    return parse


POSITIVE, COUNT = _number(int, 1), _number(int, 0)           # at least 1; 0 or more (0 often means "all")
RATE, WEIGHT = _number(float, 0, low_open=True), _number(float, 0)
FRACTION = _number(float, 0, 1, high_open=True)              # dropout, EMA decay
DECAY = _number(float, 0, 1, low_open=True)                  # a learning-rate factor per epoch


def _checkpoint_path(text: str) -> str:
    """An empty --checkpoint is refused, not taken for the default: it is usually an unset shell variable
    (--checkpoint "$CKPT"), and quietly using another model than the one meant would be worse."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty (an unset shell variable?). Leave --checkpoint out to use "
                                         "the default, or give the checkpoint's path")
    return text


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the folder is empty")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder: give the dataset's folder")
    return text


def _writable_checkpoint(path: Path, resume: bool, overwrite: bool) -> None:
    """Before any work: the checkpoint `train` will write can be written, and no finished run is lost to it."""
    if path.is_dir():
        raise ValueError(f"--checkpoint {path} is a folder; give a file name, e.g. {path / 'model.pt'}")
    parent = next((q for q in path.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"--checkpoint {path}: {parent} is a file, so nothing can be written under it")
    if parent is not None and not os.access(parent, os.W_OK):
        raise ValueError(f"--checkpoint {path}: {parent} is not writable here; choose another place")
    if path.exists() and not (resume or overwrite):
        raise ValueError(f"{path} already holds a checkpoint. --resume continues that run, --overwrite replaces it, "
                         "or --checkpoint NEW.pt keeps both")


def _default_checkpoint(dataset: str, backbone: str) -> Path:
    from .utils import data_root

    return data_root() / "cache" / "checkpoints" / f"{dataset}-{backbone}.pt"


def _encoder(backbone: str, grid: int):
    from .encoder import Encoder

    return Encoder(backbone, grid=grid)


def _checkpoint(a) -> Path:
    """Which model a command uses, said on stderr: --checkpoint when given; else `evaluate` takes the one
    `train` wrote for --dataset and --backbone, and `caption` the model that ships with the course."""
    from .utils import shipped_checkpoint

    lang = getattr(a, "lang", "en")
    own, shipped = _default_checkpoint(a.dataset, a.backbone), shipped_checkpoint("flickr8k-cn" if lang == "zh" else "flickr8k")
    if a.checkpoint:
        choice = Path(a.checkpoint)
    elif a.cmd == "evaluate" and own.exists():
        choice = own
    elif shipped.exists():
        choice = shipped
        if own.exists():
            print(f"note: your own model {own} is not used; pass --checkpoint {own} to use it", file=sys.stderr)
    elif own.exists():
        choice = own
    else:
        raise FileNotFoundError(f"no checkpoint: {shipped} (the course's Flickr8k model) is not here and you have not "
                                f"trained one at {own}. Pass --checkpoint PATH, or run `captionlib train` first.")
    print(f"checkpoint: {choice}", file=sys.stderr)
    return choice


def _trained(a):
    """The checkpoint's decoder, vocabulary and metadata, and the encoder its features came from."""
    from .finetune import load_encoder
    from .train import load_model

    path = _checkpoint(a)
    decoder, vocab, state = load_model(path, a.device)
    meta = state.get("meta", {})
    encoder = load_encoder(state, a.backbone, a.grid)                  # with its fine-tuned blocks, if it has them
    if "-ft" in encoder.name:
        print(f"encoder: {encoder.name}, fine-tuned with the decoder (its features are cached apart)", file=sys.stderr)
    if decoder.config.encoder_dim != encoder.dim:
        raise ValueError(f"{path}: its decoder reads {decoder.config.encoder_dim}-channel features, but its backbone "
                         f"{encoder.name!r} gives {encoder.dim}: the checkpoint's metadata is wrong or from another model")
    return decoder, vocab, meta, encoder, next(decoder.parameters()).device


def _options(dataset: str, root: str | None, images: str | None = None) -> dict:
    """load_split options: a real dataset's folder, and its photos' folder, when given."""
    if dataset == "shapes":
        return {}
    return {**({"folder": root} if root else {}), **({"images": images} if images else {})}


# What `captionlib train --dataset NAME` does with the options left out. shapes: small and quick (lessons);
# real datasets: the recipe selected on Flickr8k's val split (data/checkpoints/MODEL_CARD.md has the runs).
RECIPES = {
    "shapes": dict(epochs=4, batch_size=64, lr=1e-3, lr_decay=0.9, patience=3, subset=2000, min_freq=1, embed_dim=128,
                   hidden_dim=256, attention_dim=128, dropout=0.5, mirror=0, ema=0.0, scst_epochs=0, scst_lr=2e-5, scst_meteor=0.0),
    "real": dict(epochs=20, batch_size=64, lr=4e-4, lr_decay=0.9, patience=4, subset=0, min_freq=5, embed_dim=256,
                 hidden_dim=512, attention_dim=256, dropout=0.5, mirror=1, ema=0.0, scst_epochs=4, scst_lr=5e-5, scst_meteor=4.0),
}


def _recipe(a) -> None:
    """Fill the train options left out with the dataset's recipe."""
    recipe = RECIPES["shapes" if a.dataset == "shapes" else "real"]
    for key, value in recipe.items():
        if getattr(a, key, None) is None:
            setattr(a, key, value)


def _tokenizer(a) -> str:
    """--tokenizer, else the dataset's: jieba word segmentation for Chinese (Li et al., 2016), words elsewhere."""
    return a.tokenizer or ("jieba" if a.dataset == "flickr8k-cn" else "words")


def _min_freq(a) -> int:
    if a.min_freq is not None:
        return a.min_freq
    return RECIPES["shapes" if a.dataset == "shapes" else "real"]["min_freq"]


def _noted(note: str) -> str:
    return note if note.startswith("warning:") else f"note: {note}"


def _dataset_notes(dataset: str, root: str | None, main: bool = True, images: str | None = None) -> None:
    """What reading a real dataset's folder skipped or noticed (the notes `prepare` prints), one line each on stderr."""
    if dataset == "shapes" or not main:
        return
    from .datasets import check_folder
    from .utils import data_root

    for note in check_folder(dataset, root or data_root() / dataset, images).notes:
        print(_noted(note), file=sys.stderr)


def cmd_prepare(a) -> int:
    """Check a real dataset's folder, build its vocabulary and extract (cache) its features."""
    from . import distributed
    from .data import load_split
    from .datasets import check_folder
    from .features import features_for
    from .utils import atomic_write, data_root
    from .vocab import Vocab

    world = distributed.init(a.device)                                 # under torchrun: the processes share the images
    main = world is None or world.main
    say = print if main else (lambda *args, **kw: None)
    if a.dataset == "shapes":
        say("shapes is embedded: nothing to prepare (its features are extracted on first use)")
        return 0
    layout = check_folder(a.dataset, a.root or data_root() / a.dataset, a.images)
    say(f"{a.dataset}: {layout.format} captions in {layout.caption_file}, images in {layout.image_dir}")
    for note in layout.notes:
        say(f"  {_noted(note)}")
    splits = {s: load_split(a.dataset, s, **_options(a.dataset, a.root, a.images)) for s in ("train", "val", "test")}
    for s, split in splits.items():
        say(f"  {s}: {len(split)} images, {sum(map(len, split.captions))} captions")
    tokenizer = _tokenizer(a)
    vocab = Vocab.build([c for caps in splits["train"].captions for c in caps], min_freq=_min_freq(a), tokenizer=tokenizer)
    if tokenizer != "words":
        from .vocab import tokenize

        train_caps = [c for caps in splits["train"].captions for c in caps]
        per = sum(len(tokenize(c, tokenizer)) for c in train_caps) / len(train_caps)
        say(f"tokenizer {tokenizer}: {per:.1f} tokens per caption (e.g. {' / '.join(tokenize(train_caps[0], tokenizer))})")
    path = data_root() / "cache" / "vocab" / f"{a.dataset}-{tokenizer}-min{_min_freq(a)}.json"
    payload = json.dumps(vocab.state_dict()).encode()
    if main:
        atomic_write(path, lambda f: f.write(payload))
    say(f"vocabulary: {len(vocab)} words at min frequency {_min_freq(a)} -> {path}")
    if a.no_features:
        if world is not None:
            distributed.close()
        return 0
    encoder = _encoder(a.backbone, a.grid)
    for s, split in splits.items():
        n = min(a.subset or len(split), len(split))
        store = features_for(split, encoder, upto=n, device=world.device if world else a.device, world=world,
                             progress=main)
        say(f"  {s}: features of {len(store.valid(n))} of {n} images cached")
    if world is not None:
        distributed.close()
    return 0


def cmd_train(a) -> int:
    from . import distributed
    from .data import load_split, mirrored
    from .decoder import DecoderConfig
    from .features import features_for
    from .train import TrainConfig, Trainer
    from .vocab import Vocab

    start = time.time()
    scst_asked = a.scst_epochs is not None
    _recipe(a)
    checkpoint = Path(a.checkpoint) if a.checkpoint else _default_checkpoint(a.dataset, a.backbone)
    _writable_checkpoint(checkpoint, a.resume, a.overwrite)
    world = distributed.init(a.device)                                 # under torchrun: this process's rank and device
    main = world is None or world.main
    say = print if main else (lambda *args, **kw: None)                # rank 0 speaks for the run
    if world is not None and a.scst_epochs and not scst_asked:         # the recipe's; Trainer refuses it distributed
        say(f"note: the recipe's {a.scst_epochs} self-critical epochs run in one process: when this run ends, "
            f"`captionlib train --resume --scst-epochs {a.scst_epochs}` (the same options, without torchrun) adds them")
        a.scst_epochs = 0
    if a.fine_tune_encoder and a.scst_epochs and not scst_asked:       # it reads cached features: left out
        say(f"note: the recipe's {a.scst_epochs} self-critical epochs are left out: they train on cached features, "
            "not with a fine-tuned encoder")
        a.scst_epochs = 0
    device = world.device if world is not None else a.device
    torch.manual_seed(a.seed)
    options = _options(a.dataset, a.root, a.images)
    train, val = load_split(a.dataset, "train", **options), load_split(a.dataset, "val", **options)
    _dataset_notes(a.dataset, a.root, main, a.images)
    encoder = _encoder(a.backbone, a.grid)
    n_train = min(a.subset or len(train), len(train))
    share = {"device": device, "world": world, "progress": main}
    tuning = {}
    if a.fine_tune_encoder:                                            # from images: no features to cache (finetune.py)
        if a.fine_tune_encoder > len(encoder.backbone.blocks):
            raise ValueError(f"--fine-tune-encoder {a.fine_tune_encoder}: {encoder.name} has {len(encoder.backbone.blocks)} blocks")
        train_idx, val_idx = np.arange(n_train), np.arange(len(val))
        tf_features, vf_features, mf_features = None, None, True if a.mirror else None
        tuning = {"encoder": encoder, "images": train.images, "val_images": val.images}
        say(f"fine-tuning the last {a.fine_tune_encoder} of {len(encoder.backbone.blocks)} blocks of {encoder.name} "
            f"(lr {a.encoder_lr:g}), from the images")
    else:
        tf = features_for(train, encoder, upto=n_train, **share)
        mf = features_for(mirrored(train), encoder, upto=n_train, **share) if a.mirror else None
        vf = features_for(val, encoder, **share)
        train_idx, val_idx, tf_features, vf_features = tf.valid(n_train), vf.valid(), tf.features, vf.features
        mf_features = mf.features if mf is not None else None
    vocab = Vocab.build([c for i in train_idx for c in train.captions[i]], min_freq=_min_freq(a), max_len=a.max_len,
                        tokenizer=_tokenizer(a))
    dc = DecoderConfig(vocab_size=len(vocab), encoder_dim=encoder.dim, attention=not a.no_attention,
                       hidden_dim=a.hidden_dim, embed_dim=a.embed_dim, attention_dim=a.attention_dim, dropout=a.dropout)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, lr_decay=a.lr_decay, seed=a.seed, device=a.device,
                     patience=a.patience, max_len=a.max_len, sampling=a.sampling, alpha_c=a.alpha_c,
                     scst_epochs=a.scst_epochs, scst_lr=a.scst_lr, scst_meteor=a.scst_meteor, ema=a.ema, amp=a.amp,
                     checkpoint_every=a.checkpoint_every, fine_tune_encoder=a.fine_tune_encoder, encoder_lr=a.encoder_lr)
    meta = {"dataset": a.dataset, "backbone": a.backbone, "grid": encoder.grid, "train_images": int(n_train), **options}
    trainer = Trainer(dc, vocab, tf_features, train.captions, train_idx, vf_features, val.captions, val_idx, tc, checkpoint,
                      meta, mirror_features=mf_features, world=world, **tuning)
    if a.resume and checkpoint.exists():
        say(f"resuming from {checkpoint} (delete it to train from scratch)")
    where = f"device {trainer.device}" if world is None else \
        f"{world.size} processes ({'NCCL' if trainer.device.type == 'cuda' else 'gloo'}), a batch of {a.batch_size} shared by them"
    say(f"training on {len(trainer.pairs)} captions of {n_train} images, vocabulary {len(vocab)}, {where}; "
        f"{a.epochs} cross-entropy epochs" + (f" then {a.scst_epochs} self-critical" if a.scst_epochs else "")
        + f" at most (patience {a.patience})")
    trainer.wait = getattr(a, "wait", False)
    history = trainer.fit(resume=a.resume or trainer.wait)
    say(f"best val BLEU-4 {max(history['val_bleu4']):.4f}; checkpoint {checkpoint}; {time.time() - start:.0f} s in all")
    if world is not None:
        distributed.close()
    return 0


def cmd_evaluate(a) -> int:
    import shutil

    from .data import load_split
    from .evaluate import against_humans, attention_in_box, score_beams
    from .features import features_for

    decoder, vocab, meta, encoder, device = _trained(a)
    _beam_fits(a.beam_size, len(vocab), a.max_len, 100, device)          # score_beams decodes 100 images at a time
    if a.length_norm is None:
        a.length_norm = meta.get("length_norm", 0.0)                     # what the model was selected with
    dataset = meta.get("dataset", a.dataset) if a.dataset_default else a.dataset
    if dataset != meta.get("dataset", dataset):
        print(f"note: the model was trained on {meta['dataset']}; evaluating it on {dataset}, as --dataset says", file=sys.stderr)
    same = dataset == meta.get("dataset")
    folder = a.root or (meta.get("folder") if same else None)
    images = a.images or (meta.get("images") if same else None)
    split = load_split(dataset, a.split, **_options(dataset, folder, images),
                       **({"references": a.references} if a.references != "native" else {}))
    _dataset_notes(dataset, folder, images=images)
    n = min(a.limit or len(split), len(split))
    store = features_for(split, encoder, upto=n, device=a.device)
    idx = store.valid(n)
    refs = [split.captions[i] for i in idx]
    spaced = vocab.tokenizer == "words"
    coco = {"auto": shutil.which("java") is not None or not spaced, "coco": True, "bleu": False}[a.metrics]
    scores, decoded = score_beams(decoder, vocab, store.features, idx, refs, a.beam_size, device, a.max_len,
                                  a.length_norm, coco)
    metrics = list(scores[a.beam_size[0]])
    tokens = "" if spaced else f", BLEU over {vocab.tokenizer} tokens (no METEOR: its resources are English)"
    source = ("pycocoevalcap (PTB tokenizer)" if spaced else "pycocoevalcap on captionlib's tokens") if coco else \
        "captionlib BLEU" + ("; install Java for METEOR, ROUGE-L and CIDEr" if a.metrics == "auto" else "")
    source += tokens
    print(f"{split.dataset}/{a.split}: {len(idx)} images; scores from {source}"
          + (f"; length normalisation {a.length_norm:g}" if a.length_norm else ""))
    print(f"{'':9}" + "".join(f"{m:>9}" for m in metrics))
    for k in a.beam_size:
        print(f"{'beam ' + str(k):9}" + "".join(f"{scores[k][m]:9.4f}" for m in metrics))
    # the model and the people on the same references: each reference left out in turn (lesson 07), with the metrics
    # of the table above (pycocoevalcap's when it was used, else captionlib's BLEU)
    from .bleu import bleu_scores, coco_metrics, corpus_counts
    from .vocab import tokenize

    ref_tokens = [[tokenize(r, vocab.tokenizer) for r in rs] for rs in refs]
    first = [vocab.decode(c.tokens, join=False) for c in decoded[a.beam_size[0]]]
    if coco:
        humans = against_humans([list(rs) for rs in refs], [" ".join(h) for h in first],
                                lambda r, h: coco_metrics(r, h, vocab.tokenizer))
    else:
        humans = against_humans(ref_tokens, first, bleu_scores)
    K = humans["references per caption"]
    print(f"on the same {K} references (each of the {K + 1} left out in turn, for the model and for each person's caption):")
    for name, row in ((f"beam {a.beam_size[0]}", humans["model"]), ("humans", humans["humans"])):
        print(f"{name:9}" + "".join(f"{row[m]:9.4f}" if m in row else f"{'':9}" for m in metrics))
    _, _, hyp_len, ref_len = corpus_counts(ref_tokens, first, 1)
    penalty = 1.0 if hyp_len > ref_len else float(np.exp(1 - ref_len / max(1, hyp_len)))
    print(f"brevity penalty of beam {a.beam_size[0]}: {penalty:.4f} ({hyp_len} words against {ref_len} in the closest "
          "references): BLEU without it is " + ("the same" if penalty == 1 else f"BLEU / {penalty:.4f}"))
    if a.split == "test":
        from .evaluate import PUBLISHED

        for name, published in PUBLISHED.get(split.dataset, {}).items():
            print(f"{'':9}" + "".join(f"{published[m]:9.4f}" if m in published else f"{'':9}" for m in metrics) + f"   {name}")
    first = decoded[a.beam_size[0]]
    if split.scenes is not None and decoder.config.attention:
        inside, uniform = [], []
        for i, c in zip(idx, first):
            for _, m, u in attention_in_box(split.scenes[i], vocab.decode(c.tokens, join=False), c.alphas.numpy(), encoder.grid):
                inside.append(m)
                uniform.append(u)
        print(f"attention in the named objects' boxes: {np.mean(inside):.3f} of the mass "
              f"(uniform attention: {np.mean(uniform):.3f}; {len(inside)} object words)")
    for k in range(min(3, len(idx))):
        print(f"  [{split.image_ids[idx[k]]}] {vocab.decode(first[k].tokens)!r}   refs: {split.captions[idx[k]][:2]}")
    failures = None
    if a.failures and spaced:
        from .evaluate import unsupported_mentions
        from .vocab import tokenize

        hyps = [vocab.decode(c.tokens, join=False) for c in first]
        failures = unsupported_mentions(hyps, [[tokenize(r) for r in refs_k] for refs_k in refs])
        print(f"words no reference backs (beam {a.beam_size[0]}; the references stand in for the truth):")
        for name, f in failures.items():
            print(f"  {name:7} {f['unsupported']:4} of {f['captions']:4} captions naming one ({f['rate']:.1%}), e.g.")
            for k, words in f["examples"][:3]:
                print(f"          [{split.image_ids[idx[k]]}] {' '.join(hyps[k])!r}: {', '.join(words)}")
    if a.json:
        from .utils import atomic_write

        report = {"dataset": split.dataset, "split": a.split, "images": len(idx), "metrics": source,
                  "length_norm": a.length_norm, "max_len": a.max_len, "scores": {f"beam {k}": scores[k] for k in a.beam_size},
                  "against_humans": {"beam": a.beam_size[0], **humans}, "brevity_penalty": penalty, "tokenizer": vocab.tokenizer,
                  "references": a.references, "checkpoint": str(a.checkpoint or "")}
        if failures is not None:
            report["failures"] = {n: {**f, "examples": [[split.image_ids[idx[k]], " ".join(vocab.decode(first[k].tokens, join=False)), w]
                                                       for k, w in f["examples"][:10]]} for n, f in failures.items()}
        atomic_write(a.json, lambda f: f.write(json.dumps(report, indent=1).encode()))
        print(f"scores written to {a.json}")
    return 0


def _attention_figure(out: str, path: str, several: bool) -> Path:
    """Where --attention writes the figure of `path`: OUT itself for one image, OUT-STEM.png for several."""
    out = Path(out)
    return out.with_name(f"{out.stem}-{Path(path).stem}{out.suffix or '.png'}") if several else out


def _free_bytes(device) -> int | None:
    """Memory free for the beam's scores on `device` (None: unknown)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _beam_fits(beam_sizes, vocab_size: int, max_len: int, images: int, device) -> None:
    """Refuse, before any work, a beam whose scores cannot fit in memory (a beam of 10^9 would ask for 168 GB)."""
    from .beam import possible_captions

    free = _free_bytes(device)
    for k in beam_sizes:
        k_eff = min(k, possible_captions(vocab_size, max_len))       # wider than every possible caption: no more
        need = 3 * images * k_eff * vocab_size * 4                      # scores, log-probs and top-k of (images*K, V)
        if free is not None and need > free:
            fits = max(1, free // (3 * images * vocab_size * 4))
            raise ValueError(f"--beam-size {k}: a beam that wide needs about {need / 2 ** 30:.0f} GB for its scores "
                             f"({images} image(s) x {k_eff:,} beams x {vocab_size:,} words), more than the "
                             f"{free / 2 ** 30:.0f} GB free here; the widest that fits is about {fits:,}. Beams wider "
                             "than about 10 rarely give better captions (lesson 06)")


STDIN = ("-", "/dev/stdin")        # `captionlib caption - < photo.jpg`, or an image piped in


def _stdin_image():
    """The image piped into standard input."""
    from .images import ImageLoadError, load_image

    if sys.stdin is None or sys.stdin.isatty():
        raise ImageLoadError("standard input (-) is the terminal, not an image: pipe one in, e.g. "
                             "`captionlib caption - < photo.jpg`, or name the file instead of -")
    data = sys.stdin.buffer.read()
    if not data:
        raise ImageLoadError("standard input (-) is empty: nothing was piped in. Pipe an image in, e.g. "
                             "`captionlib caption - < photo.jpg`, or name the file instead of -")
    return load_image("standard input", data=data)


def cmd_caption(a) -> int:
    from .beam import END
    from .images import ImageLoadError, load_image
    from .train import caption_photos

    decoder, vocab, meta, encoder, device = _trained(a)
    length_norm = meta.get("length_norm", 0.0) if a.length_norm is None else a.length_norm
    if a.attention and not decoder.config.attention:
        raise ValueError("--attention needs a Show-Attend-Tell model; this checkpoint is Show and Tell (no attention)")
    _beam_fits([a.beam_size], len(vocab), a.max_len, min(16, len(a.images)), device)
    loaded, bad = [], []
    for path in a.images:
        try:
            loaded.append((path, _stdin_image() if path in STDIN else load_image(path)))
        except ImageLoadError as e:
            print(f"error: {e}", file=sys.stderr)
            bad.append(path)
    captions = caption_photos(decoder, encoder, [image for _, image in loaded], a.beam_size, a.max_len, length_norm)
    for (path, image), c in zip(loaded, captions):
        words = vocab.decode(c.tokens, join=False)
        cut = "" if c.tokens and c.tokens[-1] == END else f"   [cut at --max-len {a.max_len}: no <end> yet]"
        score = f"log p / length^{length_norm:g} = {c.score:.2f}" if length_norm else f"log p = {c.score:.2f}"
        print(f"{path}: {vocab.text(c.tokens)}   ({score}){cut}")
        if a.attention:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            from .viz import show_attention

            target = _attention_figure(a.attention, path, len(a.images) > 1)
            fig = show_attention(image, words, c.alphas.cpu().numpy(), cols=6)
            fig.savefig(target, dpi=80, bbox_inches="tight")
            plt.close(fig)
            print(f"  attention per word: {target}")
    if bad:
        print(f"{len(bad)} of {len(a.images)} images could not be read: {', '.join(map(str, bad))}", file=sys.stderr)
    return 1 if bad else 0


def cmd_export(a) -> int:
    from .train import export_model

    notes = {}
    for path in a.scores or []:                                           # {"val": ..., "test": ...} by split
        report = json.loads(Path(path).read_text())
        notes[report.get("split", Path(path).stem)] = report
    out = export_model(a.checkpoint, a.out, notes, {"length_norm": a.length_norm} if a.length_norm is not None else None)
    print(f"{out}: {out.stat().st_size / 2 ** 20:.1f} MB (float16 best weights, vocabulary, configs; no optimiser state)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="captionlib", description="Train, evaluate and run a Show-Attend-Tell captioner.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "evaluate", "caption", "prepare"):
        s = sub.add_parser(name)
        s.add_argument("--dataset", choices=["shapes", "flickr8k", "flickr8k-cn", "flickr30k", "coco"],
                       help="shapes (embedded, the default), flickr8k, flickr8k-cn (Chinese captions), flickr30k or coco" + (
                           " (default: the checkpoint's)" if name == "evaluate" else ""))
        s.add_argument("--root", type=_folder, help="a real dataset's folder (default: data/DATASET); see data/DATASET/README.md")
        s.add_argument("--images", type=_folder, help="the photos' folder, when it is not in --root (flickr8k-cn: Flickr8k's "
                       "Images/; default: ../flickr8k/Images beside --root)")
        s.add_argument("--backbone", default="efficientnet-lite0",
                       help="efficientnet-lite0 (7x7x1280, offline), efficientnet-lite0-s16 (14x14x112: sharper attention), "
                            "resnet50/101[-s16] (weights from the torch hub cache)")
        s.add_argument("--grid", type=POSITIVE, default=None, help="pool the feature map to GRID x GRID regions (default: its own size)")
        s.add_argument("--device", default="auto")
        s.add_argument("--checkpoint", type=_checkpoint_path, help="train: where to write it (default data/cache/checkpoints/DATASET-BACKBONE.pt); "
                       "evaluate: default that file; caption: default the shipped data/checkpoints/flickr8k-efficientnet-lite0.pt")
        if name == "evaluate":
            s.add_argument("--beam-size", type=POSITIVE, nargs="+", default=[3], help="one or more, e.g. --beam-size 1 3 5")
        else:
            s.add_argument("--beam-size", type=POSITIVE, default=3)
        s.add_argument("--max-len", type=POSITIVE, default=20)
        if name == "train":
            recipe = lambda key: f"(default: {RECIPES['shapes'][key]} for shapes, {RECIPES['real'][key]} for real datasets)"  # noqa: E731
            s.add_argument("--epochs", type=POSITIVE, help="cross-entropy epochs " + recipe("epochs"))
            s.add_argument("--batch-size", type=POSITIVE, help=recipe("batch_size"))
            s.add_argument("--lr", type=RATE, help="Adam's learning rate " + recipe("lr"))
            s.add_argument("--lr-decay", type=DECAY, help="the learning rate is multiplied by this after every epoch " + recipe("lr_decay"))
            s.add_argument("--patience", type=POSITIVE, help="epochs without a better val BLEU-4 before a phase stops " + recipe("patience"))
            s.add_argument("--subset", type=COUNT,
                           help="train on the first N training images (0: all) " + recipe("subset"))
            s.add_argument("--min-freq", type=POSITIVE, help="keep words seen this often in training " + recipe("min_freq"))
            s.add_argument("--embed-dim", type=POSITIVE, help=recipe("embed_dim"))
            s.add_argument("--hidden-dim", type=POSITIVE, help=recipe("hidden_dim"))
            s.add_argument("--attention-dim", type=POSITIVE, help=recipe("attention_dim"))
            s.add_argument("--dropout", type=FRACTION, help=recipe("dropout"))
            s.add_argument("--mirror", type=int, choices=[0, 1],
                           help="1: also train on the photos flipped left to right (their features cached too) " + recipe("mirror"))
            s.add_argument("--ema", type=FRACTION,
                           help="validate and keep a moving average of the weights with this decay per step (0: off) " + recipe("ema"))
            s.add_argument("--scst-epochs", type=COUNT,
                           help="self-critical epochs after cross-entropy, optimising CIDEr-D (scst.py) " + recipe("scst_epochs"))
            s.add_argument("--scst-lr", type=RATE, help=recipe("scst_lr"))
            s.add_argument("--scst-meteor", type=WEIGHT,
                           help="self-critical reward = CIDEr-D + this x METEOR's exact-match core (meteor.py) " + recipe("scst_meteor"))
            s.add_argument("--sampling", default="none", choices=["none", "linear", "inverse_sigmoid"])
            s.add_argument("--alpha-c", type=WEIGHT, default=None,
                           help="weight of the doubly stochastic attention penalty (default 1/P; 0 lets attention stay on one object)")
            s.add_argument("--no-attention", action="store_true", help="Show and Tell instead of Show-Attend-Tell")
            s.add_argument("--checkpoint-every", type=COUNT, default=0, metavar="STEPS",
                           help="also save every STEPS steps, so --resume after a kill loses at most that much (0: at the end of each epoch)")
            s.add_argument("--fine-tune-encoder", type=COUNT, default=0, metavar="K",
                           help="also train the CNN's last K blocks, from the images (slow on a CPU; 0: frozen, cached features)")
            s.add_argument("--encoder-lr", type=RATE, default=1e-4, help="Adam's learning rate for those blocks (default 1e-4)")
            s.add_argument("--amp", action="store_true",
                           help="mixed precision on CUDA GPUs: bfloat16 where supported, else float16 with a grad scaler")
            s.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
            s.add_argument("--wait", action="store_true",
                           help="when another run is writing --checkpoint now, wait for it, then go on from what it wrote "
                                "(as --resume does; default: refuse, naming its process)")
            s.add_argument("--overwrite", action="store_true", help="replace an existing --checkpoint (default: refuse)")
            s.add_argument("--seed", type=COUNT, default=0)
        if name == "evaluate":
            s.add_argument("--split", default="test", choices=["train", "val", "test"])
            s.add_argument("--references", default="native", choices=["native", "translated"],
                           help="flickr8k-cn's test references: written by native speakers (default) or human translations "
                                "of the English captions")
            s.add_argument("--limit", type=COUNT, default=0, help="evaluate the first N images of the split (0: all)")
            s.add_argument("--length-norm", type=WEIGHT, default=None,
                           help="rank finished beams by log p / length**L (default: the checkpoint's, else 0: plain log p)")
            s.add_argument("--metrics", default="auto", choices=["auto", "coco", "bleu"],
                           help="coco: pycocoevalcap's BLEU/METEOR/ROUGE-L/CIDEr (needs Java); bleu: captionlib's BLEU; "
                                "auto: coco when Java is installed")
            s.add_argument("--json", help="also write the scores to this file")
            s.add_argument("--failures", action="store_true",
                           help="also count gender, colour, number and object words that no reference backs, with examples")
        if name == "caption":
            s.add_argument("images", nargs="+")
            s.add_argument("--lang", choices=["en", "zh"], default="en",
                           help="the shipped model to caption with when no --checkpoint is given: en (Flickr8k) or zh "
                                "(Flickr8K-CN, Chinese captions)")
            s.add_argument("--length-norm", type=WEIGHT, default=None,
                           help="rank finished beams by log p / length**L (default: the checkpoint's, else 0)")
            s.add_argument("--attention", metavar="OUT.png",
                           help="also draw where the model looked for each word (several images: OUT-IMAGE.png each)")
        if name in ("prepare", "train"):
            s.add_argument("--tokenizer", choices=["words", "jieba", "chars"], default=None,
                           help="how captions become tokens: words (split on spaces), jieba (Chinese word segmentation) or "
                                "chars (one token per character); default: jieba for flickr8k-cn, words otherwise")
        if name == "prepare":
            s.add_argument("--min-freq", type=POSITIVE, default=None, help="default: 5 (1 for shapes)")
            s.add_argument("--subset", type=COUNT, default=0, help="extract features of the first N images per split (0: all)")
            s.add_argument("--no-features", action="store_true", help="only check the folder and build the vocabulary")
    e = sub.add_parser("export", help="a checkpoint to share: float16 best weights, without the optimiser state")
    e.add_argument("checkpoint", help="a checkpoint `captionlib train` wrote")
    e.add_argument("out", help="where to write the small one")
    e.add_argument("--scores", nargs="+", help="JSON files (`captionlib evaluate --json`) to keep with it, by split")
    e.add_argument("--length-norm", type=WEIGHT, help="the length normalisation `caption` and `evaluate` should use with it")
    a = p.parse_args(argv)
    if hasattr(a, "dataset"):
        a.dataset_default = a.dataset is None
        a.dataset = a.dataset or "shapes"
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "caption": cmd_caption, "prepare": cmd_prepare,
                "export": cmd_export}[a.cmd](a)
    except (OSError, ValueError, RuntimeError) as e:          # OSError: a file the system refused (named in e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = ""
        if a.cmd == "train":
            path = Path(a.checkpoint) if a.checkpoint else _default_checkpoint(a.dataset, a.backbone)
            where = (f" The last checkpoint is {path}: the same command with --resume continues from it."
                     if path.exists() else " No checkpoint was written yet.")
        print(f"\ninterrupted.{where}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
