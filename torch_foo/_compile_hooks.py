"""Registers foo with TorchDynamo as dynamo is first imported: the device interface after
``torch._dynamo.device_interface`` has run, the tracing of foo streams and events once all of ``torch._dynamo`` has.

Dynamo has no hook for a PrivateUse1 backend, and importing dynamo with torch_foo would cost seconds, so an import
finder runs each registration right after its module has run (or at once if that module is already loaded).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any, Callable


def _call_in_dynamo_module(function: str) -> Callable[[], None]:
    """A registration: torch_foo._dynamo's `function`, called when it exists. It does not while that module is itself
    being imported (it imports dynamo, which can run registrations first): the module then registers the interface as
    its import ends, and foo streams break the graph."""

    def register() -> None:
        from . import _dynamo

        run = getattr(_dynamo, function, None)
        if run is not None:
            run()

    return register


# module -> what registers foo with it once the module has run
_AFTER_IMPORT = {
    "torch._dynamo.device_interface": _call_in_dynamo_module("register"),
    "torch._dynamo": _call_in_dynamo_module("trace_streams_in_graph"),
}


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, pending: dict[str, Callable[[], None]]) -> None:
        self.pending = pending

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        register = self.pending.pop(name, None)
        if register is None:
            return None
        if not self.pending:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            register()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    if any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        return
    pending = {}
    for name, register in _AFTER_IMPORT.items():
        if name in sys.modules:
            register()
        else:
            pending[name] = register
    if pending:
        sys.meta_path.insert(0, _RegisterAfterImport(pending))
