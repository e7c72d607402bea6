"""Change-batch rules (authd.model.changes): Route 53's semantics and wording, with no store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from authd.model import changes as rules
from authd.model.changes import Accepted, Rejected, plan_batch
from authd.model.records import AliasTarget, RecordKey, RecordSet
from authd.store.contract import Action, Change

ZID, ORIGIN = "Z0API0AWS", "api.aws."


class View:
    """A tiny ZoneView over a list of record sets."""

    def __init__(self, sets):
        self.sets = list(sets)

    def at(self, name):
        return [rs for rs in self.sets if rs.name == name]


SOA = RecordSet(ORIGIN, "SOA", 900, ("ns1.api.aws. hostmaster.api.aws. 1 7200 900 1209600 60",))
NS = RecordSet(ORIGIN, "NS", 172800, ("ns1.api.aws.", "ns2.api.aws."))


def a(name, *values, ttl=60, **kw):
    return RecordSet(name, "A", ttl, values or ("192.0.2.1",), **kw)


def alias(name, target, rtype="A", zone=ZID, **kw):
    return RecordSet(name, rtype, alias=AliasTarget(target, zone), **kw)


def plan(changes, sets=()):
    return plan_batch(ZID, ORIGIN, changes, View([SOA, NS, *sets]))


def C(rs):
    return Change(Action.CREATE, rs)


def D(rs):
    return Change(Action.DELETE, rs)


def U(rs):
    return Change(Action.UPSERT, rs)


def messages(result):
    assert isinstance(result, Rejected), result
    return list(result.messages)


def test_create_then_exists_uses_route53_wording():
    x = a("x.api.aws.")
    assert plan([C(x)]) == Accepted((x,), ())
    assert messages(plan([C(x)], [x])) == [
        "Tried to create resource record set [name='x.api.aws.', type='A'] but it already exists"
    ]


def test_delete_missing_and_mismatch():
    x = a("x.api.aws.")
    assert messages(plan([D(x)])) == [
        "Tried to delete resource record set [name='x.api.aws.', type='A'] but it was not found"
    ]
    for other in (x.replace(ttl=61), a("x.api.aws.", "192.0.2.9")):
        assert messages(plan([D(other)], [x])) == [
            "Tried to delete resource record set [name='x.api.aws.', type='A'] but the values "
            "provided do not match the current values"
        ]
    assert plan([D(x)], [x]) == Accepted((), (x.key,))


def test_delete_matches_values_as_a_set():
    x = a("x.api.aws.", "192.0.2.1", "192.0.2.2")
    assert plan([D(a("x.api.aws.", "192.0.2.2", "192.0.2.1"))], [x]) == Accepted((), (x.key,))


def test_weighted_members_name_their_set_identifier():
    m = a("p.api.aws.", set_identifier="lb-1", weight=10)
    assert messages(plan([D(m.replace(weight=11))], [m])) == [
        "Tried to delete resource record set [name='p.api.aws.', type='A', set-identifier='lb-1'] "
        "but the values provided do not match the current values"
    ]
    assert messages(plan([C(m)], [m]))[0].endswith(
        "[name='p.api.aws.', type='A', set-identifier='lb-1'] but it already exists"
    )


def test_delete_exact_includes_alias_target():
    leaf = a("leaf.api.aws.")
    al = alias("e.api.aws.", "leaf.api.aws.")
    other = alias("e.api.aws.", "leaf2.api.aws.")
    assert messages(plan([D(other)], [leaf, al]))[0].endswith("do not match the current values")


def test_lock_compare_and_swap_is_delete_then_create():
    mine = RecordSet("_lock.api.aws.", "TXT", 60, ('"enactor-a 100"',))
    theirs = mine.replace(values=('"enactor-b 200"',))
    new = mine.replace(values=('"enactor-a 300"',))
    assert plan([D(mine), C(new)], [mine]) == Accepted((new,), ())
    # someone else holds it: the DELETE fails and so does the whole batch
    msgs = messages(plan([D(mine), C(new)], [theirs]))
    assert msgs == [
        "Tried to delete resource record set [name='_lock.api.aws.', type='TXT'] but the values "
        "provided do not match the current values",
        "Tried to create resource record set [name='_lock.api.aws.', type='TXT'] but it already exists",
    ]


def test_all_errors_reported_in_batch_order():
    x, y = a("x.api.aws."), a("y.api.aws.")
    msgs = messages(plan([C(x), D(y), C(a("z.api.aws."))], [x]))
    assert msgs == [
        "Tried to create resource record set [name='x.api.aws.', type='A'] but it already exists",
        "Tried to delete resource record set [name='y.api.aws.', type='A'] but it was not found",
    ]


@pytest.mark.parametrize(
    "actions",
    [
        (Action.CREATE, Action.CREATE),
        (Action.DELETE, Action.DELETE),
        (Action.UPSERT, Action.UPSERT),
        (Action.CREATE, Action.DELETE),
        (Action.UPSERT, Action.DELETE),
        (Action.DELETE, Action.CREATE, Action.DELETE),
    ],
)
def test_same_record_set_twice_is_an_invalid_set_of_changes(actions):
    x = a("x.api.aws.")
    msgs = messages(plan([Change(act, x) for act in actions], [x]))
    assert "The request contains an invalid set of changes for a resource record set 'A x.api.aws.'" in msgs
    assert msgs.count(rules.msg_twice(x.key)) == 1


def test_alias_target_must_exist_after_the_batch():
    tree = a("plan-2.e.api.aws.", set_identifier="lb1", weight=1)
    flip = alias("e.api.aws.", "plan-2.e.api.aws.")
    assert messages(plan([C(flip)])) == [
        "Tried to create an alias that targets plan-2.e.api.aws., type A in zone Z0API0AWS, "
        "but that target was not found"
    ]
    # the same batch may build the target and point at it, in either order
    assert isinstance(plan([C(flip), C(tree)]), Accepted)
    assert isinstance(plan([C(tree), U(flip)]), Accepted)
    # the target type must match: an AAAA alias needs an AAAA target
    assert messages(plan([C(tree), C(alias("e.api.aws.", "plan-2.e.api.aws.", "AAAA"))]))[0].startswith(
        "Tried to create an alias that targets plan-2.e.api.aws., type AAAA"
    )


def test_alias_outside_zone_or_other_zone():
    out = alias("e.api.aws.", "elsewhere.example.", zone="ZELSE")
    assert messages(plan([C(out)]))[0].endswith("but the alias target name does not lie within the target zone")
    leaf = a("leaf.api.aws.")
    wrong_zone = alias("e.api.aws.", "leaf.api.aws.", zone="ZOTHER")
    assert messages(plan([C(wrong_zone)], [leaf]))[0].endswith("but that target was not found")


def test_deleting_an_alias_target_is_allowed_and_leaves_it_dangling():
    """Route 53 checks targets when an alias is written, not when the target is deleted:
    the 2025 cleaner's delete of the active tree succeeded. The cleaner must protect it."""
    leaf = a("plan-1.e.api.aws.", set_identifier="lb1", weight=1)
    al = alias("e.api.aws.", "plan-1.e.api.aws.")
    assert plan([D(leaf)], [leaf, al]) == Accepted((), (leaf.key,))


def test_weighted_and_plain_cannot_share_name_and_type():
    plain = a("w.api.aws.")
    member = a("w.api.aws.", set_identifier="lb1", weight=5)
    assert messages(plan([C(member)], [plain])) == [
        "RRSet with DNS name w.api.aws., type A, SetIdentifier lb1 cannot be created as a "
        "non-weighted set exists with the same name and type."
    ]
    assert messages(plan([C(plain)], [member])) == [
        "RRSet with DNS name w.api.aws., type A cannot be created as other RRSets exist with the "
        "same name and type."
    ]
    # replacing one by the other in one batch is fine
    assert isinstance(plan([D(plain), C(member)], [plain]), Accepted)


def test_cname_conflicts_and_apex():
    txt = RecordSet("c.api.aws.", "TXT", 60, ('"x"',))
    cname = RecordSet("c.api.aws.", "CNAME", 60, ("target.example.",))
    assert "conflicts with other records" in messages(plan([C(cname)], [txt]))[0]
    assert "conflicting RRSet of type CNAME" in messages(plan([C(txt)], [cname]))[0]
    apex = RecordSet(ORIGIN, "CNAME", 60, ("target.example.",))
    assert any("not permitted at apex" in m for m in messages(plan([C(apex)])))


def test_name_outside_zone():
    assert messages(plan([C(a("x.example.com."))])) == [
        "RRSet with DNS name x.example.com. is not permitted in zone api.aws."
    ]
    # a label boundary, not a string suffix
    assert messages(plan([C(a("xapi.aws."))]))[0].startswith("RRSet with DNS name xapi.aws.")


def test_apex_soa_and_ns_cannot_be_deleted():
    assert messages(plan([D(SOA)])) == [rules.MSG_ONE_SOA]
    assert messages(plan([D(NS)])) == [rules.MSG_APEX_NS]
    assert isinstance(plan([U(NS.replace(values=("ns9.api.aws.",)))]), Accepted)


def test_invalid_record_sets_are_reported():
    msgs = messages(plan([C(a("x.api.aws.", set_identifier="a", weight=300))]))
    assert msgs == ["Weight 300 is out of range 0..255"]


def test_records_limit_counts_upsert_twice():
    batch = [C(a(f"h{i}.api.aws.")) for i in range(1000)]
    assert isinstance(plan(batch), Accepted)
    assert messages(plan(batch + [C(a("one-more.api.aws."))])) == ["Number of records limit of 1000 exceeded."]
    upserts = [U(a(f"h{i}.api.aws.")) for i in range(501)]
    assert messages(plan(upserts)) == ["Number of records limit of 1000 exceeded."]
    assert isinstance(plan(upserts[:500]), Accepted)


def test_value_characters_limit_counts_upsert_twice():
    def txt(i, n):
        return RecordSet(f"t{i}.api.aws.", "TXT", 60, ('"' + "x" * (n - 2) + '"',))

    ok = [C(txt(i, 250)) for i in range(128)]  # 32,000 characters exactly
    assert isinstance(plan(ok), Accepted)
    assert messages(plan(ok + [C(txt(999, 3))])) == ["RDATA character limit of 32000 exceeded."]
    assert messages(plan([U(txt(i, 250)) for i in range(65)])) == [
        "RDATA character limit of 32000 exceeded."
    ]
    assert isinstance(plan(ok, ), Accepted)
    assert isinstance(plan_batch(ZID, ORIGIN, ok + ok[:1], View([SOA, NS]), limits=False), Rejected)
    assert isinstance(
        plan_batch(ZID, ORIGIN, [C(txt(i, 250)) for i in range(200)], View([SOA, NS]), limits=False),
        Accepted,
    )


def test_empty_batch_is_invalid_input():
    assert plan([]) == Rejected(("The request must contain at least one change",), code="InvalidInput")


def test_soa_serial_bump_and_rfc1982_wrap():
    assert rules.soa_serial(rules.bump_soa(SOA, ())) == 2
    big = rules.with_serial(SOA, 2**32 - 1)
    assert rules.soa_serial(rules.bump_soa(big, ())) == 1
    # an explicit newer serial in the batch is kept; an older one is overridden
    assert rules.soa_serial(rules.bump_soa(SOA, (rules.with_serial(SOA, 500),))) == 500
    assert rules.soa_serial(rules.bump_soa(rules.with_serial(SOA, 900), (SOA,))) == 901


def test_ids_are_readable_and_stable():
    assert rules.zone_id_for("api.aws.") == "Z0API0AWS"
    assert rules.zone_id_for("dynamodb.us-east-1.api.aws.").startswith("Z0DYNAMODB0US0EAST0")
    assert rules.change_id_for(17) == "C000000000017"
    assert rules.seq_of_change_id("/change/C000000000017") == 17
    assert rules.seq_of_change_id("nonsense") is None
    assert rules.clean_zone_id("/hostedzone/Z0API0AWS") == "Z0API0AWS"


def test_zone_id_from_the_files_own_aliases():
    from authd.zonefiles.zonefile import load_zone_dir

    zones = {z.origin: z for z in load_zone_dir(Path(__file__).parent.parent / "zones")}
    assert rules.zone_id_from_aliases("api.aws.", zones["api.aws."].record_sets) == "Z0API0AWS"
    assert rules.zone_id_from_aliases("amazonaws.com.", zones["amazonaws.com."].record_sets) == "Z0AMAZONAWS"
    assert rules.zone_id_from_aliases("example.test.", zones["example.test."].record_sets) is None


def test_accepted_lists_each_key_once_with_its_final_value():
    x = a("x.api.aws.")
    x2 = a("x.api.aws.", "192.0.2.2")
    result = plan([D(x), C(x2), U(a("y.api.aws."))], [x])
    assert isinstance(result, Accepted)
    assert result.puts == (x2, a("y.api.aws."))
    assert result.deletes == ()
    assert RecordKey("x.api.aws.", "A") not in result.deletes


def test_changes_module_is_pure():
    tree = ast.parse(Path(rules.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not imported & {"trio", "socket", "time", "sqlite3", "asyncio"}


class _Base:
    def __init__(self, sets: list[RecordSet]):
        self.sets = sets

    def at(self, name: str) -> list[RecordSet]:
        return [rs for rs in self.sets if rs.name == name]

    def get(self, name: str, rtype: str) -> list[RecordSet]:
        return [rs for rs in self.at(name) if rs.rtype == rtype]


def test_others_at_counts_what_the_batch_leaves_at_the_name_and_type():
    """`_Overlay.others_at` is `len(sets(...)) > 1`, with shortcuts for a new name and for an
    UPSERT replacing the one set there; each case against the long way."""
    plain = RecordSet("p.example.test.", "A", 60, ("192.0.2.1",))
    w1 = RecordSet("w.example.test.", "A", 60, ("192.0.2.2",), set_identifier="one", weight=1)
    w2 = RecordSet("w.example.test.", "A", 60, ("192.0.2.3",), set_identifier="two", weight=1)
    cases = [
        ([plain], [plain.replace(values=("192.0.2.9",))], False),  # replaced in place
        ([], [plain], False),  # a new name
        ([w1], [w1.replace(weight=5)], False),  # one weighted set, replaced
        ([w1], [w2], True),  # a second identifier beside the first
        ([w1, w2], [w1.replace(weight=5)], True),  # one of two replaced: still two
        ([w1], [RecordSet("w.example.test.", "A", 60, ("192.0.2.4",))], True),  # plain beside weighted
    ]
    for base, written, want in cases:
        overlay = rules._Overlay(_Base(base))
        for rs in written:
            overlay.write(rs.key, rs)
        rs = written[-1]
        assert overlay.others_at(rs.name, rs.rtype) is want, (base, written)
        assert (len(overlay.sets(rs.name, rs.rtype)) > 1) is want
    overlay = rules._Overlay(_Base([w1, w2]))
    overlay.write(w2.key, None)  # deleted: w1 is alone again
    overlay.write(w1.key, w1.replace(weight=3))
    assert overlay.others_at(w1.name, "A") is False


def test_batch_size_counts_records_and_characters_an_upsert_twice():
    sets = [RecordSet("a.example.test.", "A", 60, ("192.0.2.1",)),
            RecordSet("b.example.test.", "TXT", 60, ('"one"', '"three"')),
            RecordSet("c.example.test.", "A", alias=AliasTarget("a.example.test.", "Z1"))]
    batch = [Change(Action.CREATE, sets[0]), Change(Action.UPSERT, sets[1]), Change(Action.UPSERT, sets[2]),
             Change(Action.DELETE, sets[1])]
    want_records = sum((2 if ch.action is Action.UPSERT else 1) * max(1, len(ch.rrset.values)) for ch in batch)
    want_chars = sum((2 if ch.action is Action.UPSERT else 1) * sum(len(v) for v in ch.rrset.values) for ch in batch)
    assert rules.batch_size(batch) == (want_records, want_chars) == (1 + 4 + 2 + 2, 9 + 24 + 0 + 12)
