"""Training a decoder with teacher forcing: masked loss, Adam, clipping, early stopping on BLEU-4.

Lesson 03 builds it (lesson 05 adds scheduled sampling). One step: the decoder reads the true
caption shifted by one and predicts every next word; the loss is cross-entropy over real
(non-<pad>) tokens plus the doubly stochastic attention penalty. Each epoch ends with greedy
captions for the validation images scored by corpus BLEU-4; training stops when it has not
improved for `patience` epochs, and the best weights are kept (loss keeps falling long after
captions stop improving, so we stop on the metric we care about).

Checkpoints are written atomically and hold everything needed to continue exactly where a run
stopped (model, optimiser, schedule, epoch, step in epoch, RNG state) — resuming on CPU with the
same seed gives bit-identical weights.

Shapes: B batch, T time, V vocab, P regions, E encoder dim.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .beam import Caption, beam_search, greedy
from .bleu import bleu_scores
from .data import CaptionPairs, collate
from .decoder import DecoderConfig, build_decoder
from .utils import RunLock, atomic_save, load_checkpoint, pick_device
from .vocab import Vocab, tokenize

__all__ = ["TrainConfig", "train_step", "teacher_forcing_prob", "sampling_prob", "penalty_weight", "Trainer", "export_model",
           "load_model", "load_captioner", "caption_photos", "caption_all",
           "score_captions", "evaluate_bleu"]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 4e-4                # Adam, as in Show-Attend-Tell's reference code
    lr_decay: float = 0.9           # multiply the learning rate by this after every epoch
    grad_clip: float = 5.0          # clip each gradient value to [-grad_clip, grad_clip]
    alpha_c: float | None = None    # λ of λ Σ_p (1 - Σ_t α_tp)^2; None: 1/P, the reference code's mean over P with λ=1
    patience: int = 3               # epochs without a better val BLEU-4 before stopping
    sampling: str = "none"          # scheduled sampling: "none", "linear" or "inverse_sigmoid"
    sampling_max: float = 0.25      # the largest chance of feeding the model its own word (ε never falls below 1 - this)
    sampling_k: float = 200.0       # inverse sigmoid's k, in updates (k >> 1: ε_i = k / (k + exp(i / k)) starts near 1)
    max_len: int = 20               # longest caption when decoding for validation
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 0       # also save every this many steps (0: at the end of each epoch only)
    ema: float = 0.0                # validate and keep an exponential moving average of the weights, this decay per step (0: off)
    amp: bool = False               # mixed precision on CUDA: bfloat16 autocast where the GPU has it, else float16 + a grad scaler
    fine_tune_encoder: int = 0      # train the CNN's last this many blocks too, from images (finetune.py; 0: cached features)
    encoder_lr: float = 1e-4        # Adam's learning rate for those blocks (sgrvinod's tutorial: 1e-4 beside the decoder's 4e-4)
    # Self-critical training (scst.py), after the cross-entropy epochs, from their best weights:
    scst_epochs: int = 0            # epochs of it (0: none)
    scst_lr: float = 2e-5           # Adam, constant; much smaller than cross-entropy's (the gradient is noisy)
    scst_samples: int = 5           # captions sampled per image (each one's baseline: the mean of the others)
    scst_images: int = 16           # images per step (x scst_samples captions)
    scst_max_len: int = 16          # longest sampled caption
    scst_meteor: float = 0.0        # reward = CIDEr-D + this x METEOR's exact-match core (meteor.py; 0: CIDEr-D alone)


def train_step(decoder, optimizer, features: torch.Tensor, captions: torch.Tensor, pad_idx: int = 0,
               grad_clip: float = 5.0, alpha_c: float = 0.0, sample_prob: float = 0.0, parts: dict | None = None) -> float:
    """One optimisation step of teacher forcing, the loop lesson 03 builds; returns the batch's loss.

    features (B, P, E), captions (B, T). alpha_c: λ of the doubly stochastic attention penalty (lesson 04);
    sample_prob: scheduled sampling (lesson 05). parts: a dict to receive the loss's two terms apart
    ("cross-entropy", "penalty"). `Trainer` runs this for every batch, and adds around it what a long run needs:
    checkpoints, early stopping on BLEU, and (in its own longer step) torchrun's shares, mixed precision and a
    fine-tuned encoder.
    """
    decoder.train()                                                    # dropout on (evaluation turns it off)
    ce, penalty = decoder.loss(features, captions, alpha_c, pad_idx, sample_prob, parts=True)   # teacher forcing
    loss = ce + penalty                                                # masked mean cross-entropy (+ λ Σ_p (1 - Σ_t α)²)
    if parts is not None:
        parts.update({"cross-entropy": ce.item(), "penalty": penalty.item()})
    if not torch.isfinite(loss):                                       # never step on a NaN: the weights stay good
        raise FloatingPointError(f"the loss is {float(loss)}")
    optimizer.zero_grad(set_to_none=True)                              # gradients add up unless cleared
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_value_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    optimizer.step()
    return loss.item()


def teacher_forcing_prob(config: TrainConfig, update: int, updates: int) -> float:
    """ε_i of Bengio et al. (2015): the chance that update i feeds the true previous word (1: teacher forcing).

    It decays over training, and never below ε_min = 1 - sampling_max:
        linear:           ε_i = max(ε_min, 1 - i / updates)              (from 1, down by 1/updates per update,
                                                                         until it meets ε_min at i = sampling_max x updates)
        inverse_sigmoid:  ε_i = max(ε_min, k / (k + exp(i / k)))        (k in updates, k >> 1: starts at k / (k + 1),
                                                                         falls slowly, fastest at i = k ln k, where it is 1/2)
    updates: the run's number of updates (epochs x batches)."""
    if config.sampling == "none":
        return 1.0
    floor = 1.0 - config.sampling_max
    if config.sampling == "linear":
        return max(floor, 1.0 - update / max(1, updates))
    if config.sampling == "inverse_sigmoid":
        k = config.sampling_k
        return max(floor, k / (k + math.exp(min(update / k, 700.0))))
    raise ValueError(f"sampling must be none, linear or inverse_sigmoid, got {config.sampling!r}")


def sampling_prob(config: TrainConfig, update: int, updates: int) -> float:
    """1 - ε_i: the chance that update i feeds the model's own sampled word (scheduled sampling, lesson 05)."""
    return 1.0 - teacher_forcing_prob(config, update, updates)


def penalty_weight(config: TrainConfig, regions: int) -> float:
    """λ of the doubly stochastic penalty for P = `regions` (1/P unless the config sets it; 0 turns it off)."""
    return 1 / regions if config.alpha_c is None else config.alpha_c


def _refs(captions: list, tokenizer: str = "words") -> list:
    return [[tokenize(c, tokenizer) for c in caps] for caps in captions]


@torch.no_grad()
def caption_all(decoder, features, indices, device, max_len: int = 20, beam_size: int = 1, batch_size: int = 100,
                length_norm: float = 0.0) -> list:
    """Decode images `indices` of a feature array in batches: greedy for beam_size 1, else beam search
    (finished captions ranked by score / length**length_norm).

    Returns one beam.Caption per image (tokens, score, attention maps).
    """
    decoder.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        feats = features[idx]                                              # (b, P, E)
        feats = feats.to(device, torch.float32) if torch.is_tensor(feats) else \
            torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(device)
        out += greedy(decoder, feats, max_len) if beam_size == 1 else beam_search(decoder, feats, beam_size, max_len, length_norm)
    return out


def score_captions(generated: list, vocab: Vocab, references: list) -> tuple[dict, list]:
    """BLEU-1..4 of decoded Captions against references[i] (strings, tokenized with the vocabulary's tokenizer);
    returns (scores, caption strings: the tokens joined by spaces)."""
    hyps = [vocab.decode(c.tokens) for c in generated]
    return bleu_scores(_refs(references, vocab.tokenizer), [h.split() for h in hyps]), hyps


def evaluate_bleu(decoder, features, captions: list, vocab: Vocab, indices, device, max_len: int = 20,
                  beam_size: int = 1, batch_size: int = 100) -> tuple[dict, list]:
    """BLEU-1..4 of the decoder's captions for images `indices`; returns (scores, caption strings)."""
    generated = caption_all(decoder, features, indices, device, max_len, beam_size, batch_size)
    return score_captions(generated, vocab, [captions[i] for i in indices])


WEIGHTS = ("model", "best_model", "encoder_model", "best_encoder_model")   # the entries of a checkpoint that hold weights


def weights_digest(s: dict) -> str:
    """sha256 of the weights a checkpoint is used with (`WEIGHTS`: names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for key in WEIGHTS:
        for name, v in sorted((s.get(key) or {}).items()):
            if torch.is_tensor(v):
                t = v.detach().cpu().contiguous()
                h.update(f"{key}/{name}/{t.dtype}/{tuple(t.shape)};".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")   # 0-d too
    return h.hexdigest()


# What the weights mean depends on more than their bytes: the word each output row stands for (the vocabulary
# and its tokenizer), the decoder's settings, and the encoder whose features they read. A checkpoint stores a
# digest of each part, so an edited vocabulary (same size, other order) is refused by name, not used to caption.
MEANING = ("backbone", "grid", "length_norm")          # the metadata entries that change what the weights do


def content_digests(s: dict) -> dict:
    """{part: sha256} for the weights, the vocabulary (with its tokenizer), the decoder settings and the encoder."""
    plain = lambda x: hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()   # noqa: E731
    meta = s.get("meta") or {}
    return {"weights": weights_digest(s), "vocabulary": plain(s.get("vocab")), "decoder settings": plain(s.get("decoder_config")),
            "encoder and decoding settings": plain({k: meta.get(k) for k in MEANING})}


def _settings_problem(s: dict) -> str | None:
    """What is wrong with a checkpoint's decoder settings or encoder metadata (values that would break the model)."""
    c, meta = s["decoder_config"], s.get("meta") or {}
    for key in ("vocab_size", "encoder_dim", "embed_dim", "hidden_dim", "attention_dim"):
        v = c.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            return f"its decoder setting {key} = {v!r} is not a positive whole number"
    dropout = c.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        return f"its decoder setting dropout = {dropout!r} is not in [0, 1)"
    grid = meta.get("grid")
    if grid is not None and (not isinstance(grid, int) or isinstance(grid, bool) or not 1 <= grid <= 64):
        return f"its encoder grid = {grid!r} is not a whole number of regions per side (1 to 64)"
    if "backbone" in meta and not (isinstance(meta["backbone"], str) and meta["backbone"]):
        return f"its backbone = {meta['backbone']!r} is not a backbone name"
    return None


def _foreign_shapes(s: dict, key: str) -> str | None:
    """When the weights in `key` have other shapes than the checkpoint's decoder settings give: which, said plainly."""
    try:
        expected = build_decoder(DecoderConfig(**s["decoder_config"])).state_dict()
    except (TypeError, ValueError):
        return None
    for name, v in (s.get(key) or {}).items():
        if name in expected and torch.is_tensor(v) and tuple(v.shape) != tuple(expected[name].shape):
            return f"{name} is {tuple(v.shape)} where its settings give {tuple(expected[name].shape)}"
    return None


def non_finite(tensors: dict) -> list[str]:
    """Names of the floating-point tensors in {name: tensor} that hold a NaN or an infinity."""
    return [k for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def _check_state(path, s) -> dict:
    """A loaded checkpoint that is a captionlib one, with finite weights; else a ValueError naming what is wrong."""
    if not isinstance(s, dict):
        raise ValueError(f"{path} holds a {type(s).__name__}, not a captionlib checkpoint (a dict saved by `captionlib train`)")
    missing = [k for k in ("model", "decoder_config", "vocab") if k not in s]
    if missing:
        raise ValueError(f"{path} is not a captionlib checkpoint (no {', '.join(map(repr, missing))}); "
                         "was it saved by `captionlib train`?")
    if not isinstance(s["decoder_config"], dict) or not isinstance(s["vocab"], dict) or "idx_to_word" not in s["vocab"]:
        raise ValueError(f"{path}: its decoder_config or vocab entry is damaged; train or download the checkpoint again")
    unknown = sorted(set(s["decoder_config"]) - set(DecoderConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path} was written by a newer captionlib (decoder settings {', '.join(unknown)} are unknown "
                         "here): update captionlib (git pull, then make install)")
    for key in WEIGHTS:
        bad = non_finite(s.get(key) or {})
        if bad:
            raise ValueError(f"{path}: the weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} in {key!r} hold "
                             "NaN or inf; that run diverged. Retrain (a lower --lr) rather than use it")
    words = len(Vocab.from_state_dict(s["vocab"]))                         # a captionlib vocabulary, else it says so
    if s["decoder_config"].get("vocab_size") != words:
        raise ValueError(f"{path}: the model expects {s['decoder_config'].get('vocab_size')} words but the vocabulary "
                         f"has {words}; the file was edited or mixes two models. Use another copy, or train it again")
    problem = _settings_problem(s)
    if problem:
        raise ValueError(f"{path}: {problem}; the file was edited or damaged. Use another copy, or train it again")
    stored = s.get("digests") or ({"weights": s["weights_sha256"]} if "weights_sha256" in s else {})
    if stored:
        now = content_digests(s)
        changed = [part for part, digest in stored.items() if now.get(part) != digest]
        if "weights" in changed:
            foreign = next(filter(None, (_foreign_shapes(s, k) for k in ("best_model", "model"))), None)
            if foreign:
                raise ValueError(f"{path}: its weights are another model's ({foreign}): the file's weights and its "
                                 "settings come from two different models. Use the file as training wrote it, or train again")
            raise ValueError(f"{path}: its weights do not match the checksum saved with them: the file was damaged after "
                             "it was written (disk, copy or download). Use another copy, or train it again")
        if changed:
            raise ValueError(f"{path}: its {' and '.join(changed)} changed after the weights were saved (e.g. a vocabulary "
                             "edited or reordered: each output row of the model means the word at its place, so it would "
                             "caption in the wrong words). Use the file as it was written, or train again")
    return s


class Trainer:
    """Fits a decoder on cached features.

    Args:
        decoder_config: the model to build (vocab_size must equal len(vocab)).
        features: (N, P, E) array-like, rows are images; train/val index into it.
        captions: captions[i] = reference strings of image i.
        train_idx, val_idx: image indices of the two splits (val may use another feature array:
            pass val_features/val_captions).
        mirror_features: (N, P, E) features of the training images flipped left to right (`data.mirrored`),
            or None; with them each caption is trained on one of the two views, drawn per epoch. When
            fine-tuning, True: the images are flipped as they are read.
        checkpoint: where to save; None: keep everything in memory.
        meta: extra plain data stored in the checkpoint (e.g. which encoder made the features).
        encoder, images, val_images: with config.fine_tune_encoder = K > 0, the Encoder whose last K blocks
            train too, and the training and validation images (sequences of PIL images, as
            CaptionSplit.images) it reads; `features` and `val_features` are then not used (pass None).
        world: this process's place in a torchrun run (`distributed.init()`), or None for one process.
            Each process then trains on every W-th caption of each batch (config.batch_size is the
            batch of all of them together), validation is decoded in W shares, and rank 0 saves.
        step: your own `train_step(decoder, optimizer, features, captions, pad_idx, grad_clip) -> loss` (lesson 03)
            to train with instead of `train_step`, for teacher forcing without the attention penalty.
    """

    def __init__(self, decoder_config: DecoderConfig, vocab: Vocab, features, captions, train_idx,
                 val_features, val_captions, val_idx, config: TrainConfig | None = None,
                 checkpoint: str | Path | None = None, meta: dict | None = None, mirror_features=None,
                 world: distributed.World | None = None, encoder=None, images=None, val_images=None, step=None):
        if decoder_config.vocab_size != len(vocab):
            raise ValueError(f"decoder vocab_size {decoder_config.vocab_size} != len(vocab) {len(vocab)}")
        config = config if config is not None else TrainConfig()
        if world is not None and config.scst_epochs:
            raise ValueError("self-critical training (scst_epochs) runs in one process only: train the cross-entropy "
                             "epochs with torchrun, then continue with `captionlib train --resume --scst-epochs N` alone")
        self.config, self.vocab, self.meta, self.world = config, vocab, meta or {}, world
        if step is not None and (world is not None or config.amp or config.fine_tune_encoder or config.sampling != "none"
                                 or config.alpha_c or decoder_config.attention and config.alpha_c is None):
            raise ValueError("a train_step of your own trains one process, in float32, with teacher forcing and no "
                             "attention penalty (alpha_c=0): leave `step` out for the rest")
        self.step = step
        self.device = world.device if world is not None else pick_device(config.device)
        torch.manual_seed(config.seed)
        self.decoder = build_decoder(decoder_config).to(self.device)
        self.encoder, self.best_encoder = None, None                       # fine-tuning: the Encoder, its best trunk
        if config.fine_tune_encoder:
            if encoder is None or images is None or val_images is None:
                raise ValueError("fine_tune_encoder needs the encoder= and the images= and val_images= it reads")
            if config.scst_epochs:
                raise ValueError("self-critical training reads cached features: run it without --fine-tune-encoder")
            from .finetune import EncodedImages

            from .features import default_workers

            self.encoder, self.train_images = encoder.to(self.device), images
            self.loader_workers = default_workers(len(images))             # decoding processes beside training
            self.encoder.fine_tune(config.fine_tune_encoder)
            self.encoder.train()                                           # batch norms stay in eval (Encoder.train)
            val_features = EncodedImages(self.encoder, val_images, self.device)
        self.model = distributed.wrap(self.decoder, world, self.encoder) if world is not None else None   # DDP
        if world is not None and world.rank:
            torch.manual_seed(config.seed + 7_919 * world.rank)            # its own dropout masks and sampling coins
        self.decoder_config = decoder_config
        self.pairs = CaptionPairs(features, captions, vocab, train_idx)
        self.mirror = mirror_features
        self.ema = None                                                    # {name: tensor} when config.ema > 0
        self.val = (val_features, val_captions, np.asarray(val_idx))
        groups = [{"params": [p for p in self.decoder.parameters() if p.requires_grad], "lr": config.lr}]
        if self.encoder is not None:                                       # its own, smaller learning rate
            groups.append({"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": config.encoder_lr})
        self.optimizer = torch.optim.Adam(groups, lr=config.lr)
        self.schedule = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.amp_dtype, self.scaler = self._mixed_precision()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.wait = False        # another process writing this checkpoint: refuse (False) or wait for it (True)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history = {"train_loss": [], "val_bleu4": [], "val_bleu": [], "lr": [], "sampling_prob": [], "step_loss": [],
                        "phase": [], "scst_reward": [], "step_penalty": [], "train_penalty": [], "step_sampling": []}
        self.best_bleu, self.best_state, self.bad_epochs = -1.0, None, 0
        self.phase, self.reward = "xe", None                               # "xe" (teacher forcing), then "scst"

    def _mixed_precision(self) -> tuple:
        """(autocast dtype or None, GradScaler or None) for config.amp on this device."""
        if not self.config.amp:
            return None, None
        if self.device.type != "cuda":
            if self.world is None or self.world.main:
                print(f"note: --amp (mixed precision) speeds up CUDA GPUs; this run is on {self.device.type}, so it "
                      "trains in float32 as without it", file=sys.stderr)
            return None, None
        if torch.cuda.is_bf16_supported():                 # Ampere and later: bfloat16's range needs no loss scaling
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")  # older GPUs: float16 gradients would underflow unscaled

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {"model": self.decoder.state_dict(), "decoder_config": asdict(self.decoder_config),
                "vocab": self.vocab.state_dict(), "train_config": asdict(self.config), "meta": self.meta,
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "history": self.history, "best_bleu": self.best_bleu, "best_model": self.best_state,
                "bad_epochs": self.bad_epochs, "rng": torch.get_rng_state(), "phase": self.phase, "ema": self.ema,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                **({"encoder_model": self.encoder.trunk.state_dict(), "best_encoder_model": self.best_encoder}
                   if self.encoder is not None else {})}

    def save(self) -> None:
        if self.checkpoint is None:
            return
        rngs = distributed.gather(torch.get_rng_state(), self.world) if self.world is not None else None
        if self.world is not None and not self.world.main:               # the weights are the same everywhere
            return
        state = self.state()
        if rngs is not None:
            state["rng_ranks"] = rngs                                      # each process's own, for --resume
        state["digests"] = content_digests(state)
        atomic_save(state, self.checkpoint)

    def load(self, path: str | Path) -> None:
        s = _check_state(path, load_checkpoint(path))
        if "optimizer" not in s:
            raise ValueError(f"{path} holds no training state (an exported model?): it cannot be resumed. "
                             "Start a new run with another --checkpoint")
        if s.get("decoder_config") != asdict(self.decoder_config):
            raise ValueError(f"{path} was trained with decoder {s.get('decoder_config')}, not {asdict(self.decoder_config)}; "
                             "use the same settings to resume, or start a new checkpoint")
        if s["vocab"]["idx_to_word"] != self.vocab.idx_to_word:
            raise ValueError(f"{path} has a different vocabulary; resume with the vocabulary it was trained with")
        tuned = s.get("train_config", {}).get("fine_tune_encoder", 0)
        if tuned != self.config.fine_tune_encoder:
            raise ValueError(f"{path} was trained with --fine-tune-encoder {tuned}, not {self.config.fine_tune_encoder}; "
                             "resume with the same value, or start a new checkpoint")
        if self.encoder is not None:
            self.encoder.trunk.load_state_dict(s["encoder_model"])
            self.best_encoder = s.get("best_encoder_model")
        if s.get("phase", "xe") == "scst":
            self._enter_scst(from_best=False)
        self.decoder.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.schedule.load_state_dict(s["schedule"])
        self.epoch, self.step_in_epoch, self.global_step = s["epoch"], s["step_in_epoch"], s["global_step"]
        self.history, self.best_bleu, self.best_state, self.bad_epochs = s["history"], s["best_bleu"], s["best_model"], s["bad_epochs"]
        self.ema = s.get("ema")
        if self.scaler is not None and s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        for key in ("phase", "scst_reward", "step_penalty", "train_penalty", "step_sampling"):   # older checkpoints
            self.history.setdefault(key, [])
        ranks = s.get("rng_ranks")
        if self.world is None:
            torch.set_rng_state(s["rng"])
        elif ranks is not None and len(ranks) == self.world.size:
            torch.set_rng_state(ranks[self.world.rank])
        elif self.world.main:                                              # saved by another number of processes
            torch.set_rng_state(s["rng"])
        else:
            torch.manual_seed(self.config.seed + 7_919 * self.world.rank + self.global_step)

    # ------------------------------------------------------------ training

    def _batches(self, epoch: int) -> list:
        """This epoch's batch order: a permutation that depends only on (seed, epoch), so a resumed run sees the same."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.pairs), generator=g).tolist()
        return [order[i:i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]

    def _flips(self, epoch: int) -> torch.Tensor | None:
        """(pairs,) bool: which captions train on the mirrored image this epoch (depends only on seed and epoch)."""
        if self.mirror is None:
            return None
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch + 7_919)
        return torch.rand(len(self.pairs), generator=g) < 0.5

    def _image_stream(self, batches: list):
        """Fine-tuning: the (b, S, S, 3) uint8 pixels of each batch's images, decoded ahead by DataLoader workers."""
        from .finetune import pixel_batches

        rows = [[self.pairs.pairs[k][0] for k in batch] for batch in batches]
        return iter(pixel_batches(self.encoder, self.train_images, rows, self.loader_workers))

    def _xe_batch(self, batch: list, flips: torch.Tensor | None, px: torch.Tensor | None = None) -> tuple:
        """(features (b, P, E), or the images (b, 3, S, S) when fine-tuning; captions (b, T); lengths; rows).
        px: when fine-tuning, the batch's decoded pixels (b, S, S, 3) if already at hand (`_image_stream`)."""
        if self.encoder is not None:
            from .finetune import as_input, pixels
            from .vocab import pad_captions

            rows = [self.pairs.pairs[k][0] for k in batch]
            flip = [bool(flips[k]) for k in batch] if flips is not None else None
            captions, lengths = pad_captions([self.pairs.pairs[k][1] for k in batch])
            x = as_input(self.encoder, px, self.device, flip) if px is not None else \
                pixels(self.encoder, self.train_images, rows, self.device, flip)
            return x, captions, lengths, torch.tensor(rows)
        items = [self.pairs[k] for k in batch]
        if flips is not None:
            items = [(torch.from_numpy(np.asarray(self.mirror[i], dtype=np.float32)) if flips[k] else f, c, i)
                     for k, (f, c, i) in zip(batch, items)]
        return collate(items)

    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights, after every optimiser step."""
        if not self.config.ema:
            return
        weights = self.decoder.state_dict()
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in weights.items()}
            return
        for k, v in weights.items():
            if v.is_floating_point():
                self.ema[k].lerp_(v.detach(), 1 - self.config.ema)
            else:
                self.ema[k].copy_(v)

    def _stop_if_non_finite(self, loss: torch.Tensor, what: str) -> None:
        """Stop before a NaN/inf reaches the weights: the checkpoint on disk keeps the last good ones."""
        if not torch.isfinite(loss):
            saved = f"; the last good checkpoint is {self.checkpoint}" if self.checkpoint and self.checkpoint.exists() else ""
            raise RuntimeError(f"training stopped: the {what} is {float(loss.detach())} at epoch {self.epoch + 1}, step "
                               f"{self.step_in_epoch + 1} (global step {self.global_step + 1}). Lower the learning rate "
                               f"(now {self.optimizer.param_groups[0]['lr']:g}), or check the features{saved}")

    def _bad_features(self, rows: list) -> None:
        raise RuntimeError(f"training stopped: the features of batch rows {rows[:5]} hold NaN or inf (epoch "
                           f"{self.epoch + 1}, step {self.step_in_epoch + 1}); the feature cache is damaged: delete "
                           "data/cache/features and run again to extract them anew")

    def _trainable(self) -> list:
        modules = [self.decoder] + ([self.encoder] if self.encoder is not None else [])
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def train_step(self, features, captions, sample_prob: float, share: tuple[float, float] = (1.0, 1.0)) -> float:
        """One step on features (b, P, E) (fine-tuning: images (b, 3, S, S)) and captions (b, T); returns the
        batch's loss. One process in float32 on cached features: the module's `train_step` (lesson 03), or the
        learner's own. Otherwise the longer path below, which adds torchrun's shares, mixed precision and a
        fine-tuned encoder to the same five moves (forward, loss, zero_grad, backward and clip, step).

        share: in a distributed run, W x this process's fraction of the batch's real tokens and of its captions
        (`_share`); the weighted loss makes DDP's average of the gradients the whole batch's gradient."""
        cfg = self.config
        bad = (~torch.isfinite(features)).flatten(1).any(1)                # (b,) rows holding NaN or inf
        if self.world is None and self.amp_dtype is None and self.encoder is None:
            if bad.any():
                self._bad_features(bad.nonzero().flatten().tolist())
            try:
                if self.step is not None:                                  # the learner's own (lesson 03)
                    reported = self.step(self.decoder, self.optimizer, features, captions, self.vocab.pad_idx, cfg.grad_clip)
                else:
                    parts = {}
                    reported = train_step(self.decoder, self.optimizer, features, captions, self.vocab.pad_idx,
                                          cfg.grad_clip, penalty_weight(cfg, features.shape[1]), sample_prob, parts)
                    self.history["step_penalty"].append(parts["penalty"])
            except FloatingPointError:
                reported = float("nan")
            self._stop_if_non_finite(torch.tensor(float(reported)), "loss")
            self._update_ema()
            return float(reported)
        self.decoder.train()
        weight = functools.partial(penalty_weight, cfg)                   # λ for the P regions the encoder gives
        if self.world is None:
            if bad.any():
                self._bad_features(bad.nonzero().flatten().tolist())
            with self._autocast():
                feats = self.encoder(features)[0] if self.encoder is not None else features   # (b, P, E)
                loss = self.decoder.loss(feats, captions, weight(feats.shape[1]), self.vocab.pad_idx, sample_prob=sample_prob)
            self._stop_if_non_finite(loss, "loss")
            reported = float(loss.detach())
        else:
            with self._autocast():
                ce, penalty = self.model(features, captions, weight, self.vocab.pad_idx, sample_prob)
            loss = share[0] * ce.float() + share[1] * penalty.float()
            total, n_bad = distributed.all_sum([float(loss.detach()), float(bad.sum())], self.world, self.device)
            if n_bad:                                                      # every process stops, not just one
                self._bad_features(bad.nonzero().flatten().tolist() or ["on another process"])
            reported = total / self.world.size                             # the whole batch's loss
            self._stop_if_non_finite(torch.tensor(reported), "loss")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
        else:                                              # float16: scaled up so small gradients do not underflow
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)           # clip the true gradients
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_value_(self._trainable(), cfg.grad_clip)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)               # skipped (and the scale lowered) when a gradient overflowed
            self.scaler.update()
        self._update_ema()
        return reported

    def _share(self, batch: list) -> tuple[list, tuple[float, float]]:
        """This process's captions of a batch (positions in self.pairs) and their weights (see train_step).
        A process whose share is empty (a last batch smaller than W) runs one caption with weight 0."""
        mine = distributed.shard(batch, self.world)
        if not mine:
            return batch[:1], (0.0, 0.0)
        tokens = lambda ks: sum(len(self.pairs.pairs[k][1]) - 1 for k in ks)   # real targets: <end>, no <start>
        W = self.world.size
        return mine, (W * tokens(mine) / tokens(batch), W * len(mine) / len(batch))

    def cached(self) -> "Trainer":
        """Keep this run in the cache of trained models, data/cache/models/, under a key made of everything that decides
        its weights: the data (feature caches, images, captions), the vocabulary, the decoder and training settings,
        the device type and the source of the training code. `fit` then loads a finished run with the same key instead
        of training again (lessons 04, 06, 07 and 08 train the same attention model on the same features), and
        continues a run that was interrupted. Returns self."""
        from . import __file__ as package
        from .utils import data_root

        h = hashlib.sha256()
        for name in ("decoder.py", "train.py", "fused.py", "attention.py", "lstm.py", "data.py", "beam.py"):
            h.update((Path(package).parent / name).read_bytes())             # the code that decides the weights
        settings = {k: v for k, v in asdict(self.config).items() if k not in ("device", "checkpoint_every")}
        h.update(json.dumps([asdict(self.decoder_config), settings, self.vocab.state_dict(), self.device.type,
                             self.custom_step_source()], sort_keys=True, default=str).encode())
        for features, captions, indices in ((self.pairs.features, self.pairs.captions, [i for i, _ in self.pairs.pairs]),
                                            (self.val[0], self.val[1], list(self.val[2]))):
            folder = getattr(features, "_folder", None)
            h.update(str(folder).encode() if folder is not None else np.ascontiguousarray(features[sorted(set(indices))]).tobytes())
            h.update(np.asarray(indices, dtype=np.int64).tobytes())
            h.update(json.dumps([captions[int(i)] for i in sorted(set(indices))]).encode())
        self.checkpoint = data_root() / "cache" / "models" / f"{h.hexdigest()[:20]}.pt"
        self._from_cache = True
        self.wait = True                                   # the other run trains this very model: wait, then load it
        return self

    def custom_step_source(self) -> str | None:
        """The source of a learner's own train_step (part of the cache key: another step, another model)."""
        if self.step is None:
            return None
        import inspect

        try:
            return inspect.getsource(self.step)
        except (OSError, TypeError):
            return repr(self.step)

    def fit(self, resume: bool = False, stop_after_steps: int | None = None, progress: bool = True) -> dict:
        """Train until `epochs` (then `scst_epochs`) or early stopping; with resume=True, continue from the checkpoint.

        stop_after_steps: save and return after this many steps in total (to test resuming).
        """
        if getattr(self, "_from_cache", False):
            resume = True
            if self.checkpoint.exists() and (progress and (self.world is None or self.world.main)):
                print(f"this exact model (same data, settings and code) was trained before: continuing from, or loading, "
                      f"{self.checkpoint} (delete it to train again)", flush=True)
        if self.world is not None:
            progress = progress and self.world.main
        if self.checkpoint is None:
            return self._fit(resume, stop_after_steps, progress)
        with self._lock():                                                # one run at a time writes this checkpoint
            return self._fit(resume, stop_after_steps, progress)

    @contextlib.contextmanager
    def _lock(self):
        """RunLock on the checkpoint; in a distributed run rank 0 holds it, and all stop if it cannot. With `wait`
        (a cached run, `.cached()`, or `train --wait`) a second run waits instead of being refused, then resumes from
        what the other one wrote: two notebooks of the course opened at once, or `make test`'s two workers."""
        if self.world is None:
            with RunLock(self.checkpoint, wait=self.wait):
                yield
            return
        with contextlib.ExitStack() as stack:
            refused = None
            if self.world.main:
                try:
                    stack.enter_context(RunLock(self.checkpoint))
                except RuntimeError as e:
                    refused = e
            if distributed.all_sum([float(refused is not None)], self.world, self.device)[0]:
                raise refused or RuntimeError(f"rank 0 could not lock {self.checkpoint}: another run writes it")
            yield

    def _fit(self, resume: bool, stop_after_steps: int | None, progress: bool) -> dict:
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            self.load(self.checkpoint)
        cfg = self.config
        while self.epoch < cfg.epochs + cfg.scst_epochs:
            if self.phase == "xe" and (self.epoch >= cfg.epochs or self.bad_epochs >= cfg.patience):
                if not cfg.scst_epochs:
                    break
                self.epoch, self.step_in_epoch = max(self.epoch, cfg.epochs), 0  # cross-entropy is done: on to SCST
                self._enter_scst()
                continue
            if self.phase == "scst" and self.bad_epochs >= cfg.patience:
                break
            batches = self._batches(self.epoch) if self.phase == "xe" else self._image_batches(self.epoch)
            updates = cfg.epochs * len(batches)                            # the run's length, for the schedule
            first = self.epoch * len(batches)
            p = sampling_prob(cfg, first, updates) if self.phase == "xe" else 0.0   # this epoch's first update
            flips = self._flips(self.epoch)
            label = f"epoch {self.epoch + 1}/{cfg.epochs + cfg.scst_epochs}" + (" (self-critical)" if self.phase == "scst" else "")
            bar = tqdm(total=len(batches), initial=self.step_in_epoch, desc=label, disable=not progress, leave=False)
            left = batches[self.step_in_epoch:]
            shares = [self._share(b) if self.world is not None else (b, (1.0, 1.0)) for b in left] if self.phase == "xe" else []
            images = self._image_stream([mine for mine, _ in shares]) if self.encoder is not None and shares else None
            for k, b in enumerate(left):
                if self.phase == "xe":
                    mine, share = shares[k]
                    feats, caps, _, _ = self._xe_batch(mine, flips, next(images) if images is not None else None)
                    p = sampling_prob(cfg, first + self.step_in_epoch, updates)   # decays update by update
                    self.history["step_sampling"].append(p)
                    loss = self.train_step(feats.to(self.device), caps.to(self.device), p, share)
                    self.history["step_loss"].append(loss)
                    bar.set_postfix(loss=f"{loss:.3f}")
                else:
                    reward = self.scst_step(b)
                    self.history["scst_reward"].append(reward)
                    bar.set_postfix(reward=f"{reward:.3f}")
                self.step_in_epoch += 1
                self.global_step += 1
                bar.update(1)
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                    self.save()
                if stop_after_steps is not None and self.global_step >= stop_after_steps:
                    self.save()
                    bar.close()
                    return self.history
            bar.close()
            self._end_epoch(p, len(batches), progress)
        if self.best_state is not None:
            self.decoder.load_state_dict(self.best_state)
        if self.best_encoder is not None:
            self.encoder.trunk.load_state_dict(self.best_encoder)
        return self.history

    # ------------------------------------------------------------ self-critical training (scst.py)

    def _enter_scst(self, from_best: bool = True) -> None:
        """Start the self-critical phase: the best cross-entropy weights, a fresh Adam at scst_lr, patience anew."""
        from .scst import Reward

        if from_best and self.best_state is not None:
            self.decoder.load_state_dict(self.best_state)
        self.phase, self.bad_epochs, self.ema = "scst", 0, None            # the average starts again from these weights
        self.optimizer = torch.optim.Adam((p for p in self.decoder.parameters() if p.requires_grad), lr=self.config.scst_lr)
        self.schedule = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=1.0)
        self.images = sorted({i for i, _ in self.pairs.pairs})            # the training images, CIDEr-D's corpus
        captions = self.pairs.captions
        self.reward = Reward(_refs([captions[i] for i in self.images], self.vocab.tokenizer), self.config.scst_meteor)

    def _image_batches(self, epoch: int) -> list:
        """This epoch's batches of positions in self.images, a permutation that depends only on (seed, epoch)."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.images), generator=g).tolist()
        n = self.config.scst_images
        return [order[i:i + n] for i in range(0, len(order), n)]

    def scst_step(self, positions: list) -> float:
        """One self-critical step on the training images at `positions`; returns their samples' mean reward."""
        from .scst import scst_loss

        cfg = self.config
        self.decoder.eval()                        # no dropout: the sampled captions' own probabilities are differentiated
        feats = torch.from_numpy(np.asarray(self.pairs.features[[self.images[k] for k in positions]], dtype=np.float32))
        g = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + self.global_step)
        loss, reward = scst_loss(self.decoder, feats.to(self.device), positions, self.reward, self.vocab,
                                 cfg.scst_samples, cfg.scst_max_len, g)
        self._stop_if_non_finite(loss, "self-critical loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_value_(self.decoder.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self._update_ema()
        return reward

    def _validate(self, feats, caps, idx) -> dict:
        """BLEU-1..4 of greedy captions of the val images; in a distributed run each process decodes every W-th
        image and all of them score the gathered captions (the same numbers everywhere, so the same decisions)."""
        if self.world is None:
            return evaluate_bleu(self.decoder, feats, caps, self.vocab, idx, self.device, self.config.max_len)[0]
        W = self.world.size
        mine = [c.tokens for c in caption_all(self.decoder, feats, distributed.shard(list(idx), self.world),
                                              self.device, self.config.max_len)]
        tokens = [None] * len(idx)
        for rank, part in enumerate(distributed.gather(mine, self.world)):
            tokens[rank::W] = part
        return score_captions([Caption(t, 0.0, None) for t in tokens], self.vocab, [caps[i] for i in idx])[0]

    def _end_epoch(self, p: float, n_batches: int, progress: bool) -> None:
        h = self.history
        xe = self.phase == "xe"
        feats, caps, idx = self.val
        trained = None
        if self.ema is not None:                                           # validate (and keep) the averaged weights
            trained = copy.deepcopy(self.decoder.state_dict())
            self.decoder.load_state_dict(self.ema)
        scores = self._validate(feats, caps, idx)
        h["train_loss"].append(float(np.mean(h["step_loss"][-n_batches:])) if xe else float("nan"))
        penalties = h["step_penalty"][-n_batches:] if xe and len(h["step_penalty"]) >= n_batches else []
        h["train_penalty"].append(float(np.mean(penalties)) if penalties else float("nan"))   # the penalty's share of it
        h["phase"].append(self.phase)
        h["val_bleu4"].append(scores["BLEU-4"])
        h["val_bleu"].append(scores)
        h["lr"].append(self.optimizer.param_groups[0]["lr"])
        used = h.get("step_sampling", [])[-n_batches:] if xe else []
        h["sampling_prob"].append(float(np.mean(used)) if used else p)    # this epoch's mean chance of the own word
        if scores["BLEU-4"] > self.best_bleu:
            self.best_bleu, self.bad_epochs = scores["BLEU-4"], 0
            self.best_state = copy.deepcopy(self.decoder.state_dict())
            if self.encoder is not None:
                self.best_encoder = copy.deepcopy(self.encoder.trunk.state_dict())
        else:
            self.bad_epochs += 1
        if trained is not None:
            self.decoder.load_state_dict(trained)
        if progress:
            pen = h["train_penalty"][-1]
            split = f" (cross-entropy {h['train_loss'][-1] - pen:.3f} + attention penalty {pen:.3f})" if xe and pen > 0 else ""
            done = f"train loss {h['train_loss'][-1]:.3f}{split}" if xe else \
                f"self-critical, mean sample reward {np.mean(h['scst_reward'][-n_batches:]):.3f}"
            print(f"epoch {self.epoch + 1}: {done}, val BLEU-4 {scores['BLEU-4']:.3f}"
                  f"{' (best)' if self.bad_epochs == 0 else ''}", flush=True)
        self.schedule.step()
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.save()


def export_model(checkpoint: str | Path, out: str | Path, notes: dict | None = None, meta: dict | None = None) -> Path:
    """A checkpoint to ship: the best weights in float16, with the vocabulary, configs, metadata and history,
    without the optimiser state (about a quarter of the training checkpoint). Loads with `load_model`, with
    weights_only=True like every checkpoint. `notes`: plain data to keep with it (e.g. the scores); `meta`:
    entries added to the checkpoint's metadata (e.g. the length normalisation it was selected with)."""
    s = _check_state(checkpoint, load_checkpoint(checkpoint))
    weights = s.get("best_model") or s["model"]
    history = {k: v for k, v in s.get("history", {}).items() if not k.startswith("step_")}   # per-epoch curves only
    half = lambda w: {k: v.half() if v.is_floating_point() else v for k, v in w.items()}
    encoder = s.get("best_encoder_model") or s.get("encoder_model")              # a fine-tuned trunk (finetune.py)
    release = {"model": half(weights), **({"encoder_model": half(encoder)} if encoder else {}),
               "decoder_config": s["decoder_config"], "vocab": s["vocab"], "train_config": s.get("train_config", {}),
               "meta": {**s.get("meta", {}), **(meta or {})}, "history": history, "best_bleu": s.get("best_bleu"), "notes": notes or {},
               "format": "captionlib-release"}
    release["digests"] = content_digests(release)
    return atomic_save(release, out)


def load_model(path: str | Path, device: str = "auto"):
    """A trained decoder from a checkpoint (best weights), with its vocabulary and metadata."""
    s = _check_state(path, load_checkpoint(path))
    vocab = Vocab.from_state_dict(s["vocab"])
    config = DecoderConfig(**s["decoder_config"])
    decoder = build_decoder(config)
    try:   # float16 weights (a shipped model) are copied into the float32 parameters
        decoder.load_state_dict(s.get("best_model") or s["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the decoder described in the checkpoint: {e}") from e
    return decoder.to(pick_device(device)).eval(), vocab, s


def load_captioner(path: str | Path, device: str = "auto"):
    """Everything needed to caption photos with a checkpoint: (decoder, vocab, state, encoder), the encoder rebuilt
    from the checkpoint's metadata (its fine-tuned blocks too), in eval mode on the decoder's device."""
    from .finetune import load_encoder

    decoder, vocab, state = load_model(path, device)
    meta = state.get("meta", {})
    encoder = load_encoder(state, meta.get("backbone", "efficientnet-lite0"), meta.get("grid"))
    if decoder.config.encoder_dim != encoder.dim:
        raise ValueError(f"{path}: its decoder reads {decoder.config.encoder_dim}-channel features, but its backbone "
                         f"{encoder.name!r} gives {encoder.dim}: the checkpoint's metadata is wrong or from another model")
    return decoder, vocab, state, encoder.to(next(decoder.parameters()).device).eval()


@torch.no_grad()
def caption_photos(decoder, encoder, images: list, beam_size: int = 3, max_len: int = 20, length_norm: float = 0.0,
                   return_all: bool = False) -> list:
    """Captions of PIL images, exactly as `captionlib caption` writes them: the encoder's preprocessing, its batch
    norms folded into its convolutions, beam search ranking finished captions by log p / length**length_norm (pass
    the checkpoint's, state["meta"]["length_norm"]). Returns one beam.Caption per image (with alphas)."""
    from .encoder import folded

    device = next(decoder.parameters()).device
    encoder = folded(encoder.to(device).eval())
    out = []
    for start in range(0, len(images), 16):                                # one batch through both networks
        feats, _ = encoder(encoder.preprocess(list(images[start:start + 16])).to(device))   # (b, P, E)
        out += beam_search(decoder, feats, beam_size, max_len, length_norm, return_all)
    return out
