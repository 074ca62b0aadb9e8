"""The ``flowsignals`` command: the HTTP API from a shell (``flowsignals --help``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from pydantic_core import PydanticCustomError

from flowsignals.client.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    FlowSignalsClient,
)
from flowsignals.core.errors import (
    FlowSignalError,
    InvalidSignalRequest,
    NotAllowedToDecide,
    StoreUnavailable,
)
from flowsignals.core.links import LinkAction
from flowsignals.core.models import SignalDeliveryResult, SignalDeliveryStatus, SignalFailure
from flowsignals.core.values import (
    BUFFER_SECONDS,
    LINK_SECONDS,
    QUORUM,
    TIMEOUT_SECONDS,
    WholeNumber,
    format_timestamp,
    read_date_time,
)
from flowsignals.lambdas.schemas import delivery_result_view, signal_view, waiter_view

DEFAULT_API_URL = "http://127.0.0.1:3000"
API_URL_VARIABLE = "FLOWSIGNALS_API_URL"
BEARER_TOKEN_VARIABLE = "FLOWSIGNALS_BEARER_TOKEN"

EXIT_OK = 0
EXIT_NO_RECEIVER = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_OTHER_ERROR = 4

_NO_RECEIVER = frozenset(
    {
        SignalDeliveryStatus.NOT_FOUND,
        SignalDeliveryStatus.ALREADY_DELIVERED,
        SignalDeliveryStatus.EXPIRED,
    }
)

DESCRIPTION = """\
Park workflow steps as waiters and resume them with signals, over the flowsignals HTTP API.

A step of a run registers a waiter for a signal name; delivering that signal resumes the
oldest waiting step of the run, exactly once. Answers are JSON on stdout, in the HTTP API's
camelCase shapes.
"""

EPILOG = f"""\
examples:
  flowsignals register order-1 manager-approval approve --timeout-seconds 3600
  flowsignals deliver order-1 approve --payload '{{"approved": true}}' --idempotency-key click-1
  flowsignals fail order-1 approve --error Rejected --cause "Over budget"
  flowsignals deliver order-1 ship --payload '{{}}' --buffer-seconds 3600   # before the step waits
  flowsignals get order-1 manager-approval
  flowsignals list order-1
  flowsignals remove order-1 manager-approval
  flowsignals link order-1 approve --approver ana@example.com   # links to send a person

where:
  the API's URL is --api-url, else ${API_URL_VARIABLE}, else {DEFAULT_API_URL} (make run).
  A loopback URL is called unsigned (make run does not enforce IAM); any other URL is called
  with SigV4-signed requests (AWS credentials from the default chain, or --profile; region
  from the URL, --region or AWS_REGION), or, when ${BEARER_TOKEN_VARIABLE} is set, with
  'Authorization: Bearer <its value>' (an environment variable, not an option: a command
  line is visible to other users of the machine).

exit status:
  0  done
  1  the signal found no receiver (NotFound, AlreadyDelivered, Expired), or get found no waiter
  2  bad input: the API refused the request (400, 413) or the command line is wrong
  3  the service is unavailable (503 after retries, or unreachable): retry later
  4  any other error (denied, misconfigured, an internal error)
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _instant(text: str) -> datetime:
    """A deadline, read as the API reads ``expiresAt`` (RFC 3339, with its offset)."""
    try:
        return read_date_time(text)
    except PydanticCustomError as error:
        raise argparse.ArgumentTypeError(error.message()) from None


def _whole_number(number: WholeNumber) -> Callable[[str], int]:
    """An option's whole number, read as the API reads a query string's (plain digits)."""

    def read(text: str) -> int:
        try:
            return number.read_text(text)
        except PydanticCustomError as error:
            raise argparse.ArgumentTypeError(error.message()) from None

    return read


def _emit(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _now() -> datetime:
    return datetime.now(UTC)


# --- the subcommands ------------------------------------------------------------------------


def _register(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    waiter = client.register_waiter(
        args.run_id,
        args.step_key,
        args.signal_name,
        args.expires_at,
        timeout_seconds=args.timeout_seconds,
        deciders=args.deciders,
        quorum=args.quorum,
    )
    _emit(waiter_view(waiter, _now()))
    return EXIT_OK


def _delivery(result: SignalDeliveryResult) -> int:
    _emit(delivery_result_view(result))
    if result.status in _NO_RECEIVER:
        print(f"flowsignals: the signal found no receiver: {result.status.value}", file=sys.stderr)
        return EXIT_NO_RECEIVER
    return EXIT_OK


def _buffer_for(args: argparse.Namespace) -> timedelta | None:
    return None if args.buffer_seconds is None else timedelta(seconds=args.buffer_seconds)


def _deliver(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    if args.payload_file is not None:
        try:
            if args.payload_file == "-":
                payload = sys.stdin.read()
            else:
                with open(args.payload_file, encoding="utf-8") as file:
                    payload = file.read()
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidSignalRequest(f"--payload-file: cannot read it ({error})") from None
    else:
        payload = args.payload
    result = client.deliver_signal(
        args.run_id,
        args.signal_name,
        payload,
        idempotency_key=args.idempotency_key,
        buffer_for=_buffer_for(args),
    )
    return _delivery(result)


def _fail(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    try:
        failure = SignalFailure(error=args.error, cause=args.cause)
    except ValueError as error:  # pydantic's ValidationError
        raise InvalidSignalRequest(f"--error/--cause: {_first_message(error)}") from None
    result = client.deliver_signal(
        args.run_id,
        args.signal_name,
        failure=failure,
        idempotency_key=args.idempotency_key,
        buffer_for=_buffer_for(args),
    )
    return _delivery(result)


def _first_message(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        for item in errors(include_input=False):
            return f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
    return "is invalid"


def _get(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    waiter = client.get_waiter(args.run_id, args.step_key)
    if waiter is None:
        _emit(None)
        print("flowsignals: the run has no waiter with this step key", file=sys.stderr)
        return EXIT_NO_RECEIVER
    _emit(waiter_view(waiter, _now()))
    return EXIT_OK


def _actions(text: str) -> dict[str, LinkAction]:
    """The API's actions map, as the client takes it."""
    try:
        actions = json.loads(text)
        if not isinstance(actions, dict):
            raise ValueError
        return {
            str(name): LinkAction(
                label=spec.get("label") or name,
                payload_json=None if "failure" in spec else json.dumps(spec.get("payload", {})),
                failure=spec.get("failure"),
            )
            for name, spec in actions.items()
        }
    except (ValueError, TypeError, AttributeError):
        raise argparse.ArgumentTypeError(
            'must be a JSON object: {name: {"label"?, "payload"?} or {"label"?, "failure"}}'
        ) from None


def _link(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    minted = client.create_links(
        args.run_id,
        args.signal_name,
        expires_in=None
        if args.expires_in_seconds is None
        else timedelta(seconds=args.expires_in_seconds),
        approver=args.approver,
        actions=args.actions,
    )
    _emit({"links": minted.links, "expiresAt": format_timestamp(minted.expires_at)})
    return EXIT_OK


def _list(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    if args.signals:
        _emit({"signals": [signal_view(s) for s in client.list_buffered_signals(args.run_id)]})
    else:
        now = _now()
        waiters = client.list_waiters(args.run_id, signal_name=args.signal_name)
        _emit({"waiters": [waiter_view(w, now) for w in waiters]})
    return EXIT_OK


def _remove(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    client.remove_waiter(args.run_id, args.step_key)
    _emit({})
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------

Command = Callable[[FlowSignalsClient, argparse.Namespace], int]


def _subcommand(
    commands: Any, name: str, help_text: str, examples: str, command: Command
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog="examples:\n" + examples,
        formatter_class=_formatter,
    )
    parser.set_defaults(command=command)
    return parser


def _delivery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="a retry with the same key is answered as the first delivery (replayed: true)"
        " and delivers nothing more; printable ASCII, at most 128 characters",
    )
    parser.add_argument(
        "--buffer-seconds",
        type=_whole_number(BUFFER_SECONDS),
        metavar="N",
        help="when no step waits for the signal yet, keep it up to N seconds (30 days at most)"
        " for the next step of the run that registers for it (answered Buffered)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowsignals",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--api-url",
        default=os.environ.get(API_URL_VARIABLE, DEFAULT_API_URL),
        metavar="URL",
        help=f"the API's base URL (default: ${API_URL_VARIABLE}, else {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--region", help="the region that signs requests (default: the URL's, else AWS_REGION)"
    )
    parser.add_argument("--profile", help="the AWS profile whose credentials sign requests")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"each request's timeout (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        metavar="N",
        help=f"retries of a 503 after its Retry-After (default {DEFAULT_MAX_RETRIES})",
    )
    commands = parser.add_subparsers(title="commands", dest="name", metavar="COMMAND")

    register = _subcommand(
        commands,
        "register",
        "park a step: register (or update) the waiter of RUN's step STEP for signal SIGNAL",
        "  flowsignals register order-1 manager-approval approve --timeout-seconds 3600\n"
        "  flowsignals register order-1 legal-review legal --expires-at 2026-11-23T10:15:30Z\n"
        "  flowsignals register order-1 payment approve --decider email:ana@example.com \\\n"
        "      --decider email:bob@example.com --quorum 2\n"
        "\nA signal delivered early (--buffer-seconds) is received at once: the answer's state"
        ' is then "Delivered".\n',
        _register,
    )
    register.add_argument(
        "--decider",
        dest="deciders",
        action="append",
        metavar="KIND:VALUE",
        help="who may decide (repeat it, up to 20): email:ADDRESS, sub:SUBJECT, group:NAME,"
        " iam:USER-OR-ROLE-ARN; none: anyone allowed on the route",
    )
    register.add_argument(
        "--quorum",
        type=_whole_number(QUORUM),
        default=1,
        metavar="N",
        help="how many distinct deciders must approve (1-10, default 1)",
    )
    register.add_argument("run_id", metavar="RUN", help="the run's id (any text, or a UUID)")
    register.add_argument("step_key", metavar="STEP", help="the step's key in the run")
    register.add_argument("signal_name", metavar="SIGNAL", help="the signal it waits for")
    deadline = register.add_mutually_exclusive_group()
    deadline.add_argument(
        "--timeout-seconds",
        type=_whole_number(TIMEOUT_SECONDS),
        metavar="N",
        help="the waiter expires N seconds from now (at most 31536000)",
    )
    deadline.add_argument(
        "--expires-at",
        type=_instant,
        metavar="TIME",
        help="the waiter expires at TIME, ISO-8601 with a UTC offset (2026-11-23T10:15:30Z)",
    )

    deliver = _subcommand(
        commands,
        "deliver",
        "deliver signal SIGNAL with a JSON payload to RUN's oldest step waiting for it",
        "  flowsignals deliver order-1 approve --payload '{\"approved\": true}'"
        " --idempotency-key click-1\n"
        "  flowsignals deliver order-1 ship --buffer-seconds 3600       # no step waits yet\n"
        "  generate-payload | flowsignals deliver order-1 approve --payload-file -\n"
        "\nPrints {status, stepKey, deliveredAt, expiresAt, replayed}: status is Delivered or"
        " Buffered\n(exit 0), or NotFound, AlreadyDelivered or Expired (exit 1).\n",
        _deliver,
    )
    deliver.add_argument("run_id", metavar="RUN", help="the run's id")
    deliver.add_argument("signal_name", metavar="SIGNAL", help="the signal's name")
    payload = deliver.add_mutually_exclusive_group()
    payload.add_argument(
        "--payload",
        default="{}",
        metavar="JSON",
        help="the payload, any JSON value of at most 262,144 bytes (default {})",
    )
    payload.add_argument(
        "--payload-file", metavar="FILE", help="read the payload from FILE ('-': stdin)"
    )
    _delivery_options(deliver)

    fail = _subcommand(
        commands,
        "fail",
        "deliver signal SIGNAL as a failure (a rejection) to RUN's oldest step waiting for it",
        '  flowsignals fail order-1 approve --error Rejected --cause "Over budget"\n'
        "\nA Step Functions task fails with ERROR (its Catch matches it by name) and CAUSE.\n",
        _fail,
    )
    fail.add_argument("run_id", metavar="RUN", help="the run's id")
    fail.add_argument("signal_name", metavar="SIGNAL", help="the signal's name")
    fail.add_argument(
        "--error", required=True, help="the error's name, e.g. Rejected (at most 256 characters)"
    )
    fail.add_argument("--cause", help="why, in words (at most 32,768 characters)")
    _delivery_options(fail)

    get = _subcommand(
        commands,
        "get",
        "show the waiter of RUN's step STEP: its state and delivered payload or failure",
        "  flowsignals get order-1 manager-approval\n"
        "\nPrints null and exits 1 when the run has no such waiter.\n",
        _get,
    )
    get.add_argument("run_id", metavar="RUN", help="the run's id")
    get.add_argument("step_key", metavar="STEP", help="the step's key")

    listing = _subcommand(
        commands,
        "list",
        "list RUN's waiters, oldest first (or, with --signals, its early signals)",
        "  flowsignals list order-1\n"
        "  flowsignals list order-1 --signal-name approve\n"
        "  flowsignals list order-1 --signals\n",
        _list,
    )
    listing.add_argument("run_id", metavar="RUN", help="the run's id")
    which = listing.add_mutually_exclusive_group()
    which.add_argument(
        "--signal-name",
        metavar="NAME",
        help="only the waiters of this signal (eventually consistent: a waiter registered a"
        " moment ago may be missing)",
    )
    which.add_argument(
        "--signals",
        action="store_true",
        help="list the signals delivered early that wait for a step (never their payload)",
    )

    remove = _subcommand(
        commands,
        "remove",
        "remove the waiter of RUN's step STEP (removing a missing one is not an error)",
        "  flowsignals remove order-1 manager-approval\n",
        _remove,
    )
    remove.add_argument("run_id", metavar="RUN", help="the run's id")
    remove.add_argument("step_key", metavar="STEP", help="the step's key")

    link = _subcommand(
        commands,
        "link",
        "mint approval links: one URL per action, for a person without an AWS identity",
        "  flowsignals link order-1 approve --approver ana@example.com\n"
        "  flowsignals link order-1 approve --expires-in-seconds 3600 \\\n"
        '      --actions \'{"ship": {"label": "Ship it", "payload": {"carrier": "dhl"}}}\'\n'
        "\nPrints {links: {action: url}, expiresAt}. Opening a link changes nothing; its"
        ' button\ndelivers the action once. Default actions: approve ({"approved": true})'
        " and reject\n(failure Rejected).\n",
        _link,
    )
    link.add_argument("run_id", metavar="RUN", help="the run's id (its step need not wait yet)")
    link.add_argument("signal_name", metavar="SIGNAL", help="the signal a click delivers")
    link.add_argument("--approver", help="who decides: shown on the page, recorded as deliveredBy")
    link.add_argument(
        "--expires-in-seconds",
        type=_whole_number(LINK_SECONDS),
        metavar="N",
        help="the links work N seconds (default 259200: 3 days; at most 2592000)",
    )
    link.add_argument(
        "--actions",
        type=_actions,
        metavar="JSON",
        help='{name: {"label"?, "payload"?} or {"label"?, "failure": {"error", "cause"?}}}',
    )
    return parser


def _client(args: argparse.Namespace) -> FlowSignalsClient:
    session = None
    if args.profile is not None:
        session = botocore.session.Session(profile=args.profile)
    return FlowSignalsClient(
        args.api_url,
        bearer_token=os.environ.get(BEARER_TOKEN_VARIABLE) or None,
        session=session,
        region=args.region,
        timeout=args.timeout,
        max_retries=args.retries,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    if args.name is None:
        parser.print_usage(sys.stderr)
        print("flowsignals: error: give a command (flowsignals --help lists them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        command: Command = args.command
        return command(_client(args), args)
    except InvalidSignalRequest as error:  # PayloadTooLarge too
        print(f"flowsignals: invalid request: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreUnavailable as error:
        print(f"flowsignals: service unavailable: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except NotAllowedToDecide as error:
        print(f"flowsignals: not allowed to decide: {error}", file=sys.stderr)
        return EXIT_OTHER_ERROR
    except FlowSignalError as error:
        print(f"flowsignals: error: {error}", file=sys.stderr)
        return EXIT_OTHER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
