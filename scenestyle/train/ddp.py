"""Distributed data parallel via ``torchrun``: process group from RANK/WORLD_SIZE/LOCAL_RANK,
NCCL on GPU and gloo on CPU, explicit gradient averaging, rank 0 alone logs and saves.

Gradients are all-reduced by hand after each backward instead of wrapping the networks in
``DistributedDataParallel``: a CycleGAN step calls each generator several times and freezes D
during the G step, which DDP's bucketed hooks do not like, and the explicit form reads top to
bottom. Every rank starts from rank 0's weights.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int  # global rank
    world: int  # number of processes
    local_rank: int  # rank on this machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, 0)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(rank, world, local)


def teardown(info: DistInfo, all_finished: bool = False) -> None:
    """Leave the process group. ``all_finished``: every rank finished normally, so they first wait for
    each other (rank 0 may still be saving): a rank that destroyed its gloo group while a peer was
    still using the connection could abort at exit ("terminate called without an active exception")."""
    if info.distributed and dist.is_initialized():
        if all_finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_weights(model: nn.Module, info: DistInfo) -> None:
    """Every rank takes rank 0's parameters and buffers."""
    if info.distributed:
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(model: nn.Module, info: DistInfo) -> None:
    """All-reduce and average the gradients of ``model`` across ranks (after backward, before step)."""
    if not info.distributed:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world)


def mean_across(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a scalar over ranks (for logging)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world


def weights_digest(model: nn.Module) -> str:
    """sha256 of a model's state dict bytes (to check that ranks stayed in sync)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_digests(model: nn.Module, info: DistInfo) -> list[str]:
    """Every rank's ``weights_digest`` (on every rank)."""
    mine = weights_digest(model)
    if not info.distributed:
        return [mine]
    out: list = [None] * info.world
    dist.all_gather_object(out, mine)
    return out
