"""Toy training job for the distributed test: `torchrun --nproc_per_node 2 ddp_toy.py OUT` or plain python.

Trains a small MLP for a few SGD steps on fixed data with a global batch of 8 and writes, from
rank 0 only, every rank's final parameters plus an uneven all-gather check to OUT/result.json.
"""

import gc
import json
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.distributed import (
    all_gather_concat,
    all_gather_with_grad,
    cleanup,
    init_distributed,
    make_sampler,
    set_epoch,
    unwrap_model,
    wrap_model,
)
from shared.seed import seed_everything

GLOBAL_BATCH = 8


def main(out: str) -> None:
    info = init_distributed("cpu")
    seed_everything(0)
    data = TensorDataset(torch.randn(32, 6), torch.randn(32, 2))
    model = wrap_model(nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2)), info)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sampler = make_sampler(data, info, shuffle=False, seed=0)
    loader = DataLoader(data, batch_size=GLOBAL_BATCH // info.world_size, sampler=sampler)
    for epoch in range(2):
        set_epoch(sampler, epoch, seed=0)
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    flat = torch.cat([p.detach().flatten() for p in unwrap_model(model).parameters()])
    every_rank = all_gather_concat(flat[None])
    uneven = all_gather_concat(torch.full((info.rank + 1, 2), float(info.rank)))
    grad_probe = torch.ones(2, requires_grad=True)
    gathered = all_gather_with_grad(grad_probe * (info.rank + 1))
    gathered.sum().backward()
    if info.is_main:
        with open(out, "w") as handle:
            json.dump({
                "world_size": info.world_size,
                "params": every_rank.tolist(),
                "uneven": uneven.tolist(),
                "gathered": gathered.detach().tolist(),
                "probe_grad": grad_probe.grad.tolist(),
            }, handle)
    del model, optimizer  # the DDP wrapper holds the group: release it before tearing the group down
    gc.collect()
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
