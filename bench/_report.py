"""Writing a benchmark's own section of BENCHMARKS.md (the file every benchmark updates).

A section runs from its `## ` heading to the next `## ` heading; it is replaced in place, or
appended when the file does not have it yet. Modules starting with `_` are not benchmarks
(`python -m bench` lists only the others)."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def write_section(heading: str, body: str, path: Path = BENCHMARKS, *, keep: str | None = None) -> Path:
    """Replace (or append) the section that starts with `heading` by `body`, which starts with
    that heading itself. Returns the file written.

    `keep` names a subsection heading (`### ...`) inside the section that another benchmark
    writes: the part replaced ends before it, so that subsection stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    body = body.rstrip("\n") + "\n"
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        if keep is not None:
            sub = text.find(f"\n{keep}", start + len(heading), len(text) if nxt == -1 else nxt)
            nxt = sub if sub != -1 else nxt
        text = text[:start] + body + ("\n" + text[nxt + 1:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)
    return path
