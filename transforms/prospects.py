"""Prospects (leads). Grain: one row per prospect; key ``prospect_id``.

Fields are read by the keys of the EVO API model (the swagger). ``responsible_*`` come from the
``responsible`` object (``{name, document, financialResponsible}``), not from the
``financiallyResponsibles`` list the system this replaces read; ``responsible_is_financial`` is
false when there is no responsible. ``is_converted`` is ``member_id IS NOT NULL``.
``register_date`` is nullable: a prospect without one still loads.

``custom_fields`` (``interests``, ``notes``, ``temperature`` in that system) is left out: the
swagger has none of those keys, so there is nothing verified to fill it with.
"""

from __future__ import annotations

import polars as pl

from evo_frames import expr as E
from evo_frames.spec import Column, Endpoint, Entity, Table, TransformContext

_S = pl.String
RESPONSIBLE = pl.Struct({"name": _S, "document": _S, "financialResponsible": _S})

KEY = (Column("prospect_id", "bigint", nullable=False, doc="EVO `idProspect`"),)

PROSPECTS = Table(
    "core",
    "evo_prospects",
    (
        *KEY,
        Column("branch_id", "bigint", source="idBranch"),
        Column("branch_name", "text", source="branchName"),
        Column("first_name", "text", source="firstName"),
        Column("last_name", "text", source="lastName"),
        Column("full_name", "text", doc="firstName and lastName joined by a space"),
        Column("document", "text", source="document"),
        Column("email", "text", source="email"),
        Column("cellphone", "text", source="cellphone"),
        Column("gender", "text", source="gender"),
        Column("birth_date", "date", source="birthDate"),
        Column("address", "text", source="address"),
        Column("address_number", "text", source="number"),
        Column("complement", "text", source="complement"),
        Column("neighborhood", "text", source="neighborhood"),
        Column("city", "text", source="city"),
        Column("state", "text", source="state"),
        Column("country", "text", source="country"),
        Column("zip_code", "text", source="zipCode"),
        Column("signup_type", "text", source="signupType"),
        Column("mkt_channel", "text", source="mktChannel"),
        Column("current_step", "text", source="currentStep"),
        Column("gympass_id", "text", source="gympassId"),
        Column("conversion_date", "timestamptz", source="conversionDate"),
        Column("member_id", "bigint", source="idMember"),
        Column("is_converted", "bool", nullable=False, doc="member_id IS NOT NULL: the prospect became a member"),
        Column("responsible_name", "text", doc="responsible.name"),
        Column("responsible_document", "text", doc="responsible.document"),
        Column("responsible_is_financial", "bool", doc="responsible.financialResponsible; false without a responsible"),
        Column("register_date", "timestamptz", source="registerDate"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("prospect_id",),
    doc="one row per prospect (lead)",
)


#: the decode type: the key ``idProspect``, each field a column reads, and the responsible object
RECORD = pl.Struct({"idProspect": _S, **PROSPECTS.record_fields(), "responsible": RESPONSIBLE})


def keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    """Adds ``prospect_id`` (``idProspect``) and ``_key_error``."""
    return records.with_columns(prospect_id=E.bigint("idProspect")).with_columns(
        _key_error=pl.when(E.text("idProspect").is_null())
        .then(pl.lit("key field idProspect is missing"))
        .when(pl.col("prospect_id").is_null())
        .then(pl.format("key field idProspect '{}' is not an integer", pl.col("idProspect")))
    )


def transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    """Bronze prospects (with keys) → ``core.evo_prospects``, one row per record."""
    responsible = pl.col("responsible")
    prospects = E.parent_table(
        records,
        PROSPECTS,
        ctx.source_timezone,
        full_name=E.full_name("firstName", "lastName"),
        is_converted=E.bigint("idMember").is_not_null(),
        responsible_name=E.text(responsible.struct.field("name")),
        responsible_document=E.text(responsible.struct.field("document")),
        responsible_is_financial=E.flag(responsible.struct.field("financialResponsible")),
    )
    return {PROSPECTS.qualified: prospects}


#: ``evo-frames extract``: 3-month ``registerDate`` windows like members; parts of 2,000 (40 pages)
API = Endpoint(
    path="/api/v1/prospects",
    window_field="registerDate",
    start_param="registerDateStart",
    end_param="registerDateEnd",
    take=50,
    part_size=2_000,
    months=3,
    prefix="%Y-%m_",
)

ENTITY = Entity(
    name="prospects", record=RECORD, key=KEY, keys=keys, core=(PROSPECTS,), transform=transform, order=40, api=API
)
