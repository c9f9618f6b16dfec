"""Members, sales and prospects end to end on both sinks: children mirror their parent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import R1, R2, load, rows, sale, scalar, write_bronze


def member(mid: int, status: str = "Active", contacts: Any = None, memberships: Any = None) -> dict[str, Any]:
    return {
        "idMember": mid,
        "firstName": "Ana",
        "lastName": " Souza ",
        "registerDate": "2023-02-14T10:22:31",
        "idBranch": 57,
        "status": status,
        "accessBlocked": None,
        "birthDate": "1994-07-03T00:00:00",
        "contacts": contacts
        if contacts is not None
        else [
            {"idPhone": mid * 10 + 1, "idMember": mid, "idContactType": 2, "description": "(11) 98765-4321"},
            {"idPhone": mid * 10 + 2, "idMember": mid, "idContactType": 4, "description": "ana@example.com"},
            {"idMember": mid, "idContactType": 1, "description": "(11) 3333-4444"},
        ],
        "memberships": memberships
        if memberships is not None
        else [
            {"idMemberMembership": mid * 100 + 1, "idMembership": 12, "name": "PLANO ANUAL", "valueNextMonth": 99.9},
            {"idMemberMembership": mid * 100 + 2, "idMembership": 13, "name": "PLANO MENSAL", "valueNextMonth": 119.9},
        ],
    }


def count(target: str, table: str) -> int:
    return int(scalar(target, f"SELECT count(*) FROM {table}"))


def test_members_children_follow_the_latest_parent(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(
        lake, "members", R1, [member(1), member(2), member(3, memberships=None)], name="2023-02_part-00001.jsonl.gz"
    )
    s = load(lake, target_url, "members")
    assert s.rows_loaded == 3
    assert (count(target_url, "core.evo_members"), count(target_url, "core.evo_member_memberships"),
            count(target_url, "core.evo_member_contacts")) == (3, 6, 9)  # fmt: skip
    got = rows(
        target_url, "SELECT email, cellphone, full_name, access_blocked FROM core.evo_members WHERE member_id = 1"
    )
    assert got == [{"email": "ana@example.com", "cellphone": "(11) 98765-4321", "full_name": "Ana Souza",
                    "access_blocked": False}]  # fmt: skip

    # run 2: member 1 loses a membership and a contact; member 2 is re-sent unchanged; member 3 gets null arrays
    m1 = member(1, status="Inactive")
    m1["memberships"] = m1["memberships"][:1]
    m1["contacts"] = m1["contacts"][1:]
    m3 = {**member(3), "memberships": None, "contacts": None}
    write_bronze(lake, "members", R2, [m1, member(2), m3], name="2023-02_part-00001.jsonl.gz")
    s = load(lake, target_url, "members")
    assert s.tables["core.evo_members"].updated == 2 and s.tables["core.evo_members"].unchanged == 1
    assert rows(target_url, "SELECT status FROM core.evo_members WHERE member_id = 1") == [{"status": "Inactive"}]
    per_member = rows(
        target_url,
        "SELECT member_id, count(*) AS n FROM core.evo_member_memberships GROUP BY member_id ORDER BY member_id",
    )
    assert per_member == [{"member_id": 1, "n": 1}, {"member_id": 2, "n": 2}]
    contacts = rows(target_url, "SELECT member_id, count(*) AS n FROM core.evo_member_contacts GROUP BY 1 ORDER BY 1")
    assert contacts == [{"member_id": 1, "n": 2}, {"member_id": 2, "n": 3}]

    # rerunning a changed copy of run 1 (older) changes nothing: the newer run stays
    write_bronze(lake, "members", R1, [member(1), member(2), member(3)], name="2023-02_part-00002.jsonl.gz")
    s = load(lake, target_url, "members")
    assert s.tables["stg_evo.members_raw"].unchanged == 3
    assert rows(target_url, "SELECT status FROM core.evo_members WHERE member_id = 1") == [{"status": "Inactive"}]
    assert count(target_url, "core.evo_member_contacts") == 5  # contacts without idPhone never duplicate


def test_sales_receivables_update_and_disappear(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "sales", R1, [sale(1), sale(2)], name="2025-02_part-00001.jsonl.gz")
    load(lake, target_url, "sales")
    assert (count(target_url, "core.evo_sales"), count(target_url, "core.evo_sale_items"),
            count(target_url, "core.evo_receivables")) == (2, 2, 6)  # fmt: skip
    write_bronze(lake, "sales", R2, [sale(1, paid=79.9, receivables=2)], name="2025-02_part-00001.jsonl.gz")
    load(lake, target_url, "sales")
    got = rows(target_url, "SELECT receivable_id, CAST(amount_paid AS TEXT) AS paid, status_id, payment_type_id "
                           "FROM core.evo_receivables WHERE sale_id = 1 ORDER BY 1")  # fmt: skip
    assert got == [
        {"receivable_id": 101, "paid": "79.90", "status_id": 2, "payment_type_id": 18},
        {"receivable_id": 102, "paid": None, "status_id": 1, "payment_type_id": 18},
    ]
    assert count(target_url, "core.evo_receivables") == 5
    assert rows(target_url, "SELECT corporate_partnership_id FROM core.evo_sales WHERE sale_id = 1") == [
        {"corporate_partnership_id": 77}
    ]


def test_prospects_and_all_entities(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    p = {"idProspect": 5, "firstName": "Bruno", "lastName": "Alves", "registerDate": "2025-10-20T18:02:44",
         "idMember": None, "responsible": {"name": "Maria", "document": "123", "financialResponsible": True}}  # fmt: skip
    write_bronze(lake, "prospects", R1, [p, {"firstName": "no id"}], name="2025-10_part-00001.jsonl.gz")
    s = load(lake, target_url, "prospects")
    assert (s.rows_loaded, s.rejects) == (1, 1)
    got = rows(target_url, "SELECT full_name, is_converted, responsible_name, responsible_is_financial "
                           "FROM core.evo_prospects")  # fmt: skip
    assert got == [{"full_name": "Bruno Alves", "is_converted": False, "responsible_name": "Maria",
                    "responsible_is_financial": True}]  # fmt: skip
    reject = rows(target_url, "SELECT stage, reason FROM evo_meta.rejects")[0]
    assert reject["stage"] == "transform" and "idProspect" in reject["reason"]
