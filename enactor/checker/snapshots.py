"""Store snapshots numbered by contents, for the state-space searches (`enactor check`, `--cells`).

Pure core (no sockets, no clock). A search keeps one live `MemoryStore` and moves it between
states: `intern` gives the store's current contents a small number (equal contents, one
number: `MemoryStore.state_key`) and saves a snapshot the first time those contents are seen;
`at` brings the store back to a numbered state, restoring only when it is elsewhere.
Both searches (`enactor.checker.check.Explorer`, `enactor.cells.check.CellExplorer`) use it.
"""

from __future__ import annotations

from collections.abc import Hashable

from authd.store.memstore import MemoryState, MemoryStore


class StoreSnapshots:
    """The snapshots of one live store, numbered 0, 1, ... in the order first seen."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._ids: dict[Hashable, int] = {}
        self._snaps: list[MemoryState] = []
        self.cur = -1  # the number of the contents the store holds now; -1 before the first intern

    def __len__(self) -> int:
        return len(self._snaps)

    def intern(self) -> int:
        """The number of the store's current contents (saved on first sight); the store is there."""
        key = self.store.state_key()
        sid = self._ids.get(key)
        if sid is None:
            sid = self._ids[key] = len(self._snaps)
            self._snaps.append(self.store.save())
        self.cur = sid
        return sid

    def at(self, sid: int) -> None:
        """Make the store hold snapshot `sid`'s contents (a restore only if it holds others)."""
        if self.cur != sid:
            self.store.restore(self._snaps[sid])
            self.cur = sid
