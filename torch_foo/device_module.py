"""``torch.foo``: the foo device module, at parity with the commonly used part of ``torch.cuda``.

Device, stream and memory functions go through PyTorch's generic accelerator layer (``torch.accelerator``,
``torch.Stream``, ``torch.Event``), which calls the backend's C++ guard and allocator; the rest uses
``torch.ops.foo``.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Union

import torch

_DeviceLike = Union[torch.device, str, int, None]

__all__ = [
    "is_available", "is_initialized", "init", "device_count", "current_device", "set_device", "device", "device_of",
    "synchronize", "Stream", "Event", "current_stream", "default_stream", "set_stream", "stream",
    "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state", "set_rng_state",
    "get_rng_state_all", "set_rng_state_all", "default_generator",
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved", "memory_stats",
    "reset_peak_memory_stats", "reset_accumulated_memory_stats", "empty_cache", "mem_get_info", "memory_summary",
    "get_device_name", "get_device_properties", "FooDeviceProperties",
    "get_amp_supported_dtype", "is_bf16_supported",
]


def _index(device: _DeviceLike, optional: bool = True) -> int:
    """Device index of a foo device given as index, "foo:N", "foo" or torch.device; current device for None."""
    if device is None:
        if not optional:
            raise ValueError("a foo device is required")
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
    index = _index(device)
    count = device_count()
    if not 0 <= index < count:
        raise IndexError(f"foo device index {index} is out of range: valid devices are foo:0 to foo:{count - 1} "
                         f"({count} devices)")
    return index


# ---- devices --------------------------------------------------------------------------------------------------------
def is_available() -> bool:
    return device_count() > 0


def is_initialized() -> bool:
    return True  # the runtime initialises itself lazily and cheaply


def init() -> None:
    """No-op: kept for parity with torch.cuda.init()."""


def device_count() -> int:
    return torch._C._accelerator_hooks_device_count()


def current_device() -> int:
    return torch._C._accelerator_getDeviceIndex()


def set_device(device: _DeviceLike) -> None:
    torch._C._accelerator_setDeviceIndex(_checked_index(device))


class device:
    """Context manager that makes a foo device current (``with torch.foo.device(1): ...``)."""

    def __init__(self, device: _DeviceLike):
        self.index = -1 if device is None else _checked_index(device)
        self.previous = -1

    def __enter__(self):
        if self.index >= 0:
            self.previous = torch._C._accelerator_exchangeDevice(self.index)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.index >= 0:
            torch._C._accelerator_setDeviceIndex(self.previous)


def device_of(obj: torch.Tensor) -> device:
    """Context manager making the device of a foo tensor current (no-op for other tensors)."""
    return device(obj.get_device() if obj.device.type == "foo" else None)


def synchronize(device: _DeviceLike = None) -> None:
    """Waits for all work on all streams of the device."""
    torch._C._accelerator_synchronizeDevice(_checked_index(device))


# ---- streams and events ---------------------------------------------------------------------------------------------
# Factories rather than subclasses: torch.Event's methods accept only exact torch.Event objects as their peers.
def Stream(device: _DeviceLike = None, priority: int = 0) -> torch.Stream:  # noqa: N802 (reads like torch.cuda.Stream)
    """A foo stream from the device's pool; ``priority`` < 0 picks the high-priority pool (as torch.cuda.Stream)."""
    return torch.Stream(device=torch.device("foo", _checked_index(device)), priority=priority)


def Event(enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> torch.Event:  # noqa: N802
    """A foo event on the current device (``enable_timing=True`` for elapsed_time)."""
    if interprocess:
        raise ValueError("foo events cannot be shared between processes")
    return torch.Event(device=torch.device("foo", current_device()), enable_timing=enable_timing, blocking=blocking)


def current_stream(device: _DeviceLike = None) -> torch.Stream:
    return torch._C._accelerator_getStream(_checked_index(device))


def default_stream(device: _DeviceLike = None) -> torch.Stream:
    index = _checked_index(device)
    # Stream id 0 is each device's default stream; the device type code is read off a live foo stream.
    return torch.Stream(stream_id=0, device_index=index, device_type=current_stream(index).device_type)


def set_stream(stream: torch.Stream) -> None:
    """Makes ``stream`` current for its device (and makes that device current)."""
    if stream.device.type != "foo":
        raise ValueError(f"expected a foo stream, got a stream of {stream.device}")
    torch._C._accelerator_setStream(stream)


@contextlib.contextmanager
def stream(stream: torch.Stream | None) -> Iterator[torch.Stream | None]:
    """Context manager selecting a stream (and its device); ``None`` is a no-op."""
    if stream is None:
        yield None
        return
    if stream.device.type != "foo":
        raise ValueError(f"expected a foo stream, got a stream of {stream.device}")
    previous_device = current_device()
    previous_stream = current_stream(stream.device_index)
    set_stream(stream)
    try:
        yield stream
    finally:
        torch._C._accelerator_setStream(previous_stream)
        torch._C._accelerator_setDeviceIndex(previous_device)


# ---- random numbers -------------------------------------------------------------------------------------------------
def default_generator(device: _DeviceLike = None) -> torch.Generator:
    return torch.ops.foo.default_generator(_checked_index(device))


def manual_seed(seed: int) -> None:
    default_generator().manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    for index in range(device_count()):
        default_generator(index).manual_seed(int(seed))


def seed() -> None:
    default_generator().seed()


def seed_all() -> None:
    """One fresh random seed for every device, as torch.cuda.seed_all."""
    manual_seed_all(torch.Generator().seed())


def initial_seed() -> int:
    return default_generator().initial_seed()


def get_rng_state(device: _DeviceLike = "foo") -> torch.Tensor:
    return default_generator(device).get_state()


def set_rng_state(new_state: torch.Tensor, device: _DeviceLike = "foo") -> None:
    default_generator(device).set_state(new_state.cpu())


def get_rng_state_all() -> list[torch.Tensor]:
    return [get_rng_state(index) for index in range(device_count())]


def set_rng_state_all(new_states: list[torch.Tensor]) -> None:
    for index, state in enumerate(new_states):
        set_rng_state(state, index)


def _sleep(microseconds: int) -> None:
    """Queues a kernel that just takes `microseconds` on the current stream (as torch.cuda._sleep, for tests)."""
    torch.ops.foo.sleep(int(microseconds))


def _is_in_bad_fork() -> bool:
    """True in a child forked after the parent used foo: there every foo operation raises (as CUDA after fork)."""
    return torch.ops.foo.in_bad_fork()


# ---- memory ---------------------------------------------------------------------------------------------------------
def memory_stats(device: _DeviceLike = None) -> OrderedDict[str, Any]:
    return torch.accelerator.memory_stats(_checked_index(device))


def memory_allocated(device: _DeviceLike = None) -> int:
    return torch.accelerator.memory_allocated(_checked_index(device))


def max_memory_allocated(device: _DeviceLike = None) -> int:
    return torch.accelerator.max_memory_allocated(_checked_index(device))


def memory_reserved(device: _DeviceLike = None) -> int:
    return torch.accelerator.memory_reserved(_checked_index(device))


def max_memory_reserved(device: _DeviceLike = None) -> int:
    return torch.accelerator.max_memory_reserved(_checked_index(device))


def reset_peak_memory_stats(device: _DeviceLike = None) -> None:
    torch.accelerator.reset_peak_memory_stats(_checked_index(device))


def reset_accumulated_memory_stats(device: _DeviceLike = None) -> None:
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


# ---- properties -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FooDeviceProperties:
    """What get_device_properties returns: the fields of torch.cuda's device properties that apply to foo."""

    name: str
    index: int
    total_memory: int  # the device's cap in bytes (TORCH_FOO_MEMORY_LIMIT)
    multi_processor_count: int  # the chip's compute units: the host's cores, whose threads run its kernels


def get_device_properties(device: _DeviceLike = None) -> FooDeviceProperties:
    index = _checked_index(device)
    return FooDeviceProperties(name=get_device_name(index), index=index, total_memory=mem_get_info(index)[1],
                               multi_processor_count=os.cpu_count() or 1)


def get_device_name(device: _DeviceLike = None) -> str:
    _checked_index(device)
    return "foo simulated accelerator"


# ---- autocast -------------------------------------------------------------------------------------------------------
def get_amp_supported_dtype() -> list[torch.dtype]:
    return [torch.float16, torch.bfloat16]


def is_bf16_supported() -> bool:
    return True


# ---- torch.compile --------------------------------------------------------------------------------------------------
def __getattr__(name: str) -> Any:
    # Inductor looks up torch.foo.Scheduling first when it compiles a graph for a PrivateUse1 backend. Importing
    # torch_foo._inductor registers the backend in full (importing Inductor with torch_foo would cost seconds);
    # PythonWrapperCodegen and the rest stay absent so that Inductor does not register it again without the
    # configuration its compiled-graph cache is keyed on.
    if name == "Scheduling":
        from . import _inductor

        return _inductor.CppScheduling
    raise AttributeError(f"module 'torch.foo' has no attribute {name!r}")
