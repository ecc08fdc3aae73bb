"""Signed identities (DESIGN.md contract) and the authorization rules."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from crm_ml import authz
from crm_ml.identity import ANONYMOUS, Identity, from_metadata, sign

SECRET = "s3cret"


def meta(user: str, sig: str | None = None) -> dict:
    return {"auth": {"user": user, "sig": sig if sig is not None else sign(user, SECRET)}}


def test_signature_is_hmac_sha256_of_the_user() -> None:
    assert sign("rep:2", SECRET) == hmac.new(b"s3cret", b"rep:2", hashlib.sha256).hexdigest()


@pytest.mark.parametrize("user,role,number", [
    ("rep:2", "rep", 2), ("manager:1", "manager", 1), ("agent:7", "agent", 7),
    ("customer:12347", "customer", 12347),
])
def test_valid_signatures(user: str, role: str, number: int) -> None:
    assert from_metadata(meta(user), SECRET) == Identity(role, number)


@pytest.mark.parametrize("metadata", [
    None, "x", [], {}, {"auth": "rep:2"}, {"auth": {"user": "rep:2"}},
    meta("rep:2", "0" * 64), meta("rep:2", sign("rep:3", SECRET)), meta("admin:1"),
    meta("rep:-1"), meta("rep:2 "), {"auth": {"user": 5, "sig": "x"}},
])
def test_anything_else_is_anonymous(metadata: object) -> None:
    assert from_metadata(metadata, SECRET) == ANONYMOUS


def test_no_secret_no_identity() -> None:
    assert from_metadata(meta("rep:2"), "") == ANONYMOUS


@pytest.mark.parametrize("role,permission,expected", [
    ("anonymous", "faq", True), ("anonymous", "own_orders", False),
    ("customer", "own_orders", True), ("customer", "leads.read", False),
    ("rep", "leads.read", True), ("rep", "escalations", False),
    ("manager", "leads.write", True), ("agent", "escalations", True),
    ("agent", "leads.read", False),
])
def test_permission_table(role: str, permission: str, expected: bool) -> None:
    assert authz.allowed(Identity(role, 1), permission) is expected


def test_customers_see_only_themselves() -> None:
    authz.check_customer(Identity("customer", 5), 5)
    with pytest.raises(authz.Forbidden):
        authz.check_customer(Identity("customer", 5), 6)
    with pytest.raises(authz.Forbidden):
        authz.check_customer(ANONYMOUS, 5)


def test_rep_scope(env, sqlite_url: str) -> None:
    import pandas as pd  # noqa: F401 - loader needs pandas

    from crm_ml import loader
    from crm_ml.db.session import get_engine, session_scope

    with get_engine(sqlite_url).begin() as conn:
        loader.load_reps(conn)
    with session_scope(sqlite_url) as s:
        assert authz.rep_scope(Identity("rep", 2), session=s) == {2}
        assert authz.rep_scope(Identity("manager", 1), session=s) == set(range(1, 9))
        assert authz.rep_scope(Identity("manager", 9), session=s) == set()
        assert authz.rep_scope(Identity("agent", 1), session=s) is authz.ALL
        with pytest.raises(authz.Forbidden):
            authz.rep_scope(Identity("customer", 12347), session=s)
        authz.check_owner(Identity("rep", 2), 2, session=s)
        with pytest.raises(authz.Forbidden):
            authz.check_owner(Identity("rep", 2), 3, session=s)
