"""``torch.foo``: the foo device module, at parity with ``torch.cuda`` for what applies to a device without CUDA's
driver (no graphs, IPC or NVTX).

- devices: ``device_count``, ``current_device``, ``set_device``, ``device``/``device_of`` (context managers),
  ``synchronize``, ``get_device_name``, ``get_device_properties``, ``get_device_capability``,
  ``can_device_access_peer``
- streams and events: ``Stream``, ``Event`` (subclasses of ``torch.Stream``/``torch.Event``), ``StreamContext``,
  ``stream``, ``current_stream``, ``default_stream``, ``set_stream``
- random numbers: ``manual_seed(_all)``, ``seed(_all)``, ``initial_seed``, ``get/set_rng_state(_all)``
- memory: ``memory_allocated``, ``memory_reserved``, ``memory_stats``, ``memory_summary``, ``memory_snapshot``,
  ``empty_cache``, ``mem_get_info``, ``set_per_process_memory_fraction``, ``caching_allocator_alloc/delete``,
  ``host_memory_stats``, ``reset_accumulated/peak_host_memory_stats``, ``MemPool`` / ``use_mem_pool``,
  ``OutOfMemoryError``;
  ``torch.foo.memory._record_memory_history`` / ``_snapshot`` / ``_dump_snapshot``
- mixed precision: ``torch.foo.amp`` (``autocast``, ``GradScaler``); backend switches: ``torch.backends.foo``

Device, stream and memory functions go through PyTorch's generic accelerator layer (``torch.accelerator``,
``torch.Stream``, ``torch.Event``), which calls the backend's C++ guard and allocator; the rest uses
``torch.ops.foo``.
"""
from __future__ import annotations

import collections as _collections
import contextlib as _contextlib
import dataclasses as _dataclasses
import os as _os
import sys as _sys
import typing as _typing

import torch

from . import _backend_meta, amp, memory
from . import backends as _backends

_DeviceLike = _typing.Union[torch.device, str, int, None]

__all__ = [
    "is_available", "is_initialized", "init", "device_count", "current_device", "set_device", "device", "device_of",
    "synchronize", "get_device_name", "get_device_properties", "get_device_capability", "FooDeviceProperties",
    "can_device_access_peer",
    "Stream", "Event", "StreamContext", "current_stream", "default_stream", "set_stream", "stream",
    "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state", "set_rng_state",
    "get_rng_state_all", "set_rng_state_all", "default_generator",
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved", "memory_stats",
    "memory_snapshot",
    "reset_peak_memory_stats", "reset_accumulated_memory_stats", "empty_cache", "mem_get_info", "memory_summary",
    "set_per_process_memory_fraction", "get_per_process_memory_fraction", "caching_allocator_alloc",
    "caching_allocator_delete", "host_memory_stats", "reset_accumulated_host_memory_stats",
    "reset_peak_host_memory_stats", "OutOfMemoryError", "MemPool", "use_mem_pool",
    "get_amp_supported_dtype", "is_bf16_supported", "amp", "memory",
]


def __dir__() -> list[str]:
    return sorted(__all__)


def _index(device: _DeviceLike) -> int:
    """Device index of a foo device given as index, "foo:N", "foo" or torch.device; current device for None."""
    if device is None:
        return current_device()
    if isinstance(device, str):
        device = torch.device(device)
    if isinstance(device, torch.device):
        if device.type != "foo":
            raise ValueError(f"expected a foo device, got {device}")
        return current_device() if device.index is None else device.index
    if isinstance(device, int):
        return device
    raise TypeError(f"expected a foo device (int, str or torch.device), got {type(device).__name__}")


def _checked_index(device: _DeviceLike) -> int:
    """As _index, raising RuntimeError (as CUDA's invalid device ordinal) for an index out of range."""
    index = _index(device)
    count = device_count()
    if not 0 <= index < count:
        raise RuntimeError(f"foo device index {index} is out of range: valid devices are foo:0 to foo:{count - 1} "
                           f"({count} devices)")
    return index


# ---- devices --------------------------------------------------------------------------------------------------------
def is_available() -> bool:
    """True if there is at least one foo device."""
    return device_count() > 0


def is_initialized() -> bool:
    """True unless this process is a child forked after its parent used foo (the runtime initialises lazily)."""
    return not _is_in_bad_fork()


def init() -> None:
    """Initialises foo, as torch.cuda.init: raises RuntimeError in a child forked after its parent used foo."""
    if _is_in_bad_fork():
        raise RuntimeError("Cannot re-initialize foo in forked subprocess: the parent used foo before it forked. To "
                           "use foo with multiprocessing, use the 'spawn' or 'forkserver' start method")


# PyTorch calls the device module's _lazy_init before the first foo tensor or accelerator call, and counts the device
# as initialised only once it ran: torch.accelerator.synchronize (2.11) skips uninitialised devices without it.
_lazy_init = init


def device_count() -> int:
    """Number of foo devices (TORCH_FOO_DEVICE_COUNT, default 2)."""
    return torch._C._accelerator_hooks_device_count()


def current_device() -> int:
    """Index of the calling thread's current foo device."""
    return torch._C._accelerator_getDeviceIndex()


def set_device(device: _DeviceLike) -> None:
    """Makes ``device`` the calling thread's current foo device; a negative index does nothing, as on CUDA."""
    if _index(device) >= 0:
        torch._C._accelerator_setDeviceIndex(_checked_index(device))


class device:
    """Context manager that makes a foo device current (``with torch.foo.device(1): ...``); ``None`` is a no-op."""

    def __init__(self, device: _DeviceLike):
        self.index = -1 if device is None else _checked_index(device)
        self.previous = -1

    def __enter__(self):
        if self.index >= 0:
            self.previous = torch._C._accelerator_exchangeDevice(self.index)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.index >= 0:
            torch._C._accelerator_setDeviceIndex(self.previous)


def device_of(obj: torch.Tensor) -> device:
    """Context manager making the device of a foo tensor current (no-op for other tensors)."""
    return device(obj.get_device() if obj.device.type == "foo" else None)


def synchronize(device: _DeviceLike = None) -> None:
    """Waits for all work on all streams of the device."""
    index = _checked_index(device)
    # PyTorch's binding skips a device type it has not initialised (through _lazy_init) yet, as in a process that
    # queued work without creating a foo tensor from Python; asking for the current device initialises it.
    current_device()
    torch._C._accelerator_synchronizeDevice(index)


def can_device_access_peer(device: _DeviceLike, peer_device: _DeviceLike) -> bool:
    """True if ``device`` reads ``peer_device``'s memory directly: any two distinct foo devices (copies and
    cross-device stream waits go device to device); False for a device and itself, as cudaDeviceCanAccessPeer."""
    return _checked_index(device) != _checked_index(peer_device)


# ---- streams and events ---------------------------------------------------------------------------------------------
class Stream(torch.Stream):
    """A foo stream, from the device's pool: work submitted to it runs in order (``with torch.foo.stream(s)``).

    ``device``: the stream's foo device (current device for None); ``priority`` < 0 picks the high-priority pool, as
    torch.cuda.Stream. A ``torch.Stream``, so torch.accelerator and torch.Event accept it.
    """

    def __new__(cls, device: _DeviceLike = None, priority: int = 0, **kwargs: _typing.Any) -> Stream:
        if "stream_id" in kwargs:  # an existing stream, by its ids (as torch.cuda.Stream takes them)
            return super().__new__(cls, priority=priority, **kwargs)
        return super().__new__(cls, device=torch.device("foo", _checked_index(device)), priority=priority)

    def record_event(self, event: torch.Event | None = None) -> torch.Event:
        """Records ``event`` (a new torch.foo.Event if None) on this stream and returns it."""
        if event is None:
            event = Event(device=self.device_index)
        event.record(self)
        return event

    def wait_event(self, event: torch.Event) -> None:
        """Makes later work on this stream wait for ``event`` (recorded on a stream of any foo device)."""
        event.wait(self)

    def wait_stream(self, stream: torch.Stream) -> None:
        """Makes later work on this stream wait for the work queued on ``stream`` so far."""
        self.wait_event(stream.record_event())

    @property
    def priority(self) -> int:
        """-1 for a stream of the high-priority pool, else 0."""
        return torch.ops.foo.stream_priority(self.stream_id, self.device_index)

    def __repr__(self) -> str:
        return f"<torch.foo.Stream device={self.device} stream_id={self.stream_id}>"


def _as_foo_stream(stream: torch.Stream) -> Stream:
    return Stream(stream_id=stream.stream_id, device_index=stream.device_index, device_type=stream.device_type)


class Event(torch.Event):
    """A foo event: marks a point in a stream, to wait for, query or time (``enable_timing=True``).

    As torch.cuda.Event, it takes the device of the stream it is first recorded on (``device`` fixes one up front);
    only streams of that device may record it, streams of any device may wait for it.
    """

    def __new__(cls, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False,
                device: _DeviceLike = None) -> Event:
        if interprocess:
            raise ValueError("foo events cannot be shared between processes (interprocess=True)")
        index = None if device is None else _checked_index(device)
        event = super().__new__(cls, device=torch.device("foo", index), enable_timing=enable_timing, blocking=blocking)
        event._chosen_device = index  # torch.Event shows its device index only once recorded
        return event

    def record(self, stream: torch.Stream | None = None) -> None:
        """Records the event on ``stream``; if None, on the current stream of the event's device (of the current
        device if neither ``device`` nor a record chose one)."""
        if stream is None:
            stream = current_stream(self._chosen_device if self.device.index is None else self.device.index)
        super().record(stream)

    def wait(self, stream: torch.Stream | None = None) -> None:
        """Makes later work on ``stream`` (the current stream if None) wait for the event."""
        super().wait(current_stream() if stream is None else stream)

    def elapsed_time(self, end_event: torch.Event) -> float:
        """Milliseconds from this event to ``end_event``: both recorded on one device, completed, and created with
        ``enable_timing=True``."""
        if not isinstance(end_event, torch.Event) or end_event.device.type != "foo":
            raise TypeError(f"elapsed_time expects a foo event, got {end_event!r}")
        return torch.ops.foo.event_elapsed_time(self.event_id, end_event.event_id)

    def __repr__(self) -> str:
        return f"<torch.foo.Event device={self.device}>"


def current_stream(device: _DeviceLike = None) -> Stream:
    """The calling thread's current stream on ``device``."""
    return _as_foo_stream(torch._C._accelerator_getStream(_checked_index(device)))


def default_stream(device: _DeviceLike = None) -> Stream:
    """The device's default stream (stream id 0)."""
    index = _checked_index(device)
    return Stream(stream_id=0, device_index=index, device_type=torch._C._accelerator_getStream(index).device_type)


def set_stream(stream: torch.Stream | None) -> None:
    """Makes ``stream`` current for its device (and makes that device current); None is a no-op, as on CUDA."""
    if stream is None:
        return
    if stream.device.type != "foo":
        raise ValueError(f"expected a foo stream, got a stream of {stream.device}")
    torch._C._accelerator_setStream(stream)


class StreamContext:
    """Context manager selecting a stream and its device, restoring both on exit; ``None`` is a no-op.

    As torch.cuda.StreamContext; ``torch.foo.stream(s)`` returns one.
    """

    def __init__(self, stream: torch.Stream | None):
        if stream is not None and stream.device.type != "foo":
            raise ValueError(f"expected a foo stream, got a stream of {stream.device}")
        self.stream = stream
        self.previous_device = -1
        self.previous_stream: torch.Stream | None = None

    def __enter__(self) -> torch.Stream | None:
        if self.stream is not None:
            self.previous_device = current_device()
            self.previous_stream = torch._C._accelerator_getStream(self.stream.device_index)
            set_stream(self.stream)
        return self.stream

    def __exit__(self, *exc: object) -> None:
        if self.stream is not None:
            torch._C._accelerator_setStream(self.previous_stream)
            torch._C._accelerator_setDeviceIndex(self.previous_device)


def stream(stream: torch.Stream | None) -> StreamContext:
    """Context manager selecting a stream (and its device); ``None`` is a no-op."""
    return StreamContext(stream)


# ---- random numbers -------------------------------------------------------------------------------------------------
def default_generator(device: _DeviceLike = None) -> torch.Generator:
    """The device's default random number generator."""
    return torch.ops.foo.default_generator(_checked_index(device))


def manual_seed(seed: int) -> None:
    """Seeds the current device's generator."""
    default_generator().manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """Seeds every device's generator."""
    for index in range(device_count()):
        default_generator(index).manual_seed(int(seed))


def seed() -> None:
    """Seeds the current device's generator with a fresh random seed."""
    default_generator().seed()


def seed_all() -> None:
    """One fresh random seed for every device, as torch.cuda.seed_all."""
    manual_seed_all(torch.Generator().seed())


def initial_seed() -> int:
    """The seed of the current device's generator."""
    return default_generator().initial_seed()


def get_rng_state(device: _DeviceLike = "foo") -> torch.Tensor:
    """The device generator's state, a CPU byte tensor."""
    return default_generator(device).get_state()


def set_rng_state(new_state: torch.Tensor, device: _DeviceLike = "foo") -> None:
    """Restores a state from get_rng_state."""
    default_generator(device).set_state(new_state.cpu())


def get_rng_state_all() -> list[torch.Tensor]:
    """get_rng_state of every device."""
    return [get_rng_state(index) for index in range(device_count())]


def set_rng_state_all(new_states: list[torch.Tensor]) -> None:
    """set_rng_state for every device, in index order."""
    for index, state in enumerate(new_states):
        set_rng_state(state, index)


def _sleep(microseconds: int) -> None:
    """Queues a kernel that just takes `microseconds` on the current stream (as torch.cuda._sleep, for tests)."""
    torch.ops.foo.sleep(int(microseconds))


def _is_in_bad_fork() -> bool:
    """True in a child forked after the parent used foo: there every foo operation raises (as CUDA after fork)."""
    return _in_bad_fork


def _note_fork_in_child() -> None:
    # Only a fork changes the answer: asked once there (the runtime's own fork handler has run by then), so that
    # checking costs no operator call (which the profiler would record as an op).
    global _in_bad_fork
    try:
        _in_bad_fork = torch.ops.foo.in_bad_fork()
    except AttributeError:  # the backend's library was never loaded here, so the parent cannot have used foo
        _in_bad_fork = False


_in_bad_fork = False
_os.register_at_fork(after_in_child=_note_fork_in_child)


# ---- memory ---------------------------------------------------------------------------------------------------------
def memory_snapshot(mempool_id: tuple[int, int] | None = None,
                    include_traces: bool = True) -> list[dict[str, _typing.Any]]:
    """The caching allocator's segments on every foo device, or only memory pool ``mempool_id``'s, as
    torch.cuda.memory_snapshot (``include_traces`` is accepted for parity: the segments carry no traces; the recorded
    history is in ``torch.foo.memory._snapshot()["device_traces"]``)."""
    segments = memory._snapshot()["segments"]
    if mempool_id is None:
        return segments
    return [segment for segment in segments if segment["segment_pool_id"] == tuple(mempool_id)]


def memory_stats(device: _DeviceLike = None) -> _collections.OrderedDict[str, _typing.Any]:
    """The caching allocator's statistics for the device, with torch.cuda.memory_stats' keys."""
    return torch.accelerator.memory_stats(_checked_index(device))


def memory_allocated(device: _DeviceLike = None) -> int:
    """Bytes of device memory held by tensors."""
    return torch.accelerator.memory_allocated(_checked_index(device))


def max_memory_allocated(device: _DeviceLike = None) -> int:
    """Peak of memory_allocated since start or reset_peak_memory_stats."""
    return torch.accelerator.max_memory_allocated(_checked_index(device))


def memory_reserved(device: _DeviceLike = None) -> int:
    """Bytes of device memory the caching allocator holds (tensors and cache)."""
    return torch.accelerator.memory_reserved(_checked_index(device))


def max_memory_reserved(device: _DeviceLike = None) -> int:
    """Peak of memory_reserved since start or reset_peak_memory_stats."""
    return torch.accelerator.max_memory_reserved(_checked_index(device))


def reset_peak_memory_stats(device: _DeviceLike = None) -> None:
    """Resets the peaks of memory_stats to the current values."""
    torch.accelerator.reset_peak_memory_stats(_checked_index(device))


def reset_accumulated_memory_stats(device: _DeviceLike = None) -> None:
    """Resets the allocated/freed totals of memory_stats."""
    torch.accelerator.reset_accumulated_memory_stats(_checked_index(device))


def empty_cache() -> None:
    """Returns cached, unused device memory of all devices to the device."""
    torch.accelerator.empty_cache()


def mem_get_info(device: _DeviceLike = None) -> tuple[int, int]:
    """(free, total) bytes of the device; total is the cap (TORCH_FOO_MEMORY_LIMIT)."""
    return torch.accelerator.get_memory_info(_checked_index(device))


def memory_summary(device: _DeviceLike = None, abbreviated: bool = False) -> str:
    """A table of the allocator's statistics, as torch.cuda.memory_summary (``abbreviated``: all pools only)."""
    index = _checked_index(device)
    stats = memory_stats(index)
    pools = ["all"] if abbreviated else ["all", "small_pool", "large_pool"]
    rows = [("allocated memory", "allocated_bytes", True), ("active memory", "active_bytes", True),
            ("requested memory", "requested_bytes", True), ("reserved memory", "reserved_bytes", True),
            ("allocations", "allocation", False), ("active allocations", "active", False),
            ("device segments", "segment", False)]

    def shown(value: int, is_bytes: bool) -> str:
        if not is_bytes:
            return str(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if value < 1024 or unit == "GiB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            value /= 1024

    lines = [f"foo:{index} memory summary (caching allocator)",
             f"{'metric':<28} {'current':>12} {'peak':>12} {'allocated':>12} {'freed':>12}"]
    for label, key, is_bytes in rows:
        for pool in pools:
            values = [shown(stats.get(f"{key}.{pool}.{field}", 0), is_bytes)
                      for field in ("current", "peak", "allocated", "freed")]
            name = label if pool == "all" else f"  from {pool.replace('_', ' ')}"
            lines.append(f"{name:<28} " + " ".join(f"{v:>12}" for v in values))
    lines.append(f"out-of-memory errors: {stats.get('num_ooms', 0)}, allocation retries: "
                 f"{stats.get('num_alloc_retries', 0)}, device mallocs: {stats.get('num_device_alloc', 0)}, "
                 f"device frees: {stats.get('num_device_free', 0)}")
    return "\n".join(lines)


def set_per_process_memory_fraction(fraction: float, device: _DeviceLike = None) -> None:
    """Caps what the caching allocator may reserve on the device at ``fraction`` of its memory; an allocation past the
    cap raises torch.OutOfMemoryError (after releasing the cache), as torch.cuda.set_per_process_memory_fraction."""
    index = _checked_index(device)
    if not isinstance(fraction, float):
        raise TypeError("Invalid type for fraction argument, must be `float`")
    if not 0 <= fraction <= 1:
        raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
    torch.ops.foo.set_memory_fraction(fraction, index)


def get_per_process_memory_fraction(device: _DeviceLike = None) -> float:
    """The fraction set by set_per_process_memory_fraction (1.0 if none)."""
    return torch.ops.foo.memory_fraction(_checked_index(device))


def caching_allocator_alloc(size: int, device: _DeviceLike = None, stream: torch.Stream | None = None) -> int:
    """Allocates ``size`` bytes from the caching allocator for ``stream`` (the device's current stream if None) and
    returns the device address; free it with caching_allocator_delete. As torch.cuda.caching_allocator_alloc."""
    index = _checked_index(device)
    if stream is not None and (stream.device.type != "foo" or stream.device_index != index):
        raise ValueError(f"caching_allocator_alloc: the stream must be a stream of foo:{index}, got one of "
                         f"{stream.device}")
    with StreamContext(current_stream(index) if stream is None else stream):  # the allocator serves the current one
        return torch.ops.foo.raw_alloc(size)


def caching_allocator_delete(mem_ptr: int) -> None:
    """Frees memory from caching_allocator_alloc; ValueError for any other address."""
    torch.ops.foo.raw_delete(mem_ptr)


def host_memory_stats() -> _collections.OrderedDict[str, _typing.Any]:
    """The pinned host allocator's statistics, with torch.cuda.host_memory_stats' keys ("allocations.current",
    "allocated_bytes.peak", "num_host_alloc", "host_alloc_time.avg", ...)."""
    names, values = torch.ops.foo.host_memory_stats()
    stats = dict(zip(names, values))
    for timing in ("host_alloc_time", "host_free_time"):
        count = stats[f"{timing}.count"]
        stats[f"{timing}.avg"] = stats[f"{timing}.total"] // count if count else 0
    return _collections.OrderedDict(sorted(stats.items()))


def reset_accumulated_host_memory_stats() -> None:
    """Resets the pinned host allocator's accumulated statistics (".allocated", ".freed", the timings' totals and
    counts, num_host_alloc, num_host_free)."""
    torch.ops.foo.reset_host_memory_stats(False)


def reset_peak_host_memory_stats() -> None:
    """Resets the pinned host allocator's peak statistics (".peak", the timings' max and min)."""
    torch.ops.foo.reset_host_memory_stats(True)


OutOfMemoryError = torch.OutOfMemoryError


class MemPool:
    """A private pool of foo device memory, as torch.cuda.MemPool: what a thread allocates inside
    ``use_mem_pool(pool)`` comes from the pool's own blocks, and returns to them when freed, apart from the shared
    cache (``empty_cache()`` keeps them). When the pool object is deleted its free blocks go back to the device; blocks
    still in use join the shared cache once freed. ``allocator`` (a custom allocator) and ``use_on_oom`` are not
    supported on foo (NotImplementedError)."""

    def __init__(self, allocator: _typing.Any = None, use_on_oom: bool = False):
        if allocator is not None or use_on_oom:
            raise NotImplementedError("torch.foo.MemPool: custom allocators and use_on_oom are not supported on foo")
        self._id = torch.ops.foo.mempool_create()
        self._users = 0

    @property
    def id(self) -> tuple[int, int]:
        """The pool's id, as torch.cuda.MemPool's: (0, n) for a pool made by the user."""
        return (0, self._id)

    @property
    def allocator(self) -> None:
        """The custom allocator: always None on foo."""
        return None

    def use_count(self) -> int:
        """References to the pool: this object and each active ``use_mem_pool`` context."""
        return 1 + self._users

    def snapshot(self, include_traces: bool = True) -> list[dict[str, _typing.Any]]:
        """The pool's segments, as torch.cuda.MemPool.snapshot (see ``memory_snapshot``)."""
        return memory_snapshot(self.id, include_traces)

    def __del__(self) -> None:
        if getattr(self, "_id", None) is not None:  # None: __init__ raised
            torch.ops.foo.mempool_release(self._id)


@_contextlib.contextmanager
def use_mem_pool(pool: MemPool, device: _DeviceLike = None):
    """Routes the calling thread's allocations on ``device`` (the current device if None) to ``pool`` inside the
    context, as torch.cuda.use_mem_pool."""
    if not isinstance(pool, MemPool):
        raise TypeError(f"use_mem_pool expects a torch.foo.MemPool, got {type(pool).__name__}")
    index = _checked_index(device)
    previous = torch.ops.foo.mempool_use(index, pool._id)
    pool._users += 1
    try:
        yield
    finally:
        pool._users -= 1
        torch.ops.foo.mempool_use(index, previous)


# ---- properties -----------------------------------------------------------------------------------------------------
@_dataclasses.dataclass(frozen=True)
class FooDeviceProperties:
    """What get_device_properties returns: the fields of torch.cuda's device properties that apply to foo."""

    name: str
    index: int
    total_memory: int  # the device's cap in bytes (TORCH_FOO_MEMORY_LIMIT)
    major: int  # compute capability of the simulated chip (get_device_capability)
    minor: int
    multi_processor_count: int  # the chip's compute units: the host's cores, whose threads run its kernels


_CAPABILITY = (1, 0)


def get_device_properties(device: _DeviceLike = None) -> FooDeviceProperties:
    """Name, index, memory and capability of the device."""
    index = _checked_index(device)
    return FooDeviceProperties(name=get_device_name(index), index=index, total_memory=mem_get_info(index)[1],
                               major=_CAPABILITY[0], minor=_CAPABILITY[1],
                               multi_processor_count=_os.cpu_count() or 1)


def get_device_capability(device: _DeviceLike = None) -> tuple[int, int]:
    """(major, minor) compute capability of the device, as torch.cuda.get_device_capability."""
    properties = get_device_properties(device)
    return properties.major, properties.minor


def get_device_name(device: _DeviceLike = None) -> str:
    """Name of the device."""
    _checked_index(device)
    return "foo simulated accelerator"


# ---- autocast -------------------------------------------------------------------------------------------------------
def get_amp_supported_dtype() -> list[torch.dtype]:
    """Lower-precision dtypes torch.autocast("foo") accepts."""
    return [torch.float16, torch.bfloat16]


def is_bf16_supported() -> bool:
    """True: foo computes in bfloat16."""
    return True


# `import torch.foo.amp` and `torch.backends.foo` (torch.foo itself is registered by torch._register_device_module).
_sys.modules["torch.foo.amp"] = amp
_sys.modules["torch.backends.foo"] = _backends.module
torch.backends.foo = _backends.module

_backend_meta_error = torch.ops.foo.backend_meta_registration_error()
if _backend_meta_error:
    raise ImportError(f"torch_foo: registering foo's tensor metadata serialization failed: {_backend_meta_error}")
_backend_meta.keep_backend_meta_in_deepcopy()


# ---- torch.compile --------------------------------------------------------------------------------------------------
def __getattr__(name: str) -> _typing.Any:
    # Inductor looks up torch.foo.Scheduling first when it compiles a graph for a PrivateUse1 backend. Importing
    # torch_foo._inductor registers the backend in full (importing Inductor with torch_foo would cost seconds);
    # PythonWrapperCodegen and the rest stay absent so that Inductor does not register it again without the
    # configuration its compiled-graph cache is keyed on.
    if name == "Scheduling":
        from . import _inductor

        return _inductor.CppScheduling
    raise AttributeError(f"module 'torch.foo' has no attribute {name!r}")
