"""Sales: sales, sale items and receivables from bronze sale records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from evo_frames.spec import TransformContext
from tests.transforms import RUN_ID, column, key_errors, load, row, utc
from transforms.sales import ENTITY

# the reference example (§2)
SALE: dict[str, Any] = {
    "idSale": 88001234,
    "idMember": 1048577,
    "idProspect": None,
    "idEmployee": 311,
    "idEmployeeSale": 311,
    "nameEmployeeSale": "Carlos Mendes",
    "saleDate": "2025-02-14T10:25:00",
    "saleDateServer": "2025-02-14T13:25:03",
    "removed": False,
    "removalDate": None,
    "idBranch": 57,
    "saleSource": 1,
    "corporatePartnershipName": None,
    "coporatePartnershipId": None,
    "idSaleMigration": None,
    "saleItens": [
        {
            "idSaleItem": 99100001,
            "description": "PLANO ANUAL SMART",
            "item": "PLANO ANUAL SMART",
            "itemValue": 1198.8,
            "saleValue": 958.8,
            "saleValueWithoutCreditValue": 958.8,
            "quantity": 1,
            "idMembership": 12,
            "discount": 240.0,
            "corporateDiscount": 0,
            "tax": 0,
            "membershipStartDate": "2025-02-14T00:00:00",
            "idMemberMembership": 5550001,
            "valueNextMonth": 99.9,
            "flSwimming": False,
        },
    ],
    "receivables": [
        {
            "idReceivable": 77000001,
            "description": "PLANO ANUAL SMART 1/12",
            "registrationDate": "2025-02-14T10:25:00",
            "dueDate": "2025-02-14T00:00:00",
            "receivingDate": "2025-02-14T10:25:40",
            "ammount": 79.9,
            "ammountPaid": 79.9,
            "status": {"id": 2, "name": "Received"},
            "currentInstallment": 1,
            "totalInstallments": 12,
            "paymentType": {"id": 2, "name": "Cartão de Crédito"},
            "authorization": "A1B2C3",
            "tid": "1002003004",
            "nsu": "004512",
            "cardFlag": "Visa",
            "idSale": 88001234,
            "idMemberPayer": 1048577,
        },
    ],
}


def test_reference_example() -> None:
    out = load(ENTITY, [SALE])
    assert out["evo_sales"].to_dicts() == [
        {
            "sale_id": 88001234,
            "member_id": 1048577,
            "prospect_id": None,
            "employee_id": 311,
            "employee_sale_id": 311,
            "employee_sale_name": "Carlos Mendes",
            "personal_id": None,
            "branch_id": 57,
            "sale_date": utc(2025, 2, 14, 13, 25),
            "sale_date_server": utc(2025, 2, 14, 16, 25, 3),
            "update_date": None,
            "sale_source": 1,
            "observations": None,
            "corporate_partnership_id": None,
            "corporate_partnership_name": None,
            "sale_recurrency_id": None,
            "removed": False,
            "removal_date": None,
            "employee_removal_id": None,
            "sale_migration_id": None,
            "cart_token": None,
            "_source_run_id": RUN_ID,
        }
    ]
    assert out["evo_sale_items"].to_dicts() == [
        {
            "sale_item_id": 99100001,
            "sale_id": 88001234,
            "description": "PLANO ANUAL SMART",
            "item": "PLANO ANUAL SMART",
            "item_value": Decimal("1198.80"),
            "sale_value": Decimal("958.80"),
            "sale_value_without_credit": Decimal("958.80"),
            "quantity": 1,
            "discount": Decimal("240.00"),
            "corporate_discount": Decimal("0.00"),
            "tax": Decimal("0.00"),
            "value_next_month": Decimal("99.90"),
            "membership_id": 12,
            "membership_renewed_id": None,
            "member_membership_id": 5550001,
            "product_id": None,
            "service_id": None,
            "corporate_partnership_id": None,
            "corporate_partnership_name": None,
            "membership_start_date": utc(2025, 2, 14, 3),
            "num_members": None,
            "voucher": None,
            "accounting_code": None,
            "municipal_service_code": None,
            "fl_receipt_only": False,
            "fl_swimming": False,
            "fl_allow_locker": False,
            "sale_item_migration_id": None,
            "_source_run_id": RUN_ID,
        }
    ]
    assert out["evo_receivables"].to_dicts() == [
        {
            "receivable_id": 77000001,
            "sale_id": 88001234,
            "registration_date": utc(2025, 2, 14, 13, 25),
            "due_date": utc(2025, 2, 14, 3),
            "receiving_date": utc(2025, 2, 14, 13, 25, 40),
            "cancellation_date": None,
            "update_date": None,
            "amount": Decimal("79.90"),
            "amount_paid": Decimal("79.90"),
            "status_id": 2,
            "status_name": "Received",
            "current_installment": 1,
            "total_installments": 12,
            "payment_type_id": 2,
            "payment_type_name": "Cartão de Crédito",
            "authorization": "A1B2C3",
            "tid": "1002003004",
            "nsu": "004512",
            "card_flag": "Visa",
            "transaction_token": None,
            "_source_run_id": RUN_ID,
        }
    ]


def test_missing_keys_give_nulls_and_no_children() -> None:
    out = load(ENTITY, [{"idSale": 1}])
    sale = row(out["evo_sales"])
    assert sale["removed"] is False
    assert all(v is None for k, v in sale.items() if k not in {"sale_id", "removed", "_source_run_id"})
    assert out["evo_sale_items"].is_empty() and out["evo_receivables"].is_empty()


def test_null_and_empty_arrays_and_elements_without_id() -> None:
    records = [
        {"idSale": 1, "saleItens": None, "receivables": None},
        {"idSale": 2, "saleItens": [], "receivables": []},
        {
            "idSale": 3,
            "saleItens": [None, {"description": "no id"}, {"idSaleItem": "x"}],
            "receivables": [{"ammount": 10}, None],
        },
    ]
    out = load(ENTITY, records)
    assert column(out["evo_sales"], "sale_id") == [1, 2, 3]
    assert out["evo_sale_items"].is_empty() and out["evo_receivables"].is_empty()


def test_nested_objects_null_or_missing() -> None:
    rec = {
        "idSale": 1,
        "receivables": [
            {"idReceivable": 1, "status": None},
            {"idReceivable": 2, "status": {"id": "abc", "name": "  "}, "paymentType": {"name": "Pix"}},
            {"idReceivable": 3, "status": {}, "paymentType": {"id": 18}},
        ],
    }
    rec_out = load(ENTITY, [rec])["evo_receivables"]
    assert rec_out.select(
        "receivable_id", "status_id", "status_name", "payment_type_id", "payment_type_name"
    ).rows() == [
        (1, None, None, None, None),
        (2, None, None, None, "Pix"),
        (3, None, None, 18, None),
    ]


def test_wrong_k2_keys_are_not_read() -> None:
    rec = {
        "idSale": 1,
        "idCorporatePartnership": 5,
        "nameCorporatePartnership": "K2",
        "saleMigrationId": "K2",
        "saleItens": [
            {
                "idSaleItem": 1,
                "saleValueWithoutCredit": 9,
                "saleItemMigrationId": "K2",
                "idCorporatePartnership": 5,
            }
        ],
        "receivables": [{"idReceivable": 1, "amount": 9, "paymentType": {"idPaymentType": 2}}],
    }
    out = load(ENTITY, [rec])
    sale = row(out["evo_sales"])
    assert (
        sale["corporate_partnership_id"],
        sale["corporate_partnership_name"],
        sale["sale_migration_id"],
    ) == (None, None, None)
    item = row(out["evo_sale_items"])
    assert (
        item["sale_value_without_credit"],
        item["sale_item_migration_id"],
        item["corporate_partnership_id"],
    ) == (None, None, None)
    receivable = row(out["evo_receivables"])
    assert (receivable["amount"], receivable["payment_type_id"]) == (None, None)


def test_swagger_spellings_are_read() -> None:
    rec = {
        "idSale": 1,
        "coporatePartnershipId": "44",
        "corporatePartnershipName": " ACME ",
        "idSaleMigration": "M-1",
        "idCartToken": "tok",
        "cartToken": "v2tok",
        "saleItens": [
            {
                "idSaleItem": 1,
                "coporatePartnershipId": 44,
                "corporatePartnershipName": "ACME",
                "idSaleItemMigration": "IM-1",
                "saleValueWithoutCreditValue": "12.5",
            }
        ],
    }
    v2 = {"idSale": 2, "cartToken": "v2tok"}
    out = load(ENTITY, [rec, v2])
    assert out["evo_sales"].select(
        "corporate_partnership_id", "corporate_partnership_name", "sale_migration_id", "cart_token"
    ).rows() == [(44, "ACME", "M-1", "tok"), (None, None, None, "v2tok")]
    item = row(out["evo_sale_items"])
    assert (item["corporate_partnership_id"], item["corporate_partnership_name"]) == (44, "ACME")
    assert (item["sale_item_migration_id"], item["sale_value_without_credit"]) == ("IM-1", Decimal("12.50"))


def test_blank_and_bad_values_become_null() -> None:
    rec = {
        "idSale": 1,
        "idMember": "",
        "observations": "   ",
        "saleSource": "web",
        "saleDate": "14/02/2025",
        "removed": "nope",
        "idBranch": " 57 ",
        "saleItens": [
            {
                "idSaleItem": 1,
                "quantity": "two",
                "itemValue": "R$ 10",
                "description": " x ",
                "membershipStartDate": "2025-13-01T00:00:00",
                "flSwimming": "",
            }
        ],
        "receivables": [{"idReceivable": 1, "dueDate": "", "ammount": "NaN?", "totalInstallments": 2.5, "nsu": " "}],
    }
    out = load(ENTITY, [rec])
    sale = row(out["evo_sales"])
    assert (sale["member_id"], sale["observations"], sale["sale_source"], sale["sale_date"]) == (
        None,
        None,
        None,
        None,
    )
    assert (sale["removed"], sale["branch_id"]) == (None, 57)
    item = row(out["evo_sale_items"])
    assert (item["quantity"], item["item_value"], item["description"]) == (None, None, "x")
    assert (item["membership_start_date"], item["fl_swimming"]) == (None, False)
    receivable = row(out["evo_receivables"])
    assert (
        receivable["due_date"],
        receivable["amount"],
        receivable["total_installments"],
        receivable["nsu"],
    ) == (None, None, None, None)


def test_flags_default_false() -> None:
    records = [{"idSale": i, "removed": v} for i, v in enumerate([True, "true", None, False, "0"], 1)]
    assert column(load(ENTITY, records)["evo_sales"], "removed") == [True, True, False, False, False]


def test_key_errors_name_field_and_value() -> None:
    records = [{"idMember": 1}, {"idSale": ""}, {"idSale": "abc"}, {"idSale": "88001234"}, {"idSale": 5.0}]
    assert key_errors(ENTITY, records) == [
        "key field idSale is missing",
        "key field idSale is missing",
        "key field idSale 'abc' is not an integer",
        None,
        None,
    ]


def test_time_zone_and_money_rounding() -> None:
    rec = {
        "idSale": 1,
        "saleDate": "2025-02-14T10:25:00",
        "saleDateServer": "2025-02-14T13:25:03Z",
        "receivables": [{"idReceivable": 1, "ammount": 79.999, "ammountPaid": "0.004", "dueDate": "2025-02-14"}],
        "saleItens": [{"idSaleItem": 1, "discount": -10.126, "tax": "1.5e1"}],
    }
    out = load(ENTITY, [rec])
    sale = row(out["evo_sales"])
    assert (sale["sale_date"], sale["sale_date_server"]) == (
        utc(2025, 2, 14, 13, 25),
        utc(2025, 2, 14, 13, 25, 3),
    )
    receivable = row(out["evo_receivables"])
    assert (receivable["amount"], receivable["amount_paid"]) == (Decimal("80.00"), Decimal("0.00"))
    assert receivable["due_date"] == utc(2025, 2, 14, 3)
    item = row(out["evo_sale_items"])
    assert (item["discount"], item["tax"]) == (Decimal("-10.13"), Decimal("15.00"))
    in_utc = load(ENTITY, [rec], TransformContext(source_timezone="UTC"))
    assert row(in_utc["evo_sales"])["sale_date"] == utc(2025, 2, 14, 10, 25)


def test_child_id_repeated_keeps_the_newest_record_then_last_element() -> None:
    newer = {
        "idSale": 1,
        "saleItens": [
            {"idSaleItem": 7, "description": "newer-first"},
            {"idSaleItem": 7, "description": "newer-last"},
        ],
        "receivables": [{"idReceivable": 9, "description": "newer"}],
    }
    older = {
        "idSale": 2,
        "saleItens": [{"idSaleItem": 7, "description": "older"}, {"idSaleItem": 8, "description": "only"}],
        "receivables": [{"idReceivable": 9, "description": "older"}],
    }
    # the newer record comes first in the batch: order of rows must not decide, lineage does
    out = load(ENTITY, [newer, older], run_ids=["20260112T000000Z", "20260111T000000Z"])
    assert sorted(out["evo_sale_items"].select("sale_item_id", "sale_id", "description").rows()) == [
        (7, 1, "newer-last"),
        (8, 2, "only"),
    ]
    assert out["evo_receivables"].select("receivable_id", "sale_id").rows() == [(9, 1)]
    # within one run the later line is the newer record
    same_run = load(ENTITY, [newer, older])
    assert sorted(same_run["evo_sale_items"].select("sale_item_id", "sale_id").rows()) == [(7, 2), (8, 2)]
