"""Drift in ``status``: keys sent that no transform reads, keys read that the last run lacked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from evo_frames import api
from tests.helpers import ENTITIES, rows, write_bronze

FIRST, SECOND = "20260111T031522Z", "20260112T031522Z"


def _member(i: int, run: int) -> dict[str, object]:
    record: dict[str, object] = {
        "idMember": i,
        "idBranch": 1,
        "firstName": f"Ana {run}",
        "gender": None,
        "memberships": [{"idMemberMembership": i * 10, "membershipStatus": "active"}],
    }
    if i % 10 == 0:  # 10 % of the records carry a key no transform reads
        record["loyaltyTier"] = "gold"
    if run == 2 and i % 4 == 0:  # and, from the second run on, one inside memberships[]
        record["memberships"] = [{"idMemberMembership": i * 10, "promoCode": "X"}]
    return record


def _status(target: str, lake: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "evo_frames",
            "status",
            "--entity",
            "members",
            "--target",
            target,
            "--lake",
            str(lake),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_names_the_keys_no_transform_reads(target_url: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_bronze(str(lake), "members", FIRST, [_member(i, 1) for i in range(1, 201)])
    api.run("members", lake=str(lake), target=target_url)
    write_bronze(str(lake), "members", SECOND, [_member(i, 2) for i in range(1, 201)])
    api.run("members", lake=str(lake), target=target_url)

    stored = rows(
        target_url, "SELECT run_id, path, sampled, present FROM evo_meta.key_stats WHERE path = 'loyaltyTier'"
    )
    assert sorted((r["run_id"], r["sampled"], r["present"]) for r in stored) == [(FIRST, 200, 20), (SECOND, 200, 20)]

    as_json = _status(target_url, lake, "--json")
    assert as_json.returncode == 0, as_json.stderr
    drift = json.loads(as_json.stdout)["entities"]["members"]["drift"]
    assert drift["last_run"] == SECOND and drift["sampled"] == 200
    unread = {u["key"]: u for u in drift["unread"]}
    assert unread["loyaltyTier"] == {"key": "loyaltyTier", "share": 0.1, "first_run": FIRST}
    assert unread["memberships[].promoCode"] == {"key": "memberships[].promoCode", "share": 0.25, "first_run": SECOND}
    assert set(unread) == {"loyaltyTier", "memberships[].promoCode"}
    assert "lastName" in drift["absent"] and "contacts" in drift["absent"]
    assert "firstName" not in drift["absent"] + drift["null_only"]
    assert "gender" in drift["null_only"]
    # keys of an absent parent are not listed one by one
    assert not any(k.startswith("contacts[].") for k in drift["absent"])

    text = _status(target_url, lake)
    assert text.returncode == 0, text.stderr
    assert "loyaltyTier (10.0%, since 20260111T031522Z)" in text.stdout
    assert "memberships[].promoCode (25.0%, since 20260112T031522Z)" in text.stdout
    assert "gender" in text.stdout.split("only null in the last run:")[1]


def test_read_keys_come_from_the_record_type() -> None:
    from evo_frames.drift import read_paths

    paths = read_paths(ENTITIES["members"].record)
    assert {"idMember", "memberships", "memberships[].idMemberMembership", "contacts[].idPhone"} <= set(paths)
    assert "memberships[].freezes[].idFreeze" in paths and "employeeConsultant.idEmployee" in paths
