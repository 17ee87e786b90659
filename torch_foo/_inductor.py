"""Inductor on foo: the C++ (CPU) code generator, its kernels launched on device memory as device code.

The chip's math library is ATen's CPU kernels, so Inductor's C++ backend (``CppScheduling``) is foo's kernel
compiler. Its kernels dereference the raw pointers of their tensor arguments, and a foo pointer is a device address the
host cannot touch: the wrapper code therefore launches each kernel through :func:`launch`, which enters the device's
kernel scope (device current, the stream's queued work drained, CPU allocations routed to the device) and passes the
kernel CPU aliases over the runtime's host view of the same memory. Allocation, extern kernels (``mm``, ``addmm``,
convolutions) and fallback ops run as ordinary foo ops.

Inductor imports this module through ``torch.foo.Scheduling`` (its hook for PrivateUse1 backends) the first time it
compiles a graph, so importing torch_foo does not import Inductor. A few of Inductor's device-type checks are
redirected so that foo's code is generated as CPU's (below).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch._inductor import ir, scheduler, select_algorithm
from torch._inductor import utils as inductor_utils
from torch._inductor.codegen import common as codegen_common
from torch._inductor.codegen.common import DeviceOpOverrides, register_backend_for_device, \
    register_device_op_overrides
from torch._inductor.codegen.cpp import CppScheduling
from torch._inductor.codegen.cpp_wrapper_cpu import CppWrapperCpu
from torch._inductor.codegen.wrapper import PythonWrapperCodegen, SubgraphPythonWrapperCodegen
from torch._inductor.codegen.wrapper_fxir import WrapperFxCodegen
from torch._inductor.kernel import mm_common
from torch._inductor.scheduler import BaseSchedulerNode
from torch._inductor.virtualized import V

from . import _inductor_config

_enter_kernel_scope = torch.ops.foo._enter_kernel_scope
_exit_kernel_scope = torch.ops.foo._exit_kernel_scope


def launch(kernel: Callable[..., Any], device: int, name: str, *args: Any) -> None:
    """Runs a generated C++ kernel on foo:``device`` with its foo tensor arguments seen through the host view
    (``name``: the kernel's name in profiler traces)."""
    positions = [i for i, arg in enumerate(args) if isinstance(arg, torch.Tensor)]
    views = _enter_kernel_scope(device, [args[i] for i in positions], name)
    try:
        kernel_args = list(args)
        for i, view in zip(positions, views):
            kernel_args[i] = view
        kernel(*kernel_args)
    finally:
        _exit_kernel_scope()


def get_raw_stream(device: int) -> int:
    return torch.foo.current_stream(device).stream_id


class FooDeviceOpOverrides(DeviceOpOverrides):
    def import_get_raw_stream_as(self, name: str) -> str:
        return f"from torch_foo._inductor import get_raw_stream as {name}"

    def set_device(self, device_idx: int) -> str:
        return f"torch.foo.set_device({device_idx})"

    def synchronize(self) -> str:
        return "torch.foo.synchronize()"

    def device_guard(self, device_idx: int) -> str:
        return f"torch.foo.device({device_idx})"

    def current_stream(self) -> str:
        return "torch.foo.current_stream()"

    def cpp_kernel_type(self) -> str:
        return "void*"


class FooWrapperCodegen(PythonWrapperCodegen):
    @staticmethod
    def create(is_subgraph, subgraph_name, parent_wrapper, partition_signatures=None):
        if is_subgraph:
            return SubgraphPythonWrapperCodegen(subgraph_name, parent_wrapper, partition_signatures)
        return FooWrapperCodegen()

    def write_header(self) -> None:
        super().write_header()
        self.header.splice("from torch_foo._inductor import launch as launch_foo_kernel")

    def make_allocation(self, name, device, dtype, shape, stride, allocation_shape=None, is_pinned=False):
        line = super().make_allocation(name, device, dtype, shape, stride, allocation_shape, is_pinned)
        if device.type == "foo" and device.index is not None:
            # Allocate on the device by name, not through the current device, which only a device guard sets (a buffer
            # left on another device is refused by the kernel launch, not used).
            line = line.replace("device='foo'", f"device='foo:{device.index}'", 1)
        return line

    def _generate_kernel_call_helper(self, kernel_name, call_args, *, device=None, triton=True, **kwargs):
        device = device or V.graph.get_current_device_or_throw()
        if device.type == "foo" and not triton:
            index = device.index if device.index is not None else 0
            self.writeline(
                self.wrap_kernel_call("launch_foo_kernel", [kernel_name, str(index), repr(kernel_name), *call_args]))
            return
        super()._generate_kernel_call_helper(kernel_name, call_args, device=device, triton=triton, **kwargs)


class FooCppWrapperCodegen(CppWrapperCpu):
    """cpp_wrapper would call the kernels on device pointers from C++, outside any kernel scope: refused."""

    @staticmethod
    def create(*args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("torch.compile on foo supports the Python wrapper only: set "
                                  "torch._inductor.config.cpp_wrapper = False")


def _is_cpp_backend_node(node: BaseSchedulerNode) -> bool:
    device = node.get_device()
    return device is not None and device.type in ("cpu", "foo")


def _is_cpp_backend_ir(x: Any) -> bool:
    return ir.get_device_type(x) in ("cpu", "foo")


# Inductor asks "is this CPU?" where it means "is this code for the C++ backend": the scheduler, to skip the loop
# reordering and reindexing that backend does not support (they assume Triton's iteration groups), and the IR, to pick
# the realization heuristics tuned for C++ kernels. foo's kernels come from that backend, so they answer as CPU's do
# (and the generated code is the same as for CPU).
BaseSchedulerNode.is_cpu = _is_cpp_backend_node  # type: ignore[method-assign]
ir.is_cpu = _is_cpp_backend_ir

# Inductor scopes a GPU device's code with a device guard, inside which it declares the streams of a graph that uses
# several (torch.foo.stream(...) in the compiled code): foo's code gets the guard too (torch 2.11 has no such streams).
if hasattr(scheduler, "device_need_guard"):
    _device_need_guard = scheduler.device_need_guard

    def _foo_or_gpu_needs_guard(device_type: str) -> bool:
        return device_type == "foo" or _device_need_guard(device_type)

    scheduler.device_need_guard = _foo_or_gpu_needs_guard


def _on_foo(scheduler_: scheduler.Scheduler) -> bool:
    return scheduler_.current_device is not None and scheduler_.current_device.type == "foo"


_codegen_extern_call = scheduler.Scheduler.codegen_extern_call


def _extern_call_after_pending_kernels(self: scheduler.Scheduler, node: BaseSchedulerNode) -> None:
    if node.get_device() is None and _on_foo(self):
        self.flush()
    _codegen_extern_call(self, node)


# Inductor's C++ backend holds a device's kernels back and writes them out together when a node of another device or
# an extern kernel with a device comes. An op without a device (torch.ops.streams.*: foo's event records and waits,
# synchronize) and a stream switch do not write them out, so kernels issued before would land after the op or in the
# next stream's context: on foo the pending kernels are written out first.
scheduler.Scheduler.codegen_extern_call = _extern_call_after_pending_kernels  # type: ignore[method-assign]
if hasattr(scheduler.Scheduler, "generate_stream_ctx_switching"):  # torch 2.11 has no streams in graphs
    _switch_stream = scheduler.Scheduler.generate_stream_ctx_switching

    def _switch_stream_after_pending_kernels(self: scheduler.Scheduler, node: BaseSchedulerNode) -> None:
        if _on_foo(self) and self.node_to_stream.get(node) != self.current_stream_idx:
            self.flush()
        _switch_stream(self, node)

    scheduler.Scheduler.generate_stream_ctx_switching = _switch_stream_after_pending_kernels  # type: ignore

_select_algorithm = select_algorithm.AlgorithmSelectorCache.__call__


def _select_algorithm_as_cpu(self, name, choices, input_nodes, layout, *args, **kwargs):
    if layout.device.type == "foo":
        kwargs["return_multi_template"] = False
    return _select_algorithm(self, name, choices, input_nodes, layout, *args, **kwargs)


# max-autotune defers a GEMM's choice to benchmarks of each choice fused with its epilogue (a MultiTemplateBuffer),
# which only the Triton backends can run; Inductor skips that for `device.type == "cpu"` (torch 2.11 then fails with
# NotImplementedError in the scheduler's benchmark_fused_nodes), so foo's GEMMs are chosen as CPU's are.
select_algorithm.AlgorithmSelectorCache.__call__ = _select_algorithm_as_cpu  # type: ignore[method-assign]

_device_backend = inductor_utils.get_current_backend


def _current_backend(device_type: str | None = None) -> str:
    if (device_type or V.graph.get_current_device_or_throw().type) == "foo":
        return "cpp"
    return _device_backend(device_type)


# Inductor names a device's code generator by device type, every type but cpu's being Triton's; kernels generated for
# foo are C++ (the dtype and shape bookkeeping of their variables depends on it). The modules that imported the name:
for _module in (inductor_utils, codegen_common, scheduler, mm_common):
    _module.get_current_backend = _current_backend

register_device_op_overrides("foo", FooDeviceOpOverrides())
register_backend_for_device("foo", CppScheduling, FooWrapperCodegen, FooCppWrapperCodegen, WrapperFxCodegen,
                            device_custom_config=_inductor_config)
