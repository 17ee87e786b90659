"""``torch.backends.foo``: switches of the foo backend, as ``torch.backends.cudnn`` has them.

``torch.backends.foo.fallback_policy`` reads and sets the CPU-fallback policy ("allow", "warn" or "error"; see
torch_foo.set_fallback_policy); ``with torch.backends.foo.flags(fallback_policy="error"): ...`` sets it for a block.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import torch
from torch.backends import ContextProp, PropModule

from . import _fallback

__all__ = ["is_built", "is_available", "flags", "fallback_policy"]


def is_built() -> bool:
    """True: the foo backend is compiled (on the first `import torch_foo`) before torch.foo exists."""
    return True


def is_available() -> bool:
    """True if there is at least one foo device."""
    return torch.foo.is_available()


@contextlib.contextmanager
def flags(fallback_policy: str | None = None) -> Iterator[None]:
    """Sets the given switches for the block and restores them after it (None leaves a switch as it is)."""
    previous = _fallback.fallback_policy()
    if fallback_policy is not None:
        _fallback.set_fallback_policy(fallback_policy)
    try:
        yield
    finally:
        _fallback.set_fallback_policy(previous)


class _FooBackendModule(PropModule):
    fallback_policy = ContextProp(_fallback.fallback_policy, _fallback.set_fallback_policy)


# A module whose switches are properties (`torch.backends.foo.fallback_policy = "warn"`), as torch.backends.cudnn.
module = _FooBackendModule(sys.modules[__name__], "torch.backends.foo")
