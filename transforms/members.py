"""Members, with their memberships and contacts. Grain: one row per member; key ``member_id``.

Fields are read by the keys of the EVO API model (the swagger); where the v2 endpoint has its own
spelling of a value (``photo``, ``addressNumber``, ``memberMigrationId``, ``membershipName``,
``idMembershipRenewed``, ``typeDescription``, the ``employee*`` objects) it is only a fallback
after the swagger key. ``responsibles[]``, ``cpf``, ``passport`` and ``flRenewed`` are not
mapped (they stay in ``raw_data``).

Child tables:

- ``core.evo_member_memberships``: one row per ``memberships[]`` element that has an
  ``idMemberMembership``; key ``(member_id, member_membership_id)``. ``freezes`` and
  ``sessions`` are kept as JSON arrays with typed leaves.
- ``core.evo_member_contacts``: one row per ``contacts[]`` element; key
  ``(member_id, contact_key)``. ``contact_key`` is ``idPhone`` as text when it is an integer,
  else ``"md5:"`` and the md5 of ``"<idContactType>|<description>"``: the same contact gets the
  same key on every run, so reruns replace it instead of adding a copy, and a number can never
  look like a hash. An element with neither an ``idPhone`` nor a ``description`` carries nothing
  to keep and is dropped.

A child key repeated within one member keeps its last element (see
:func:`evo_frames.expr.keep_latest`).

``email`` is the ``description`` of a contact of type 3 or 4, else of one whose label
(``contactType``, else ``typeDescription``) contains "mail" in any case; ``cellphone`` that of a
contact of type 1 or 2. Among several, the lowest ``idPhone`` wins, then the first in the list;
contacts without a description are never picked.

Columns whose value is a fallback chain declare the swagger key as ``source``: a non-empty swagger
value that ends up NULL is then a real cast failure.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
import polars_hash as plh

from evo_frames import expr as E
from evo_frames.spec import Column, Endpoint, Entity, Index, Table, TransformContext

_S = pl.String
_EMPLOYEE = pl.Struct({"idEmployee": _S, "name": _S})
CONTACT = pl.Struct(
    {f: _S for f in ("idPhone", "idContactType", "contactType", "typeDescription", "ddi", "description")}
)
FREEZE = pl.Struct(
    {f: _S for f in (
        "idFreeze", "idEmployee", "daysFreeze", "startSuspend", "endSuspend", "unlockDate", "reason",
        "flUseMembershipFreezeDays",
    )}
)  # fmt: skip
SESSION = pl.Struct({f: _S for f in ("idSession", "expirationDate", "flBonusSession")})
MEMBERSHIP = pl.Struct(
    {
        **{f: _S for f in (
            "idMemberMembership", "idMembership", "name", "membershipName", "idMemberMembershipRenewed",
            "idMembershipRenewed", "idSale", "saleDate", "startDate", "endDate", "cancelDate", "cancelDateOn",
            "cancelCreationDate", "membershipStatus", "valueNextMonth", "originalValue", "nextCharge",
            "nextDateSuspension", "idCategoryMembership", "loyaltyEndDate", "assessmentEndDate",
            "acceptanceDate", "numMembers", "flAllowLocker", "flAdditionalMembership", "allowLesMills",
            "allowsCancellationByApp", "signedTerms", "limitless", "weeklyLimit", "bioimpedanceAmount",
            "concludedSessions", "pendingSessions", "scheduledSessions", "pendingRepositions",
            "repositionsTotal", "bonusSessions", "numberSuspensionTimes", "maxSuspensionDays",
            "minimumSuspensionDays", "disponibleSuspensionDays", "disponibleSuspensionTimes",
            "daysLeftToFreeze", "contractPrinting",
        )},
        "freezes": pl.List(FREEZE),
        "sessions": pl.List(SESSION),
    }
)  # fmt: skip

RECORD = pl.Struct(
    {
        **{f: _S for f in (
            "idMember", "idBranch", "branchName", "firstName", "lastName", "registerName", "registerLastName",
            "usePreferredName", "document", "documentId", "gender", "birthDate", "maritalStatus", "address",
            "number", "addressNumber", "complement", "neighborhood", "city", "state", "country", "zipCode",
            "accessCardNumber", "accessBlocked", "blockedReason", "status", "membershipStatus", "penalized",
            "totalFitCoins", "registerDate", "conversionDate", "lastAccessDate", "updateDate", "photoUrl",
            "photo", "gympassId", "codeTotalpass", "userIdGurupass", "clientWithPromotionalRestriction",
            "personalTrainer", "personalType", "cref", "crefExpirationDate", "idEmployeeConsultant",
            "nameEmployeeConsultant", "idEmployeeInstructor", "nameEmployeeInstructor",
            "idEmployeePersonalTrainer", "nameEmployeePersonalTrainer", "idMemberMigration",
            "memberMigrationId",
        )},
        "employeeConsultant": _EMPLOYEE,
        "employeeInstructor": _EMPLOYEE,
        "employeePersonal": _EMPLOYEE,
        "contacts": pl.List(CONTACT),
        "memberships": pl.List(MEMBERSHIP),
    }
)  # fmt: skip

KEY = (Column("member_id", "bigint", nullable=False, doc="EVO `idMember`"),)

MEMBERS = Table(
    "core",
    "evo_members",
    (
        *KEY,
        Column("branch_id", "bigint", source="idBranch"),
        Column("branch_name", "text", source="branchName"),
        Column("first_name", "text", source="firstName"),
        Column("last_name", "text", source="lastName"),
        Column("full_name", "text", doc="firstName and lastName joined by a space"),
        Column("register_name", "text", source="registerName"),
        Column("register_last_name", "text", source="registerLastName"),
        Column("use_preferred_name", "bool", source="usePreferredName"),
        Column("document", "text", source="document"),
        Column("document_id", "text", source="documentId"),
        Column("email", "text", doc="description of the contact of type 3/4 (else labelled mail); lowest idPhone wins"),
        Column("cellphone", "text", doc="description of the contact of type 1/2; lowest idPhone wins"),
        Column("gender", "text", source="gender"),
        Column("birth_date", "date", source="birthDate"),
        Column("marital_status", "text", source="maritalStatus"),
        Column("address", "text", source="address"),
        Column("address_number", "text", source="number"),
        Column("complement", "text", source="complement"),
        Column("neighborhood", "text", source="neighborhood"),
        Column("city", "text", source="city"),
        Column("state", "text", source="state"),
        Column("country", "text", source="country"),
        Column("zip_code", "text", source="zipCode"),
        Column("access_card_number", "text", source="accessCardNumber"),
        Column("access_blocked", "bool", source="accessBlocked"),
        Column("blocked_reason", "text", source="blockedReason"),
        Column(
            "status",
            "text",
            source="status",
            doc=(
                "the member's status in EVO, 'Active' or 'Inactive' (capitalised): Active while EVO "
                "counts a membership in force (suspended and VIP included)"
            ),
        ),
        Column(
            "membership_status",
            "text",
            source="membershipStatus",
            doc=(
                "EVO's member-level membershipStatus, same vocabulary as status ('Active'/'Inactive'); "
                "not the per-contract membership_status of core.evo_member_memberships"
            ),
        ),
        Column("penalized", "bool", source="penalized"),
        Column("total_fit_coins", "decimal", source="totalFitCoins"),
        Column("register_date", "timestamptz", source="registerDate"),
        Column("conversion_date", "timestamptz", source="conversionDate"),
        Column("last_access_date", "timestamptz", source="lastAccessDate"),
        Column("update_date", "timestamptz", source="updateDate"),
        Column("photo_url", "text", source="photoUrl"),
        Column("gympass_id", "text", source="gympassId"),
        Column("code_totalpass", "text", source="codeTotalpass"),
        Column("user_id_gurupass", "text", source="userIdGurupass"),
        Column("client_with_promotional_restriction", "bool", source="clientWithPromotionalRestriction"),
        Column("personal_trainer", "bool", source="personalTrainer"),
        Column("personal_type", "text", source="personalType"),
        Column("cref", "text", source="cref"),
        Column("cref_expiration_date", "date", source="crefExpirationDate"),
        Column("employee_consultant_id", "bigint", source="idEmployeeConsultant"),
        Column("employee_consultant_name", "text", source="nameEmployeeConsultant"),
        Column("employee_instructor_id", "bigint", source="idEmployeeInstructor"),
        Column("employee_instructor_name", "text", source="nameEmployeeInstructor"),
        Column("employee_personal_id", "bigint", source="idEmployeePersonalTrainer"),
        Column("employee_personal_name", "text", source="nameEmployeePersonalTrainer"),
        Column("member_migration_id", "text", source="idMemberMigration"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("member_id",),
    doc="one row per member",
    indexes=(
        Index("idx_core_members_branch", ("branch_id",)),
        Index("idx_core_members_status", ("status",)),
    ),
)

MEMBERSHIPS = Table(
    "core",
    "evo_member_memberships",
    (
        Column("member_id", "bigint", nullable=False, doc="the member (core.evo_members)"),
        Column(
            "member_membership_id",
            "bigint",
            nullable=False,
            source="memberships[].idMemberMembership",
            doc="this contract's id",
        ),
        Column("membership_id", "bigint", source="memberships[].idMembership"),
        Column("membership_name", "text", source="memberships[].name"),
        Column("membership_renewed_id", "bigint", source="memberships[].idMemberMembershipRenewed"),
        Column("sale_id", "bigint", source="memberships[].idSale"),
        Column("sale_date", "timestamptz", source="memberships[].saleDate"),
        Column("start_date", "timestamptz", source="memberships[].startDate"),
        Column("end_date", "timestamptz", source="memberships[].endDate"),
        Column("cancel_date", "timestamptz", source="memberships[].cancelDate"),
        Column("cancel_date_on", "timestamptz", source="memberships[].cancelDateOn"),
        Column("cancel_creation_date", "timestamptz", source="memberships[].cancelCreationDate"),
        Column(
            "membership_status",
            "text",
            source="memberships[].membershipStatus",
            doc="this contract's state, lowercase as EVO sends it: 'active', 'canceled' or 'expired'",
        ),
        Column("value_next_month", "decimal", source="memberships[].valueNextMonth"),
        Column("original_value", "decimal", source="memberships[].originalValue"),
        Column("next_charge", "timestamptz", source="memberships[].nextCharge"),
        Column("next_date_suspension", "timestamptz", source="memberships[].nextDateSuspension"),
        Column("category_membership_id", "bigint", source="memberships[].idCategoryMembership"),
        Column("loyalty_end_date", "timestamptz", source="memberships[].loyaltyEndDate"),
        Column("assessment_end_date", "timestamptz", source="memberships[].assessmentEndDate"),
        Column("acceptance_date", "timestamptz", source="memberships[].acceptanceDate"),
        Column("num_members", "int", source="memberships[].numMembers"),
        Column("fl_allow_locker", "bool", source="memberships[].flAllowLocker"),
        Column("fl_additional_membership", "bool", source="memberships[].flAdditionalMembership"),
        Column("allow_les_mills", "bool", source="memberships[].allowLesMills"),
        Column("allows_cancellation_by_app", "bool", source="memberships[].allowsCancellationByApp"),
        Column("signed_terms", "bool", source="memberships[].signedTerms"),
        Column("limitless", "bool", source="memberships[].limitless"),
        Column("weekly_limit", "int", source="memberships[].weeklyLimit"),
        Column("bioimpedance_amount", "int", source="memberships[].bioimpedanceAmount"),
        Column("concluded_sessions", "int", source="memberships[].concludedSessions"),
        Column("pending_sessions", "int", source="memberships[].pendingSessions"),
        Column("scheduled_sessions", "int", source="memberships[].scheduledSessions"),
        Column("pending_repositions", "int", source="memberships[].pendingRepositions"),
        Column("repositions_total", "int", source="memberships[].repositionsTotal"),
        Column("bonus_sessions", "int", source="memberships[].bonusSessions"),
        Column("number_suspension_times", "int", source="memberships[].numberSuspensionTimes"),
        Column("max_suspension_days", "int", source="memberships[].maxSuspensionDays"),
        Column("minimum_suspension_days", "int", source="memberships[].minimumSuspensionDays"),
        Column("disponible_suspension_days", "int", source="memberships[].disponibleSuspensionDays"),
        Column("disponible_suspension_times", "int", source="memberships[].disponibleSuspensionTimes"),
        Column("days_left_to_freeze", "int", source="memberships[].daysLeftToFreeze"),
        Column("contract_printing", "text", source="memberships[].contractPrinting"),
        Column("freezes", "json", doc="memberships[].freezes: the contract's freezes, JSON array with typed leaves"),
        Column("sessions", "json", doc="memberships[].sessions: bonus sessions, JSON array with typed leaves"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("member_id", "member_membership_id"),
    doc="one row per memberships[] element (a member's contract); columns are its fields, named in snake_case",
    parent_key=("member_id",),
)

CONTACTS = Table(
    "core",
    "evo_member_contacts",
    (
        Column("member_id", "bigint", nullable=False, doc="the member (core.evo_members)"),
        Column("contact_key", "text", nullable=False, doc="idPhone as text, else md5: of type and description"),
        Column("phone_id", "bigint", source="contacts[].idPhone"),
        Column("contact_type_id", "int", source="contacts[].idContactType"),
        Column("contact_type", "text", doc="contacts[].contactType, else typeDescription"),
        Column("ddi", "text", source="contacts[].ddi"),
        Column("description", "text", source="contacts[].description"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("member_id", "contact_key"),
    doc="one row per contacts[] element (phone, e-mail); columns are its fields, named in snake_case",
    parent_key=("member_id",),
)

#: logical types of the freeze and bonus-session leaves inside the JSON columns
FREEZE_JSON: dict[str, E.JsonLeaf] = {
    "idFreeze": "int", "idEmployee": "int", "daysFreeze": "int", "startSuspend": "text", "endSuspend": "text",
    "unlockDate": "text", "reason": "text", "flUseMembershipFreezeDays": "bool",
}  # fmt: skip
SESSION_JSON: dict[str, E.JsonLeaf] = {"idSession": "int", "expirationDate": "text", "flBonusSession": "bool"}

EMAIL_TYPES = (3, 4)
CELLPHONE_TYPES = (1, 2)


def keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    """Adds ``member_id`` (``idMember``) and ``_key_error``."""
    return records.with_columns(member_id=E.bigint("idMember")).with_columns(
        _key_error=pl.when(E.text("idMember").is_null())
        .then(pl.lit("key field idMember is missing"))
        .when(pl.col("member_id").is_null())
        .then(pl.format("key field idMember '{}' is not an integer", pl.col("idMember")))
    )


def _field(name: str) -> pl.Expr:
    return pl.col("_el").struct.field(name)


def _contact_label(contact: pl.Expr) -> pl.Expr:
    label, v2_label = contact.struct.field("contactType"), contact.struct.field("typeDescription")
    return pl.coalesce(E.text(label), E.text(v2_label))


def _with_picked_contacts(
    records: pl.LazyFrame, picks: Mapping[str, tuple[tuple[int, ...], str | None]]
) -> pl.LazyFrame:
    """Adds, per ``column: (types, label_hint)`` of ``picks``, the description of the best contact:
    of ``types`` first, then (if given) labelled like the hint.

    Ties go to the lowest ``idPhone`` (null last), then to the first in the list. Whole-column:
    the contacts of all records are exploded once, ranked, sorted and joined back per record.
    """
    row = "_contact_row"
    base = records.with_row_index(row)
    c = pl.col("_c")
    contacts = (
        base.select(row, pl.col("contacts").alias("_c"))
        .filter(c.list.len() > 0)
        .with_columns(_pos=pl.int_ranges(c.list.len()))
        .explode("_c", "_pos")
        .select(
            row,
            "_pos",
            E.text(c.struct.field("description")).alias("_description"),
            E.int32(c.struct.field("idContactType")).alias("_type"),
            _contact_label(c).str.to_lowercase().alias("_label"),
            E.bigint(c.struct.field("idPhone")).alias("_phone"),
        )
        .filter(pl.col("_description").is_not_null())
    )
    for column, (types, label_hint) in picks.items():
        by_label = pl.col("_label").str.contains(label_hint, literal=True) if label_hint is not None else pl.lit(False)
        rank = pl.when(pl.col("_type").is_in(types)).then(0).when(by_label).then(1)
        best = (
            contacts.with_columns(_rank=rank)
            .filter(pl.col("_rank").is_not_null())
            .sort(row, "_rank", "_phone", "_pos", nulls_last=True)
            .unique(row, keep="first", maintain_order=True)
            .select(row, pl.col("_description").alias(column))
        )
        base = base.join(best, on=row, how="left", maintain_order="left")
    return base.drop(row)


def _employee(flat: str, nested: str, role: str) -> dict[str, pl.Expr]:
    # the flat idEmployeeX/nameEmployeeX keys first, the v2 object {idEmployee, name} as fallback
    obj = pl.col(nested)
    employee_id = pl.coalesce(E.bigint(f"idEmployee{flat}"), E.bigint(obj.struct.field("idEmployee")))
    name = pl.coalesce(E.text(f"nameEmployee{flat}"), E.text(obj.struct.field("name")))
    return {f"employee_{role}_id": employee_id, f"employee_{role}_name": name}


def _members(records: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    picks = {"_email": (EMAIL_TYPES, "mail"), "_cellphone": (CELLPHONE_TYPES, None)}
    return E.parent_table(
        _with_picked_contacts(records, picks),
        MEMBERS,
        tz,
        full_name=E.full_name("firstName", "lastName"),
        email=pl.col("_email"),
        cellphone=pl.col("_cellphone"),
        address_number=pl.coalesce(E.text("number"), E.text("addressNumber")),
        photo_url=pl.coalesce(E.text("photoUrl"), E.text("photo")),
        **_employee("Consultant", "employeeConsultant", "consultant"),
        **_employee("Instructor", "employeeInstructor", "instructor"),
        **_employee("PersonalTrainer", "employeePersonal", "personal"),
        member_migration_id=pl.coalesce(E.text("idMemberMigration"), E.text("memberMigrationId")),
    )


def _memberships(records: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    f = _field
    rows = E.with_json_lists(
        E.elements_of(records, MEMBERSHIPS),
        {"freezes": (f("freezes"), FREEZE_JSON), "sessions": (f("sessions"), SESSION_JSON)},
    )
    return E.child_table(
        rows,
        MEMBERSHIPS,
        tz,
        membership_name=pl.coalesce(E.text(f("name")), E.text(f("membershipName"))),
        membership_renewed_id=pl.coalesce(E.bigint(f("idMemberMembershipRenewed")), E.bigint(f("idMembershipRenewed"))),
    )


def _contacts(records: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    # a contact without an integer idPhone is keyed by a hash of what it says, stable across runs
    content = pl.concat_str(
        [pl.col("contact_type_id").cast(pl.String).fill_null(""), pl.col("description")], separator="|"
    )
    md5 = plh.NonCryptographicHashingNameSpace(content).md5()
    return E.child_table(
        E.elements_of(records, CONTACTS),
        CONTACTS,
        tz,
        contact_type=_contact_label(pl.col("_el")),
        # null when there is neither an idPhone nor a description: child_table then drops the element
        contact_key=pl.coalesce(pl.col("phone_id").cast(pl.String), pl.lit("md5:") + md5),
    )


def transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    """Bronze members (with keys) → members (one row per record), memberships and contacts."""
    tz = ctx.source_timezone
    return {
        MEMBERS.qualified: _members(records, tz),
        MEMBERSHIPS.qualified: _memberships(records, tz),
        CONTACTS.qualified: _contacts(records, tz),
    }


#: ``evo-frames extract``: 3-month ``registerDate`` windows, with memberships and responsibles
API = Endpoint(
    path="/api/v2/members",
    window_field="registerDate",
    start_param="registerDateStart",
    end_param="registerDateEnd",
    take=50,
    part_size=2_000,
    months=3,
    prefix="%Y-%m_",
    params=(("showMemberships", "true"), ("showsResponsibles", "true")),  # the API spells it "shows"
)

#: the data dictionary's section on the two status columns (docs/tables.md)
NOTES = """\
## The two member status columns

- `core.evo_members.status` and `core.evo_members.membership_status` are EVO's member-level
  `status` and `membershipStatus`, `'Active'` or `'Inactive'`, stored as sent (no mapping).
  EVO's own member filter counts suspended and VIP members as active.
- `core.evo_member_memberships.membership_status` is the state of one contract, lowercase:
  `'active'`, `'canceled'` or `'expired'`.
- They can disagree: a member is `'Active'` while EVO counts a membership in force, which its
  memberships list may not show (the list can be hidden or empty in the export, and a contract can
  be in force while suspended). Filter members by `status`; filter contracts by the lowercase
  `membership_status`.
"""

ENTITY = Entity(
    name="members",
    record=RECORD,
    key=KEY,
    keys=keys,
    core=(MEMBERS, MEMBERSHIPS, CONTACTS),
    transform=transform,
    order=10,
    api=API,
    notes=NOTES,
)
