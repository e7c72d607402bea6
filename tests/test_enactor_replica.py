"""Eventual consistency: reading the lock through DNS is the documented wrong way.

"You check the presence of this [lock], but not through the data plane because that's
eventually consistent and you're not going to do the right thing. But if you go through the
control API, you will transactionally know if that's there or not and if you hold the lock."
(DAT453, the DNS management system.)

A DNS replica here is authd's real serving index (`ServingIndex`), fed from the store's
journal like every authd server, but lagging a given number of changes behind.
"""

from __future__ import annotations

from authd.index import ServingIndex
from authd.memstore import MemoryStore
from authd.records import RecordSet
from authd.store import Action, Change, InvalidChangeBatch
from enactor import machine as m
from enactor.plan import lock_name, root_name
from enactor.testing import DUAL, T0, seeded_store

LOCK = lock_name(DUAL)


class LaggingReplica:
    """A DNS server that has applied the journal only up to `lag` changes ago."""

    def __init__(self, store: MemoryStore, lag: int):
        self.store, self.lag = store, lag
        self.index = ServingIndex()
        for entry in store.snapshot():
            self.index.apply(entry)

    def catch_up(self) -> None:
        for entry in self.store.journal_since(self.index.seq):
            if entry.seq <= self.store.seq - self.lag:
                self.index.apply(entry)

    def lock_via_dns(self) -> tuple[str, int] | None:
        """What an enactor reading the lock through DNS sees (TXT query for _lock.<endpoint>)."""
        self.catch_up()
        for rcode, values in self.index.resolve_all(LOCK, "TXT"):
            if rcode == "NOERROR" and values:
                return m.parse_lock(values[0])
        return None


def lock_via_api(store: MemoryStore, zid: str) -> tuple[str, int] | None:
    sets = store.get_record_sets(zid, LOCK, "TXT")
    return m.parse_lock(sets[0].values[0]) if sets else None


def test_dns_read_of_the_lock_lets_two_enactors_believe_they_hold_it() -> None:
    store = seeded_store()
    zid = store.find_zone_by_name("api.aws.").id
    replica = LaggingReplica(store, lag=1)

    # enactor-a takes the lock at T0 for 10 s, then stalls (a long GC pause).
    va = m.lock_value("enactor-a", int(T0 + 10))
    store.change_batch(zid, [Change(Action.CREATE, m.lock_record(DUAL, va))])
    # At T0+20, enactor-b (reading through the API, the right way) sees it expired and takes over.
    now = T0 + 20
    holder, expiry = lock_via_api(store, zid)  # type: ignore[misc]
    assert holder == "enactor-a" and expiry <= now
    vb = m.lock_value("enactor-b", int(now + 10))
    store.change_batch(zid, [Change(Action.DELETE, m.lock_record(DUAL, va)),
                             Change(Action.CREATE, m.lock_record(DUAL, vb))])

    # enactor-a wakes up and asks "do I still hold the lock?"
    assert lock_via_api(store, zid) == ("enactor-b", int(now + 10))  # the truth: no
    assert replica.lock_via_dns() == ("enactor-a", int(T0 + 10))  # the lagging DNS replica: yes
    # Both now "hold" the lock: mutual exclusion is broken for anything acting on that belief.
    # An enactor that trusts the DNS answer and writes without the DELETE-exact preamble
    # (why re-check a lock you "know" you hold?) gets its write in while b holds the lock:
    stale_flip = [Change(Action.UPSERT, RecordSet(DUAL, "A", alias=m.AliasTarget(root_name(1, DUAL), zid)))]
    store.change_batch(zid, stale_flip)  # accepted: two writers at once
    assert lock_via_api(store, zid)[0] == "enactor-b"  # type: ignore[index]


def test_the_api_read_and_the_preamble_keep_exclusion_even_with_a_lagging_replica() -> None:
    store = seeded_store()
    zid = store.find_zone_by_name("api.aws.").id
    replica = LaggingReplica(store, lag=1)
    va = m.lock_value("enactor-a", int(T0 + 10))
    vb = m.lock_value("enactor-b", int(T0 + 30))
    store.change_batch(zid, [Change(Action.CREATE, m.lock_record(DUAL, va))])
    store.change_batch(zid, [Change(Action.DELETE, m.lock_record(DUAL, va)),
                             Change(Action.CREATE, m.lock_record(DUAL, vb))])
    assert replica.lock_via_dns() == ("enactor-a", int(T0 + 10))  # still stale
    # The machine's way: every batch starts DELETE-exact(my lock value) + CREATE(new value).
    preamble = [Change(Action.DELETE, m.lock_record(DUAL, va)),
                Change(Action.CREATE, m.lock_record(DUAL, m.lock_value("enactor-a", int(T0 + 40))))]
    flip = [Change(Action.UPSERT, RecordSet(DUAL, "A", alias=m.AliasTarget(root_name(1, DUAL), zid)))]
    try:
        store.change_batch(zid, preamble + flip)
        raise AssertionError("the fenced batch must fail")
    except InvalidChangeBatch as exc:
        assert f"name='{LOCK}'" in exc.messages[0]
    # The replica does catch up, eventually: one more change and it shows enactor-b.
    store.change_batch(zid, [Change(Action.UPSERT, RecordSet("x.api.aws.", "A", ttl=1, values=("192.0.2.1",)))])
    assert replica.lock_via_dns() == ("enactor-b", int(T0 + 30))  # eventually consistent
