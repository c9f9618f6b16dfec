"""Prospects: one typed row per bronze prospect record."""

from __future__ import annotations

from datetime import date
from typing import Any

from evo_frames.spec import TransformContext
from tests.transforms import RUN_ID, column, key_errors, load, row, utc
from transforms.prospects import ENTITY

# the reference example (§4)
BRUNO: dict[str, Any] = {
    "idProspect": 3300121,
    "idBranch": 57,
    "branchName": "SKYFIT SP - MOOCA",
    "firstName": "Bruno",
    "lastName": "Alves",
    "document": "98765432100",
    "cellphone": "(11) 91234-5678",
    "email": "bruno.alves@example.com",
    "gympassId": None,
    "registerDate": "2025-10-20T18:02:44",
    "gender": "M",
    "birthDate": "2001-01-15T00:00:00",
    "signupType": "Site",
    "mktChannel": "Instagram",
    "conversionDate": None,
    "idMember": None,
    "currentStep": "Agendou visita",
    "address": None,
    "city": "São Paulo",
    "complement": None,
    "neighborhood": None,
    "state": "SP",
    "country": "Brasil",
    "zipCode": None,
    "number": None,
    "responsible": None,
}


def test_reference_example() -> None:
    assert load(ENTITY, [BRUNO])["evo_prospects"].to_dicts() == [
        {
            "prospect_id": 3300121,
            "branch_id": 57,
            "branch_name": "SKYFIT SP - MOOCA",
            "first_name": "Bruno",
            "last_name": "Alves",
            "full_name": "Bruno Alves",
            "document": "98765432100",
            "email": "bruno.alves@example.com",
            "cellphone": "(11) 91234-5678",
            "gender": "M",
            "birth_date": date(2001, 1, 15),
            "address": None,
            "address_number": None,
            "complement": None,
            "neighborhood": None,
            "city": "São Paulo",
            "state": "SP",
            "country": "Brasil",
            "zip_code": None,
            "signup_type": "Site",
            "mkt_channel": "Instagram",
            "current_step": "Agendou visita",
            "gympass_id": None,
            "conversion_date": None,
            "member_id": None,
            "is_converted": False,
            "responsible_name": None,
            "responsible_document": None,
            "responsible_is_financial": False,
            "register_date": utc(2025, 10, 20, 21, 2, 44),
            "_source_run_id": RUN_ID,
        }
    ]


def test_converted_prospect_with_responsible() -> None:
    rec = {
        "idProspect": 1,
        "idMember": "1048577",
        "conversionDate": "2025-11-01T09:00:00",
        "number": " 12 ",
        "responsible": {"name": " Maria Alves ", "document": "111.222.333-44", "financialResponsible": True},
    }
    prospect = row(load(ENTITY, [rec])["evo_prospects"])
    assert (prospect["member_id"], prospect["is_converted"]) == (1048577, True)
    assert prospect["conversion_date"] == utc(2025, 11, 1, 12)
    assert prospect["address_number"] == "12"
    assert (
        prospect["responsible_name"],
        prospect["responsible_document"],
        prospect["responsible_is_financial"],
    ) == ("Maria Alves", "111.222.333-44", True)


def test_missing_keys_and_missing_register_date_still_load() -> None:
    prospect = row(load(ENTITY, [{"idProspect": 2}])["evo_prospects"])
    assert prospect["register_date"] is None and prospect["is_converted"] is False
    assert prospect["responsible_is_financial"] is False
    nullable = {k for k, v in prospect.items() if v is None}
    assert nullable == set(prospect) - {
        "prospect_id",
        "is_converted",
        "responsible_is_financial",
        "_source_run_id",
    }


def test_legacy_keys_are_not_read() -> None:
    rec = {
        "idProspect": 3,
        "financiallyResponsibles": [{"name": "X", "cpf": "1", "financialResponsible": True}],
        "interests": "yoga",
        "notes": "n",
        "temperature": "hot",
    }
    prospect = row(load(ENTITY, [rec])["evo_prospects"])
    assert (prospect["responsible_name"], prospect["responsible_document"]) == (None, None)
    assert "custom_fields" not in prospect


def test_blank_and_bad_values_become_null() -> None:
    rec = {
        "idProspect": "4",
        "idBranch": "x",
        "firstName": " ",
        "lastName": " Alves ",
        "email": "",
        "birthDate": "15/01/2001",
        "registerDate": "soon",
        "idMember": "abc",
        "responsible": {"name": "", "financialResponsible": "maybe"},
    }
    prospect = row(load(ENTITY, [rec])["evo_prospects"])
    assert (prospect["branch_id"], prospect["first_name"], prospect["full_name"], prospect["email"]) == (
        None,
        None,
        "Alves",
        None,
    )
    assert (prospect["birth_date"], prospect["register_date"]) == (None, None)
    assert (prospect["member_id"], prospect["is_converted"]) == (None, False)
    assert (prospect["responsible_name"], prospect["responsible_is_financial"]) == (None, None)


def test_key_errors_name_field_and_value() -> None:
    records = [{"firstName": "x"}, {"idProspect": " "}, {"idProspect": "p-1"}, {"idProspect": 3300121}]
    assert key_errors(ENTITY, records) == [
        "key field idProspect is missing",
        "key field idProspect is missing",
        "key field idProspect 'p-1' is not an integer",
        None,
    ]


def test_time_zone_from_context() -> None:
    records = [{"idProspect": 1, "registerDate": "2025-02-14T10:25:00"}]
    assert column(load(ENTITY, records)["evo_prospects"], "register_date") == [utc(2025, 2, 14, 13, 25)]
    in_utc = load(ENTITY, records, TransformContext(source_timezone="UTC"))["evo_prospects"]
    assert column(in_utc, "register_date") == [utc(2025, 2, 14, 10, 25)]
