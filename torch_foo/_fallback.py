"""The CPU-fallback report and policy (see README: "Fallback")."""
import torch


def fallback_stats() -> dict[str, int]:
    """{aten op name: count} of ops that ran through the CPU fallback since start or the last reset."""
    names, counts = torch.ops.foo.fallback_stats()
    return dict(sorted(zip(names, counts)))


def reset_fallback_stats() -> None:
    torch.ops.foo.reset_fallback_stats()


def fallback_policy() -> str:
    """'allow', 'warn' (once per op) or 'error' (NotImplementedError naming the op); TORCH_FOO_FALLBACK sets it."""
    return torch.ops.foo.fallback_policy()


def set_fallback_policy(policy: str) -> None:
    torch.ops.foo.set_fallback_policy(policy)
