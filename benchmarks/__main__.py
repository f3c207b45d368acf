"""Run every benchmark and print ratios against baselines measured in the same run.

    python -m benchmarks            # all (10-14 minutes on a 2-core CPU)
    python -m benchmarks --quick    # skip the course runtime and the large training-step setup
    python -m benchmarks --device cuda

Each row: the baseline's and captionlib's median time over repeats (their calls interleaved, see
`clocked`), their ratio, and the equality check that makes the comparison fair. Results go to
benchmarks/RESULTS.md with the machine.
"""
from __future__ import annotations

import argparse
import datetime
import math
import platform
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from captionlib.beam import beam_search
from captionlib.bleu import corpus_bleu
from captionlib.decoder import DecoderConfig, _Decoder, build_decoder, sequence_loss
from captionlib.utils import pick_device

from .classic import classic_beam, classic_loss, naive_extract, per_image_beam

ROWS: list[dict] = []


def clocked(fns: dict, repeats, sync=lambda: None, warm_up: bool = True) -> dict:
    """{name: (median time, first timed call's result)} for every function in `fns`.

    The calls are interleaved, a round at a time (each function once per round, in turn), so that a
    machine that slows down or speeds up mid-run (shared hosts do) moves every timing alike and their
    ratios hold. `repeats`: calls per function, or {name: calls} for slow ones. With `warm_up`, each
    function is called once, untimed, first.
    """
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(fns, repeats)
    if warm_up:
        for fn in fns.values():
            fn()
            sync()
    times, results = {name: [] for name in fns}, {}
    for i in range(max(counts.values())):
        for name, fn in fns.items():
            if i < counts[name]:
                start = time.perf_counter()
                out = fn()
                sync()
                times[name].append(time.perf_counter() - start)
                results.setdefault(name, out)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """The median time of `repeats` calls after one warm-up call."""
    return clocked({"fn": fn}, repeats, sync)["fn"][0]


def _product_flops(self_shape, a_shape, b_shape, *args, **kwargs) -> int:
    """addmm_, baddbmm_ and addmv(_): a (.., m, k) times b (.., k, n) or (k,) is 2mkn (x the batch) FLOPs."""
    return 2 * math.prod(a_shape) * (b_shape[-1] if len(b_shape) > 1 else 1)


def flop_count(fn) -> int:
    """Floating-point operations of one call: matmuls (matrix-vector too) and convolutions.

    torch's FlopCounterMode counts mm, addmm, bmm and baddbmm but not their in-place forms (addmm_, which
    the fused paths use to accumulate into the gates) nor matrix-vector products: those are added here.
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    extra = {aten.addmm_: _product_flops, aten.baddbmm_: _product_flops, aten.addmv: _product_flops,
             aten.addmv_: _product_flops, aten.mv: lambda a_shape, b_shape, *args, **kwargs: _product_flops(None, a_shape, b_shape)}
    with FlopCounterMode(display=False, custom_mapping=extra) as counter:
        fn()
    return counter.get_total_flops()


def synchronizer(device):
    """What waits for queued GPU work before a clock is read (nothing on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def matmul_rate(device, n: int = 2048) -> float:
    """The machine's measured fp32 matmul rate, FLOP/s: the ceiling for work that is mostly matmuls."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / timed(lambda: a @ b, 5, synchronizer(device))


def row(name, baseline, ours, check, unit="s", higher_is_better=False):
    """One result; the speed-up is baseline/ours for times, ours/baseline for rates."""
    ratio = ours / baseline if higher_is_better else baseline / ours
    ROWS.append({"name": name, "baseline": baseline, "ours": ours, "ratio": ratio, "check": check, "unit": unit})
    print(f"{name:<46} baseline {baseline:9.4f} {unit}   captionlib {ours:9.4f} {unit}   x{ratio:6.2f}   {check}", flush=True)


def captions_batch(B, V, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = (torch.randn(B, generator=g) * 3.8 + 11.8).round().clamp(3, 35).long() + 2   # Flickr8k-like
    caps = torch.zeros(B, int(lengths.max()), dtype=torch.long)
    for b in range(B):
        caps[b, : lengths[b]] = torch.randint(4, V, (int(lengths[b]),), generator=g)
        caps[b, 0], caps[b, lengths[b] - 1] = 1, 2
    return caps.to(device), lengths.to(device)


def bench_train_step(device, P, E, V, repeats):
    torch.manual_seed(0)
    dec = build_decoder(DecoderConfig(vocab_size=V, encoder_dim=E, embed_dim=512, hidden_dim=512, attention_dim=512,
                                      dropout=0.0)).to(device)
    feats = torch.randn(64, P, E, device=device)
    caps, lengths = captions_batch(64, V, device)
    sync = synchronizer(device)

    def step(loss_fn):
        def run():
            dec.zero_grad(set_to_none=True)
            loss_fn().backward()
        return run

    def fast_loss():
        return dec.loss(feats, caps, 1 / P)                                # what Trainer.train_step calls

    def reference_loss():
        logits, alphas = _Decoder.forward(dec, feats, caps)
        return sequence_loss(logits, caps, alphas, 1 / P)

    def classic():
        return classic_loss(dec, feats, caps, lengths, 1 / P)

    a, b, c = fast_loss().item(), reference_loss().item(), classic().item()
    check = f"loss equal: {abs(a - c) < 1e-4 and abs(a - b) < 1e-4} ({a:.5f})"
    paths = {"classic": step(classic), "readable": step(reference_loss), "fast": step(fast_loss)}
    work = {name: flop_count(run) for name, run in paths.items()}
    times = clocked(paths, repeats, sync)
    t_classic, t_ref, t_fast = (times[name][0] for name in paths)

    def arithmetic(name, t):  # the FLOP ratio is the speed-up at equal GFLOP/s
        return (f"; GFLOP {work['classic'] / 1e9:.0f} vs {work[name] / 1e9:.0f} (ratio {work['classic'] / work[name]:.2f}), "
                f"GFLOP/s {work['classic'] / t_classic / 1e9:.0f} vs {work[name] / t / 1e9:.0f}")
    row(f"train step B=64 P={P} E={E} V={V}: readable loop", t_classic, t_ref, check + arithmetic("readable", t_ref))
    row(f"train step B=64 P={P} E={E} V={V}: fast path", t_classic, t_fast, check + arithmetic("fast", t_fast))


def bench_beam(device, n_images, repeats):
    """Batched beam search vs the classic per-image script, and vs captionlib's own search one image at a time.

    Also how fast each runs the arithmetic the search needs (FLOPs of the batched run, counted once):
    the batched search is bounded by the machine's matmul rate, which the last column compares with.
    """
    torch.manual_seed(0)
    dec = build_decoder(DecoderConfig(vocab_size=2600, encoder_dim=1280, embed_dim=256, hidden_dim=512,
                                      attention_dim=256, dropout=0.0)).to(device).eval()
    with torch.no_grad():  # peaked word distributions and a likelier <end>: captions of 4-20 tokens, mean about 11
        dec.fc.weight.mul_(20.0)
        dec.fc.bias[2] += 2.0
    feats = torch.randn(n_images, 49, 1280, device=device)
    sync = synchronizer(device)
    peak = matmul_rate(device)
    for k in (1, 3, 5):
        batched = lambda: [c.tokens for s in range(0, n_images, 100) for c in beam_search(dec, feats[s:s + 100], k, 20)]  # noqa: E731
        flops = flop_count(batched)                                        # also the warm-up
        times = clocked({"ours": batched, "classic": lambda: classic_beam(dec, feats, k, 20),   # minutes: no warm-up
                         "own": lambda: [c.tokens for c in per_image_beam(dec, feats, k, 20)]},
                        {"ours": repeats, "classic": repeats, "own": 1}, sync, warm_up=False)
        (t_ours, ours), (t_classic, classic), (t_own, own) = (times[name] for name in ("ours", "classic", "own"))
        same = ours == classic == own
        rate = lambda t: f"{flops / t / 1e9:.0f}"  # noqa: E731
        row(f"beam search k={k}, {n_images} images", t_classic, t_ours,
            f"captions identical: {same}; captionlib one image at a time {t_own:.2f} s (x{t_own / t_ours:.2f}); "
            f"GFLOP/s batched {rate(t_ours)}, one at a time {rate(t_own)}, classic {rate(t_classic)} "
            f"(matmul peak {peak / 1e9:.0f})")


def bench_bleu(repeats):
    from nltk.translate.bleu_score import corpus_bleu as nltk_bleu

    from captionlib.shapes import ShapesConfig, generate_split
    from captionlib.vocab import tokenize

    scenes = generate_split(ShapesConfig(n_test=5000), "test")
    rng = random.Random(0)
    refs = [[tokenize(c) for c in s.captions] for s in scenes]
    hyps = []
    for r in refs:
        h = list(rng.choice(r))
        if rng.random() < 0.5 and len(h) > 2:
            h[rng.randrange(len(h))] = rng.choice(["red", "box", "two", "above"])
        hyps.append(h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = nltk_bleu(refs, hyps), corpus_bleu(refs, hyps)
        times = clocked({"nltk": lambda: nltk_bleu(refs, hyps), "ours": lambda: corpus_bleu(refs, hyps)}, repeats)
        row("BLEU-4, 5000 hypotheses x 5 references", times["nltk"][0], times["ours"][0],
            f"scores equal: {abs(a - b) < 1e-12} ({b:.6f})")


def bench_features(device):
    from captionlib.encoder import Encoder

    enc = Encoder("efficientnet-lite0").to(device).eval()
    if device.type == "cpu":
        enc.trunk.to(memory_format=torch.channels_last)
    with torch.no_grad():
        flops = flop_count(lambda: enc(torch.randn(1, 3, 224, 224, device=device)))
    sync = synchronizer(device)
    peak = matmul_rate(device)
    # 64 images per timing, batch sizes interleaved over rounds: single calls were too noisy to rank them.
    sizes = (1, 4, 32)
    batches = {bs: torch.randn(bs, 3, 224, 224, device=device) for bs in sizes}
    if device.type == "cpu":
        batches = {bs: x.contiguous(memory_format=torch.channels_last) for bs, x in batches.items()}

    def encode_64(x):
        for _ in range(64 // x.shape[0]):
            enc(x)                                                         # each output freed before the next call

    with torch.inference_mode():
        times = clocked({bs: (lambda x=x: encode_64(x)) for bs, x in batches.items()}, 5, sync)
    lines = []
    for bs in sizes:
        ips = 64 / times[bs][0]
        achieved = flops * ips
        lines.append(f"batch {bs:>2}: {ips:7.1f} images/s, {achieved / 1e9:6.1f} GFLOP/s = {achieved / peak:5.1%} of the "
                     f"measured fp32 matmul rate ({peak / 1e9:.0f} GFLOP/s); {flops / 1e9:.2f} GFLOP per image")
        print("feature extraction", lines[-1], flush=True)
    return lines


def jpeg_files(n: int, folder: Path) -> tuple[list, str]:
    """n JPEG files to extract features from, and where they come from: Flickr8k's photos when
    ../shared/datasets/flickr8k is beside the checkout (224x224), else shapes scenes saved as
    500x375 JPEGs in `folder` (the size of Flickr's originals, so decoding costs what it would)."""
    from captionlib.course import REPO

    photos = REPO.parent / "shared" / "datasets" / "flickr8k" / "Images"
    if photos.is_dir() and len(list(photos.glob("*.jpg"))) >= n:
        return sorted(photos.glob("*.jpg"))[:n], f"{n} Flickr8k JPEGs (224x224)"
    from captionlib.shapes import ShapesConfig, generate_split, render

    paths = []
    for k, scene in enumerate(generate_split(ShapesConfig(n_test=n), "test")):
        paths.append(folder / f"{k:05d}.jpg")
        render(scene, 224).resize((500, 375)).save(paths[-1], quality=90)
    return paths, f"{n} shapes scenes saved as 500x375 JPEGs"


def bench_extraction(device, n: int, repeats: int) -> list:
    """Feature extraction from JPEG files to the cache, end to end, against the encoder's own forward rate
    on ready tensors at the same batch size: the target is end to end within 1.5x of the forward."""
    from captionlib.datasets import _Files
    from captionlib.encoder import Encoder
    from captionlib.features import default_workers, extract_features

    enc = Encoder("efficientnet-lite0").to(device).eval()
    if device.type == "cpu":
        enc.trunk.to(memory_format=torch.channels_last)
    bs = 4 if device.type == "cpu" else 64
    sync = synchronizer(device)
    with tempfile.TemporaryDirectory() as tmp:
        paths, source = jpeg_files(n, Path(tmp))
        images = _Files(paths)
        ready = torch.randn(bs, 3, 224, 224, device=device)
        if device.type == "cpu":
            ready = ready.contiguous(memory_format=torch.channels_last)
        rounds = iter(range(10 ** 6))

        def forward_only():
            with torch.inference_mode():
                for _ in range(0, n, bs):
                    enc(ready)

        def ours():
            store = extract_features(enc, images, "k", Path(tmp) / f"ours{next(rounds)}", batch_size=bs, device=device,
                                     progress=False)
            return np.asarray(store.features)

        def naive():
            return naive_extract(enc, images, Path(tmp) / f"naive{next(rounds)}", batch_size=bs)

        times = clocked({"naive": naive, "ours": ours, "forward": forward_only}, repeats, sync, warm_up=False)
    (t_naive, a), (t_ours, b), (t_forward, _) = times["naive"], times["ours"], times["forward"]
    same = bool(np.abs(a.astype(np.float32) - b.astype(np.float32)).max() <= 1e-2)
    rate = lambda t: n / t  # noqa: E731
    row(f"feature extraction, {n} JPEGs to the cache (img/s)", rate(t_naive), rate(t_ours),
        f"features equal: {same}; {source}; batch {bs}, {default_workers(n)} decoding worker(s); the encoder's forward "
        f"on ready tensors {rate(t_forward):.1f} img/s, {t_ours / t_forward:.2f}x the end-to-end time (target <= 1.5x)",
        unit="img/s", higher_is_better=True)
    return [f"end to end from JPEG files: {rate(t_ours):.1f} images/s ({source}); forward only {rate(t_forward):.1f} images/s"]


def bench_course():
    """Every solution notebook in order, as a learner's first run: an empty data folder, so lesson 01
    extracts the features that lessons 03-04 then reuse."""
    import os

    from captionlib.course import REPO, run

    before = os.environ.get("CAPTIONLIB_DATA")
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as data:
        os.environ["CAPTIONLIB_DATA"] = data  # the kernels inherit it
        try:
            rows = run(sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")), {}, Path(out))
        finally:
            if before is None:
                os.environ.pop("CAPTIONLIB_DATA", None)
            else:
                os.environ["CAPTIONLIB_DATA"] = before
    return [f"| {name} | {status} | {minutes:.2f} |" for name, status, minutes in rows]


def machine(device) -> str:
    """The CPU (with its cache: the ratios depend on it, a shared host's too), threads, GPU, versions, date."""
    cpu, info = "unknown CPU", {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        cpu = f"{info['model name']} (cache {info.get('cache size', '?')})"
    except (OSError, KeyError):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if device.type == "cuda" else ""
    return (f"{cpu}, {torch.get_num_threads()} threads{gpu}; Python {platform.python_version()}, torch {torch.__version__}; "
            f"device {device}; {datetime.date.today()}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--quick", action="store_true", help="skip the course runtime and the P=196 training step")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    p.add_argument("--course-only", action="store_true", help="only time the notebooks (append to --out)")
    a = p.parse_args()
    device = pick_device(a.device)
    if a.course_only:
        lines = bench_course()
        text = a.out.read_text() if a.out.exists() else "# Benchmark results\n"
        text = text.split("\nCourse runtime")[0].rstrip("\n") + "\n"
        text += ("\nCourse runtime: every solution notebook at default parameters, in order, from an empty data folder "
                 f"(a learner's first run); {machine(device)}:\n\n| notebook | status | minutes |\n|---|---|---|\n")
        a.out.write_text(text + "\n".join(lines) + "\n")
        return
    print(machine(device), flush=True)
    bench_train_step(device, 49, 1280, 2600, a.repeats)
    if not a.quick:
        bench_train_step(device, 196, 2048, 10000, max(1, a.repeats // 2))
    bench_beam(device, 500, max(1, a.repeats // 2))
    bench_bleu(a.repeats)
    feature_lines = bench_features(device)
    feature_lines += bench_extraction(device, 400, max(1, a.repeats // 2))
    course = [] if a.quick else bench_course()
    text = ["# Benchmark results", "", f"Machine: {machine(device)}", "",
            "Medians over repeats; baseline and captionlib measured in the same run on the same inputs, their calls "
            "interleaved (one of each per round), so that a host that changes speed mid-run slows both alike.", "",
            "| benchmark | baseline | captionlib | speed-up | equality check |", "|---|---|---|---|---|"]
    text += [f"| {r['name']} | {r['baseline']:.4f} {r['unit']} | {r['ours']:.4f} {r['unit']} | **{r['ratio']:.2f}x** | {r['check']} |"
             for r in ROWS]
    text += ["", "Feature extraction (EfficientNet-Lite0, 224x224):", ""] + [f"- {x}" for x in feature_lines]
    if course:
        text += ["", "Course runtime: every solution notebook at default parameters, in order, from an empty data "
                 "folder (a learner's first run):", "", "| notebook | status | minutes |", "|---|---|---|"] + course
    a.out.write_text("\n".join(text) + "\n")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
