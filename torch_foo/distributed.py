"""torch.distributed on foo: the ``foo`` c10d backend (csrc/foo/process_group.cpp).

Gloo, from the torch wheel, moves the bytes; the backend hands it host views of the device memory, so collectives
need no staging copies. It is registered for the ``foo`` device type, so ``init_process_group()`` picks it on foo and
``init_process_group("cpu:gloo,foo:foo")`` serves both devices::

    dist.init_process_group("cpu:gloo,foo:foo")
    torch.foo.set_device(rank)
    t = torch.ones(4, device="foo")
    dist.all_reduce(t)
"""
import torch
import torch.distributed as dist

BACKEND = "foo"


def _create_backend(store, rank: int, world_size: int, timeout):
    """Creator called by init_process_group / new_group: a foo backend over a fresh Gloo backend on the same store."""
    gloo = dist.ProcessGroupGloo(store, rank, world_size, timeout)
    # The C++ backend comes back to Python through a process group (its TorchScript class), not pybind11.
    holder = dist.ProcessGroup(store, rank, world_size)
    holder._register_backend(torch.device("cpu"), dist.ProcessGroup.BackendType.GLOO, gloo)
    torch.ops.foo.attach_backend(holder.boxed())
    return holder._get_backend(torch.device(BACKEND))


def register_c10d_backend() -> None:
    """Registers the backend once (import and autoload may both call this)."""
    if dist.is_available() and BACKEND.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(BACKEND, _create_backend, devices=[BACKEND])
