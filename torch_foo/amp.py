"""``torch.foo.amp``: mixed precision on foo with torch.cuda.amp's names (``torch.amp`` with ``device_type="foo"``)."""
from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd"]


class autocast(torch.amp.autocast):  # noqa: N801 (torch.cuda.amp.autocast's name)
    """``torch.autocast("foo", ...)``: ops in the region run in ``dtype`` where CUDA's cast policies allow it."""

    def __init__(self, enabled: bool = True, dtype: torch.dtype = torch.float16, cache_enabled: bool = True):
        super().__init__("foo", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


class GradScaler(torch.amp.GradScaler):
    """``torch.amp.GradScaler("foo", ...)``: loss scaling for float16 training on foo."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        super().__init__("foo", init_scale=init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                         growth_interval=growth_interval, enabled=enabled)


def custom_fwd(fwd: Callable | None = None, *, cast_inputs: torch.dtype | None = None) -> Any:
    """``torch.amp.custom_fwd(device_type="foo")``, for the forward of a custom autograd Function."""
    return torch.amp.custom_fwd(fwd, device_type="foo", cast_inputs=cast_inputs)


def custom_bwd(bwd: Callable | None = None) -> Any:
    """``torch.amp.custom_bwd(device_type="foo")``, for the backward of a custom autograd Function."""
    return torch.amp.custom_bwd(bwd, device_type="foo")
