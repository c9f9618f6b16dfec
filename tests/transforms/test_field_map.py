"""The JSON keys each transform reads, checked against the reference field lists.

Every field name in an entity's ``RECORD`` (at every level) must be a key the reference defines
at that place: a swagger key (tag S), a v2-only key the reference lists as a fallback, or one of
the few keys it lists as read by the replaced system although the swagger lacks them. The keys the
replaced system read by mistake (reference §7.5) are listed too, and must never be allowed.
Finally, every ``RECORD`` leaf must change some CORE output (it is really used), unless it is
listed in :data:`RAW_ONLY`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import polars as pl
import pytest

from evo_frames.registry import discover
from evo_frames.spec import Entity
from tests.transforms import CTX

Path = tuple[str, ...]


def _keys(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EMPLOYEE = _keys("idEmployee name")
_ID_NAME = _keys("id name")

#: allowed keys per entity and place (a path of object/array keys; () is the record itself)
ALLOWED: dict[str, dict[Path, frozenset[str]]] = {
    "members": {
        (): _keys(
            # swagger
            "idMember firstName lastName registerDate lastAccessDate conversionDate idBranch branchName"
            " accessBlocked blockedReason penalized document documentId cpf passport maritalStatus gender"
            " birthDate address number complement neighborhood city state country zipCode accessCardNumber"
            " status membershipStatus idEmployeeConsultant nameEmployeeConsultant idEmployeeInstructor"
            " nameEmployeeInstructor idEmployeePersonalTrainer nameEmployeePersonalTrainer photoUrl"
            " idMemberMigration gympassId personalTrainer personalType cref crefExpirationDate contacts"
            " memberships responsibles"
            # v2-only
            " registerName registerLastName usePreferredName updateDate addressNumber totalFitCoins photo"
            " memberMigrationId codeTotalpass userIdGurupass clientWithPromotionalRestriction"
            " employeeConsultant employeeInstructor employeePersonal"
        ),
        ("employeeConsultant",): _EMPLOYEE,
        ("employeeInstructor",): _EMPLOYEE,
        ("employeePersonal",): _EMPLOYEE,
        ("contacts",): _keys(
            "idPhone idMember idEmployee idProspect idProvider idContactType contactType description"
            " ddi typeDescription"  # v2-only
        ),
        ("memberships",): _keys(
            "idMember idMembership idMemberMembership idMemberMembershipRenewed numMembers idSale"
            " idCategoryMembership numberSuspensionTimes maxSuspensionDays minimumSuspensionDays"
            " disponibleSuspensionDays disponibleSuspensionTimes daysLeftToFreeze bioimpedanceAmount"
            " weeklyLimit"
            " concludedSessions pendingSessions scheduledSessions pendingRepositions repositionsTotal"
            " bonusSessions startDate endDate cancelDate nextCharge saleDate loyaltyEndDate assessmentEndDate"
            " acceptanceDate name membershipStatus contractPrinting valueNextMonth originalValue flRenewed"
            " flAllowLocker flAdditionalMembership signedTerms limitless freezes sessions"
            # v2-only
            " membershipName idMembershipRenewed cancelDateOn cancelCreationDate nextDateSuspension"
            " allowLesMills allowsCancellationByApp"
        ),
        ("memberships", "freezes"): _keys(
            "idFreeze idEmployee daysFreeze startSuspend endSuspend unlockDate reason flUseMembershipFreezeDays"
        ),
        ("memberships", "sessions"): _keys("idSession expirationDate flBonusSession"),
        ("responsibles",): _keys(
            "idResponsible idMember idMemberResponsible name cpf email phone observation acessFiti financialResponsible"
        ),
    },
    "sales": {
        (): _keys(
            "idSale idMember idProspect idPersonal idEmployeeRemoval idSaleRecurrency idEmployee"
            " idEmployeeSale idBranch saleSource saleDate saleDateServer removalDate observations removed"
            " corporatePartnershipName coporatePartnershipId idSaleMigration saleItens receivables"
            # listed by the reference as read by the replaced system, not in the swagger
            " updateDate nameEmployeeSale idCartToken cartToken"
        ),
        ("saleItens",): _keys(
            "idSaleItem quantity numMembers idMembership idMembershipRenewed idProduct idService"
            " coporatePartnershipId idMemberMembership itemValue saleValue saleValueWithoutCreditValue"
            " discount"
            " corporateDiscount tax valueNextMonth description item corporatePartnershipName voucher"
            " accountingCode municipalServiceCode idSaleItemMigration membershipStartDate flReceiptOnly"
            " flSwimming flAllowLocker"
        ),
        ("receivables",): _keys(
            "idReceivable currentInstallment totalInstallments idMemberPayer idProspectPayer idBranchMember"
            " idSale idReceivableFrom registrationDate dueDate receivingDate competenceDate cancellationDate"
            " updateDate chargeDate saleDate ammount ammountPaid fees description authorization payerName tid"
            " nsu cardAcquirer cardFlag cancellationDescription source conciliated status paymentType"
            " bankAccount logTef invoiceDetails creditDetails"
            " transactionToken"  # listed as read by the replaced system, not in the swagger
        ),
        ("receivables", "status"): _ID_NAME,
        ("receivables", "paymentType"): _ID_NAME,
        ("receivables", "bankAccount"): _ID_NAME,
        ("receivables", "logTef"): _keys("authorization tefId merchantCheckoutGuid"),
        ("receivables", "invoiceDetails"): _keys(
            "invoiceNumber issuedAmount status sendDate canceledDate urlPdf idInvoiceType invoiceType"
        ),
        ("receivables", "creditDetails"): _keys(
            "idCredit idCancelationCredit idBranchOrigin ammount branchDocument idSaleOrigin idReceivableOrigin"
        ),
    },
    "entries": {
        (): _keys(
            "date dateTurn timeZone idMember nameMember idProspect nameProspect idEmployee nameEmployee"
            " entryType entryAction device releasesByID idBranch blockReason idMigration"
        ),
    },
    "prospects": {
        (): _keys(
            "idProspect idBranch idMember registerDate birthDate conversionDate branchName firstName lastName"
            " document cellphone email gympassId gender signupType mktChannel currentStep address number"
            " complement neighborhood city state country zipCode responsible"
        ),
        ("responsible",): _keys("name document financialResponsible"),
    },
}

#: keys the replaced system read by mistake (reference §7.5); never read them
WRONG_KEYS: dict[str, dict[Path, frozenset[str]]] = {
    "sales": {
        (): _keys("idCorporatePartnership nameCorporatePartnership saleMigrationId"),
        ("saleItens",): _keys("saleValueWithoutCredit saleItemMigrationId idCorporatePartnership"),
        ("receivables",): _keys("amount"),
        ("receivables", "paymentType"): _keys("idPaymentType"),
    },
    "prospects": {(): _keys("financiallyResponsibles interests notes temperature")},
}

#: RECORD leaves decoded on purpose although no CORE column uses them (none today: STG keeps the
#: whole line in raw_data, so a field nobody types need not be decoded)
RAW_ONLY: dict[str, frozenset[Path]] = {}

#: leaves set in every probe so that the parent row and one element of each child list survive
ANCHORS: dict[str, dict[Path, str]] = {
    "members": {
        ("idMember",): "1",
        ("memberships", "idMemberMembership"): "1",
        ("contacts", "description"): "x",
    },
    "sales": {("idSale",): "1", ("saleItens", "idSaleItem"): "1", ("receivables", "idReceivable"): "1"},
    "entries": {("date",): "2025-02-14T10:25:00"},
    "prospects": {("idProspect",): "1"},
}

#: probe values: one of them must survive each leaf's cast (ids, counts, money, text; dates; JSON booleans)
PROBES = ("7", "2024-01-02T03:04:05", "true")

ENTITIES = discover()


def _fields(dtype: pl.DataType, path: Path = ()) -> Iterator[tuple[Path, pl.DataType]]:
    """Every field of ``dtype`` at every level, as (path, dtype); list elements share the list's path."""
    if isinstance(dtype, pl.List):
        yield from _fields(dtype.inner, path)
    elif isinstance(dtype, pl.Struct):
        for f in dtype.fields:
            yield (*path, f.name), f.dtype
            yield from _fields(f.dtype, (*path, f.name))


def _leaves(entity: Entity) -> list[Path]:
    return [path for path, dtype in _fields(entity.record) if not dtype.is_nested()]


@pytest.mark.parametrize("name", list(ENTITIES))
def test_record_reads_only_reference_keys(name: str) -> None:
    assert name in ALLOWED, f"entity {name!r} has no reference key list here: add it to ALLOWED"
    allowed = ALLOWED[name]
    unknown = [
        ".".join(path) for path, _ in _fields(ENTITIES[name].record) if path[-1] not in allowed.get(path[:-1], ())
    ]
    assert not unknown, f"{name}: RECORD reads keys the reference does not define: {unknown}"


@pytest.mark.parametrize("name", list(ENTITIES))
def test_record_leaves_are_strings(name: str) -> None:
    fields = _fields(ENTITIES[name].record)
    typed = [".".join(path) for path, dtype in fields if not (dtype.is_nested() or dtype == pl.String)]
    assert not typed, f"{name}: scalar leaves must decode as pl.String: {typed}"


def test_wrong_keys_are_never_allowed() -> None:
    for name, places in WRONG_KEYS.items():
        for path, wrong in places.items():
            assert not wrong & ALLOWED[name].get(path, frozenset()), (name, path)


def _value(dtype: pl.DataType, path: Path, leaves: dict[Path, str | None]) -> Any:
    if isinstance(dtype, pl.List):
        return [_value(dtype.inner, path, leaves)]
    if isinstance(dtype, pl.Struct):
        return {f.name: _value(f.dtype, (*path, f.name), leaves) for f in dtype.fields}
    return leaves.get(path)


def _outputs(entity: Entity, leaves: dict[Path, str | None]) -> dict[str, list[dict[str, Any]]]:
    record = pl.DataFrame({"rec": [_value(entity.record, (), leaves)]}, schema={"rec": entity.record})
    records = record.unnest("rec").with_columns(
        _source_file=pl.lit("f.jsonl.gz"),
        _source_line=pl.lit(1, dtype=pl.Int64),
        run_id=pl.lit("r"),
        ingestion_date=pl.lit(date(2026, 1, 11)),
    )
    keyed = entity.keys(records.lazy(), CTX)
    return {table: frame.collect().to_dicts() for table, frame in entity.transform(keyed, CTX).items()}


@pytest.mark.parametrize("name", list(ENTITIES))
def test_every_record_leaf_is_used(name: str) -> None:
    entity, anchors = ENTITIES[name], ANCHORS[name]
    baseline = _outputs(entity, dict(anchors))
    unused = []
    for leaf in _leaves(entity):
        if leaf in RAW_ONLY.get(name, frozenset()):
            continue
        without = _outputs(entity, {**anchors, leaf: None}) if leaf in anchors else baseline
        if all(_outputs(entity, {**anchors, leaf: probe}) == without for probe in PROBES):
            unused.append(".".join(leaf))
    assert not unused, f"{name}: RECORD leaves no CORE column depends on (use them or list them in RAW_ONLY): {unused}"
