"""Sales, with their items and receivables. Grain: one row per sale; key ``sale_id``.

Fields are read by the keys of the EVO API model (the swagger), with its own spellings:
``saleItens``, ``coporatePartnershipId``, ``idSaleMigration``, ``saleValueWithoutCreditValue``,
``idSaleItemMigration``, ``ammount``, ``ammountPaid``, ``paymentType.id``. ``updateDate``,
``nameEmployeeSale`` and ``transactionToken`` are not in the swagger but are what the system this
replaces reads; ``cart_token`` reads ``idCartToken`` and falls back to ``cartToken`` (neither is
in the swagger; the two generations of that system disagree).

Child tables:

- ``core.evo_sale_items``: one row per ``saleItens[]`` element with an ``idSaleItem``; key
  ``sale_item_id``.
- ``core.evo_receivables``: one row per ``receivables[]`` element with an ``idReceivable``; key
  ``receivable_id``. ``status`` and ``paymentType`` are ``{id, name}`` objects.

A child id is a key of its own, so the same id may come under two sales of one batch (or twice
under one): the element of the newest sale record wins (run, file, line), and within one sale the
last element (see :func:`evo_frames.expr.keep_latest`).
"""

from __future__ import annotations

import polars as pl

from evo_frames import expr as E
from evo_frames.spec import Column, Endpoint, Entity, Index, Table, TransformContext

_S = pl.String
_ID_NAME = pl.Struct({"id": _S, "name": _S})
# spelled out: its decode order (the {id, name} objects last) is not the order of its columns
RECEIVABLE = pl.Struct(
    {
        **{f: _S for f in (
            "idReceivable", "registrationDate", "dueDate", "receivingDate", "cancellationDate", "updateDate",
            "ammount", "ammountPaid", "currentInstallment", "totalInstallments", "authorization", "tid",
            "nsu", "cardFlag", "transactionToken",
        )},
        "status": _ID_NAME,
        "paymentType": _ID_NAME,
    }
)  # fmt: skip

KEY = (Column("sale_id", "bigint", nullable=False, doc="EVO `idSale`"),)

SALES = Table(
    "core",
    "evo_sales",
    (
        *KEY,
        Column("member_id", "bigint", source="idMember"),
        Column("prospect_id", "bigint", source="idProspect"),
        Column("employee_id", "bigint", source="idEmployee"),
        Column("employee_sale_id", "bigint", source="idEmployeeSale"),
        Column("employee_sale_name", "text", source="nameEmployeeSale"),
        Column("personal_id", "bigint", source="idPersonal"),
        Column("branch_id", "bigint", source="idBranch"),
        Column("sale_date", "timestamptz", source="saleDate"),
        Column("sale_date_server", "timestamptz", source="saleDateServer"),
        Column("update_date", "timestamptz", source="updateDate"),
        Column("sale_source", "int", source="saleSource"),
        Column("observations", "text", source="observations"),
        Column("corporate_partnership_id", "bigint", source="coporatePartnershipId"),
        Column("corporate_partnership_name", "text", source="corporatePartnershipName"),
        Column("sale_recurrency_id", "bigint", source="idSaleRecurrency"),
        Column("removed", "bool", source="removed"),
        Column("removal_date", "timestamptz", source="removalDate"),
        Column("employee_removal_id", "bigint", source="idEmployeeRemoval"),
        Column("sale_migration_id", "text", source="idSaleMigration"),
        Column("cart_token", "text", source="idCartToken"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("sale_id",),
    doc="one row per sale",
    indexes=(
        Index("idx_core_sales_member", ("member_id",)),
        Index("idx_core_sales_date", ("sale_date",)),
    ),
)

ITEMS = Table(
    "core",
    "evo_sale_items",
    (
        Column("sale_item_id", "bigint", nullable=False, source="saleItens[].idSaleItem"),
        Column("sale_id", "bigint", nullable=False, doc="the sale (core.evo_sales)"),
        Column("description", "text", source="saleItens[].description"),
        Column("item", "text", source="saleItens[].item"),
        Column("item_value", "decimal", source="saleItens[].itemValue"),
        Column("sale_value", "decimal", source="saleItens[].saleValue"),
        Column("sale_value_without_credit", "decimal", source="saleItens[].saleValueWithoutCreditValue"),
        Column("quantity", "int", source="saleItens[].quantity"),
        Column("discount", "decimal", source="saleItens[].discount"),
        Column("corporate_discount", "decimal", source="saleItens[].corporateDiscount"),
        Column("tax", "decimal", source="saleItens[].tax"),
        Column("value_next_month", "decimal", source="saleItens[].valueNextMonth"),
        Column("membership_id", "bigint", source="saleItens[].idMembership"),
        Column("membership_renewed_id", "bigint", source="saleItens[].idMembershipRenewed"),
        Column("member_membership_id", "bigint", source="saleItens[].idMemberMembership"),
        Column("product_id", "bigint", source="saleItens[].idProduct"),
        Column("service_id", "bigint", source="saleItens[].idService"),
        Column("corporate_partnership_id", "bigint", source="saleItens[].coporatePartnershipId"),
        Column("corporate_partnership_name", "text", source="saleItens[].corporatePartnershipName"),
        Column("membership_start_date", "timestamptz", source="saleItens[].membershipStartDate"),
        Column("num_members", "int", source="saleItens[].numMembers"),
        Column("voucher", "text", source="saleItens[].voucher"),
        Column("accounting_code", "text", source="saleItens[].accountingCode"),
        Column("municipal_service_code", "text", source="saleItens[].municipalServiceCode"),
        Column("fl_receipt_only", "bool", source="saleItens[].flReceiptOnly"),
        Column("fl_swimming", "bool", source="saleItens[].flSwimming"),
        Column("fl_allow_locker", "bool", source="saleItens[].flAllowLocker"),
        Column("sale_item_migration_id", "text", source="saleItens[].idSaleItemMigration"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("sale_item_id",),
    doc="one row per saleItens[] element (what was sold); columns are its fields, named in snake_case",
    parent_key=("sale_id",),
    indexes=(Index("idx_core_sale_items_sale", ("sale_id",)),),
)

RECEIVABLES = Table(
    "core",
    "evo_receivables",
    (
        Column("receivable_id", "bigint", nullable=False, source="receivables[].idReceivable"),
        Column("sale_id", "bigint", nullable=False, doc="the sale (core.evo_sales)"),
        Column("registration_date", "timestamptz", source="receivables[].registrationDate"),
        Column("due_date", "timestamptz", source="receivables[].dueDate"),
        Column("receiving_date", "timestamptz", source="receivables[].receivingDate"),
        Column("cancellation_date", "timestamptz", source="receivables[].cancellationDate"),
        Column("update_date", "timestamptz", source="receivables[].updateDate"),
        Column("amount", "decimal", source="receivables[].ammount"),
        Column("amount_paid", "decimal", source="receivables[].ammountPaid"),
        Column("status_id", "int", source="receivables[].status.id"),
        Column("status_name", "text", source="receivables[].status.name"),
        Column("current_installment", "int", source="receivables[].currentInstallment"),
        Column("total_installments", "int", source="receivables[].totalInstallments"),
        Column("payment_type_id", "int", source="receivables[].paymentType.id"),
        Column("payment_type_name", "text", source="receivables[].paymentType.name"),
        Column("authorization", "text", source="receivables[].authorization"),
        Column("tid", "text", source="receivables[].tid"),
        Column("nsu", "text", source="receivables[].nsu"),
        Column("card_flag", "text", source="receivables[].cardFlag"),
        Column("transaction_token", "text", source="receivables[].transactionToken"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("receivable_id",),
    doc=(
        "one row per receivables[] element (an installment to receive); status_* and payment_type_* "
        "from its {id, name} objects"
    ),
    parent_key=("sale_id",),
    indexes=(
        Index("idx_core_receivables_sale", ("sale_id",)),
        Index("idx_core_receivables_due", ("due_date",)),
    ),
)


#: the decode types from the tables' sources (each field a column reads, in column order), plus
#: the key ``idSale``, the fallback ``cartToken`` and the lists
ITEM = pl.Struct(ITEMS.record_fields())
RECORD = pl.Struct(
    {
        "idSale": _S,
        **SALES.record_fields(),
        "cartToken": _S,
        "saleItens": pl.List(ITEM),
        "receivables": pl.List(RECEIVABLE),
    }
)


def keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    """Adds ``sale_id`` (``idSale``) and ``_key_error``."""
    return records.with_columns(sale_id=E.bigint("idSale")).with_columns(
        _key_error=pl.when(E.text("idSale").is_null())
        .then(pl.lit("key field idSale is missing"))
        .when(pl.col("sale_id").is_null())
        .then(pl.format("key field idSale '{}' is not an integer", pl.col("idSale")))
    )


def _sales(records: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    return E.parent_table(records, SALES, tz, cart_token=pl.coalesce(E.text("idCartToken"), E.text("cartToken")))


def transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    """Bronze sales (with keys) → sales (one row per record), sale items and receivables."""
    tz = ctx.source_timezone
    return {
        SALES.qualified: _sales(records, tz),
        ITEMS.qualified: E.child_table(E.elements_of(records, ITEMS), ITEMS, tz),
        RECEIVABLES.qualified: E.child_table(E.elements_of(records, RECEIVABLES), RECEIVABLES, tz),
    }


#: ``evo-frames extract``: calendar-month ``dateSale`` windows, with receivables
API = Endpoint(
    path="/api/v2/sales",
    window_field="saleDate",
    start_param="dateSaleStart",
    end_param="dateSaleEnd",
    take=100,
    part_size=5_000,
    months=1,
    prefix="%Y-%m_",
    params=(("showReceivables", "true"),),
)

ENTITY = Entity(
    name="sales",
    record=RECORD,
    key=KEY,
    keys=keys,
    core=(SALES, ITEMS, RECEIVABLES),
    transform=transform,
    order=20,
    api=API,
)
