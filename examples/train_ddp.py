"""Data-parallel training of examples/train_mlp.py's model on foo devices with DistributedDataParallel.

    torchrun --nproc-per-node 2 examples/train_ddp.py [--epochs 5] [--batch-size 60]
    python examples/train_ddp.py --spawn 2          # the same, processes started with torch.multiprocessing

Process `rank` trains on foo:<local rank> with its slice of every batch; DDP averages the gradients over the "foo"
c10d backend (Gloo underneath). Data and model come from fixed seeds, so the run equals single-process training on the
full batches: rank 0 compares the final parameters with that run on the CPU and exits 1 if they differ by more than
--tolerance.
"""
import argparse
import datetime
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import torch_foo  # noqa: F401  (the foo device and its c10d backend)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mlp import TRAIN_SEED, make_model, make_spirals  # noqa: E402

LEARNING_RATE, MOMENTUM = 0.1, 0.9


def batches(epochs: int, batch_size: int):
    """The same shuffled full batches for every process and for the reference run (CPU tensors)."""
    features, labels = make_spirals(seed=TRAIN_SEED)
    shuffle = torch.Generator().manual_seed(TRAIN_SEED)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=shuffle)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            yield features[index], labels[index]


def train(model: torch.nn.Module, device, epochs: int, batch_size: int, rank: int = 0, world_size: int = 1):
    """SGD with momentum; each process takes its equal slice of every batch, so mean losses average to the full one."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    share = batch_size // world_size
    for x, y in batches(epochs, batch_size):
        x, y = x[rank * share:(rank + 1) * share].to(device), y[rank * share:(rank + 1) * share].to(device)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def train_ddp(rank: int, world_size: int, epochs: int, batch_size: int, local_rank: int | None = None):
    """Trains on foo:<local_rank> in an initialised process group; returns the final parameters on the CPU."""
    local_rank = rank if local_rank is None else local_rank
    device = torch.device("foo", local_rank % torch.foo.device_count())
    torch.foo.set_device(device)
    model = DistributedDataParallel(make_model().to(device), device_ids=[device.index])
    train(model, device, epochs, batch_size, rank, world_size)
    return [p.detach().cpu() for p in model.module.parameters()]


def reference_parameters(epochs: int, batch_size: int):
    """Single-process training on the full batches, on the CPU."""
    return [p.detach() for p in train(make_model(), "cpu", epochs, batch_size).parameters()]


def run(rank: int, world_size: int, args, local_rank: int | None = None) -> int:
    dist.init_process_group("cpu:gloo,foo:foo", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=args.timeout))
    try:
        parameters = train_ddp(rank, world_size, args.epochs, args.batch_size, local_rank)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return 0
    difference = max((a - b).abs().max().item()
                     for a, b in zip(parameters, reference_parameters(args.epochs, args.batch_size)))
    print(f"{world_size} processes on foo: parameters differ from single-process CPU training by at most "
          f"{difference:.3g} (tolerance {args.tolerance:g})")
    return 0 if difference <= args.tolerance else 1


def spawned(rank: int, world_size: int, args, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if run(rank, world_size, args) != 0:
        sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=60, help="global batch, split evenly over the processes")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--timeout", type=float, default=60, help="process group timeout in seconds")
    parser.add_argument("--spawn", type=int, metavar="N", help="start N processes here instead of under torchrun")
    args = parser.parse_args()
    if args.spawn:
        from torch.distributed.elastic.utils.distributed import get_free_port

        port = get_free_port()
        try:
            mp.spawn(spawned, args=(args.spawn, args, port), nprocs=args.spawn)
        except mp.ProcessExitedException:
            return 1
        return 0
    return run(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args, int(os.environ["LOCAL_RANK"]))


if __name__ == "__main__":
    sys.exit(main())
