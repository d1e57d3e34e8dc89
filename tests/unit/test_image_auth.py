"""Credentials from CRI AuthConfig, WWW-Authenticate parsing, token answers."""

from __future__ import annotations

import base64

import pytest

from image import auth
from image.errors import InvalidCredentialsError, RegistryAuthError


def test_auth_field_decoded_and_wins() -> None:
    encoded = base64.b64encode(b"alice:s3cr:et").decode()
    creds = auth.credentials_from_cri(username="bob", password="x", auth=encoded)
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", "s3cr:et")


def test_empty_auth_is_none() -> None:
    assert auth.credentials_from_cri() is None
    assert auth.credentials_from_cri(server_address="quay.io") is None


def test_tokens_kept() -> None:
    creds = auth.credentials_from_cri(identity_token="id", registry_token="reg")
    assert creds is not None
    assert creds.identity_token == "id"
    assert creds.registry_token == "reg"


def test_secrets_not_in_repr() -> None:
    creds = auth.credentials_from_cri(username="u", password="hunter2", registry_token="tok")
    assert "hunter2" not in repr(creds)
    assert "tok" not in repr(creds)


@pytest.mark.parametrize("value", ["bm9jb2xvbg==", "!!!notbase64"])
def test_bad_auth_field(value: str) -> None:
    with pytest.raises(InvalidCredentialsError, match=r"auth\.auth"):
        auth.credentials_from_cri(auth=value)


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    (challenge,) = auth.parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push",
    }


def test_parse_several_challenges() -> None:
    challenges = auth.parse_challenges(
        'Basic realm="x y", Bearer realm="https://t/", error=invalid'
    )
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params == {"realm": "x y"}
    assert challenges[1].params == {"realm": "https://t/", "error": "invalid"}


def test_parse_quoted_escape() -> None:
    (challenge,) = auth.parse_challenges(r'Bearer realm="a\"b"')
    assert challenge.params["realm"] == 'a"b'


def test_token_response_forms() -> None:
    token = auth.parse_token_response(b'{"access_token": "abc", "expires_in": 120}', "r", 100.0)
    assert token.value == "abc"
    assert token.valid(200.0)
    assert not token.valid(300.0)
    default = auth.parse_token_response(b'{"token": "t"}', "r", 0.0)
    assert default.valid(50.0)
    assert not default.valid(60.0)


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"token": ""}'])
def test_token_response_bad(body: bytes) -> None:
    with pytest.raises(RegistryAuthError, match="token server r"):
        auth.parse_token_response(body, "r")
