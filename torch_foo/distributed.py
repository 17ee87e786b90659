"""torch.distributed on foo: the ``foo`` c10d backend (csrc/distributed/process_group.cpp).

Gloo, from the torch wheel, moves the bytes; the backend hands it host views of the device memory, so collectives
need no staging copies. Before Gloo runs a collective, the ranks agree on its signature (operation, dtypes, shapes)
over a second Gloo group: ranks that disagree get an error naming what each called, where Gloo would abort.

It is registered for the ``foo`` device type, so ``init_process_group()`` picks it on foo and
``init_process_group("cpu:gloo,foo:foo")`` serves both devices::

    dist.init_process_group("cpu:gloo,foo:foo")
    torch.foo.set_device(rank)
    t = torch.ones(4, device="foo")
    dist.all_reduce(t)

The backend's C++ is a library of its own, built (one unit, on the first process group in a fresh cache) and loaded
by the first process group that needs it: load_backend_library() does that ahead of time.
"""
import torch
import torch.distributed as dist

BACKEND = "foo"


def load_backend_library() -> None:
    """Builds if needed and loads the backend's library (once per process); process groups on foo call it."""
    from . import _registration

    _registration.load_distributed()


def _create_backend(store, rank: int, world_size: int, timeout):
    """Creator called by init_process_group / new_group: a foo backend over a fresh Gloo backend on the same store,
    and a second one of its own on which the ranks agree on each collective before Gloo runs it."""
    load_backend_library()
    groups = []
    for gloo_store, threads in ((store, 2), (dist.PrefixStore("foo_signatures", store), 1)):
        options = dist.ProcessGroupGloo._Options()
        options._timeout = timeout
        options._devices = [dist.ProcessGroupGloo.create_default_device()]
        options._threads = threads
        # The C++ backend comes back to Python through a process group (its TorchScript class), not pybind11.
        group = dist.ProcessGroup(gloo_store, rank, world_size)
        group._register_backend(torch.device("cpu"), dist.ProcessGroup.BackendType.GLOO,
                                dist.ProcessGroupGloo(gloo_store, rank, world_size, options))
        groups.append(group)
    holder, signatures = groups
    torch.ops.foo.attach_backend(holder.boxed(), signatures.boxed())
    return holder._get_backend(torch.device(BACKEND))


def register_c10d_backend() -> None:
    """Registers the backend once (import and autoload may both call this)."""
    if dist.is_available() and BACKEND.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(BACKEND, _create_backend, devices=[BACKEND])
