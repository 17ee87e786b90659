"""``torch.foo.memory``: the caching allocator's snapshot and history, as ``torch.cuda.memory``'s
``_record_memory_history``, ``_snapshot`` and ``_dump_snapshot`` (the format https://pytorch.org/memory_viz reads).

foo records no stack traces: every ``frames`` list is empty, and ``context`` and ``stacks`` are accepted for
compatibility only. The allocator never splits a block, so each segment holds exactly one block.
"""
from __future__ import annotations

import pickle
import sys
import typing

import torch

__all__ = ["_record_memory_history", "_snapshot", "_dump_snapshot"]

# The codes of csrc/foo/allocator.h (TraceAction, BlockState) as torch.cuda's snapshots name them.
_ACTIONS = ("alloc", "free_requested", "free_completed", "segment_alloc", "segment_free", "oom")
_STATES = ("inactive", "active_allocated", "active_awaiting_free")
_SMALL_SEGMENT = 1 << 20  # the allocator's small pool: blocks up to 1 MiB
_skipped_actions: frozenset[str] = frozenset()


def _record_memory_history(enabled: typing.Literal["state", "all"] | None = "all", context: str | None = "all",
                           stacks: str = "all", max_entries: int = sys.maxsize, clear_history: bool = False,
                           skip_actions: list[str] | None = None) -> None:
    """Starts (``"all"``) or stops (``None``) recording the allocator's actions for :func:`_snapshot`'s
    ``device_traces``, keeping the last ``max_entries`` per device. ``"state"`` records no history: the snapshot's
    segments always show the current state. Stopping forgets what was recorded, as on CUDA."""
    global _skipped_actions
    if enabled not in (None, "state", "all"):
        raise ValueError(f"enabled must be None, 'state' or 'all', got {enabled!r}")
    unknown = set(skip_actions or ()) - set(_ACTIONS) - {"snapshot"}
    if unknown:
        raise ValueError(f"unknown actions in skip_actions: {sorted(unknown)} (known: {list(_ACTIONS)})")
    if max_entries <= 0:
        raise ValueError(f"max_entries must be positive, got {max_entries}")
    if clear_history or enabled != "all":
        torch.ops.foo.record_memory_history(False, 1)
    if enabled == "all":
        torch.ops.foo.record_memory_history(True, min(max_entries, sys.maxsize))
    _skipped_actions = frozenset(skip_actions or ())


def _segments(blocks: list[int]) -> list[dict[str, typing.Any]]:
    segments = []
    for i in range(0, len(blocks), 7):
        device, address, size, requested, state, stream, pool = blocks[i:i + 7]
        state_name = _STATES[state]
        segments.append({
            "device": device, "address": address, "total_size": size, "stream": stream,
            "segment_type": "small" if size <= _SMALL_SEGMENT else "large", "segment_pool_id": (0, pool),
            "allocated_size": size if state_name == "active_allocated" else 0,
            "active_size": size if state_name != "inactive" else 0,
            "requested_size": requested, "is_expandable": False, "frames": [],
            "blocks": [{"address": address, "size": size, "requested_size": requested, "state": state_name,
                        "frames": []}],
        })
    return sorted(segments, key=lambda s: (s["device"], s["address"]))


def _device_traces(events: list[int]) -> list[list[dict[str, typing.Any]]]:
    traces: list[list[dict[str, typing.Any]]] = [[] for _ in range(torch.foo.device_count())]
    for i in range(0, len(events), 7):
        device, action, address, size, stream, pool, time_us = events[i:i + 7]
        name = _ACTIONS[action]
        if name in _skipped_actions:
            continue
        entry = {"action": name, "size": size, "stream": stream, "pool_id": (0, pool), "time_us": time_us,
                 "frames": []}
        if name != "oom":  # an OOM has no address, as on CUDA
            entry["addr"] = address
        traces[device].append(entry)
    return traces


def _snapshot(device: typing.Any = None) -> dict[str, typing.Any]:
    """The allocator's state on every foo device (``device`` is ignored, as torch.cuda's is): ``segments`` (each with
    its block: address, sizes, state, memory pool, stream) and ``device_traces`` (the recorded actions, oldest
    first)."""
    blocks, events = torch.ops.foo.memory_snapshot()
    return {"segments": _segments(blocks), "device_traces": _device_traces(events)}


def _dump_snapshot(filename: str = "dump_snapshot.pickle") -> None:
    """Pickles :func:`_snapshot` to ``filename``, for https://pytorch.org/memory_viz."""
    with open(filename, "wb") as f:
        pickle.dump(_snapshot(), f)
