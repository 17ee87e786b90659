"""How much `import torch_foo` costs on top of `import torch`, warm and cold.

    python benchmarks/bench_import.py [--repeat N] [--no-build] [--edit kernels/unary.cpp]

Unless --no-build, it first times a cold build of the real backend (what the first `import torch_foo` does) from a
temporary copy of csrc/ into a temporary build root, then the build after appending a comment to one .cpp file
(ninja recompiles that unit only). The copy and the build root are passed with TORCH_FOO_SOURCE_DIR and
TORCH_FOO_BUILD_DIR; MAX_JOBS is passed through. The warm runs then use that build; with --no-build they use the
usual cache (built first if needed, untimed).

Warm runs alternate `python -c "import torch"` and `python -c "import torch; import torch_foo"`, N times each, and
report medians and the median of the per-round differences (the overhead); TORCH_DEVICE_BACKEND_AUTOLOAD=0 keeps an installed torch_foo out of `import torch`. Bytecode is
cached in a temporary PYTHONPYCACHEPREFIX, as an installed package would have it, even where PYTHONDONTWRITEBYTECODE
is set.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARM_OVERHEAD_GOAL = 0.060  # seconds
# Builds through torch_foo/_build.py alone, so build times are measured even while the backend fails to load.
BUILD_CODE = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("torch_foo_build", {str(REPO / "torch_foo" / "_build.py")!r})
build = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
build.ensure_built(build.backend_specs().kernels)  # and the state library it links against
"""


def timed_python(code: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"`python -c {code!r}` failed:\n{result.stderr}")
    return elapsed, result


def file_to_edit(source_dir: Path, requested: str | None) -> Path:
    if requested:
        return source_dir / requested
    kernels = sorted((source_dir / "kernels").glob("*.cpp"))
    return kernels[0] if kernels else sorted(source_dir.rglob("*.cpp"))[0]


def compiled_units(ninja_output: str) -> int:
    return len(re.findall(r"^\[\d+/\d+\] CXX ", ninja_output, re.MULTILINE))


def time_builds(env: dict[str, str], workspace: Path, edit: str | None) -> None:
    source_dir = workspace / "csrc"
    shutil.copytree(REPO / "csrc", source_dir, ignore=shutil.ignore_patterns("build", "tests"))  # not CMake's builds
    env.update(TORCH_FOO_SOURCE_DIR=str(source_dir), TORCH_FOO_BUILD_DIR=str(workspace / "build"))
    env.pop("TORCH_FOO_QUIET", None)

    print("cold build with an empty cache ...", flush=True)
    cold, result = timed_python(BUILD_CODE, env)
    total_units = compiled_units(result.stderr)
    print(f"cold build (empty cache, including `import torch`): {cold:7.1f} s  ({total_units} units)")

    edited = file_to_edit(source_dir, edit)
    with open(edited, "a") as source:
        source.write(f"// edited by bench_import.py at {time.time()}\n")
    rebuild, result = timed_python(BUILD_CODE, env)
    print(
        f"rebuild after editing {edited.relative_to(source_dir)}: {rebuild:7.1f} s  "
        f"({compiled_units(result.stderr)} of {total_units} units recompiled; {cold / rebuild:.1f}x faster than cold)"
    )


def time_warm_imports(env: dict[str, str], repeat: int) -> None:
    commands = {"torch": "import torch", "torch_foo": "import torch; import torch_foo"}
    for code in commands.values():  # untimed: builds if needed, fills the bytecode and page caches
        timed_python(code, env)
    times = {name: [] for name in commands}
    for round_number in range(repeat):
        # Back to back, in alternating order, so machine load drifting over the run hits both sides alike.
        order = list(commands.items()) if round_number % 2 == 0 else list(reversed(commands.items()))
        for name, code in order:
            times[name].append(timed_python(code, env)[0])
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    for name, code in commands.items():
        print(f"{code:<32} median {medians[name] * 1000:7.1f} ms  (min {min(times[name]) * 1000:7.1f} ms, n={repeat})")
    # The median of the per-round differences: start-up noise of ~50 ms per process cancels within a round.
    overhead = statistics.median(foo - alone for foo, alone in zip(times["torch_foo"], times["torch"]))
    verdict = "within" if overhead <= WARM_OVERHEAD_GOAL else "OVER"
    print(
        f"warm import torch_foo overhead: {overhead * 1000:+.1f} ms ({medians['torch_foo'] / medians['torch']:.3f}x), "
        f"median of {repeat} paired rounds, {verdict} the {WARM_OVERHEAD_GOAL * 1000:.0f} ms goal"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="warm runs of each command (default 20)")
    parser.add_argument("--no-build", action="store_true", help="skip the cold build and the rebuild (minutes)")
    parser.add_argument("--edit", help="the .cpp to edit for the rebuild, relative to csrc/ (default: first kernel)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_import_") as temporary:
        workspace = Path(temporary)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(workspace / "pycache")
        env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"  # else an installed torch_foo loads within `import torch` itself
        if not args.no_build:
            time_builds(env, workspace, args.edit)
        time_warm_imports(env, args.repeat)


if __name__ == "__main__":
    main()
