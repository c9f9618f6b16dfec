"""The error tree and :func:`evo_frames.errors.redact`: no password, key or token survives it."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from evo_frames.errors import (
    ConfigError,
    EvoFramesError,
    SinkError,
    SourceError,
    TransformError,
    Transient,
    TransientSinkError,
    TransientSourceError,
    redact,
    register_secret,
)


def test_the_tree_and_its_exit_codes() -> None:
    for cls in (ConfigError, SourceError, TransformError, SinkError):
        assert issubclass(cls, EvoFramesError)
    assert issubclass(TransientSinkError, SinkError) and issubclass(TransientSinkError, Transient)
    assert issubclass(TransientSourceError, SourceError) and issubclass(TransientSourceError, Transient)
    assert not issubclass(SinkError, Transient)
    assert (EvoFramesError.exit_code, ConfigError.exit_code, SinkError.exit_code) == (1, 2, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://etl:s3cret@db:5432/x", "postgresql://etl:***@db:5432/x"),
        # an unencoded @, / or : in the password is hidden too: it runs to the last @ of the word
        ("postgresql://etl:p@ss/w:rd@db/x down", "postgresql://etl:***@db/x down"),
        ("a postgresql://etl@db/x b", "a postgresql://etl@db/x b"),  # no password, nothing to hide
        ("abfs://c@acct.dfs.core.windows.net/lake", "abfs://c@acct.dfs.core.windows.net/lake"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=bXlrZXk=;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        (
            "BlobEndpoint=https://x;SharedAccessSignature=sv=2024&sig=abc",
            "BlobEndpoint=https://x;SharedAccessSignature=***&sig=***",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2024-11-04&sig=AbC%2Bd&se=2027",
            "https://acct.blob.core.windows.net/c?sv=2024-11-04&sig=***&se=2027",
        ),
        ("accountkey=abc 'x'", "accountkey=*** 'x'"),
    ],
)
def test_redact_hides_url_passwords_azure_keys_and_signatures(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_registered_secret_is_hidden_plain_and_percent_encoded() -> None:
    secret = f"pw/{uuid.uuid4().hex[:8]}@x"
    register_secret(secret)
    assert redact(f"plain {secret}, encoded {quote(secret, safe='')}") == "plain ***, encoded ***"


def test_a_registered_encoded_secret_is_hidden_decoded_too() -> None:
    plain = f"k+{uuid.uuid4().hex[:8]}/="
    register_secret(quote(plain, safe=""))
    assert redact(f"key {plain}") == "key ***"


def test_short_or_empty_secrets_are_not_registered() -> None:
    # a 5-character password would blank out ordinary words wherever they appear
    register_secret("ghost")
    register_secret("")
    register_secret(None)
    assert redact("a ghost in the lake") == "a ghost in the lake"
