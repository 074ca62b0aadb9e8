"""A client of the HTTP API: the store's operations, names and answers, over HTTPS.

Requests go out with the standard library (``urllib.request``); botocore signs them (SigV4,
service ``execute-api``) for the API's ``AWS_IAM`` routes. Arguments are checked by the store's
own rules before anything is sent, and an answer counts only when it is this API's answer to
that route (its status, media type and shape, read with the API's own response models).
Payloads and credentials are never logged, nor repeated in an error message.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ipaddress
import json
import logging
import math
import re
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit
from uuid import UUID

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from flowsignals.core.arguments import (
    check_delivery,
    check_page,
    check_registration,
    check_run,
    check_signal,
    check_waiter_key,
    validate,
)
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
from flowsignals.core.store import WaiterPosition, as_the_rule_reads
from flowsignals.core.values import (
    MAX_PAGE_SIZE,
    NotIJson,
    format_timestamp,
    parse_i_json,
    parse_timestamp,
)
from flowsignals.lambdas.approvals.schemas import LinksView, MintLinksBody
from flowsignals.lambdas.paging import encode_token
from flowsignals.lambdas.schemas import (
    PROBLEM_JSON,
    BufferedView,
    DeliveredView,
    GatewayMessage,
    PendingView,
    Problem,
    RegisterWaiterBody,
    SignalList,
    WaiterPage,
    WaiterView,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_MAX_RETRIES = 3
MAX_RETRIES = 10
# No wait between attempts is longer: a Retry-After beyond it is cut to it.
MAX_RETRY_AFTER_SECONDS = 20.0
# Answers that mean "busy, nothing was done": retried after Retry-After, then StoreUnavailable.
# 429 is API Gateway's own throttling.
RETRIED_STATUSES = frozenset({429, 503})
# Lambda answers at most 6 MB: a larger answer is nobody's from this API, and is not read.
MAX_ANSWER_BYTES = 6 * 1024 * 1024
SERVICE = "execute-api"
USER_AGENT = "flowsignals-client/0.1"
JSON = "application/json"

_EXECUTE_API_HOST = re.compile(
    r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?", re.IGNORECASE
)
_PRINTABLE_ASCII = re.compile("[\x20-\x7e]+")
# Retry-After's delta-seconds (RFC 9110): ASCII digits only.
_DELTA_SECONDS = re.compile("[0-9]+")

# The API's names of the arguments (path, query, header and body fields), as a Python caller
# names them; "*" stands for any one segment of a dotted field, an empty name drops the field.
_PYTHON_NAMES: Mapping[str, str] = {
    "runId": "run_id",
    "stepKey": "step_key",
    "signalName": "signal_name",
    "expiresAt": "expires_at",
    "timeoutSeconds": "timeout_seconds",
    "Idempotency-Key": "idempotency_key",
    "bufferSeconds": "buffer_for",
    "nextToken": "after",
    "expiresInSeconds": "expires_in",
    "actions.*.payload": "actions.*.payload_json",
}
_REGISTER_NAMES = {**_PYTHON_NAMES, "body": ""}
# A delivery's body is the payload, or the failure's fields.
_DELIVERY_NAMES = {
    **_PYTHON_NAMES,
    "body": "payload_json",
    "error": "failure.error",
    "cause": "failure.cause",
}

# The clock a retry waits on (tests replace it).
_sleep = time.sleep

View = TypeVar("View", bound=BaseModel)


def backoff(retry: int) -> float:
    """The wait before retry number ``retry`` (1, 2, ...) when the answer names none: doubling
    from half a second, at most ``MAX_RETRY_AFTER_SECONDS``."""
    return min(0.5 * 2.0 ** min(retry - 1, 16), MAX_RETRY_AFTER_SECONDS)


def new_idempotency_key() -> str:
    """A key of its own for one delivery: its retries are replays of it, never a second one."""
    return f"flowsignals-client-{uuid.uuid4().hex}"


# --- the client's own options ----------------------------------------------------------------


def _api_url(url: HttpUrl) -> HttpUrl:
    if url.username is not None or url.password is not None:
        raise PydanticCustomError(
            "api_url", "must not hold a user name or password (they would show in messages)"
        )
    if url.query is not None or url.fragment is not None:
        raise PydanticCustomError("api_url", "must not have a query or a fragment")
    return url


def _bearer_token(token: str) -> str:
    if not _PRINTABLE_ASCII.fullmatch(token):
        raise PydanticCustomError("bearer_token", "must be printable ASCII")
    return token


ApiUrl = Annotated[HttpUrl, AfterValidator(_api_url)]
BearerToken = Annotated[str, AfterValidator(_bearer_token)]
RequestTimeout = Annotated[float, Field(gt=0, le=MAX_REQUEST_TIMEOUT_SECONDS, allow_inf_nan=False)]
Retries = Annotated[int, Field(ge=0, le=MAX_RETRIES)]


class ClientOptions(BaseModel):
    """How the client reaches the API: its base URL (http or https, a host, no user
    information, query or fragment), a bearer token, each request's timeout in seconds, and how
    often an unavailable API is retried."""

    model_config = ConfigDict(strict=True, frozen=True, defer_build=True)

    api_url: ApiUrl
    bearer_token: BearerToken | None
    timeout: RequestTimeout
    max_retries: Retries


class ClientDeliveryResult(SignalDeliveryResult):
    """The answer to ``deliver_signal``, with the idempotency key it was sent under (the
    caller's, or the one the client made): a later retry with it delivers nothing more."""

    idempotency_key: str


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


def rename_fields(message: str, names: Mapping[str, str]) -> str:
    """``message`` (``field: why; field: why``, as the API and the store write errors) with each
    field renamed as ``names`` says, and each name of ``names`` written as an identifier
    (``runId``, ``run_id``, ``Idempotency-Key``) inside a why as well."""
    words = {name: new for name, new in names.items() if re.fullmatch(r"\w+[A-Z_-][\w-]*", name)}
    in_text = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])")

    def renamed(field: str) -> str:
        segments = field.split(".")
        for pattern, name in names.items():
            wanted = pattern.split(".")
            if len(wanted) > len(segments) or any(
                w not in ("*", s) for w, s in zip(wanted, segments, strict=False)
            ):
                continue
            stars = iter(s for w, s in zip(wanted, segments, strict=False) if w == "*")
            head = [next(stars) if part == "*" else part for part in name.split(".") if name]
            return ".".join(head + segments[len(wanted) :])
        return field

    def in_words(text: str) -> str:
        return in_text.sub(lambda found: words[found[1]], text) if words else text

    parts = []
    for part in message.split("; "):
        field, colon, why = part.partition(": ")
        if not colon:
            parts.append(in_words(part))
            continue
        field = renamed(field)
        parts.append(f"{field}: {in_words(why)}" if field else in_words(why))
    return "; ".join(parts)


def _check(model: type[BaseModel], data: Mapping[str, Any], names: Mapping[str, str]) -> None:
    """Refuse ``data`` as the API's request ``model`` would, in the caller's names, before
    anything is sent."""
    try:
        validate(model, data)
    except InvalidSignalRequest as error:
        raise type(error)(rename_fields(str(error), names)) from None


def _segment(value: str) -> str:
    """One path segment, percent-encoded: names may hold '/', spaces, any Unicode."""
    if value in (".", ".."):
        # A bare dot segment would be resolved away by URL normalisation (and by signing).
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _json_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data).encode("ascii")


def _action_body(name: str, action: LinkAction) -> dict[str, Any]:
    """A ``LinkAction`` as the API's links body spells it (every field it holds, so that the
    API's model refuses what the API would)."""
    body: dict[str, Any] = {"label": action.label}
    if action.payload_json is not None:
        try:
            body["payload"] = parse_i_json(action.payload_json)
        except NotIJson as error:
            raise InvalidSignalRequest(
                f"actions.{name}.payload_json: must be I-JSON (RFC 7493): it {error}"
            ) from None
    if action.failure is not None:
        body["failure"] = action.failure.model_dump(exclude_none=True)
    return body


def _retry_after(headers: Message, retry: int) -> float:
    """The wait a busy answer asks for: its Retry-After in seconds or as an HTTP date, capped;
    the client's backoff when it has none that reads as either."""
    value = (headers.get("Retry-After") or "").strip()
    if _DELTA_SECONDS.fullmatch(value):
        delay = float(value)  # a long run of digits is inf, not an error
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return backoff(retry)
        if when.tzinfo is None:  # "-0000": no zone, so no instant
            return backoff(retry)
        delay = (when - datetime.now(UTC)).total_seconds()
    return min(max(delay, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, as it came."""

    status: int
    headers: Message
    raw: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get_content_type() if "Content-Type" in self.headers else ""

    def read(self, status: int, model: type[View], media_type: str = JSON) -> View | None:
        """The answer as ``model``, if it is one: that status, media type and shape."""
        if self.status != status or self.media_type != media_type:
            return None
        try:
            return model.model_validate_json(self.raw, strict=True)
        except ValidationError:
            return None

    @property
    def problem(self) -> Problem | None:
        """The API's problem answer (RFC 9457), if it is one."""
        problem = self.read(self.status, Problem, PROBLEM_JSON)
        return problem if problem is not None and problem.status == self.status else None

    @property
    def said(self) -> str | None:
        """What this API said was wrong: its problem's detail, or the message of API Gateway's
        own error answers (``{"message": "Forbidden"}``); None from anyone else."""
        if self.status < 400:
            return None
        problem = self.problem
        if problem is not None:
            return problem.detail
        gateway = self.read(self.status, GatewayMessage)
        return None if gateway is None else gateway.message


class _Unreachable(Exception):
    """No answer came: the connection failed, timed out or closed before the answer."""


def _instant(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _waiter(view: WaiterView) -> FlowSignalWaiter:
    """A waiter as the API shows it as the store's ``FlowSignalWaiter``.

    ``payload_json`` is the delivered value as JSON text (``json.dumps``): the same JSON
    value as delivered, not necessarily the same characters. The API never shows the
    idempotency key, the task token nor the identities that approved, so they are empty.
    """
    delivered_payload = view.deliveredAt is not None and view.failure is None
    return FlowSignalWaiter(
        run_id=view.runId,
        step_key=view.stepKey,
        signal_name=view.signalName,
        created_at=parse_timestamp(view.createdAt),
        expires_at=_instant(view.expiresAt),
        delivered_at=_instant(view.deliveredAt),
        payload_json=json.dumps(view.payload, ensure_ascii=False) if delivered_payload else None,
        failure=(
            None
            if view.failure is None
            else SignalFailure(error=view.failure.error, cause=view.failure.cause)
        ),
        delivered_by=view.deliveredBy,
        deciders=tuple(view.deciders),
        quorum=view.quorum,
        approvals=tuple(
            Approval(
                by=approval.by,
                at=parse_timestamp(approval.at),
                payload_json=json.dumps(approval.payload, ensure_ascii=False),
            )
            for approval in view.approvals
        ),
    )


class FlowSignalsClient:
    """The flowsignals HTTP API with the store's method names, arguments and answers.

    ``api_url`` is the API's base URL (the stack's ``ApiUrl`` output, or ``make run``'s
    ``http://127.0.0.1:3000``). Requests are authenticated as follows:

    - with ``bearer_token``: ``Authorization: Bearer <token>`` (an API behind a JWT or custom
      authorizer, or a proxy);
    - otherwise, to a non-loopback URL, or whenever a botocore ``session`` is given: SigV4
      (service ``execute-api``) with the session's credentials (default: botocore's default
      chain) in ``region`` (default: the region in an ``execute-api`` host, else the
      session's);
    - otherwise (``make run`` on loopback, where IAM is not enforced): unsigned.

    Every request times out after ``timeout`` seconds. An attempt that gets no answer (the
    connection fails, times out or closes first), a 503 or API Gateway's 429 is retried up to
    ``max_retries`` times, after the ``Retry-After`` the answer gives (else ``backoff``), then
    raises ``StoreUnavailable``. Every delivery carries an idempotency key (the caller's, or
    one of its own), so its retries never deliver twice; the key is on the result and on the
    ``StoreUnavailable``. An answer that is not this API's answer to the route (a wrong URL, a
    proxy's page, a shape the API never gives) raises ``FlowSignalError``, whatever its status;
    the API's 400 raises ``InvalidSignalRequest`` and its 413 ``PayloadTooLarge``.
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
        options = validate(
            ClientOptions,
            {
                "api_url": api_url,
                "bearer_token": bearer_token,
                "timeout": timeout,
                "max_retries": max_retries,
            },
        )
        # The URL as parsed and checked is where requests go.
        self.api_url = str(options.api_url).rstrip("/")
        self._timeout = options.timeout
        self._max_retries = options.max_retries
        self._bearer_token = options.bearer_token
        host = urlsplit(self.api_url).hostname or ""
        loopback = is_loopback(host)
        self._session: Any = None
        self._region: str | None = None
        if bearer_token is None and (session is not None or not loopback):
            self._session = session if session is not None else botocore.session.Session()
            try:
                self._region = (
                    region or region_of_host(host) or self._session.get_config_variable("region")
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
        task_token: str | None = None,
        keep_task_token: bool = False,
        deciders: Sequence[str] | None = None,
        quorum: int = 1,
        timeout_seconds: int | None = None,
    ) -> FlowSignalWaiter:
        """Create the waiter for ``(run_id, step_key)``, or update it; returns it as stored.

        The deadline is ``expires_at`` (timezone-aware) or ``timeout_seconds`` from the
        server's now, not both. ``deciders`` and ``quorum`` say who may decide it and how
        many must agree. Over HTTP a task token can be neither handed in (``task_token`` is
        refused: a Step Functions task registers by invoking the function directly) nor taken
        away: a stored one is always kept, whatever ``keep_task_token`` says.
        """
        arguments = check_registration(
            run_id,
            step_key,
            signal_name,
            expires_at,
            task_token,
            keep_task_token,
            deciders,
            quorum,
        )
        if arguments.task_token is not None:
            raise InvalidSignalRequest(
                "task_token: cannot be handed in over HTTP (anyone able to call the API could"
                " complete the task); a Step Functions task registers by invoking the register"
                " function directly"
            )
        body: dict[str, Any] = {"signalName": arguments.signal_name}
        if arguments.deciders:
            body["deciders"] = list(arguments.deciders)
        if arguments.quorum != 1:
            body["quorum"] = arguments.quorum
        if arguments.expires_at is not None:
            body["expiresAt"] = format_timestamp(arguments.expires_at)
        if timeout_seconds is not None:
            body["timeoutSeconds"] = timeout_seconds
        _check(RegisterWaiterBody, body, _REGISTER_NAMES)
        path = self._waiter_path(arguments.run_id, arguments.step_key)
        answer = self._call("register_waiter", "PUT", path, body=_json_body(body))
        view = self._expect("register_waiter", answer, WaiterView, _REGISTER_NAMES)
        with self._reading("register_waiter", answer):
            return _waiter(view)

    def deliver_signal(
        self,
        run_id: UUID | str,
        signal_name: str,
        payload_json: str | None = None,
        *,
        failure: SignalFailure | None = None,
        idempotency_key: str | None = None,
        delivered_by: str | None = None,
        buffer_for: timedelta | None = None,
        caller_identities: Sequence[str] | None = None,
    ) -> ClientDeliveryResult:
        """Deliver ``payload_json`` (JSON text) — or ``failure``, exactly one — to the run's
        oldest waiter of ``signal_name`` that can receive it, exactly once.

        ``NotFound``, ``AlreadyDelivered`` and ``Expired`` are answers, not errors. Without
        ``idempotency_key`` the call makes its own; either is on the result (and on a
        ``StoreUnavailable``), and a retry with it is a replay, never a second delivery. With
        ``buffer_for`` (whole seconds over HTTP, rounded up; 1 s to 30 days) a signal no
        waiter can receive now is kept: ``Buffered``, ``expires_at`` its deadline.

        Over HTTP who delivers is the caller the API's authorizer vouches for:
        ``delivered_by`` and ``caller_identities`` cannot be handed in (refused).
        """
        delivery = check_delivery(
            run_id,
            signal_name,
            payload_json,
            failure,
            idempotency_key,
            delivered_by,
            buffer_for,
            caller_identities,
        )
        for name, given in (
            ("delivered_by", delivery.delivered_by),
            ("caller_identities", delivery.caller_identities),
        ):
            if given is not None:
                raise InvalidSignalRequest(
                    f"{name}: cannot be handed in over HTTP: the API delivers as the caller"
                    " its authorizer vouches for"
                )
        key = delivery.idempotency_key or new_idempotency_key()
        path = f"/runs/{_segment(delivery.run_id)}/signals/{_segment(delivery.signal_name)}"
        if delivery.failure is not None:
            path += "/failure"
            body = _json_body(delivery.failure.model_dump(exclude_none=True))
        else:
            assert delivery.payload_json is not None  # one of them, as checked
            body = delivery.payload_json.encode("utf-8")
        query: dict[str, str] = {}
        if delivery.buffer_for is not None:
            query["bufferSeconds"] = str(math.ceil(delivery.buffer_for.total_seconds()))
        answer = self._call(
            "deliver_signal", "POST", path, body=body, query=query, idempotency_key=key
        )
        with self._reading("deliver_signal", answer):
            result = _delivery_result(answer)
        if result is None:
            raise self._error("deliver_signal", answer, _DELIVERY_NAMES)
        return ClientDeliveryResult(**dict(result), idempotency_key=key)

    def get_waiter(self, run_id: UUID | str, step_key: str) -> FlowSignalWaiter | None:
        """The waiter, or None when the run has none with this step key."""
        arguments = check_waiter_key(run_id, step_key)
        return self._get("get_waiter", arguments.run_id, arguments.step_key)

    def remove_waiter(self, run_id: UUID | str, step_key: str) -> None:
        """Delete the waiter; removing a missing waiter is not an error.

        The API's 204 has no body, and any server can answer one: the waiter is read back
        (its read route too must be allowed), so that only this API's answer counts."""
        arguments = check_waiter_key(run_id, step_key)
        path = self._waiter_path(arguments.run_id, arguments.step_key)
        answer = self._call("remove_waiter", "DELETE", path)
        if answer.status != 204 or answer.raw:
            raise self._error("remove_waiter", answer)
        self._get("remove_waiter", arguments.run_id, arguments.step_key)

    def list_waiters(
        self, run_id: UUID | str, *, signal_name: str | None = None
    ) -> list[FlowSignalWaiter]:
        """Every waiter of the run, oldest first (it follows the API's pages); with
        ``signal_name``, those of that name, from an eventually consistent index."""
        if signal_name is None:
            return self._follow("list_waiters", check_run(run_id), None, None, None)
        arguments = check_signal(run_id, signal_name)
        return self._follow("list_waiters", arguments.run_id, arguments.signal_name, None, None)

    def list_waiters_page(
        self,
        run_id: UUID | str,
        *,
        limit: int,
        after: WaiterPosition | None = None,
        signal_name: str | None = None,
    ) -> list[FlowSignalWaiter]:
        """At most ``limit`` waiters of the run (of ``signal_name`` only, when given, as
        ``list_waiters`` reads them), oldest first, from those that come after ``after`` (a
        waiter's ``position``) or from the oldest; fewer only at the end of the list."""
        page = check_page(run_id, limit, after, signal_name)
        listing = (page.run_id, page.signal_name)
        # The API's page tokens name a position, signed for the listing with a key that is
        # not secret: the client writes the one that starts after ``after``.
        token = None if page.after is None else encode_token(listing, page.after)
        return self._follow("list_waiters_page", page.run_id, page.signal_name, token, page.limit)

    def signal_waiters(self, run_id: UUID | str, signal_name: str) -> list[FlowSignalWaiter]:
        """The run's waiters of ``signal_name``, oldest first, strongly consistent, as a
        delivery reads them (over HTTP, read from the run's whole list of waiters)."""
        arguments = check_signal(run_id, signal_name)
        waiters = self._follow("signal_waiters", arguments.run_id, None, None, None)
        return [
            as_the_rule_reads(waiter)
            for waiter in waiters
            if waiter.signal_name == arguments.signal_name
        ]

    def list_buffered_signals(self, run_id: UUID | str) -> list[BufferedSignal]:
        """The run's early signals waiting for a waiter, oldest first (never their payload)."""
        path = f"/runs/{_segment(check_run(run_id))}/signals"
        answer = self._call("list_buffered_signals", "GET", path)
        listed = self._expect("list_buffered_signals", answer, SignalList)
        with self._reading("list_buffered_signals", answer):
            return [
                BufferedSignal(
                    signal_name=signal.signalName,
                    buffered_at=parse_timestamp(signal.bufferedAt),
                    buffered_until=parse_timestamp(signal.bufferedUntil),
                )
                for signal in listed.signals
            ]

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
        ``expires_in`` is whole seconds over HTTP, rounded up (default 3 days, at most 30).
        The actions are checked by the API's own model of the links body before sending."""
        arguments = check_signal(run_id, signal_name)
        body: dict[str, Any] = {}
        if expires_in is not None:
            if not isinstance(expires_in, timedelta):
                raise InvalidSignalRequest("expires_in: must be a timedelta")
            body["expiresInSeconds"] = math.ceil(expires_in.total_seconds())
        if approver is not None:
            body["approver"] = approver
        if actions is not None:
            body["actions"] = {name: _action_body(name, action) for name, action in actions.items()}
        _check(MintLinksBody, body, _PYTHON_NAMES)
        run, name = _segment(arguments.run_id), _segment(arguments.signal_name)
        path = f"/runs/{run}/signals/{name}/links"
        answer = self._call("create_links", "POST", path, body=_json_body(body))
        view = self._expect("create_links", answer, LinksView)
        with self._reading("create_links", answer):
            return MintedLinks(links=view.links, expires_at=parse_timestamp(view.expiresAt))

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
        sent = {"Accept": f"{JSON}, {PROBLEM_JSON}"}
        if body is not None:
            sent["Content-Type"] = JSON
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

    def _waiter_path(self, run_id: str, step_key: str) -> str:
        return f"/runs/{_segment(run_id)}/waiters/{_segment(step_key)}"

    def _get(self, operation: str, run_id: str, step_key: str) -> FlowSignalWaiter | None:
        answer = self._call(operation, "GET", self._waiter_path(run_id, step_key))
        problem = answer.problem
        if answer.status == 404 and problem is not None and problem.code == "NotFound":
            return None
        view = self._expect(operation, answer, WaiterView)
        with self._reading(operation, answer):
            return _waiter(view)

    def _follow(
        self,
        operation: str,
        run_id: str,
        signal_name: str | None,
        token: str | None,
        limit: int | None,
    ) -> list[FlowSignalWaiter]:
        """Up to ``limit`` (None: every) waiters of the listing, page after page of the API's
        from ``token`` (None: the oldest)."""
        path = f"/runs/{_segment(run_id)}/waiters"
        by_name = {} if signal_name is None else {"signalName": signal_name}
        waiters: list[FlowSignalWaiter] = []
        while limit is None or len(waiters) < limit:
            wanted = MAX_PAGE_SIZE if limit is None else min(MAX_PAGE_SIZE, limit - len(waiters))
            query = {"limit": str(wanted)} | by_name
            query |= {} if token is None else {"nextToken": token}
            answer = self._call(operation, "GET", path, query=query)
            page = self._expect(operation, answer, WaiterPage)
            with self._reading(operation, answer):
                waiters.extend(_waiter(view) for view in page.waiters)
            previous, token = token, page.nextToken
            if token is None:
                break
            if not page.waiters or token == previous:
                raise FlowSignalError(
                    f"{operation}: the API answered a page this client cannot follow"
                )
        return waiters

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> _Answer:
        """Send the request, and again (the same, under the same idempotency key) after no
        answer or this API's 503/429, at most ``max_retries`` times; then StoreUnavailable."""
        if query:
            path += "?" + urlencode(query, quote_via=quote)
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        retries = 0
        while True:
            request = self.build_request(method, path, body=body, headers=headers)
            try:
                answer = self._send(request)
            except _Unreachable as error:
                failure, said = f"could not reach {self.api_url} ({error})", ""
                delay = backoff(retries + 1)
            else:
                logger.debug("flowsignals %s: HTTP %d", operation, answer.status)
                busy = answer.said
                if answer.status not in RETRIED_STATUSES or busy is None:
                    return answer
                failure, said = f"HTTP {answer.status}", f": {busy}"
                delay = _retry_after(answer.headers, retries + 1)
            if retries >= self._max_retries:
                tries = "retry" if retries == 1 else "retries"
                raise StoreUnavailable(
                    f"{operation}: {failure} after {retries} {tries}{said}",
                    idempotency_key=idempotency_key,
                )
            retries += 1
            logger.info(
                "flowsignals %s: %s, retry %d of %d in %.1f s",
                operation,
                failure,
                retries,
                self._max_retries,
                delay,
            )
            _sleep(delay)

    def _send(self, request: urllib.request.Request) -> _Answer:
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return self._answer(response.status, response.headers, response)
        except urllib.error.HTTPError as error:
            with error:
                try:
                    return self._answer(error.code, error.headers, error)
                except (OSError, http.client.HTTPException) as lost:
                    raise _Unreachable(str(lost) or type(lost).__name__) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLCertVerificationError):
                # Not a matter of time: retrying cannot fix a certificate.
                raise FlowSignalError(
                    f"could not verify the TLS certificate of {self.api_url}:"
                    f" {error.reason.verify_message}"
                ) from None
            raise _Unreachable(str(error.reason)) from None
        except (OSError, http.client.HTTPException) as error:
            raise _Unreachable(str(error) or type(error).__name__) from None

    def _answer(self, status: int, headers: Message, body: Any) -> _Answer:
        raw = body.read(MAX_ANSWER_BYTES + 1)
        if len(raw) > MAX_ANSWER_BYTES:
            raise FlowSignalError(
                f"HTTP {status}: an answer larger than any of the flowsignals API's"
                f" ({MAX_ANSWER_BYTES} bytes): is {self.api_url} the API's URL?"
            )
        return _Answer(status, headers, raw)

    def _expect(
        self,
        operation: str,
        answer: _Answer,
        model: type[View],
        names: Mapping[str, str] = _PYTHON_NAMES,
    ) -> View:
        """The route's 200 answer as ``model``, or the error the answer is."""
        view = answer.read(200, model)
        if view is None:
            raise self._error(operation, answer, names)
        return view

    @contextlib.contextmanager
    def _reading(self, operation: str, answer: _Answer) -> Iterator[None]:
        """An answer of the right shape whose values do not read (a timestamp that is not
        one) is no answer of this API either."""
        try:
            yield
        except ValueError:  # pydantic's ValidationError too
            raise self._foreign(operation, answer) from None

    def _foreign(self, operation: str, answer: _Answer) -> FlowSignalError:
        kind = answer.media_type or "no Content-Type"
        return FlowSignalError(
            f"{operation}: HTTP {answer.status} ({kind}) is not the flowsignals API's answer:"
            f" is {self.api_url} the API's URL?"
        )

    def _error(
        self, operation: str, answer: _Answer, names: Mapping[str, str] = _PYTHON_NAMES
    ) -> FlowSignalError:
        """The error an answer the operation did not expect raises."""
        said = answer.said
        if said is None:
            return self._foreign(operation, answer)
        detail = rename_fields(said, names)
        if answer.status == 400:
            return InvalidSignalRequest(detail)
        if answer.status == 413:
            return PayloadTooLarge(detail)
        problem = answer.problem
        if answer.status == 403 and problem is not None and problem.code == "NotAllowed":
            return NotAllowedToDecide(detail)
        return FlowSignalError(f"{operation}: HTTP {answer.status}: {detail}")


def _delivery_result(answer: _Answer) -> SignalDeliveryResult | None:
    """The delivery's answer, if it is one the delivery routes give."""
    delivered = answer.read(200, DeliveredView)
    if delivered is not None:
        return SignalDeliveryResult(
            status=SignalDeliveryStatus.DELIVERED,
            step_key=delivered.stepKey,
            delivered_at=parse_timestamp(delivered.deliveredAt),
            replayed=delivered.replayed,
        )
    pending = answer.read(202, PendingView)
    if pending is not None:
        return SignalDeliveryResult(
            status=SignalDeliveryStatus.PENDING,
            step_key=pending.stepKey,
            approvals=pending.approvals,
            quorum=pending.quorum,
            replayed=pending.replayed,
        )
    kept = answer.read(202, BufferedView)
    if kept is not None:
        return SignalDeliveryResult(
            status=SignalDeliveryStatus.BUFFERED,
            expires_at=parse_timestamp(kept.bufferedUntil),
            replayed=kept.replayed,
        )
    problem = answer.problem
    if problem is None:
        return None
    if (answer.status, problem.code) == (404, "NotFound"):
        return SignalDeliveryResult(status=SignalDeliveryStatus.NOT_FOUND)
    # A 409 and a 410 name the waiter that could not receive it.
    if problem.stepKey is None:
        return None
    if (answer.status, problem.code) == (409, "AlreadyDelivered") and problem.deliveredAt:
        return SignalDeliveryResult(
            status=SignalDeliveryStatus.ALREADY_DELIVERED,
            step_key=problem.stepKey,
            delivered_at=parse_timestamp(problem.deliveredAt),
        )
    if (answer.status, problem.code) == (410, "Expired") and problem.expiresAt:
        return SignalDeliveryResult(
            status=SignalDeliveryStatus.EXPIRED,
            step_key=problem.stepKey,
            expires_at=parse_timestamp(problem.expiresAt),
        )
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: following one would resend a signed
    request (and its payload) somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
