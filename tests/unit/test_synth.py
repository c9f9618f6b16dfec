"""Tests of the bronze generator: layout, serialisation, runs and counts, read back with gzip and json."""

from __future__ import annotations

import collections
import datetime
import gzip
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest

from evo_frames import synth

RECORDS = 1_500
PARTS = 150  # small parts and odd batches, so windows hold several parts and batches straddle them
BATCH = 997

DATE_KEY = {"members": "registerDate", "sales": "saleDate", "entries": "date", "prospects": "registerDate"}
ID_KEY = {"members": "idMember", "sales": "idSale", "prospects": "idProspect"}
PATH = re.compile(
    r"/bronze/evo/entity=(?P<entity>\w+)/ingestion_date=(?P<day>\d{4}-\d\d-\d\d)"
    r"/run_id=(?P<run>\d{8}T\d{6}Z)/(?:_manifest\.json|(?P<window>\d{4}-\d\d(?:-\d\d)?)_part-(?P<part>\d{5})\.jsonl\.gz)$"
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{7})?")

# the address fields members and prospects share (reference §1, §4)
ADDRESS = ("address", "number", "complement", "neighborhood", "city", "state", "country", "zipCode")

# every key the reference (API v1 swagger and the v2 keys the loaders read) knows, per object
_ID_NAME = {"id", "name"}
KEYS: dict[str, set[str]] = {
    "members": {
        "idMember",
        "firstName",
        "lastName",
        "registerName",
        "registerLastName",
        "usePreferredName",
        "registerDate",
        "lastAccessDate",
        "conversionDate",
        "updateDate",
        "idBranch",
        "branchName",
        "accessBlocked",
        "blockedReason",
        "penalized",
        "document",
        "documentId",
        "cpf",
        "passport",
        "maritalStatus",
        "gender",
        "birthDate",
        *ADDRESS,
        "addressNumber",
        "accessCardNumber",
        "status",
        "membershipStatus",
        "totalFitCoins",
        "idEmployeeConsultant",
        "nameEmployeeConsultant",
        "idEmployeeInstructor",
        "nameEmployeeInstructor",
        "idEmployeePersonalTrainer",
        "nameEmployeePersonalTrainer",
        "employeeConsultant",
        "employeeInstructor",
        "employeePersonal",
        "photoUrl",
        "photo",
        "idMemberMigration",
        "memberMigrationId",
        "gympassId",
        "codeTotalpass",
        "userIdGurupass",
        "clientWithPromotionalRestriction",
        "personalTrainer",
        "personalType",
        "cref",
        "crefExpirationDate",
        "contacts",
        "memberships",
        "responsibles",
    },
    "contacts": {
        "idPhone",
        "idMember",
        "idEmployee",
        "idProspect",
        "idProvider",
        "idContactType",
        "contactType",
        "description",
        "ddi",
        "typeDescription",
    },
    "memberships": {
        "idMember",
        "idMembership",
        "idMemberMembership",
        "idMemberMembershipRenewed",
        "numMembers",
        "idSale",
        "idCategoryMembership",
        "numberSuspensionTimes",
        "maxSuspensionDays",
        "minimumSuspensionDays",
        "disponibleSuspensionDays",
        "disponibleSuspensionTimes",
        "daysLeftToFreeze",
        "bioimpedanceAmount",
        "weeklyLimit",
        "concludedSessions",
        "pendingSessions",
        "scheduledSessions",
        "pendingRepositions",
        "repositionsTotal",
        "bonusSessions",
        "startDate",
        "endDate",
        "cancelDate",
        "nextCharge",
        "saleDate",
        "loyaltyEndDate",
        "assessmentEndDate",
        "acceptanceDate",
        "name",
        "membershipStatus",
        "contractPrinting",
        "valueNextMonth",
        "originalValue",
        "flRenewed",
        "flAllowLocker",
        "flAdditionalMembership",
        "signedTerms",
        "limitless",
        "freezes",
        "sessions",
    },
    "freezes": {
        "idFreeze",
        "idEmployee",
        "daysFreeze",
        "startSuspend",
        "endSuspend",
        "unlockDate",
        "reason",
        "flUseMembershipFreezeDays",
    },
    "sessions": {"idSession", "expirationDate", "flBonusSession"},
    "responsibles": {
        "idResponsible",
        "idMember",
        "idMemberResponsible",
        "name",
        "cpf",
        "email",
        "phone",
        "observation",
        "acessFiti",
        "financialResponsible",
    },
    "sales": {
        "idSale",
        "idMember",
        "idProspect",
        "idPersonal",
        "idEmployeeRemoval",
        "idSaleRecurrency",
        "idEmployee",
        "idEmployeeSale",
        "idBranch",
        "saleSource",
        "saleDate",
        "saleDateServer",
        "removalDate",
        "updateDate",
        "observations",
        "nameEmployeeSale",
        "removed",
        "corporatePartnershipName",
        "coporatePartnershipId",
        "idSaleMigration",
        "idCartToken",
        "saleItens",
        "receivables",
    },
    "saleItens": {
        "idSaleItem",
        "quantity",
        "numMembers",
        "idMembership",
        "idMembershipRenewed",
        "idProduct",
        "idService",
        "coporatePartnershipId",
        "idMemberMembership",
        "itemValue",
        "saleValue",
        "saleValueWithoutCreditValue",
        "discount",
        "corporateDiscount",
        "tax",
        "valueNextMonth",
        "description",
        "item",
        "corporatePartnershipName",
        "voucher",
        "accountingCode",
        "municipalServiceCode",
        "idSaleItemMigration",
        "membershipStartDate",
        "flReceiptOnly",
        "flSwimming",
        "flAllowLocker",
    },
    "receivables": {
        "idReceivable",
        "currentInstallment",
        "totalInstallments",
        "idMemberPayer",
        "idProspectPayer",
        "idBranchMember",
        "idSale",
        "idReceivableFrom",
        "registrationDate",
        "dueDate",
        "receivingDate",
        "competenceDate",
        "cancellationDate",
        "updateDate",
        "chargeDate",
        "saleDate",
        "ammount",
        "ammountPaid",
        "fees",
        "description",
        "authorization",
        "payerName",
        "tid",
        "nsu",
        "cardAcquirer",
        "cardFlag",
        "cancellationDescription",
        "source",
        "transactionToken",
        "conciliated",
        "status",
        "paymentType",
        "bankAccount",
        "logTef",
        "invoiceDetails",
        "creditDetails",
    },
    "status": _ID_NAME,
    "paymentType": _ID_NAME,
    "bankAccount": _ID_NAME,
    "entries": {
        "date",
        "dateTurn",
        "timeZone",
        "device",
        "entryType",
        "entryAction",
        "idMember",
        "idProspect",
        "idEmployee",
        "releasesByID",
        "nameMember",
        "nameProspect",
        "nameEmployee",
        "blockReason",
        "idMigration",
        "idBranch",
    },
    "prospects": {
        "idProspect",
        "idBranch",
        "idMember",
        "registerDate",
        "birthDate",
        "conversionDate",
        "branchName",
        "firstName",
        "lastName",
        "document",
        "cellphone",
        "email",
        "gympassId",
        "gender",
        "signupType",
        "mktChannel",
        "currentStep",
        *ADDRESS,
        "responsible",
    },
    "responsible": {"name", "document", "financialResponsible"},
}
MIDNIGHT = {"birthDate", "startDate", "dueDate", "competenceDate", "loyaltyEndDate", "startSuspend", "endSuspend"}


@dataclass(frozen=True)
class Part:
    path: str
    run: str
    day: str
    window: str
    number: int
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class Bronze:
    result: synth.SynthResult
    parts: list[Part]
    manifests: dict[str, dict[str, Any]]

    def records(self, run: str | None = None) -> Iterator[tuple[Part, str, dict[str, Any]]]:
        for part in self.parts:
            if run is None or part.run == run:
                for line in part.lines:
                    yield part, line, json.loads(line)


def read_back(result: synth.SynthResult) -> Bronze:
    parts, manifests = [], {}
    for url in result.files:
        match = PATH.search(url)
        assert match, url
        with fsspec.open(url, "rb") as fh:
            raw = fh.read()
        if url.endswith("_manifest.json"):
            manifests[match["run"]] = json.loads(raw)
        else:
            text = gzip.decompress(raw).decode("utf-8")
            parts.append(Part(url, match["run"], match["day"], match["window"], int(match["part"]), text))
    return Bronze(result, parts, manifests)


def key_of(entity: str, record: dict[str, Any]) -> str:
    if entity != "entries":
        return str(record[ID_KEY[entity]])

    def v(x: object) -> str:
        return str(x) if x else ""

    fields = ("idMember", "idProspect", "idEmployee", "idBranch", "device", "entryAction")
    return "|".join([record["date"], *(v(record.get(k)) for k in fields)])


@pytest.fixture(scope="module")
def bronze() -> Iterator[dict[str, Bronze]]:
    """Three runs of every entity in memory, with small parts and batches, read back."""
    lake = f"memory://test-synth-{uuid.uuid4().hex}"
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for entity in synth.ENTITIES:
            mp.setitem(synth.PART_SIZE, entity, PARTS)
            mp.setitem(synth.BATCH_ROWS, entity, BATCH)
            out[entity] = read_back(synth.generate(lake, entity, RECORDS, seed=7, runs=3))
    yield out
    fsspec.filesystem("memory").rm(lake.removeprefix("memory:/"), recursive=True)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path, entity: str) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synth.generate(str(tmp_path / name), entity, 300, seed=seed)
    a, b, c = (files_of(tmp_path / name) for name in "abc")
    assert a == b
    # another seed moves records across window edges too, so only compare the files both have
    parts = [name for name in a.keys() & c.keys() if name.endswith(".gz")]
    assert parts and all(a[name] != c[name] for name in parts)


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_paths_follow_the_reference_layout(bronze: dict[str, Bronze], entity: str) -> None:
    got = bronze[entity]
    assert len(got.result.run_ids) == 3 and list(got.result.run_ids) == sorted(got.result.run_ids)
    assert got.result.run_ids[0] == "20260111T031522Z"
    for url in got.result.files:
        match = PATH.search(url)
        assert match and match["entity"] == entity, url
        run = datetime.datetime.strptime(match["run"], "%Y%m%dT%H%M%SZ")
        assert match["day"] == f"{run:%Y-%m-%d}", url
        if match["window"]:
            assert len(match["window"]) == (10 if entity == "entries" else 7), url
    by_window = collections.defaultdict(list)
    for part in got.parts:
        by_window[part.run, part.window].append(part)
    assert len(by_window) > 3
    for parts in by_window.values():
        assert [p.number for p in parts] == list(range(1, len(parts) + 1))
        assert all(len(p.lines) == PARTS for p in parts[:-1])
        assert 1 <= len(parts[-1].lines) <= PARTS


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_records_lie_inside_their_window_and_before_their_run(bronze: dict[str, Bronze], entity: str) -> None:
    for part, _, record in bronze[entity].records():
        when = datetime.datetime.fromisoformat(record[DATE_KEY[entity]][:19])
        run_local = datetime.datetime.strptime(part.run, "%Y%m%dT%H%M%SZ") - datetime.timedelta(hours=3)
        assert when < run_local
        if entity == "entries":
            start = datetime.datetime.fromisoformat(part.window)
            assert start <= when < start + datetime.timedelta(days=7), (part.path, record["date"])
        else:
            months = 1 if entity == "sales" else 3
            start = datetime.datetime.strptime(part.window, "%Y-%m")
            offset = (when.year - start.year) * 12 + when.month - start.month
            assert 0 <= offset < months, (part.path, record[DATE_KEY[entity]])


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_lines_are_what_the_extractor_writes(bronze: dict[str, Bronze], entity: str) -> None:
    accents = 0
    for part in bronze[entity].parts:
        assert not part.text.endswith("\n") and "\r" not in part.text
        assert "\\u00" not in part.text  # real UTF-8, not \u escapes
        accents += len(re.findall("[ãçéíóúâêôÁÉÍÓÚÃ]", part.text))
        for line in part.lines:
            record = json.loads(line)
            assert isinstance(record, dict)
            # json.dumps(record, ensure_ascii=False), as the reference extractor writes
            assert json.dumps(record, ensure_ascii=False) == line
            assert_known_keys(entity, record)
    assert accents > 0


def assert_known_keys(kind: str, record: dict[str, Any]) -> None:
    unknown = record.keys() - KEYS[kind]
    assert not unknown, f"{kind}: {unknown}"
    for key, value in record.items():
        if isinstance(value, dict):
            assert_known_keys(key, value)
        elif isinstance(value, list):
            for element in value:
                assert_known_keys(key, element)


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_counts_match_a_recount_of_the_files(bronze: dict[str, Bronze], entity: str) -> None:
    got = bronze[entity]
    keys = [key_of(entity, record) for _, _, record in got.records()]
    assert got.result.records == len(keys)
    assert got.result.distinct == len(set(keys))
    assert got.result.distinct > RECORDS  # later runs added records
    for run, manifest in got.manifests.items():
        parts = [p for p in got.parts if p.run == run]
        assert manifest["entity"] == entity and manifest["mode"] == "full_parallel" and manifest["run_id"] == run
        assert manifest["total_records"] == sum(len(p.lines) for p in parts)
        assert manifest["total_parts"] == len(parts)
        assert sum(r["records"] for r in manifest["results"]) == manifest["total_records"]
        assert manifest["start_date"] <= manifest["end_date"]
    first_run = {key_of(entity, r) for _, _, r in got.records(got.result.run_ids[0])}
    assert len(first_run) == RECORDS


def test_repeat_taps_share_a_key_inside_a_file_and_count_once(bronze: dict[str, Bronze]) -> None:
    repeats = 0
    for part in bronze["entries"].parts:
        keys = collections.Counter(key_of("entries", json.loads(line)) for line in part.lines)
        repeats += sum(n - 1 for n in keys.values())
    assert repeats > 0


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_later_runs_resend_records_unchanged_and_changed(bronze: dict[str, Bronze], entity: str) -> None:
    got = bronze[entity]
    first, second = got.result.run_ids[:2]
    before = {key_of(entity, r): (line, r) for _, line, r in got.records(first)}
    same = changed = new = 0
    changes: set[str] = set()
    for _, line, record in got.records(second):
        key = key_of(entity, record)
        if key not in before:
            new += 1
            continue
        old_line, old = before[key]
        if old_line == line:
            same += 1
            continue
        changed += 1
        changes |= describe_change(entity, old, record)
    assert same > 0 and changed > 0 and new > 0
    expected = {
        "members": {"contact removed", "membership removed", "status"},
        "sales": {"receivable paid"},
        "entries": {"dateTurn"},
        "prospects": {"converted"},
    }[entity]
    assert expected <= changes


def describe_change(entity: str, old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    out = set()
    if entity == "members":
        if len(new["contacts"]) < len(old["contacts"]):
            out.add("contact removed")
        if isinstance(old.get("memberships"), list) and len(new["memberships"]) < len(old["memberships"]):
            out.add("membership removed")
        if new["status"] != old["status"]:
            out.add("status")
    elif entity == "sales" and isinstance(old.get("receivables"), list):
        was = {r["idReceivable"]: r["status"]["id"] for r in old["receivables"]}
        if any(r["status"]["id"] == 2 and was.get(r["idReceivable"]) != 2 for r in new["receivables"]):
            out.add("receivable paid")
    elif entity == "entries" and new.get("dateTurn") != old.get("dateTurn"):
        out.add("dateTurn")
    elif entity == "prospects" and old.get("idMember") is None and new.get("idMember") is not None:
        out.add("converted")
    return out


@pytest.mark.parametrize("entity", synth.ENTITIES)
def test_timestamps_are_local_without_offset(bronze: dict[str, Bronze], entity: str) -> None:
    fractions = collections.Counter()

    def visit(value: object, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, k)
        elif isinstance(value, list):
            for v in value:
                visit(v, key)
        elif isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
            assert TIMESTAMP.fullmatch(value), (key, value)
            fractions[len(value)] += 1
            if key in MIDNIGHT:
                assert value.endswith("T00:00:00"), (key, value)

    for _, _, record in bronze[entity].records():
        visit(record, entity)
    assert fractions[19] > fractions[23] > 0 and fractions[27] > 0


def test_keys_go_missing_and_arrays_go_null(bronze: dict[str, Bronze]) -> None:
    seen = collections.Counter()
    for entity, got in bronze.items():
        for _, _, record in got.records():
            for key in KEYS[entity]:
                if key not in record:
                    seen[f"{entity} missing {key}"] += 1
            for key, value in record.items():
                if value is None:
                    seen[f"{entity} null {key}"] += 1
                elif value == []:
                    seen[f"{entity} empty {key}"] += 1
            for contact in record.get("contacts") or []:
                if "idPhone" not in contact:
                    seen["contact missing idPhone"] += 1
    for expected in (
        "members missing registerName",
        "members missing memberships",
        "members null memberships",
        "members empty memberships",
        "members missing responsibles",
        "members null lastAccessDate",
        "contact missing idPhone",
        "sales null saleItens",
        "sales empty saleItens",
        "sales missing receivables",
        "sales null idMember",
        "entries null idMember",
        "entries missing idMigration",
        "prospects null responsible",
        "prospects missing responsible",
        "prospects null idMember",
    ):
        assert seen[expected] > 0, expected


def test_sales_and_entries_point_at_generated_members(tmp_path: Path) -> None:
    lake = str(tmp_path)
    members = {r["idMember"]: r for _, _, r in read_back(synth.generate(lake, "members", 1_500, seed=5)).records()}
    for entity in ("sales", "entries"):
        linked = 0
        for _, _, record in read_back(synth.generate(lake, entity, 1_500, seed=5)).records():
            member_id = record.get("idMember")
            if not member_id:
                continue
            member = members[member_id]
            names = (
                [record["nameMember"]]
                if entity == "entries"
                else [r["payerName"] for r in record.get("receivables") or []]
            )
            assert names == [f"{member['firstName']} {member['lastName']}"] * len(names)
            linked += len(names)
            assert 1 <= record["idBranch"] <= 60
        assert linked > 0


def test_plain_paths_and_file_urls_write_the_same_bytes(tmp_path: Path) -> None:
    plain = synth.generate(str(tmp_path / "plain"), "prospects", 50, runs=1)
    url = synth.generate((tmp_path / "url").as_uri(), "prospects", 50, runs=1)
    assert plain.files[0].startswith(str(tmp_path / "plain") + "/bronze/evo/entity=prospects/")
    assert url.files[0].startswith("file://")
    assert files_of(tmp_path / "plain") == files_of(tmp_path / "url")


def test_a_filled_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    synth.generate(str(tmp_path), "entries", 20, runs=1)
    with pytest.raises(FileExistsError, match="run folder"):
        synth.generate(str(tmp_path), "entries", 30, runs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entity": "clients"}, r"entity: unknown value 'clients'; valid: members, sales, entries, prospects"),
        ({"records": 0}, r"records: 0"),
        ({"runs": 0}, r"runs: 0"),
        ({"resend_share": 1.5}, r"resend_share: 1.5"),
        ({"gzip_level": 10}, r"gzip_level: 10"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"lake": str(tmp_path), "entity": "members", "records": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        synth.generate(**args)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("share", "low", "high"), [(0.0, 0.0, 0.0), (0.05, 0.01, 0.12), (1.0, 0.5, 1.0)])
def test_change_share_sets_how_many_resent_records_differ(
    tmp_path: Path, share: float, low: float, high: float
) -> None:
    # a change that already happened (a converted prospect) cannot happen again: 1.0 is an upper bound
    result = synth.generate(str(tmp_path), "prospects", 600, runs=2, resend_share=1.0, change_share=share)
    lines: dict[str, dict[int, str]] = {run: {} for run in result.run_ids}
    for path in result.files:
        if path.endswith(".jsonl.gz"):
            run = re.search(r"run_id=(\w+)", path)[1]  # type: ignore[index]
            for line in gzip.decompress(Path(path).read_bytes()).decode().split("\n"):
                lines[run][json.loads(line)["idProspect"]] = line
    first, second = (lines[r] for r in result.run_ids)
    resent = [k for k in second if k in first]
    differ = sum(first[k] != second[k] for k in resent) / len(resent)
    assert len(resent) == 600 and low <= differ <= high
