"""Every value present but not typeable (wrong scalar, object, array) is counted, stored per load
and file in evo_meta.cast_failures, and shown by status."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import R1, cli, entry, load, rows, write_bronze

CASTS = (
    "SELECT entity, path, table_name, column_name, failures FROM evo_meta.cast_failures "
    "WHERE load_id = '{}' ORDER BY column_name"
)


def test_every_nulled_value_is_counted_and_stored(tmp_path: Path, target_url: str) -> None:
    path = write_bronze(
        str(tmp_path),
        "entries",
        R1,
        [
            entry(1, 1, idBranch={"x": 1}),
            entry(2, 2, idBranch="abc"),
            entry(3, 3, idBranch=[1, 2]),
            entry(4, 4, dateTurn="garbage"),
            entry(5, 5, idBranch=None, dateTurn=""),  # null and empty are absent values, not failures
        ],
    )
    s = load(tmp_path, target_url)
    expected = {"core.evo_entries.branch_id": 3, "core.evo_entries.entry_date_turn": 1}
    assert s.cast_failures == expected
    stored = rows(target_url, CASTS.format(s.load_id))
    assert [(r["path"], r["table_name"], r["column_name"], r["failures"]) for r in stored] == [
        (path, "core.evo_entries", "branch_id", 3),
        (path, "core.evo_entries", "entry_date_turn", 1),
    ]
    assert rows(target_url, "SELECT count(*) AS n FROM core.evo_entries WHERE branch_id IS NULL") == [{"n": 4}]

    st = cli("status", "-e", "entries", "--lake", str(tmp_path), "--target", target_url, "--json")
    assert json.loads(st.stdout)["entities"]["entries"]["last_attempt"]["cast_failures"] == expected
    text = cli("status", "-e", "entries", "--lake", str(tmp_path), "--target", target_url).stdout
    assert "values stored as NULL (could not be typed): core.evo_entries.branch_id=3" in text

    tr = cli("transform", "-e", "entries", "--target", target_url, "--full-refresh", "--json")
    assert tr.returncode == 0, tr.stderr
    load_id = json.loads(tr.stdout)["load_id"]
    assert json.loads(tr.stdout)["cast_failures"] == expected
    assert [r["failures"] for r in rows(target_url, CASTS.format(load_id))] == [3, 1]


def test_child_values_are_counted(tmp_path: Path) -> None:
    target = f"duckdb://{tmp_path / 't.duckdb'}"
    member = {
        "idMember": 7,
        "idBranch": "x",
        "memberships": [
            {"idMemberMembership": 1, "idMembership": "abc", "startDate": "garbage", "flAllowLocker": "maybe"},
            {"idMemberMembership": 2, "idMembership": 5, "numMembers": "two"},
        ],
        "contacts": [{"idPhone": 3, "idContactType": "mobile", "description": "+55 11"}],
    }
    write_bronze(str(tmp_path), "members", R1, [member])
    s = load(tmp_path, target, "members")
    assert s.cast_failures == {
        "core.evo_members.branch_id": 1,
        "core.evo_member_memberships.membership_id": 1,
        "core.evo_member_memberships.start_date": 1,
        "core.evo_member_memberships.fl_allow_locker": 1,
        "core.evo_member_memberships.num_members": 1,
        "core.evo_member_contacts.contact_type_id": 1,
    }
    assert rows(
        target, "SELECT membership_id, start_date, num_members FROM core.evo_member_memberships ORDER BY 1"
    ) == [
        {"membership_id": 5, "start_date": None, "num_members": None},
        {"membership_id": None, "start_date": None, "num_members": None},
    ]
    stored = rows(target, "SELECT table_name, sum(failures) AS n FROM evo_meta.cast_failures GROUP BY 1 ORDER BY 1")
    assert stored == [
        {"table_name": "core.evo_member_contacts", "n": 1},
        {"table_name": "core.evo_member_memberships", "n": 4},
        {"table_name": "core.evo_members", "n": 1},
    ]
