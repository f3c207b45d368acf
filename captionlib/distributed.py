"""Training on several processes, GPUs or machines with PyTorch's own engine: torchrun + DistributedDataParallel.

No lesson builds it: it is what `captionlib train` uses when torchrun starts it (README, "Training on several
GPUs / machines"). torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process; `init` joins them into one
process group (NCCL on GPUs, gloo on CPU) and gives each process its device. DistributedDataParallel keeps
the weights equal: each process computes the gradient of its share of a batch and DDP averages them.

Same numbers as one process: every process draws the same batches (one permutation per epoch, from the
seed) and takes every W-th caption of each batch. The masked loss is a mean over real tokens, so the mean
of W per-process means is not the batch's mean when the shards hold different numbers of tokens. Each
process therefore weighs its mean by W x (its tokens / the batch's tokens) (and the attention penalty, a
mean over captions, by W x its captions / the batch's), and DDP's average of the gradients is then
exactly the gradient of the whole batch's loss. tests/test_distributed.py checks it against one process.

Shapes: B batch, T time, P regions, E encoder dim.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "launched", "init", "current", "close", "shard", "gather", "all_sum", "LossModule", "wrap"]


@dataclass(frozen=True)
class World:
    """This process's place in a distributed run."""
    rank: int            # 0 .. size-1; rank 0 writes the checkpoints and prints
    size: int            # W, the number of processes
    local_rank: int      # its GPU on this machine
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


_WORLD: World | None = None


def launched() -> bool:
    """True in a process torchrun (or srun torchrun) started with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto", timeout_min: float = 120) -> World | None:
    """Join the process group torchrun describes in the environment; None when run as one process.

    device: "auto" gives each process the GPU LOCAL_RANK when CUDA is there, else the CPU (gloo);
    "cpu" forces gloo on the CPU. timeout_min: how long a collective waits for a slow rank (extracting
    features for a large split runs between two of them).
    """
    global _WORLD
    if not launched():
        return None
    if _WORLD is not None:
        return _WORLD
    rank, size, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if str(device).startswith("mps"):
        raise ValueError("distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not on Apple's MPS")
    asked = str(device)
    cuda = asked.startswith("cuda") or (asked == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} was asked for, but torch sees no CUDA GPU here")
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPUs: "
                               "give torchrun --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_min))
    _WORLD = World(rank, size, local, dev)
    return _WORLD


def current() -> World | None:
    """The World `init` joined in this process, or None."""
    return _WORLD


def close() -> None:
    """Leave the process group at the end of a finished run: every process first waits at a barrier, so that none
    tears its connections down while another still has work in flight on them (gloo aborts a process whose peer left
    mid-operation: "terminate called without an active exception"), then all destroy the group together."""
    global _WORLD
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
    _WORLD = None


def shard(items: list, world: World) -> list:
    """This process's share of a list: every W-th item, starting at its rank (the shares differ by at most one)."""
    return items[world.rank::world.size]


def gather(obj, world: World) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every process (plain Python data)."""
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sums over the processes of a few numbers (one small all-reduce)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class LossModule(nn.Module):
    """decoder.loss as a module's forward: DistributedDataParallel synchronises the gradients of what its
    wrapped module's forward computes, and the loss is a method of the decoder, not its forward. With an
    encoder being fine-tuned (finetune.py), the forward runs it too, so its gradients are averaged as well."""

    def __init__(self, decoder: nn.Module, encoder: nn.Module | None = None):
        super().__init__()
        self.decoder, self.encoder = decoder, encoder

    def forward(self, inputs, captions, penalty_weight, pad_idx: int, sample_prob: float):
        """inputs: features (b, P, E), or images (b, 3, S, S) with an encoder; captions (b, T); penalty_weight(P):
        λ for P regions. Returns (the mean over real tokens, the penalty's mean over captions)."""
        feats = self.encoder(inputs)[0] if self.encoder is not None else inputs
        return self.decoder.loss(feats, captions, penalty_weight(feats.shape[1]), pad_idx, sample_prob=sample_prob, parts=True)


def wrap(decoder: nn.Module, world: World, encoder: nn.Module | None = None) -> nn.Module:
    """The loss inside DistributedDataParallel (rank 0's weights are copied to every process)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(LossModule(decoder, encoder), device_ids=ids)
