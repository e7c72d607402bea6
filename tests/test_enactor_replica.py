"""Eventual consistency: reading the lock through DNS is the documented wrong way.

"You check the presence of this [lock], but not through the data plane because that's
eventually consistent and you're not going to do the right thing. But if you go through the
control API, you will transactionally know if that's there or not and if you hold the lock."
(DAT453, the DNS management system.)

A DNS replica here is authd's real serving index (`ServingIndex`) fed from the store's journal
through authd's real propagation delay model (`authd.store.replica.DelayLine`), on virtual time.
"""

from __future__ import annotations

from authd.dns.index import ServingIndex
from authd.model.records import RecordSet
from authd.store.contract import Action, Change, InvalidChangeBatch
from authd.store.memstore import MemoryStore
from authd.store.replica import DelayLine
from enactor import machine as m
from enactor.checker.testing import DUAL, T0, seeded_store
from enactor.plan import lock_name, root_name

LOCK = lock_name(DUAL)


class LaggingReplica:
    """A DNS server that hears of each change `delay` seconds late: authd's real propagation
    model (`authd.store.replica.DelayLine`) in front of authd's real serving index, on virtual time."""

    def __init__(self, store: MemoryStore, delay: float):
        self.store = store
        self.line = DelayLine(delay)
        self.index = ServingIndex()
        for entry in store.snapshot():
            self.index.apply(entry)
        self.line.observed_seq = self.index.seq

    def observe(self, now: float) -> None:
        """The replica's follower polls the journal at `now` (as authd's Follower does)."""
        self.line.observe(self.store.journal_since(self.line.observed_seq), now)

    def lock_via_dns(self, now: float) -> tuple[str, int] | None:
        """What an enactor reading the lock through DNS sees at `now` (TXT _lock.<endpoint>)."""
        self.observe(now)
        for entry in self.line.due(now):
            self.index.apply(entry)
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
    replica = LaggingReplica(store, delay=5.0)  # every change reaches this replica 5 s late

    # enactor-a takes the lock at T0 for 10 s, then stalls (a long GC pause).
    va = m.lock_value("enactor-a", int(T0 + 10))
    store.change_batch(zid, [Change(Action.CREATE, m.lock_record(DUAL, va))])
    replica.observe(T0)
    # At T0+20, enactor-b (reading through the API, the right way) sees it expired and takes over.
    now = T0 + 20
    holder, expiry = lock_via_api(store, zid)  # type: ignore[misc]
    assert holder == "enactor-a" and expiry <= now
    vb = m.lock_value("enactor-b", int(now + 10))
    store.change_batch(zid, [Change(Action.DELETE, m.lock_record(DUAL, va)),
                             Change(Action.CREATE, m.lock_record(DUAL, vb))])
    replica.observe(now)

    # One second later enactor-a wakes up and asks "do I still hold the lock?"
    assert lock_via_api(store, zid) == ("enactor-b", int(now + 10))  # the truth: no
    assert replica.lock_via_dns(now + 1) == ("enactor-a", int(T0 + 10))  # the lagging replica: yes
    # Both now "hold" the lock: mutual exclusion is broken for anything acting on that belief.
    # An enactor that trusts the DNS answer and writes without the DELETE-exact preamble
    # (why re-check a lock you "know" you hold?) gets its write in while b holds the lock:
    stale_flip = [Change(Action.UPSERT, RecordSet(DUAL, "A", alias=m.AliasTarget(root_name(1, DUAL), zid)))]
    store.change_batch(zid, stale_flip)  # accepted: two writers at once
    assert lock_via_api(store, zid)[0] == "enactor-b"  # type: ignore[index]


def test_the_api_read_and_the_preamble_keep_exclusion_even_with_a_lagging_replica() -> None:
    store = seeded_store()
    zid = store.find_zone_by_name("api.aws.").id
    replica = LaggingReplica(store, delay=5.0)
    va = m.lock_value("enactor-a", int(T0 + 10))
    vb = m.lock_value("enactor-b", int(T0 + 30))
    store.change_batch(zid, [Change(Action.CREATE, m.lock_record(DUAL, va))])
    replica.observe(T0)
    store.change_batch(zid, [Change(Action.DELETE, m.lock_record(DUAL, va)),
                             Change(Action.CREATE, m.lock_record(DUAL, vb))])
    replica.observe(T0 + 20)
    assert replica.lock_via_dns(T0 + 21) == ("enactor-a", int(T0 + 10))  # still stale
    # The machine's way: every batch starts DELETE-exact(my lock value) + CREATE(new value).
    preamble = [Change(Action.DELETE, m.lock_record(DUAL, va)),
                Change(Action.CREATE, m.lock_record(DUAL, m.lock_value("enactor-a", int(T0 + 40))))]
    flip = [Change(Action.UPSERT, RecordSet(DUAL, "A", alias=m.AliasTarget(root_name(1, DUAL), zid)))]
    try:
        store.change_batch(zid, preamble + flip)
        raise AssertionError("the fenced batch must fail")
    except InvalidChangeBatch as exc:
        assert f"name='{LOCK}'" in exc.messages[0]
    # The replica does catch up, eventually: 5 s after the takeover it shows enactor-b.
    assert replica.lock_via_dns(T0 + 25) == ("enactor-b", int(T0 + 30))  # eventually consistent
