"""crm_ml.signing: signed, expiring links."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from crm_ml import signing
from crm_ml.identity import from_metadata

SECRET = "signing-secret"
PATH = signing.FORECAST_CHART
NOW = 1_700_000_000


def pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def test_a_link_holds_its_parameters_expiry_and_signature() -> None:
    query = signing.sign_query(PATH, {"series": "segment:At Risk", "weeks": 13}, SECRET,
                               ttl=900, now=NOW)
    assert query.startswith("series=segment%3AAt%20Risk&weeks=13&exp=1700000900&sig=")
    signing.verify_query(PATH, pairs(query), SECRET, now=NOW + 900)  # valid to the second
    signing.verify_query(PATH, reversed(pairs(query)), SECRET, now=NOW)  # order is free


def test_the_signature_is_hmac_sha256_of_the_canonical_link() -> None:
    import hashlib
    import hmac

    query = signing.sign_query(PATH, {"weeks": 4, "series": "total"}, SECRET, now=NOW)
    expected = hmac.new(SECRET.encode(),
                        b"/charts/forecast.png?exp=1700000900&series=total&weeks=4",
                        hashlib.sha256).hexdigest()
    assert dict(pairs(query))["sig"] == expected


@pytest.mark.parametrize("change", [
    lambda p: [(k, "country:UK" if k == "series" else v) for k, v in p],
    lambda p: [(k, "52" if k == "weeks" else v) for k, v in p],
    lambda p: [(k, str(int(v) + 3600) if k == "exp" else v) for k, v in p],
    lambda p: [(k, v.upper() if k == "sig" else v) for k, v in p[:-1]] + [("sig", "0" * 64)],
    lambda p: [*p, ("history", "156")],
    lambda p: [*p, ("weeks", "4")],
    lambda p: [(k, v) for k, v in p if k != "sig"],
    lambda p: [(k, v) for k, v in p if k != "exp"],
    lambda p: [(k, "é" if k == "sig" else v) for k, v in p],
])
def test_any_change_invalidates_the_link(change) -> None:  # noqa: ANN001
    good = pairs(signing.sign_query(PATH, {"series": "total", "weeks": 4}, SECRET, now=NOW))
    with pytest.raises(signing.InvalidLink) as exc:
        signing.verify_query(PATH, change(good), SECRET, now=NOW)
    assert not isinstance(exc.value, signing.LinkExpired)


def test_a_link_is_for_one_route_and_one_secret() -> None:
    good = pairs(signing.sign_query(PATH, {"series": "total", "weeks": 4}, SECRET, now=NOW))
    with pytest.raises(signing.InvalidLink):
        signing.verify_query("/charts/other.png", good, SECRET, now=NOW)
    with pytest.raises(signing.InvalidLink):
        signing.verify_query(PATH, good, "another secret", now=NOW)
    with pytest.raises(signing.InvalidLink):
        signing.verify_query(PATH, good, "", now=NOW)


def test_an_expired_link_says_so() -> None:
    good = pairs(signing.sign_query(PATH, {"series": "total", "weeks": 4}, SECRET, ttl=60,
                                    now=NOW))
    with pytest.raises(signing.LinkExpired):
        signing.verify_query(PATH, good, SECRET, now=NOW + 61)


def test_nothing_is_signed_without_a_secret_or_with_reserved_names() -> None:
    with pytest.raises(ValueError, match="CRM_IDENTITY_SECRET"):
        signing.sign_query(PATH, {"series": "total"}, "")
    with pytest.raises(ValueError):
        signing.sign_query(PATH, {"exp": 1}, SECRET)


def test_a_link_signature_is_no_identity_signature() -> None:
    """The signed message starts with the route, so it never reads as a user id."""
    sig = dict(pairs(signing.sign_query(PATH, {"series": "total"}, SECRET, now=NOW)))["sig"]
    for user in ("rep:1", "agent:1", "manager:1"):
        assert from_metadata({"auth": {"user": user, "sig": sig}}, SECRET).number is None
