"""Members: members, memberships and contacts from bronze member records."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any

from evo_frames.spec import TransformContext
from tests.transforms import RUN_ID, column, key_errors, load, row, utc
from transforms.members import ENTITY

# the reference example (§1), with the keys it omits as null
ANA: dict[str, Any] = {
    "idMember": 1048577,
    "firstName": "Ana",
    "lastName": "Souza Lima",
    "registerDate": "2023-02-14T10:22:31",
    "idBranch": 57,
    "branchName": "SKYFIT SP - MOOCA",
    "accessBlocked": False,
    "blockedReason": None,
    "document": "123.456.789-09",
    "documentId": "45.678.901-2",
    "gender": "F",
    "birthDate": "1994-07-03T00:00:00",
    "address": "Rua Taquari",
    "number": "512",
    "neighborhood": "Mooca",
    "city": "São Paulo",
    "state": "SP",
    "country": "Brasil",
    "zipCode": "03166-000",
    "accessCardNumber": "0009876543",
    "membershipStatus": "Active",
    "status": "Active",
    "penalized": False,
    "totalFitCoins": 0,
    "lastAccessDate": "2026-01-08T19:41:02",
    "conversionDate": "2023-02-14T10:22:31",
    "idEmployeeConsultant": 311,
    "nameEmployeeConsultant": "Carlos Mendes",
    "gympassId": None,
    "codeTotalpass": None,
    "personalTrainer": False,
    "contacts": [
        {
            "idPhone": 2200113,
            "idMember": 1048577,
            "idContactType": 2,
            "contactType": "Celular",
            "ddi": "55",
            "description": "(11) 98765-4321",
        },
        {
            "idPhone": 2200114,
            "idMember": 1048577,
            "idContactType": 4,
            "contactType": "E-mail",
            "description": "ana.souza@example.com",
        },
    ],
    "memberships": [
        {
            "idMember": 1048577,
            "idMembership": 12,
            "idMemberMembership": 5550001,
            "idMemberMembershipRenewed": None,
            "numMembers": 1,
            "startDate": "2025-02-14T00:00:00",
            "endDate": "2026-02-13T23:59:59",
            "name": "PLANO ANUAL SMART",
            "cancelDate": None,
            "membershipStatus": "active",
            "valueNextMonth": 99.9,
            "originalValue": 119.9,
            "nextCharge": "2026-01-14T00:00:00",
            "idSale": 88001234,
            "saleDate": "2025-02-14T10:25:00",
            "idCategoryMembership": 3,
            "maxSuspensionDays": 30,
            "loyaltyEndDate": "2026-02-13T00:00:00",
            "signedTerms": True,
            "limitless": True,
            "freezes": [],
            "sessions": [],
        },
    ],
    "responsibles": [],
}


def test_reference_example() -> None:
    out = load(ENTITY, [ANA])
    assert row(out["evo_members"]) == {
        "member_id": 1048577,
        "branch_id": 57,
        "branch_name": "SKYFIT SP - MOOCA",
        "first_name": "Ana",
        "last_name": "Souza Lima",
        "full_name": "Ana Souza Lima",
        "register_name": None,
        "register_last_name": None,
        "use_preferred_name": False,
        "document": "123.456.789-09",
        "document_id": "45.678.901-2",
        "email": "ana.souza@example.com",
        "cellphone": "(11) 98765-4321",
        "gender": "F",
        "birth_date": date(1994, 7, 3),
        "marital_status": None,
        "address": "Rua Taquari",
        "address_number": "512",
        "complement": None,
        "neighborhood": "Mooca",
        "city": "São Paulo",
        "state": "SP",
        "country": "Brasil",
        "zip_code": "03166-000",
        "access_card_number": "0009876543",
        "access_blocked": False,
        "blocked_reason": None,
        "status": "Active",
        "membership_status": "Active",
        "penalized": False,
        "total_fit_coins": Decimal("0.00"),
        "register_date": utc(2023, 2, 14, 13, 22, 31),
        "conversion_date": utc(2023, 2, 14, 13, 22, 31),
        "last_access_date": utc(2026, 1, 8, 22, 41, 2),
        "update_date": None,
        "photo_url": None,
        "gympass_id": None,
        "code_totalpass": None,
        "user_id_gurupass": None,
        "client_with_promotional_restriction": False,
        "personal_trainer": False,
        "personal_type": None,
        "cref": None,
        "cref_expiration_date": None,
        "employee_consultant_id": 311,
        "employee_consultant_name": "Carlos Mendes",
        "employee_instructor_id": None,
        "employee_instructor_name": None,
        "employee_personal_id": None,
        "employee_personal_name": None,
        "member_migration_id": None,
        "_source_run_id": RUN_ID,
    }
    assert out["evo_member_memberships"].to_dicts() == [
        {
            "member_id": 1048577,
            "member_membership_id": 5550001,
            "membership_id": 12,
            "membership_name": "PLANO ANUAL SMART",
            "membership_renewed_id": None,
            "sale_id": 88001234,
            "sale_date": utc(2025, 2, 14, 13, 25),
            "start_date": utc(2025, 2, 14, 3),
            "end_date": utc(2026, 2, 14, 2, 59, 59),
            "cancel_date": None,
            "cancel_date_on": None,
            "cancel_creation_date": None,
            "membership_status": "active",
            "value_next_month": Decimal("99.90"),
            "original_value": Decimal("119.90"),
            "next_charge": utc(2026, 1, 14, 3),
            "next_date_suspension": None,
            "category_membership_id": 3,
            "loyalty_end_date": utc(2026, 2, 13, 3),
            "assessment_end_date": None,
            "acceptance_date": None,
            "num_members": 1,
            "fl_allow_locker": False,
            "fl_additional_membership": False,
            "allow_les_mills": False,
            "allows_cancellation_by_app": False,
            "signed_terms": True,
            "limitless": True,
            "weekly_limit": None,
            "bioimpedance_amount": None,
            "concluded_sessions": None,
            "pending_sessions": None,
            "scheduled_sessions": None,
            "pending_repositions": None,
            "repositions_total": None,
            "bonus_sessions": None,
            "number_suspension_times": None,
            "max_suspension_days": 30,
            "minimum_suspension_days": None,
            "disponible_suspension_days": None,
            "disponible_suspension_times": None,
            "days_left_to_freeze": None,
            "contract_printing": None,
            "freezes": "[]",
            "sessions": "[]",
            "_source_run_id": RUN_ID,
        }
    ]
    assert out["evo_member_contacts"].to_dicts() == [
        {
            "member_id": 1048577,
            "contact_key": "2200113",
            "phone_id": 2200113,
            "contact_type_id": 2,
            "contact_type": "Celular",
            "ddi": "55",
            "description": "(11) 98765-4321",
            "_source_run_id": RUN_ID,
        },
        {
            "member_id": 1048577,
            "contact_key": "2200114",
            "phone_id": 2200114,
            "contact_type_id": 4,
            "contact_type": "E-mail",
            "ddi": None,
            "description": "ana.souza@example.com",
            "_source_run_id": RUN_ID,
        },
    ]


def test_missing_keys_give_nulls_and_false_flags() -> None:
    out = load(ENTITY, [{"idMember": 7}])
    member = row(out["evo_members"])
    flags = {
        "use_preferred_name",
        "access_blocked",
        "penalized",
        "client_with_promotional_restriction",
        "personal_trainer",
    }
    assert member["member_id"] == 7 and member["_source_run_id"] == RUN_ID
    assert {k for k, v in member.items() if v is False} == flags
    assert all(v is None for k, v in member.items() if k not in flags | {"member_id", "_source_run_id"})
    assert out["evo_member_memberships"].is_empty() and out["evo_member_contacts"].is_empty()


def test_null_and_empty_arrays_give_no_children() -> None:
    records = [
        {"idMember": 1, "contacts": None, "memberships": None},
        {"idMember": 2, "contacts": [], "memberships": []},
        {
            "idMember": 3,
            "contacts": [None],
            "memberships": [None, {"name": "no id"}, {"idMemberMembership": ""}],
        },
    ]
    out = load(ENTITY, records)
    assert out["evo_members"]["member_id"].to_list() == [1, 2, 3]
    assert out["evo_members"]["email"].to_list() == [None, None, None]
    assert out["evo_member_memberships"].is_empty() and out["evo_member_contacts"].is_empty()


def test_blank_strings_are_null_and_text_is_trimmed() -> None:
    rec = {
        "idMember": " 8 ",
        "firstName": "  Ana ",
        "lastName": "   ",
        "document": "",
        "city": "\tMooca\n",
        "number": "  ",
        "addressNumber": " 12A ",
    }
    member = row(load(ENTITY, [rec])["evo_members"])
    assert (member["member_id"], member["first_name"], member["last_name"]) == (8, "Ana", None)
    assert (member["full_name"], member["document"], member["city"]) == ("Ana", None, "Mooca")
    assert member["address_number"] == "12A"  # a blank swagger key falls back to the v2 one


def test_bad_values_become_null() -> None:
    rec = {
        "idMember": 9,
        "idBranch": "abc",
        "birthDate": "31/12/1990",
        "registerDate": "yesterday",
        "totalFitCoins": "lots",
        "idEmployeeConsultant": 3.5,
        "accessBlocked": "maybe",
        "crefExpirationDate": "2026-02-30T00:00:00",
    }
    member = row(load(ENTITY, [rec])["evo_members"])
    for name in (
        "branch_id",
        "birth_date",
        "register_date",
        "total_fit_coins",
        "employee_consultant_id",
        "access_blocked",
        "cref_expiration_date",
    ):
        assert member[name] is None, name


def test_flags_parse_true_false_and_default_false() -> None:
    records = [{"idMember": i, "penalized": v} for i, v in enumerate([True, "TRUE", 1, "0", False, None, ""], 1)]
    assert column(load(ENTITY, records)["evo_members"], "penalized") == [True] * 3 + [False] * 4


def test_key_errors_name_field_and_value() -> None:
    records = [
        {"firstName": "x"},
        {"idMember": None},
        {"idMember": "  "},
        {"idMember": "abc"},
        {"idMember": 1.5},
        {"idMember": "12"},
    ]
    assert key_errors(ENTITY, records) == [
        "key field idMember is missing",
        "key field idMember is missing",
        "key field idMember is missing",
        "key field idMember 'abc' is not an integer",
        "key field idMember '1.5' is not an integer",
        None,
    ]


def test_timestamps_read_in_source_time_zone_dates_as_sent() -> None:
    rec = {
        "idMember": 1,
        "registerDate": "2025-02-14T10:25:00",
        "updateDate": "2025-02-14T10:25:00.250",
        "lastAccessDate": "2025-02-14T10:25:00Z",
        "birthDate": "1994-07-03T00:00:00",
    }
    member = row(load(ENTITY, [rec])["evo_members"])
    assert member["register_date"] == utc(2025, 2, 14, 13, 25)
    assert member["update_date"] == utc(2025, 2, 14, 13, 25, 0, 250000)
    assert member["last_access_date"] == utc(2025, 2, 14, 10, 25)  # an explicit offset is kept
    assert member["birth_date"] == date(1994, 7, 3)  # a date is never shifted
    in_utc = row(load(ENTITY, [rec], TransformContext(source_timezone="UTC"))["evo_members"])
    assert in_utc["register_date"] == utc(2025, 2, 14, 10, 25)


def test_money_rounds_to_cents() -> None:
    rec = {
        "idMember": 1,
        "totalFitCoins": "10.126",
        "memberships": [{"idMemberMembership": 1, "valueNextMonth": 79.999, "originalValue": "1e2"}],
    }
    out = load(ENTITY, [rec])
    assert row(out["evo_members"])["total_fit_coins"] == Decimal("10.13")
    ms = row(out["evo_member_memberships"])
    assert (ms["value_next_month"], ms["original_value"]) == (Decimal("80.00"), Decimal("100.00"))


def test_email_and_cellphone_pick_is_deterministic() -> None:
    contacts = [
        {"idPhone": 30, "idContactType": 1, "description": "(11) 3333-0000"},
        {"idPhone": 20, "idContactType": 2, "description": "  "},  # blank: never picked
        {"idPhone": 25, "idContactType": 2, "description": "(11) 92222-0000"},
        {"idPhone": None, "idContactType": 2, "description": "(11) 91111-0000"},  # no id sorts last
        {"idPhone": 50, "idContactType": 3, "description": "b@example.com"},
        {"idPhone": 40, "idContactType": 4, "description": "a@example.com"},
        {"idPhone": 10, "contactType": "E-mail", "description": "label@example.com"},  # label only: fallback
    ]
    records = [
        {"idMember": 1, "contacts": contacts},
        {"idMember": 2, "contacts": list(reversed(contacts))},
        {
            "idMember": 3,
            "contacts": [
                {"idPhone": 9, "contactType": " EMAIL ", "description": "only@example.com"},
                {"idPhone": 8, "typeDescription": "e-mail", "description": "v2@example.com"},
            ],
        },
        {
            "idMember": 4,
            "contacts": [{"idContactType": 2, "description": "x"}, {"idContactType": 2, "description": "y"}],
        },
    ]
    members = load(ENTITY, records)["evo_members"]
    assert column(members, "email") == ["a@example.com", "a@example.com", "v2@example.com", None]
    assert column(members, "cellphone") == ["(11) 92222-0000", "(11) 92222-0000", None, "x"]


def test_contact_keys_are_stable_and_unique() -> None:
    rec = {
        "idMember": 5,
        "contacts": [
            {"idPhone": "77", "idContactType": 2, "description": "(11) 90000-0000"},
            {"idPhone": None, "idContactType": 4, "contactType": "E-mail", "description": " a@example.com "},
            {"idContactType": 2, "ddi": "55", "description": "(11) 95555-0000"},
            # the same content again: one row, the last wins
            {"idContactType": 2, "ddi": "1", "description": "(11) 95555-0000"},
            {"idPhone": "abc", "description": "(11) 96666-0000"},
            {"idContactType": 1},  # nothing to key or keep
        ],
    }
    first = load(ENTITY, [rec])["evo_member_contacts"]
    again = load(ENTITY, [rec], run_ids=["20260112T000000Z"])["evo_member_contacts"]
    keys = column(first, "contact_key")
    assert keys == column(again, "contact_key")
    # the recipe is part of the stored key: changing it would duplicate contacts on the next run
    recipe = ["4|a@example.com", "2|(11) 95555-0000", "|(11) 96666-0000"]
    assert keys == ["77", *("md5:" + hashlib.md5(k.encode()).hexdigest() for k in recipe)]
    assert column(first, "description") == [
        "(11) 90000-0000",
        "a@example.com",
        "(11) 95555-0000",
        "(11) 96666-0000",
    ]
    assert column(first, "phone_id") == [77, None, None, None]
    assert column(first, "ddi") == [None, None, "1", None]
    # the key depends on what the contact says, not on where it sits in the list
    moved = load(ENTITY, [{"idMember": 5, "contacts": list(reversed(rec["contacts"]))}])["evo_member_contacts"]
    assert sorted(column(moved, "contact_key")) == sorted(keys)


def test_contact_type_label_falls_back_to_v2_key() -> None:
    rec = {
        "idMember": 1,
        "contacts": [
            {"idPhone": 1, "typeDescription": "Celular"},
            {"idPhone": 2, "contactType": "Fixo", "typeDescription": "Telefone"},
        ],
    }
    assert column(load(ENTITY, [rec])["evo_member_contacts"], "contact_type") == ["Celular", "Fixo"]


def test_swagger_keys_win_over_v2_fallbacks() -> None:
    both = {
        "idMember": 1,
        "photoUrl": "s.png",
        "photo": "v2.png",
        "number": "1",
        "addressNumber": "2",
        "idMemberMigration": "S1",
        "memberMigrationId": "V1",
        "idEmployeeInstructor": 5,
        "nameEmployeeInstructor": "Flat",
        "employeeInstructor": {"idEmployee": 6, "name": "Nested"},
    }
    v2 = {
        "idMember": 2,
        "photo": "v2.png",
        "addressNumber": "2",
        "memberMigrationId": "V1",
        "employeeConsultant": {"idEmployee": 6, "name": "Nested"},
        "employeePersonal": {"idEmployee": "7"},
        "idEmployeePersonalTrainer": None,
        "nameEmployeePersonalTrainer": "Flat",
    }
    members = load(ENTITY, [both, v2])["evo_members"]
    picked = [
        "photo_url",
        "address_number",
        "member_migration_id",
        "employee_instructor_id",
        "employee_instructor_name",
        "employee_consultant_id",
        "employee_consultant_name",
        "employee_personal_id",
        "employee_personal_name",
    ]
    assert members.select(picked).rows() == [
        ("s.png", "1", "S1", 5, "Flat", None, None, None, None),
        ("v2.png", "2", "V1", None, None, 6, "Nested", 7, "Flat"),
    ]


def test_membership_fallbacks_and_json_columns() -> None:
    rec = {
        "idMember": 1,
        "memberships": [
            {
                "idMemberMembership": 10,
                "membershipName": "V2 NAME",
                "idMembershipRenewed": 9,
                "freezes": [
                    {
                        "idFreeze": 3,
                        "daysFreeze": " 15 ",
                        "startSuspend": "2025-03-01T00:00:00",
                        "reason": "Viagem",
                        "flUseMembershipFreezeDays": "true",
                    },
                    None,
                ],
                "sessions": [{"idSession": "x", "expirationDate": "2025-04-01T00:00:00", "flBonusSession": False}],
            },
            {
                "idMemberMembership": 11,
                "name": "PLANO",
                "membershipName": "IGNORED",
                "idMemberMembershipRenewed": 8,
                "idMembershipRenewed": 7,
                "freezes": None,
            },
        ],
    }
    ms = load(ENTITY, [rec])["evo_member_memberships"]
    assert ms.select("member_membership_id", "membership_name", "membership_renewed_id").rows() == [
        (10, "V2 NAME", 9),
        (11, "PLANO", 8),
    ]
    assert column(ms, "freezes") == [
        '[{"idFreeze":3,"idEmployee":null,"daysFreeze":15,"startSuspend":"2025-03-01T00:00:00",'
        '"endSuspend":null,"unlockDate":null,"reason":"Viagem","flUseMembershipFreezeDays":true}]',
        None,
    ]
    assert column(ms, "sessions") == [
        '[{"idSession":null,"expirationDate":"2025-04-01T00:00:00","flBonusSession":false}]',
        None,
    ]


def test_membership_repeated_in_one_member_keeps_the_last() -> None:
    rec = {
        "idMember": 1,
        "memberships": [
            {"idMemberMembership": 10, "name": "OLD"},
            {"idMemberMembership": "10", "name": "NEW"},
            {"idMemberMembership": 11, "name": "OTHER"},
        ],
    }
    other = {"idMember": 2, "memberships": [{"idMemberMembership": 10, "name": "ELSEWHERE"}]}
    ms = load(ENTITY, [rec, other])["evo_member_memberships"]
    assert sorted(ms.select("member_id", "member_membership_id", "membership_name").rows()) == [
        (1, 10, "NEW"),
        (1, 11, "OTHER"),
        (2, 10, "ELSEWHERE"),
    ]


def test_membership_values_typed() -> None:
    rec = {
        "idMember": 1,
        "memberships": [
            {
                "idMemberMembership": 1,
                "numMembers": "2",
                "weeklyLimit": 3.0,
                "pendingSessions": "x",
                "daysLeftToFreeze": 99999999999,
                "flAllowLocker": "1",
                "allowLesMills": True,
                "limitless": None,
                "cancelDate": "2025-06-01T12:00:00",
                "cancelDateOn": "",
                "contractPrinting": " yes ",
            }
        ],
    }
    ms = row(load(ENTITY, [rec])["evo_member_memberships"])
    assert (ms["num_members"], ms["weekly_limit"], ms["pending_sessions"], ms["days_left_to_freeze"]) == (
        2,
        3,
        None,
        None,
    )
    assert (ms["fl_allow_locker"], ms["allow_les_mills"], ms["limitless"]) == (True, True, False)
    assert (ms["cancel_date"], ms["cancel_date_on"], ms["contract_printing"]) == (
        utc(2025, 6, 1, 15),
        None,
        "yes",
    )
