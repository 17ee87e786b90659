"""foo's device interface for TorchDynamo and Inductor (``torch._dynamo.device_interface``), as CUDA's, and the
tracing of foo streams and events into the graph, as CUDA's are traced.

Registered when ``torch._dynamo.device_interface`` and ``torch._dynamo`` are first imported (``_compile_hooks``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch._dynamo.device_interface import DeviceInterface, caching_worker_current_devices, \
    caching_worker_device_properties, register_interface_for_device

from . import device_module as foo


class FooInterface(DeviceInterface):
    device = foo.device  # type: ignore[assignment]
    # Subclasses of torch.Event and torch.Stream, as CUDA's: dynamo recognises stream and event objects by them.
    Event = foo.Event  # type: ignore[assignment]
    Stream = foo.Stream  # type: ignore[assignment]

    class Worker:
        """Device queries that work in Inductor's compile workers (answers recorded in the parent process)."""

        @staticmethod
        def set_device(device: int) -> None:
            caching_worker_current_devices["foo"] = device

        @staticmethod
        def current_device() -> int:
            if "foo" in caching_worker_current_devices:
                return caching_worker_current_devices["foo"]
            return foo.current_device()

        @staticmethod
        def get_device_properties(device: torch.types.Device = None) -> Any:
            index = FooInterface.Worker.current_device() if device is None else foo._index(device)
            if "foo" not in caching_worker_device_properties:
                caching_worker_device_properties["foo"] = [
                    foo.get_device_properties(i) for i in range(foo.device_count())
                ]
            return caching_worker_device_properties["foo"][index]

    current_device = staticmethod(foo.current_device)
    set_device = staticmethod(foo.set_device)
    device_count = staticmethod(foo.device_count)
    is_available = staticmethod(foo.is_available)
    stream = staticmethod(foo.stream)  # type: ignore[assignment]
    current_stream = staticmethod(foo.current_stream)
    set_stream = staticmethod(foo.set_stream)  # type: ignore[assignment]
    synchronize = staticmethod(foo.synchronize)
    get_device_properties = staticmethod(foo.get_device_properties)  # type: ignore[assignment]
    memory_allocated = staticmethod(foo.memory_allocated)
    exchange_device = staticmethod(torch._C._accelerator_exchangeDevice)
    maybe_exchange_device = staticmethod(torch._C._accelerator_maybeExchangeDevice)

    @staticmethod
    def _set_stream_by_id(stream_id: int, device_index: int, device_type: int) -> None:
        foo.set_stream(foo.Stream(stream_id=stream_id, device_index=device_index, device_type=device_type))

    @staticmethod
    def get_raw_stream(device_idx: int) -> int:
        return foo.current_stream(device_idx).stream_id

    @staticmethod
    def get_compute_capability(device: torch.types.Device = None) -> str:
        return "foo"  # one kind of chip; Inductor only compares capabilities for its Triton backends

    @staticmethod
    def is_bf16_supported(including_emulation: bool = False) -> bool:
        return foo.is_bf16_supported()


def register() -> None:
    register_interface_for_device("foo", FooInterface)
    for index in range(foo.device_count()):
        register_interface_for_device(f"foo:{index}", FooInterface)


register()  # also when this module is imported first, before dynamo (see _compile_hooks)


# Whether dynamo puts foo's stream and event calls in the graph (set once dynamo is imported).
streams_in_graph = False


def trace_streams_in_graph() -> None:
    """Has dynamo put foo's stream and event calls in the graph as it puts CUDA's (``torch.ops.streams.*``), instead
    of tracing them as Python and breaking the graph. Dynamo names CUDA's functions and classes in its own tables;
    foo's get the same entries. A dynamo without those tables (torch 2.11) keeps breaking the graph around them."""
    try:
        from torch._dynamo.variables.torch import TorchInGraphFunctionVariable
        from torch._dynamo.variables.user_defined import UserDefinedClassVariable

        handlers = TorchInGraphFunctionVariable._get_handlers()
        in_graph_classes = UserDefinedClassVariable._in_graph_classes()
        as_cuda = {foo.stream: handlers[torch.cuda.stream],
                   foo.current_stream: handlers[torch.accelerator.current_stream],
                   foo.synchronize: handlers[torch.accelerator.synchronize]}
    except (ImportError, AttributeError, KeyError):
        return
    global streams_in_graph
    streams_in_graph = True
    for function, handler in as_cuda.items():
        torch.compiler.allow_in_graph(function)  # traced as a torch function, which the handler then handles
        handlers[function] = handler
    in_graph_classes.update({foo.Stream, foo.Event})  # constructed at trace time, as torch.cuda.Stream and Event
