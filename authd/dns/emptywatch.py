"""Exactly when a name's answer went empty, and when it came back.

Pure core: no sockets, no clock (the caller passes the time). After each journal entry a serving
index applies, `EmptyWatch.check` asks that index (`ServingIndex.resolve_all`: every weighted
pick) whether each watched (name, type) still resolves to at least one address, and returns a
`Transition` for each that changed. So an outage window is measured at the change that caused
it, not at the next dig sample (issue 14, problem 8). `authd serve --watch-empty NAME:TYPE
--watch-log FILE` writes these as JSON lines; `enactor outage` reads them after every step.

"Empty" is what the 2025 clients saw: NOERROR (or any rcode) with zero answer records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class Resolves(Protocol):
    def resolve_all(self, qname: str, qtype: str) -> list[tuple[str, tuple[str, ...]]]: ...


@dataclass(frozen=True)
class Transition:
    t: float  # when the index applied the entry (the caller's clock)
    name: str
    rtype: str
    empty: bool  # True: answers became empty; False: answers came back
    seq: int  # the journal position of the entry that did it

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_line(cls, line: str) -> Transition:
        d: dict[str, Any] = json.loads(line)
        return cls(float(d["t"]), str(d["name"]), str(d["rtype"]), bool(d["empty"]), int(d["seq"]))


def parse_watch(text: str) -> tuple[str, str]:
    """`dynamodb.us-east-1.api.aws:AAAA` -> ("dynamodb.us-east-1.api.aws.", "AAAA")."""
    name, sep, rtype = text.rpartition(":")
    if not sep or not name or not rtype.isalpha():
        raise ValueError(f"expected NAME:TYPE (e.g. dynamodb.us-east-1.api.aws:A), got {text!r}")
    return (name if name.endswith(".") else name + "."), rtype.upper()


class EmptyWatch:
    """Remembers, per watched (name, type), whether its answer is empty."""

    def __init__(self, watched: Iterable[tuple[str, str]]):
        self.state: dict[tuple[str, str], bool | None] = dict.fromkeys(watched)

    def check(self, index: Resolves, t: float, seq: int) -> list[Transition]:
        """Transitions since the last check. The first check only records the state, unless
        a name starts out empty (then it is reported: an outage present from the start)."""
        out: list[Transition] = []
        for (name, rtype), was in self.state.items():
            empty = not any(values for _, values in index.resolve_all(name, rtype))
            if empty != was and (was is not None or empty):
                out.append(Transition(t, name, rtype, empty, seq))
            self.state[(name, rtype)] = empty
        return out
