"""status, optimize, transform and init through the CLI on both sinks."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import R1, cli, entry, rows, write_bronze


def test_status_optimize_transform(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(s, s) for s in range(20)] + ["{bad"])
    assert cli("run", "-e", "entries", "--lake", str(tmp_path), "--target", target_url).returncode == 0

    st = cli("status", "-e", "entries", "--lake", str(tmp_path), "--target", target_url, "--json")
    assert st.returncode == 0, st.stderr
    report = json.loads(st.stdout)["entities"]["entries"]
    assert (report["files_in_lake"], report["files_loaded"], report["rejects"]) == (1, 1, 1)
    assert report["tables"]["core.evo_entries"]["rows"] == 20
    last = report["last_attempt"]
    assert (last["status"], last["files"], last["lines_read"], last["inserted"]) == ("succeeded", 1, 21, 20)
    if target_url.startswith("postgresql"):
        assert report["tables"]["core.evo_entries"]["bytes"] > 0

    opt = cli("optimize", "--target", target_url, "-e", "entries", "--analyze", "--vacuum", "--reindex")
    assert opt.returncode == 0, opt.stderr
    assert "ANALYZE" in opt.stdout and ("VACUUM" in opt.stdout or "CHECKPOINT" in opt.stdout)

    before = rows(target_url, "SELECT entry_id, member_name FROM core.evo_entries ORDER BY 1")
    tr = cli("transform", "-e", "entries", "--target", target_url, "--json")
    assert tr.returncode == 0, tr.stderr
    assert json.loads(tr.stdout)["tables"]["core.evo_entries"]["unchanged"] == 20  # nothing to catch up on
    full = cli("transform", "-e", "entries", "--target", target_url, "--full-refresh", "--json")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["tables"]["core.evo_entries"]["inserted"] == 20
    assert rows(target_url, "SELECT entry_id, member_name FROM core.evo_entries ORDER BY 1") == before
    leftovers = rows(
        target_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'core' AND table_name LIKE '%shadow%'",
    )
    assert leftovers == []
