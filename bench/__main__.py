"""`python -m bench NAME [args]` runs one benchmark; `python -m bench all` runs them in turn.

Each benchmark is a module `bench/<name>.py` with `main(argv: list[str]) -> int`; it prints
ratios against a peer measured in the same run and rewrites its own section of BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

ONLY_BY_NAME = {"soak"}  # run only when named: `python -m bench soak`, `make soak`


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench {all|" + "|".join(names) + "} [args...]")
        return 0 if argv else 2
    # `all` is `make bench`: the soak has its own target (`make soak`, ten minutes)
    todo = [n for n in names if n not in ONLY_BY_NAME] if argv[0] == "all" else [argv[0]]
    status = 0
    for name in todo:
        if name not in names:
            print(f"unknown benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
            return 2
        print(f"== bench {name}", flush=True)
        status |= importlib.import_module(f"bench.{name}").main(argv[1:] if len(todo) == 1 else [])
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
