"""Who calls over HTTP, as the API's authorizer vouches for it in the request context — never
from the body, a header or the path: its identities (``kind:value``, the one that names it
first) and the ``deliveredBy`` that records it.

- The IAM API: ``requestContext.authorizer.iam.userArn``. A user is ``iam:`` its ARN; a role's
  session is ``iam:`` the session's ARN, and its role's ARN too (a decider naming the role
  matches every session of it).
- A JWT authorizer (the dashboard API) hands every claim over as a string:
  ``"email_verified": "true"``, an array flattened to ``"[finance admins]"``. ``sub:`` the
  subject; ``email:`` the address only when ``email_verified`` is true; ``group:`` each name of
  the groups claim (``JWT_GROUPS_CLAIM``, default ``cognito:groups``). ``deliveredBy`` is the
  verified e-mail, else ``cognito:username``/``username``, else ``sub``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

from flowsignals.core.values import MAX_CALLER_IDENTITIES, caller_identity


@dataclass(frozen=True)
class Caller:
    identities: tuple[str, ...]
    delivered_by: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _identity(kind: str, value: str | None) -> list[str]:
    """``kind:value`` in its one spelling, or nothing for a value no decider could name."""
    if value is None:
        return []
    try:
        return [caller_identity(f"{kind}:{value}")]
    except PydanticCustomError:
        return []


def _names(claim: object) -> list[str]:
    """A groups claim as API Gateway hands it over: ``"[a b]"``, a JSON array, or one name."""
    if isinstance(claim, list):
        return [str(name) for name in claim]
    text = _text(claim)
    if text is None:
        return []
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text[1:-1].split()
        return [str(name) for name in parsed] if isinstance(parsed, list) else []
    return [text]


def _verified(claims: dict[str, Any]) -> bool:
    return claims.get("email_verified") in (True, "true")


def http_caller(event: dict[str, Any], groups_claim: str) -> Caller:
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    if not isinstance(authorizer, dict):
        return Caller((), None)
    iam, jwt = authorizer.get("iam"), authorizer.get("jwt")
    if isinstance(iam, dict):
        arn = _text(iam.get("userArn"))
        return Caller(tuple(_identity("iam", arn)), arn)
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    if not isinstance(claims, dict):
        return Caller((), None)
    sub, email = _text(claims.get("sub")), _text(claims.get("email"))
    verified = email if email is not None and _verified(claims) else None
    identities = _identity("sub", sub) + _identity("email", verified)
    for group in _names(claims.get(groups_claim)):
        identities += _identity("group", group)
    username = _text(claims.get("cognito:username")) or _text(claims.get("username"))
    unique = tuple(dict.fromkeys(identities))[:MAX_CALLER_IDENTITIES]
    return Caller(unique, verified or username or sub)
