"""Registers foo's device interface with TorchDynamo when dynamo's ``device_interface`` module is first imported.

Dynamo has no hook for a PrivateUse1 backend's interface, and importing dynamo with torch_foo would cost seconds, so
a one-shot import finder registers it right after that module has run (or at once if dynamo is already loaded).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any

_DEVICE_INTERFACE_MODULE = "torch._dynamo.device_interface"


def _register_device_interface() -> None:
    from . import _dynamo

    _dynamo.register()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != _DEVICE_INTERFACE_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            _register_device_interface()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    if _DEVICE_INTERFACE_MODULE in sys.modules:
        _register_device_interface()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
