"""``torch.foo.memory``: the caching allocator's snapshot and history, as ``torch.cuda.memory``'s
``_record_memory_history``, ``_snapshot`` and ``_dump_snapshot`` (the format https://pytorch.org/memory_viz reads).

Stacks are Python's (``stacks="all"`` records no C++ frames on foo), gathered as CUDA's ``context`` says: for
allocations (``"state"``, ``"alloc"``), for allocations and frees (``"all"``), or not at all (``None``). The allocator
never splits a block, so each segment holds exactly one block.
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
_STACK_CONTEXTS = {None: 0, "state": 1, "alloc": 1, "all": 2}  # StackContext in csrc/foo/allocator.h


def _record_memory_history(enabled: typing.Literal["state", "all"] | None = "all", context: str | None = "all",
                           stacks: str = "all", max_entries: int = sys.maxsize, clear_history: bool = False,
                           skip_actions: list[str] | None = None) -> None:
    """Starts (``"all"``) or stops (``None``) recording the allocator's actions for :func:`_snapshot`'s
    ``device_traces``, keeping the last ``max_entries`` per device. ``"state"`` records no history: the snapshot's
    segments always show the current state. Stopping forgets what was recorded, as on CUDA."""
    global _skipped_actions
    if enabled not in (None, "state", "all"):
        raise ValueError(f"enabled must be None, 'state' or 'all', got {enabled!r}")
    if context not in _STACK_CONTEXTS:
        raise ValueError(f"context must be None, 'state', 'alloc' or 'all', got {context!r}")
    if stacks not in ("python", "all"):
        raise ValueError(f"stacks must be 'python' or 'all', got {stacks!r}")
    unknown = set(skip_actions or ()) - set(_ACTIONS) - {"snapshot"}
    if unknown:
        raise ValueError(f"unknown actions in skip_actions: {sorted(unknown)} (known: {list(_ACTIONS)})")
    if max_entries <= 0:
        raise ValueError(f"max_entries must be positive, got {max_entries}")
    stack_context = _STACK_CONTEXTS[context] if enabled is not None else 0
    if clear_history or enabled != "all":
        torch.ops.foo.record_memory_history(False, 1, stack_context)
    if enabled == "all":
        torch.ops.foo.record_memory_history(True, min(max_entries, sys.maxsize), stack_context)
    _skipped_actions = frozenset(skip_actions or ())


def _stacks(files: list[str], functions: list[str], lines: list[int], flat: list[int]) -> list[list[dict]]:
    frames = [{"filename": file, "name": function, "line": line} for file, function, line in zip(files, functions, lines)]
    stacks, i = [], 0
    while i < len(flat):
        stacks.append([frames[j] for j in flat[i + 1:i + 1 + flat[i]]])
        i += 1 + flat[i]
    return stacks


def _segments(blocks: list[int], stacks: list[list[dict]]) -> list[dict[str, typing.Any]]:
    segments = []
    for i in range(0, len(blocks), 8):
        device, address, size, requested, state, stream, pool, stack = blocks[i:i + 8]
        frames = stacks[stack] if stack >= 0 else []
        state_name = _STATES[state]
        segments.append({
            "device": device, "address": address, "total_size": size, "stream": stream,
            "segment_type": "small" if size <= _SMALL_SEGMENT else "large", "segment_pool_id": (0, pool),
            "allocated_size": size if state_name == "active_allocated" else 0,
            "active_size": size if state_name != "inactive" else 0,
            "requested_size": requested, "is_expandable": False, "frames": frames,
            "blocks": [{"address": address, "size": size, "requested_size": requested, "state": state_name,
                        "frames": frames}],
        })
    return sorted(segments, key=lambda s: (s["device"], s["address"]))


def _device_traces(events: list[int], stacks: list[list[dict]]) -> list[list[dict[str, typing.Any]]]:
    traces: list[list[dict[str, typing.Any]]] = [[] for _ in range(torch.foo.device_count())]
    for i in range(0, len(events), 8):
        device, action, address, size, stream, pool, time_us, stack = events[i:i + 8]
        name = _ACTIONS[action]
        if name in _skipped_actions:
            continue
        entry = {"action": name, "size": size, "stream": stream, "pool_id": (0, pool), "time_us": time_us,
                 "frames": stacks[stack] if stack >= 0 else []}
        if name != "oom":  # an OOM has no address, as on CUDA
            entry["addr"] = address
        traces[device].append(entry)
    return traces


def _snapshot(device: typing.Any = None) -> dict[str, typing.Any]:
    """The allocator's state on every foo device (``device`` is ignored, as torch.cuda's is): ``segments`` (each with
    its block: address, sizes, state, memory pool, stream) and ``device_traces`` (the recorded actions, oldest
    first)."""
    blocks, events, files, functions, lines, flat_stacks = torch.ops.foo.memory_snapshot()
    stacks = _stacks(files, functions, lines, flat_stacks)
    return {"segments": _segments(blocks, stacks), "device_traces": _device_traces(events, stacks)}


def _dump_snapshot(filename: str = "dump_snapshot.pickle") -> None:
    """Pickles :func:`_snapshot` to ``filename``, for https://pytorch.org/memory_viz."""
    with open(filename, "wb") as f:
        pickle.dump(_snapshot(), f)
