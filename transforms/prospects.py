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

RECORD = pl.Struct(
    {
        **{f: _S for f in (
            "idProspect", "idBranch", "branchName", "firstName", "lastName", "document", "email",
            "cellphone", "gender", "birthDate", "address", "number", "complement", "neighborhood", "city",
            "state", "country", "zipCode", "signupType", "mktChannel", "currentStep", "gympassId",
            "conversionDate", "idMember", "registerDate",
        )},
        "responsible": RESPONSIBLE,
    }
)  # fmt: skip

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
    tz = ctx.source_timezone
    responsible = pl.col("responsible")
    member_id = E.bigint("idMember")
    prospects = records.select(
        "prospect_id",
        E.bigint("idBranch").alias("branch_id"),
        E.text("branchName").alias("branch_name"),
        E.text("firstName").alias("first_name"),
        E.text("lastName").alias("last_name"),
        E.full_name("firstName", "lastName").alias("full_name"),
        E.text("document").alias("document"),
        E.text("email").alias("email"),
        E.text("cellphone").alias("cellphone"),
        E.text("gender").alias("gender"),
        E.date("birthDate").alias("birth_date"),
        E.text("address").alias("address"),
        E.text("number").alias("address_number"),
        E.text("complement").alias("complement"),
        E.text("neighborhood").alias("neighborhood"),
        E.text("city").alias("city"),
        E.text("state").alias("state"),
        E.text("country").alias("country"),
        E.text("zipCode").alias("zip_code"),
        E.text("signupType").alias("signup_type"),
        E.text("mktChannel").alias("mkt_channel"),
        E.text("currentStep").alias("current_step"),
        E.text("gympassId").alias("gympass_id"),
        E.timestamp("conversionDate", tz).alias("conversion_date"),
        member_id.alias("member_id"),
        member_id.is_not_null().alias("is_converted"),
        E.text(responsible.struct.field("name")).alias("responsible_name"),
        E.text(responsible.struct.field("document")).alias("responsible_document"),
        E.flag(responsible.struct.field("financialResponsible")).alias("responsible_is_financial"),
        E.timestamp("registerDate", tz).alias("register_date"),
        E.source_run_id(),
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
