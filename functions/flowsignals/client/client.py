"""A client of the HTTP API: the store's operations, names and answers, over HTTPS.

Requests go out with the standard library (``urllib.request``); botocore signs them (SigV4,
service ``execute-api``) for the API's ``AWS_IAM`` routes. Payloads and credentials are never
logged, nor repeated in an error message.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import logging
import math
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from uuid import UUID

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError

from flowsignals.core.errors import (
    FlowSignalError,
    InvalidSignalRequest,
    NotAllowedToDecide,
    PayloadTooLarge,
    StoreUnavailable,
)
from flowsignals.core.links import LinkAction, MintedLinks
from flowsignals.core.models import (
    Approval,
    BufferedSignal,
    FlowSignalWaiter,
    SignalDeliveryResult,
    SignalDeliveryStatus,
    SignalFailure,
)
from flowsignals.core.values import format_timestamp, parse_timestamp

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RETRIES = 3
# A 503's Retry-After is honoured up to this many seconds (a missing or unreadable one is 1 s).
MAX_RETRY_AFTER_SECONDS = 20.0
# The API's largest page: list_waiters follows nextToken a page of this many at a time.
PAGE_SIZE = 100
# Answers that mean "busy, nothing was done": retried after Retry-After, then StoreUnavailable.
# 429 is API Gateway's own throttling.
RETRIED_STATUSES = frozenset({429, 503})
SERVICE = "execute-api"
USER_AGENT = "flowsignals-client/0.1"

_EXECUTE_API_HOST = re.compile(
    r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?", re.IGNORECASE
)
_PRINTABLE_ASCII = re.compile("[\x20-\x7e]+")

# The clock a retry waits on (tests replace it).
_sleep = time.sleep


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: following one would resend a signed
    request (and its payload) somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``make run`` listens on 127.0.0.1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_of_host(host: str) -> str | None:
    """The region in an API Gateway default endpoint ``{id}.execute-api.{region}.amazonaws.com``."""
    found = _EXECUTE_API_HOST.fullmatch(host)
    return found.group(1).lower() if found else None


def _segment(field: str, value: UUID | str) -> str:
    """One path segment, percent-encoded: names may hold '/', spaces, any Unicode."""
    text = str(value)
    if not text:
        raise InvalidSignalRequest(f"{field}: must be 1 to 256 characters, got 0")
    if text in (".", ".."):
        # A bare dot segment would be resolved away by URL normalisation (and by signing).
        return text.replace(".", "%2E")
    try:
        return quote(text, safe="")
    except UnicodeEncodeError:
        raise InvalidSignalRequest(
            f"{field}: must be valid Unicode text (it holds a lone surrogate)"
        ) from None


def _json_body(data: Mapping[str, Any]) -> bytes:
    # ASCII escapes: a lone surrogate reaches the API as \udXXX, which it refuses by name.
    return json.dumps(data).encode("ascii")


def _action_body(action: LinkAction) -> dict[str, Any]:
    if action.failure is not None:
        return {"label": action.label, "failure": action.failure.model_dump(exclude_none=True)}
    try:
        payload = json.loads(action.payload_json or "{}")
    except ValueError:
        raise InvalidSignalRequest("actions: a payload_json must be JSON text") from None
    return {"label": action.label, "payload": payload}


def _instant(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _retry_after(headers: Message) -> float:
    """The delay a 503 asks for, in seconds: a number or an HTTP date, capped."""
    value = (headers.get("Retry-After") or "").strip()
    delay = 1.0
    if value.isdigit():
        delay = float(value)
    elif value:
        try:
            when = email.utils.parsedate_to_datetime(value)
            delay = (when - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            delay = 1.0
    return min(max(delay, 0.0), MAX_RETRY_AFTER_SECONDS)


class _Answer:
    """One HTTP answer: status, headers and JSON body (None when empty or not JSON)."""

    def __init__(self, status: int, headers: Message, raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.body: Any = json.loads(raw) if raw else None
        except ValueError:
            self.body = None

    @property
    def code(self) -> str | None:
        """The problem's ``code`` (``NotFound``, ``AlreadyDelivered``...) if it is one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("code"), str):
            return str(self.body["code"])
        return None

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def detail(self) -> str:
        """What the API said was wrong: a problem's ``detail``, API Gateway's ``message``."""
        for name in ("detail", "message"):
            text = self.field(name)
            if isinstance(text, str) and text:
                return text
        return http.client.responses.get(self.status, "unexpected answer")


def waiter_from_json(data: Any) -> FlowSignalWaiter:
    """A waiter as the API shows it (``WaiterView``) as the store's ``FlowSignalWaiter``.

    ``payload_json`` is the delivered value as JSON text (``json.dumps``): the same JSON
    value as delivered, not necessarily the same characters. The API never shows the
    idempotency key or the task token, so both are None.
    """
    try:
        delivered_at = _instant(data["deliveredAt"])
        failure_data = data.get("failure")
        failure = (
            None
            if failure_data is None
            else SignalFailure(error=failure_data["error"], cause=failure_data.get("cause"))
        )
        delivered_payload = delivered_at is not None and failure is None
        return FlowSignalWaiter(
            run_id=data["runId"],
            step_key=data["stepKey"],
            signal_name=data["signalName"],
            created_at=parse_timestamp(data["createdAt"]),
            expires_at=_instant(data.get("expiresAt")),
            delivered_at=delivered_at,
            payload_json=(
                json.dumps(data.get("payload"), ensure_ascii=False) if delivered_payload else None
            ),
            failure=failure,
            delivered_by=data.get("deliveredBy"),
            deciders=tuple(data.get("deciders") or ()),
            quorum=data.get("quorum", 1),
            approvals=tuple(
                Approval(
                    by=approval["by"],
                    at=parse_timestamp(approval["at"]),
                    payload_json=json.dumps(approval["payload"], ensure_ascii=False),
                )
                for approval in data.get("approvals") or ()
            ),
        )
    except (KeyError, TypeError, AttributeError, ValueError):
        raise FlowSignalError(
            "the API answered a waiter in a shape this client cannot read"
        ) from None


def _buffered_signal(data: Any) -> BufferedSignal:
    try:
        return BufferedSignal(
            signal_name=data["signalName"],
            buffered_at=parse_timestamp(data["bufferedAt"]),
            buffered_until=parse_timestamp(data["bufferedUntil"]),
        )
    except (KeyError, TypeError, ValueError):
        raise FlowSignalError(
            "the API answered a signal in a shape this client cannot read"
        ) from None


class FlowSignalsClient:
    """The flowsignals HTTP API with the store's method names and answers.

    ``api_url`` is the API's base URL (the stack's ``ApiUrl`` output, or ``make run``'s
    ``http://127.0.0.1:3000``). Requests are authenticated as follows:

    - with ``bearer_token``: ``Authorization: Bearer <token>`` (an API behind a JWT or custom
      authorizer, or a proxy);
    - otherwise, to a non-loopback URL, or whenever a botocore ``session`` is given: SigV4
      (service ``execute-api``) with the session's credentials (default: botocore's default
      chain) in ``region`` (default: the region in an ``execute-api`` host, else the
      session's);
    - otherwise (``make run`` on loopback, where IAM is not enforced): unsigned.

    Every request times out after ``timeout`` seconds. A 503 (or API Gateway's 429) is retried
    up to ``max_retries`` times after the ``Retry-After`` it gives (at most
    ``MAX_RETRY_AFTER_SECONDS``), then raises ``StoreUnavailable``, as does a connection
    failure. A 400 raises ``InvalidSignalRequest``, a 413 ``PayloadTooLarge``, any other
    unexpected answer ``FlowSignalError``.
    """

    def __init__(
        self,
        api_url: str,
        *,
        bearer_token: str | None = None,
        session: Any = None,
        region: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSignalRequest("api_url: must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise InvalidSignalRequest("api_url: must not have a query or a fragment")
        if bearer_token is not None and not _PRINTABLE_ASCII.fullmatch(bearer_token):
            raise InvalidSignalRequest("bearer_token: must be printable ASCII")
        if not timeout > 0:
            raise InvalidSignalRequest("timeout: must be a positive number of seconds")
        if max_retries < 0:
            raise InvalidSignalRequest("max_retries: must be 0 or more")
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._max_retries = max_retries
        self._bearer_token = bearer_token
        loopback = is_loopback(parts.hostname)
        self._session: Any = None
        self._region: str | None = None
        if bearer_token is None and (session is not None or not loopback):
            self._session = session if session is not None else botocore.session.Session()
            try:
                self._region = (
                    region
                    or region_of_host(parts.hostname)
                    or self._session.get_config_variable("region")
                )
            except BotoCoreError as error:  # e.g. a profile that does not exist
                raise FlowSignalError(f"AWS configuration: {error}") from None
            if not self._region:
                raise FlowSignalError(
                    "region: cannot tell which region signs requests to this URL;"
                    " pass region= (or --region), or set AWS_REGION"
                )
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if loopback:
            handlers.append(urllib.request.ProxyHandler({}))  # never through a proxy
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def signs_requests(self) -> bool:
        """Whether requests are SigV4-signed."""
        return self._session is not None

    def __repr__(self) -> str:
        auth = "bearer" if self._bearer_token else "sigv4" if self.signs_requests else "none"
        return f"FlowSignalsClient({self.api_url!r}, auth={auth})"

    # --- the store's operations ----------------------------------------------------------

    def register_waiter(
        self,
        run_id: UUID | str,
        step_key: str,
        signal_name: str,
        expires_at: datetime | None = None,
        *,
        timeout_seconds: int | None = None,
        deciders: Sequence[str] | None = None,
        quorum: int = 1,
    ) -> FlowSignalWaiter:
        """Create the waiter for ``(run_id, step_key)``, or update it; returns it as stored.

        The deadline is ``expires_at`` (timezone-aware) or ``timeout_seconds`` from the
        server's now, not both. ``deciders`` and ``quorum`` say who may decide it and how
        many must agree. A task token cannot be handed in over HTTP (the API refuses one); a
        Step Functions task registers by invoking the function directly.
        """
        body: dict[str, Any] = {"signalName": signal_name}
        if deciders:
            body["deciders"] = list(deciders)
        if quorum != 1:
            body["quorum"] = quorum
        if expires_at is not None:
            if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
                raise InvalidSignalRequest(
                    "expiresAt: must be a timezone-aware datetime (a naive one has no defined"
                    " instant)"
                )
            body["expiresAt"] = format_timestamp(expires_at)
        if timeout_seconds is not None:
            body["timeoutSeconds"] = timeout_seconds
        answer = self._call(
            "register_waiter",
            "PUT",
            self._waiter_path(run_id, step_key),
            body=_json_body(body),
        )
        if answer.status != 200:
            raise self._error("register_waiter", answer)
        return waiter_from_json(answer.body)

    def deliver_signal(
        self,
        run_id: UUID | str,
        signal_name: str,
        payload_json: str | None = None,
        *,
        failure: SignalFailure | None = None,
        idempotency_key: str | None = None,
        buffer_for: timedelta | None = None,
    ) -> SignalDeliveryResult:
        """Deliver ``payload_json`` (JSON text) — or ``failure``, exactly one — to the run's
        oldest waiter of ``signal_name`` that can receive it, exactly once.

        ``NotFound``, ``AlreadyDelivered`` and ``Expired`` are answers, not errors. Without
        ``idempotency_key`` the call makes its own, so its retries never deliver twice. With
        ``buffer_for`` (whole seconds over HTTP, rounded up; 1 s to 30 days) a signal no
        waiter can receive now is kept: ``Buffered``, ``expires_at`` its deadline.
        """
        if (payload_json is None) == (failure is None):
            raise InvalidSignalRequest("give exactly one of payload_json and failure")
        path = f"/runs/{_segment('runId', run_id)}/signals/{_segment('signalName', signal_name)}"
        if failure is not None:
            path += "/failure"
            body = _json_body(failure.model_dump(exclude_none=True))
        else:
            assert payload_json is not None
            try:
                body = payload_json.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidSignalRequest(
                    "payload_json: must be valid Unicode text (it holds a lone surrogate)"
                ) from None
        query: dict[str, str] = {}
        if buffer_for is not None:
            if not isinstance(buffer_for, timedelta):
                raise InvalidSignalRequest("buffer_for: must be a timedelta")
            query["bufferSeconds"] = str(math.ceil(buffer_for.total_seconds()))
        headers: dict[str, str] = {}
        if idempotency_key is None:
            # The client retries a 503, and a 503 may follow a write that was applied: a key
            # of this call's own makes its retries replays, never a second delivery.
            idempotency_key = f"flowsignals-client-{uuid.uuid4().hex}"
        if not _PRINTABLE_ASCII.fullmatch(idempotency_key):
            raise InvalidSignalRequest("Idempotency-Key: must be printable ASCII")
        headers["Idempotency-Key"] = idempotency_key
        answer = self._call("deliver_signal", "POST", path, body=body, query=query, headers=headers)
        return self._delivery_result(answer)

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        """The waiter, or None when the run has none with this step key."""
        answer = self._call("get_waiter", "GET", self._waiter_path(run_id, step_key))
        if answer.status == 404 and answer.code == "NotFound":
            return None
        if answer.status != 200:
            raise self._error("get_waiter", answer)
        return waiter_from_json(answer.body)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        """Delete the waiter; removing a missing waiter is not an error."""
        answer = self._call("remove_waiter", "DELETE", self._waiter_path(run_id, step_key))
        if answer.status not in (200, 204):
            raise self._error("remove_waiter", answer)

    def list_waiters(
        self, run_id: UUID | str, *, signal_name: str | None = None
    ) -> list[FlowSignalWaiter]:
        """Every waiter of the run, oldest first (it follows the API's pages); with
        ``signal_name``, those of that name, from an eventually consistent index."""
        path = f"/runs/{_segment('runId', run_id)}/waiters"
        waiters: list[FlowSignalWaiter] = []
        token: str | None = None
        by_name = {} if signal_name is None else {"signalName": signal_name}
        while True:
            query = {"limit": str(PAGE_SIZE)} | by_name
            query |= {} if token is None else {"nextToken": token}
            answer = self._call("list_waiters", "GET", path, query=query)
            if answer.status != 200:
                raise self._error("list_waiters", answer)
            page = answer.field("waiters")
            if not isinstance(page, list):
                raise FlowSignalError("list_waiters: the API answered no list of waiters")
            waiters.extend(waiter_from_json(item) for item in page)
            previous, token = token, answer.field("nextToken")
            if token is None:
                return waiters
            if not isinstance(token, str) or not page or token == previous:
                raise FlowSignalError(
                    "list_waiters: the API answered a page this client cannot follow"
                )

    def list_buffered_signals(self, run_id: UUID | str) -> list[BufferedSignal]:
        """The run's early signals waiting for a waiter, oldest first (never their payload)."""
        answer = self._call(
            "list_buffered_signals", "GET", f"/runs/{_segment('runId', run_id)}/signals"
        )
        if answer.status != 200:
            raise self._error("list_buffered_signals", answer)
        signals = answer.field("signals")
        if not isinstance(signals, list):
            raise FlowSignalError("list_buffered_signals: the API answered no list of signals")
        return [_buffered_signal(item) for item in signals]

    def create_links(
        self,
        run_id: UUID | str,
        signal_name: str,
        *,
        expires_in: timedelta | None = None,
        approver: str | None = None,
        actions: Mapping[str, LinkAction] | None = None,
    ) -> MintedLinks:
        """Approval links for a person without an AWS identity: one URL per action (default
        ``approve`` → ``{"approved": true}``, ``reject`` → failure ``Rejected``). Opening one
        shows what a click does and changes nothing; its button delivers the action once.
        ``expires_in`` is whole seconds over HTTP, rounded up (default 3 days, at most 30)."""
        body: dict[str, Any] = {}
        if expires_in is not None:
            if not isinstance(expires_in, timedelta):
                raise InvalidSignalRequest("expires_in: must be a timedelta")
            body["expiresInSeconds"] = math.ceil(expires_in.total_seconds())
        if approver is not None:
            body["approver"] = approver
        if actions is not None:
            body["actions"] = {name: _action_body(action) for name, action in actions.items()}
        path = (
            f"/runs/{_segment('runId', run_id)}/signals/{_segment('signalName', signal_name)}/links"
        )
        answer = self._call("create_links", "POST", path, body=_json_body(body))
        if answer.status != 200:
            raise self._error("create_links", answer)
        try:
            expires_at = parse_timestamp(str(answer.field("expiresAt")))
            return MintedLinks(links=answer.field("links"), expires_at=expires_at)
        except ValueError:
            raise FlowSignalError("create_links: the API answered no links") from None

    # --- requests --------------------------------------------------------------------------

    def build_request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> urllib.request.Request:
        """The request as it is sent: ``path`` (encoded, with its query) under the API's URL,
        with the JSON headers and its authentication (signed now, when SigV4)."""
        url = self.api_url + path
        sent = {"Accept": "application/json, application/problem+json"}
        if body is not None:
            sent["Content-Type"] = "application/json"
        sent |= dict(headers or {})
        if self._bearer_token is not None:
            sent["Authorization"] = f"Bearer {self._bearer_token}"
        elif self._session is not None:
            sent = self._signed(method, url, body, sent)
        sent["User-Agent"] = USER_AGENT  # not signed: proxies may rewrite it
        return urllib.request.Request(url, data=body, headers=sent, method=method)

    def _signed(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        try:
            credentials = self._session.get_credentials()
            if credentials is None:
                raise FlowSignalError(
                    "no AWS credentials to sign the request with (botocore's default chain"
                    " found none): set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
                )
            request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
            SigV4Auth(credentials.get_frozen_credentials(), SERVICE, self._region).add_auth(request)
        except BotoCoreError as error:
            raise FlowSignalError(f"could not sign the request: {type(error).__name__}") from None
        return {str(name): str(value) for name, value in request.headers.items()}

    def _waiter_path(self, run_id: UUID | str, step_key: str) -> str:
        return f"/runs/{_segment('runId', run_id)}/waiters/{_segment('stepKey', step_key)}"

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        """Send the request; retry 503/429 after Retry-After, at most ``max_retries`` times."""
        if query:
            path += "?" + urlencode(query, quote_via=quote)
        retries = 0
        while True:
            request = self.build_request(method, path, body=body, headers=headers)
            answer = self._send(operation, request)
            logger.debug("flowsignals %s: HTTP %d", operation, answer.status)
            if answer.status not in RETRIED_STATUSES or retries >= self._max_retries:
                return answer
            retries += 1
            delay = _retry_after(answer.headers)
            logger.info(
                "flowsignals %s: HTTP %d, retry %d of %d in %.1f s",
                operation,
                answer.status,
                retries,
                self._max_retries,
                delay,
            )
            _sleep(delay)

    def _send(self, operation: str, request: urllib.request.Request) -> _Answer:
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return _Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                try:
                    raw = error.read()
                except (OSError, http.client.HTTPException):
                    raw = b""
                return _Answer(error.code, error.headers, raw)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise StoreUnavailable(
                f"{operation}: could not reach {self.api_url}: {reason}"
            ) from None

    def _delivery_result(self, answer: _Answer) -> SignalDeliveryResult:
        replayed = answer.field("replayed") is True
        try:
            if answer.status == 200:
                return SignalDeliveryResult(
                    status=SignalDeliveryStatus.DELIVERED,
                    step_key=answer.field("stepKey"),
                    delivered_at=_instant(answer.field("deliveredAt")),
                    replayed=replayed,
                )
            if answer.status == 202 and answer.field("quorum") is not None:
                return SignalDeliveryResult(
                    status=SignalDeliveryStatus.PENDING,
                    step_key=answer.field("stepKey"),
                    approvals=answer.field("approvals"),
                    quorum=answer.field("quorum"),
                    replayed=replayed,
                )
            if answer.status == 202:
                return SignalDeliveryResult(
                    status=SignalDeliveryStatus.BUFFERED,
                    expires_at=_instant(answer.field("bufferedUntil")),
                    replayed=replayed,
                )
            if answer.status == 409 and answer.code == "AlreadyDelivered":
                return SignalDeliveryResult(
                    status=SignalDeliveryStatus.ALREADY_DELIVERED,
                    step_key=answer.field("stepKey"),
                    delivered_at=_instant(answer.field("deliveredAt")),
                )
            if answer.status == 410 and answer.code == "Expired":
                return SignalDeliveryResult(
                    status=SignalDeliveryStatus.EXPIRED,
                    step_key=answer.field("stepKey"),
                    expires_at=_instant(answer.field("expiresAt")),
                )
            if answer.status == 404 and answer.code == "NotFound":
                return SignalDeliveryResult(status=SignalDeliveryStatus.NOT_FOUND)
        except (TypeError, ValueError):
            raise FlowSignalError(
                "deliver_signal: the API answered a result this client cannot read"
            ) from None
        raise self._error("deliver_signal", answer)

    def _error(self, operation: str, answer: _Answer) -> FlowSignalError:
        """The error an answer the operation did not expect raises."""
        detail = answer.detail
        if answer.status == 400:
            return InvalidSignalRequest(detail)
        if answer.status == 413:
            return PayloadTooLarge(detail)
        if answer.status == 403 and answer.code == "NotAllowed":
            return NotAllowedToDecide(detail)
        if answer.status in RETRIED_STATUSES:
            return StoreUnavailable(
                f"{operation}: HTTP {answer.status} after {self._max_retries} retries: {detail}"
            )
        return FlowSignalError(f"{operation}: HTTP {answer.status}: {detail}")
