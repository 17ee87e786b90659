"""python -m torch_foo [info | rebuild | clean [--all]]: inspect and manage the backend's build cache.

Works without the backend loaded, so it can report on and repair a cache that does not build or load.
"""

import argparse
import sys

from . import _build


def _print_info(spec: _build.BuildSpec) -> None:
    facts = _build.info(spec)
    rows = [
        ("torch", f"{facts['torch']} (git {facts['torch_git']})"),
        ("python ABI", facts["python_abi"]),
        ("compiler", f"{facts['compiler']} ({facts['compiler_path']}): {facts['compiler_version']}"),
        ("sources", facts["source_dir"]),
        ("build key", facts["key"]),
        ("build dir", facts["build_dir"]),
        ("library", facts["library"]),
        ("cached", "yes" if facts["cached"] else "no (the next `import torch_foo` builds it)"),
    ]
    for label, value in rows:
        print(f"{label + ':':<11} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torch_foo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="show the toolchain, build key and directory, and whether a build is cached")
    commands.add_parser("rebuild", help="recompile the backend from scratch")
    clean_parser = commands.add_parser("clean", help="delete the cached build for the current toolchain")
    clean_parser.add_argument("--all", action="store_true", help="delete the builds of every toolchain")
    args = parser.parse_args(argv)

    try:
        spec = _build.backend_spec()
        if args.command == "rebuild":
            print(f"built {_build.build(spec, force=True)}")
        elif args.command == "clean":
            removed = _build.clean(spec, everything=args.all)
            print("\n".join(f"removed {path}" for path in removed) or "nothing to remove")
        else:
            _print_info(spec)
    except (_build.BuildError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
