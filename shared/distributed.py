"""Distributed data parallel under `torchrun`: initialisation, wrapping, sampling, gathering.

`torchrun --nproc_per_node N ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
`init_distributed` reads them (gloo on CPU, nccl on GPU).  Without them everything degrades to a
single process, so the same training code runs in both settings.  Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from shared.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = "auto") -> DistInfo:
    """Initialise the process group from torchrun's environment, or return a single-process info."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=resolve_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device)
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def cleanup(synchronise: bool = True) -> None:
    """Destroy the process group if one was created.

    On a normal exit (`synchronise`) every rank first meets at a barrier, so no rank tears the
    group down while another still has a collective in flight; after an error the barrier is
    skipped (the other ranks may be gone and it would wait for the timeout).
    """
    if dist.is_available() and dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """Move `model` to the device and wrap it in DDP when more than one process runs."""
    model = model.to(info.device)
    if not info.enabled:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (for saving and for named outputs)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def make_sampler(dataset: Dataset, info: DistInfo, shuffle: bool, seed: int,
                 generator: torch.Generator | None = None) -> Sampler:
    """A DistributedSampler across ranks (each rank sees 1/world of every epoch), else a plain one.

    Call `set_epoch(sampler, epoch)` before each epoch so shuffles differ per epoch but are
    reproducible from (seed, epoch), which is what makes resumed runs match uninterrupted ones.
    """
    if info.enabled:
        return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed)
    if shuffle:
        return RandomSampler(dataset, generator=generator if generator is not None else torch.Generator().manual_seed(seed))
    return SequentialSampler(dataset)


def set_epoch(sampler: Sampler, epoch: int, seed: int) -> None:
    """Make the epoch's shuffle a function of (seed, epoch) for either sampler type."""
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler) and sampler.generator is not None:
        sampler.generator.manual_seed(seed + epoch)


def all_gather_concat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor from every rank along dim 0 (sizes may differ per rank); no gradient.

    Used to gather evaluation outputs.  A single process returns the tensor unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world = dist.get_world_size()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in the forward pass; in the backward pass every rank's gradient for the gathered
    matrix is summed over ranks (one all_reduce) and each rank keeps the rows it contributed."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.contiguous()
        world, ctx.rank, ctx.rows = dist.get_world_size(), dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-sized tensors from every rank keeping the autograd graph.

    Retrieval losses use it to score each rank's queries against the negatives of all ranks
    (the global batch); gradients flow back to the rank that produced each row, summed over
    the ranks that used it, i.e. the gradient of the sum of all ranks' losses.  DDP then
    averages parameter gradients over ranks, as it does for any loss.  The collectives are
    blocking (all_gather forward, all_reduce backward), which every backend supports; torch's
    own ``torch.distributed.nn`` version emulates reduce-scatter with all-to-all on gloo and
    left a worker thread running at exit under load (SIGABRT at interpreter shutdown).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over ranks (for logging losses); identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()
