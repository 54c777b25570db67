"""The launch deadline read from a workload token's ``exp``, without verifying it (Airflow's API server does)."""

from __future__ import annotations

import base64
import json

import pytest
from airflow.api_fastapi.auth.tokens import JWTGenerator

from hybrid_executor.kubernetes.workload_token import START_MARGIN, launch_deadline

NOW = 1_800_000_000.0
NOT_UTF8 = base64.urlsafe_b64encode(b"\xff\xfe").decode()  # a payload that is not UTF-8


def _segment(claims: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def test_the_deadline_is_the_tokens_expiry_less_the_start_margin() -> None:
    token = JWTGenerator(secret_key="k" * 64, valid_for=600, audience="urn:airflow.apache.org:task").generate(
        extras={"sub": "0198f3a2-5b7c-7d1e-9a4f-2c6b8e1d3f50"}
    )
    issued = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"] - 600
    deadline = launch_deadline(token, clock=lambda: 100.0, wall_clock=lambda: issued)
    assert deadline == pytest.approx(100.0 + 600 - START_MARGIN)


def test_a_signature_that_does_not_verify_is_not_this_executors_to_judge() -> None:
    token = f"{_segment({'alg': 'HS512', 'typ': 'JWT'})}.{_segment({'exp': NOW + 300})}.bm90LWEtc2lnbmF0dXJl"
    assert launch_deadline(token, margin=0, clock=lambda: 0.0, wall_clock=lambda: NOW) == pytest.approx(300)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b",
        f"{_segment({'alg': 'HS512'})}.%%%%.c",  # a payload that is not base64url
        f"{_segment({'alg': 'HS512'})}.{_segment(['a', 'list'])}.c",  # claims that are not an object
        f"{_segment({'alg': 'HS512'})}.{_segment({'sub': 'x'})}.c",  # no expiry
        f"{_segment({'alg': 'HS512'})}.{_segment({'exp': '1800000000'})}.c",  # an expiry that is not a number
        f"{_segment({'alg': 'HS512'})}.{_segment({'exp': True})}.c",  # JSON true is no expiry either
        f"{_segment({'alg': 'HS512'})}.{NOT_UTF8}.c",
    ],
)
def test_a_token_without_a_readable_expiry_has_no_deadline(token: str) -> None:
    assert launch_deadline(token, clock=lambda: 0.0, wall_clock=lambda: NOW) is None
