"""How feature extraction and a training epoch slow down when the machine is busy (issue: a learner's laptop).

    python -m benchmarks.contention [--images 200] [--settings default,one-thread] [--append]

Each measurement runs in a fresh process (so thread and OpenMP settings apply from the start), idle and with 1 and
3 CPU-bound processes beside it (`python -c "while True: pass"`, like `yes`). The fair-share slowdown is what a
process would see if it got its share of the cores: with L busy processes on C cores, a job that uses C threads
gets C / (C + L) of the machine, so it should take (C + L) / C times as long (1.5x with one busy process on 2 cores,
2.5x with three). The row reports the measured slowdown against that share.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = r'''
import json, os, sys, tempfile, time
setting, job, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import captionlib                              # first, as the command line and the lessons' first cell do
import torch
from captionlib.data import load_split
from captionlib.encoder import Encoder
from captionlib.features import features_for
root = tempfile.mkdtemp()
train = load_split("shapes", "train", root=root)
encoder = Encoder("efficientnet-lite0", grid=7)
if job == "extract":
    start = time.perf_counter()
    features_for(train, encoder, upto=n, device="cpu", root=root, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
else:
    from captionlib.decoder import DecoderConfig
    from captionlib.train import TrainConfig, Trainer
    from captionlib.vocab import Vocab
    val = load_split("shapes", "val", root=root)
    store = features_for(train, encoder, upto=n, device="cpu", root=root, progress=False)
    vstore = features_for(val, encoder, upto=50, device="cpu", root=root, progress=False)
    idx = store.valid(n)
    vocab = Vocab.build([c for i in idx for c in train.captions[i]])
    config = DecoderConfig(vocab_size=len(vocab), encoder_dim=encoder.dim, embed_dim=128, hidden_dim=256, attention_dim=128)
    trainer = Trainer(config, vocab, store.features, train.captions, idx, vstore.features, val.captions, vstore.valid(50),
                      TrainConfig(epochs=1, lr=1e-3, device="cpu", seed=0))
    start = time.perf_counter()
    trainer.fit(progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
'''

SETTINGS = {
    # captionlib's default (captionlib/__init__.py): torch threads and OpenMP's wait policy as it sets them
    "captionlib": {"CAPTIONLIB_THREADS": None, "OMP_WAIT_POLICY": None},
    # torch on its own: one intra-op thread per core, OpenMP's default (spinning) wait policy
    "torch-default": {"CAPTIONLIB_THREADS": "torch", "OMP_WAIT_POLICY": None},
    # the candidates measured to choose captionlib's default
    "passive": {"CAPTIONLIB_THREADS": "torch", "OMP_WAIT_POLICY": "PASSIVE"},
    "one-thread": {"CAPTIONLIB_THREADS": "torch", "OMP_NUM_THREADS": "1"},
    "passive-one-thread": {"CAPTIONLIB_THREADS": "torch", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"},
    "spin-10k": {"CAPTIONLIB_THREADS": "torch", "GOMP_SPINCOUNT": "10000"},
    "spin-100k": {"CAPTIONLIB_THREADS": "torch", "GOMP_SPINCOUNT": "100000"},
}


def run(setting: str, job: str, n: int, busy: int, cwd: Path) -> dict:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5)
        env = dict(os.environ)
        for k, v in SETTINGS[setting].items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        out = subprocess.run([sys.executable, "-c", WORK, setting, job, str(n)], capture_output=True, text=True,
                             cwd=cwd, env=env, timeout=3600)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.contention")
    p.add_argument("--images", type=int, default=200, help="images to extract (and to train one epoch on)")
    p.add_argument("--settings", default="torch-default,captionlib")
    p.add_argument("--jobs", default="extract,train")
    p.add_argument("--busy", default="0,1,3")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    p.add_argument("--append", action="store_true", help="add the table to --out")
    a = p.parse_args()
    cores = os.cpu_count() or 1
    cwd = Path(__file__).resolve().parents[1]
    lines = []
    for job in a.jobs.split(","):
        for setting in a.settings.split(","):
            base = None
            cells = []
            for busy in map(int, a.busy.split(",")):
                r = run(setting, job, a.images, busy, cwd)
                base = base or r["seconds"]
                slow = r["seconds"] / base
                fair = (cores + busy) / cores
                cells.append((busy, r["seconds"], slow, fair, r["threads"]))
                print(f"{job:8} {setting:14} busy {busy}: {r['seconds']:7.2f} s  x{slow:.2f} (fair share x{fair:.2f}) "
                      f"threads {r['threads']}", flush=True)
            what = f"extract {a.images} shapes images" if job == "extract" else f"1 training epoch on {a.images} images (x5 captions)"
            row = f"| {what} | {setting} | " + " | ".join(
                f"{s:.1f} s" + ("" if b == 0 else f" (x{slow:.2f}; fair x{fair:.2f}, ratio {slow / fair:.2f})")
                for b, s, slow, fair, _ in cells) + " |"
            lines.append(row)
    header = ["", f"Contention ({cores} cores; a busy process is `python -c \"while True: pass\"`; each cell: seconds, the "
              "slowdown against idle, the fair-share slowdown (cores + busy) / cores, and their ratio, goal <= 1.3):", "",
              "| job | settings | idle | 1 busy process | 3 busy processes |", "|---|---|---|---|---|"]
    print("\n".join(header + lines))
    if a.append:
        text = a.out.read_text() if a.out.exists() else "# Benchmark results\n"
        a.out.write_text(text.rstrip("\n") + "\n" + "\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
