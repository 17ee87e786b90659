"""Backend metadata of foo tensors through copy.deepcopy.

torch.save/torch.load carry the entries torch._utils.set_tensor_metadata gives a foo tensor through PyTorch's
PrivateUse1 serialization hooks (csrc/foo/backend_meta.cpp). Tensor.__deepcopy__ rebuilds a tensor from a copy of
its storage (Parameter.__deepcopy__ from a clone) and has no such hook, so both are wrapped to copy the entries of
foo tensors.
"""
import functools
from typing import Callable

import torch

_BITS = ("conj", "neg")  # tensor flags get_tensor_metadata reports too; __deepcopy__ resolves them itself


def keep_backend_meta_in_deepcopy() -> None:
    """Wraps the __deepcopy__ of torch.Tensor and of torch.nn.Parameter (its own) once per process."""
    for cls in (torch.Tensor, torch.nn.Parameter):
        if not getattr(cls.__deepcopy__, "_keeps_foo_backend_meta", False):
            cls.__deepcopy__ = _keeping_backend_meta(cls.__deepcopy__)


def _keeping_backend_meta(original: Callable[[torch.Tensor, dict], torch.Tensor]) -> Callable:
    @functools.wraps(original)
    def __deepcopy__(self: torch.Tensor, memo: dict) -> torch.Tensor:
        copied = original(self, memo)
        if self.device.type == "foo" and not self._is_zerotensor():
            entries = {k: v for k, v in torch._utils.get_tensor_metadata(self).items() if k not in _BITS}
            if entries:
                torch._utils.set_tensor_metadata(copied, entries)
        return copied

    __deepcopy__._keeps_foo_backend_meta = True
    return __deepcopy__
