"""Sharing foo tensors between processes through torch.multiprocessing (Queue, Pipe, spawn arguments), as CUDA IPC.

The sender passes the device memory's file (a descriptor, by multiprocessing's descriptor passing) and where the
tensor's storage lies in it; the receiver maps the same memory (csrc/foo/ipc.cpp), so nothing is copied and writes
on either side are seen by the other after synchronisation (export waits for the sender's current stream).

Lifetime, as CUDA's limbo: every share hands the receiver the write end of a fresh pipe, a lease. The sender keeps
the storage, with the pipe's read end, until every copy of the write end is closed, by receivers letting go of the
tensor or by the kernel when a receiver dies; a reaper thread sees that as the read end's hang-up and drops the
storage. The receiver's mapping holds the memory itself, so its tensor stays valid when the sender exits first.
"""
import os
import select
import threading
import weakref
from multiprocessing import context
from multiprocessing.reduction import DupFd, ForkingPickler

import torch
from torch.multiprocessing import reductions as torch_reductions


class _Limbo:
    """Storages shared with other processes, each held until its lease's last write end is closed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}  # lease read end -> storage
        self._poll = select.poll()
        self._wake_read, self._wake_write = os.pipe()
        self._poll.register(self._wake_read, select.POLLIN)
        self._reaper = None

    def lease(self, storage) -> int:
        """The write end of a new lease on `storage`; the caller passes it on and closes it."""
        read_end, write_end = os.pipe()
        with self._lock:
            self._held[read_end] = storage
            self._poll.register(read_end, 0)  # hang-up is always reported
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="torch_foo-ipc-limbo", daemon=True)
                self._reaper.start()
        os.write(self._wake_write, b"\0")  # a poll() in progress does not see new registrations
        return write_end

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _reap(self) -> None:
        while True:
            for fd, events in self._poll.poll():
                if fd == self._wake_read:
                    os.read(self._wake_read, 4096)
                    continue
                if events & (select.POLLHUP | select.POLLERR):
                    with self._lock:
                        self._poll.unregister(fd)
                        storage = self._held.pop(fd)
                    os.close(fd)
                    del storage  # the device memory goes back to this process's allocator


_limbo = _Limbo()


def shared_storages_held() -> int:
    """How many shared storages this process keeps alive for other processes (tests and diagnostics)."""
    return _limbo.held()


def _pass_fd(fd: int, close_after: bool):
    """A picklable handle on a duplicate of fd for the receiving process."""
    popen = context.get_spawning_popen()
    handle = DupFd(fd)
    if close_after:
        if popen is None:
            os.close(fd)  # the resource sharer holds its own duplicate until the receiver takes it
        else:
            weakref.finalize(popen, os.close, fd)  # spawn arguments pass fd itself when the child starts
    return handle


def _rebuild_foo_tensor(memory, lease, device, offset, nbytes, dtype, size, stride, storage_offset, requires_grad,
                        parameter):
    memory_fd, lease_fd = memory.detach(), lease.detach()
    try:
        tensor = torch.ops.foo.ipc_open(memory_fd, lease_fd, device, offset, nbytes, dtype, size, stride,
                                        storage_offset)
    except BaseException:
        os.close(lease_fd)
        raise
    finally:
        os.close(memory_fd)
    if parameter:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad)


def _rebuild_empty_foo_tensor(device, dtype, size, stride, requires_grad, parameter):
    tensor = torch.empty_strided(size, stride, dtype=dtype, device=torch.device("foo", device))
    if parameter:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad)


def _reduce_foo_tensor(tensor: torch.Tensor):
    if tensor.requires_grad and not tensor.is_leaf:
        raise RuntimeError(
            "Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does not support "
            "crossing process boundaries.  If you just want to transfer the data, call detach() on the tensor "
            "before serializing (e.g., putting it on the queue)."
        )
    parameter = isinstance(tensor, torch.nn.Parameter)
    meta = (tensor.dtype, tuple(tensor.size()), tuple(tensor.stride()))
    storage = tensor.untyped_storage()
    if storage.nbytes() == 0:
        return _rebuild_empty_foo_tensor, (tensor.device.index, *meta, tensor.requires_grad, parameter)
    memory_fd, offset, nbytes = torch.ops.foo.ipc_export(tensor)
    memory = _pass_fd(memory_fd, close_after=False)  # the runtime's own descriptor
    lease = _pass_fd(_limbo.lease(storage), close_after=True)
    return _rebuild_foo_tensor, (memory, lease, tensor.device.index, offset, nbytes, *meta, tensor.storage_offset(),
                                 tensor.requires_grad, parameter)


def _reduce_tensor(tensor: torch.Tensor):
    if tensor.device.type == "foo":
        return _reduce_foo_tensor(tensor)
    return torch_reductions.reduce_tensor(tensor)


def register_ipc_reducers() -> None:
    """Routes foo tensors (and parameters) pickled by torch.multiprocessing here; other tensors keep torch's way."""
    for cls in (torch.Tensor, torch.nn.parameter.Parameter):
        ForkingPickler.register(cls, _reduce_tensor)
