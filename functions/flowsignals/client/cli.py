"""The ``flowsignals`` command: the HTTP API from a shell (``flowsignals --help``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from flowsignals.client.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_REQUEST_TIMEOUT_SECONDS,
    MAX_RETRIES,
    ApiUrl,
    ClientDeliveryResult,
    FlowSignalsClient,
    RequestTimeout,
    Retries,
    new_idempotency_key,
    rename_fields,
)
from flowsignals.core.arguments import validate
from flowsignals.core.errors import (
    FlowSignalError,
    InvalidSignalRequest,
    NotAllowedToDecide,
    StoreUnavailable,
)
from flowsignals.core.links import LinkAction
from flowsignals.core.models import SignalDeliveryStatus, SignalFailure
from flowsignals.core.values import (
    BUFFER_SECONDS,
    LINK_SECONDS,
    QUORUM,
    TIMEOUT_SECONDS,
    Deadline,
    NotIJson,
    WholeNumber,
    format_timestamp,
    parse_i_json,
)
from flowsignals.lambdas.approvals.schemas import MintLinksBody
from flowsignals.lambdas.schemas import delivery_result_view, signal_view, waiter_view

DEFAULT_API_URL = "http://127.0.0.1:3000"
API_URL_VARIABLE = "FLOWSIGNALS_API_URL"
BEARER_TOKEN_VARIABLE = "FLOWSIGNALS_BEARER_TOKEN"

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_OTHER_ERROR = 4
EXIT_INTERNAL_ERROR = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

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
  0    done: registered, delivered (Delivered, or Pending: an approval short of its
       quorum), kept for later (Buffered), listed, removed (a missing waiter too), minted
  1    not found: the signal found no receiver (NotFound, AlreadyDelivered, Expired; so a
       fail after a deliver is AlreadyDelivered), or get found no such waiter
  2    bad input: a wrong command line, or the API refused the request (400, 413);
       nothing was sent, or nothing was written
  3    unavailable: no answer, 503 or 429 after the retries; a deliver or fail prints its
       idempotency key: the same command with --idempotency-key KEY is then safe
  4    any other error: denied (403, not among the deciders), no credentials or region,
       or an answer that is not this API's (is --api-url right?); a deliver or fail
       prints its key, as for 3
  5    the command itself failed (a bug: please report it)
  130  interrupted (Ctrl-C)
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# The store's argument names (the client's errors name them) as the command line spells them.
CLI_NAMES: Mapping[str, str] = {
    "run_id": "RUN",
    "step_key": "STEP",
    "signal_name": "SIGNAL",
    "payload_json": "--payload",
    "error": "--error",
    "cause": "--cause",
    "failure.error": "--error",
    "failure.cause": "--cause",
    "expires_at": "--expires-at",
    "timeout_seconds": "--timeout-seconds",
    "deciders": "--decider",
    "quorum": "--quorum",
    "idempotency_key": "--idempotency-key",
    "buffer_for": "--buffer-seconds",
    "expires_in": "--expires-in-seconds",
    "approver": "--approver",
    "actions": "--actions",
    "bearer_token": f"${BEARER_TOKEN_VARIABLE}",
}


def _option(kind: Any, where: str = "") -> Callable[[str], Any]:
    """An option's text read as the value type ``kind`` (the client's, or the store's own)."""
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    def read(text: str) -> Any:
        try:
            return adapter.validate_strings(text)
        except ValidationError as error:
            why = "; ".join(e["msg"] for e in error.errors(include_input=False, include_url=False))
            raise argparse.ArgumentTypeError(why + where) from None

    return read


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


def _delivery(result: ClientDeliveryResult) -> int:
    _emit(delivery_result_view(result) | {"idempotencyKey": result.idempotency_key})
    if result.status in _NO_RECEIVER:
        print(f"flowsignals: the signal found no receiver: {result.status.value}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return EXIT_OK


def _buffer_for(args: argparse.Namespace) -> timedelta | None:
    return None if args.buffer_seconds is None else timedelta(seconds=args.buffer_seconds)


def _deliver(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    # Known before anything is sent: an error can then tell how to retry without a second
    # delivery.
    args.idempotency_key = args.idempotency_key or new_idempotency_key()
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
    args.idempotency_key = args.idempotency_key or new_idempotency_key()
    failure = validate(SignalFailure, {"error": args.error, "cause": args.cause})
    result = client.deliver_signal(
        args.run_id,
        args.signal_name,
        failure=failure,
        idempotency_key=args.idempotency_key,
        buffer_for=_buffer_for(args),
    )
    return _delivery(result)


def _get(client: FlowSignalsClient, args: argparse.Namespace) -> int:
    waiter = client.get_waiter(args.run_id, args.step_key)
    if waiter is None:
        _emit(None)
        print("flowsignals: the run has no waiter with this step key", file=sys.stderr)
        return EXIT_NOT_FOUND
    _emit(waiter_view(waiter, _now()))
    return EXIT_OK


def _actions(text: str) -> dict[str, LinkAction]:
    """The actions as the API's links body has them, read by its own model."""
    try:
        actions = parse_i_json(text)
    except NotIJson as error:
        raise argparse.ArgumentTypeError(f"must be JSON: it {error}") from None
    try:
        return validate(MintLinksBody, {"actions": actions}).link_actions()
    except InvalidSignalRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
        " and delivers nothing more; printable ASCII, at most 128 characters (default: a key"
        " of the command's own, printed with the answer, and on exit 3 or 4)",
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
        type=_option(ApiUrl, f" (the URL of --api-url, else of ${API_URL_VARIABLE})"),
        metavar="URL",
        help=f"the API's base URL (default: ${API_URL_VARIABLE}, else {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--region", help="the region that signs requests (default: the URL's, else AWS_REGION)"
    )
    parser.add_argument("--profile", help="the AWS profile whose credentials sign requests")
    parser.add_argument(
        "--timeout",
        type=_option(RequestTimeout),
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"each request's timeout (default {DEFAULT_TIMEOUT_SECONDS:g},"
        f" at most {MAX_REQUEST_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--retries",
        type=_option(Retries),
        default=DEFAULT_MAX_RETRIES,
        metavar="N",
        help="retries of a request that got no answer, a 503 or a 429, under the same"
        f" idempotency key (default {DEFAULT_MAX_RETRIES}, at most {MAX_RETRIES})",
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
        type=_option(Deadline),
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
        "\nPrints {status, stepKey, deliveredAt, expiresAt, replayed, idempotencyKey}: status"
        " is\nDelivered or Buffered (exit 0), or NotFound, AlreadyDelivered or Expired"
        " (exit 1).\n",
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
        "\nA Step Functions task fails with ERROR (its Catch matches it by name) and CAUSE."
        "\nThe first signal wins: a fail after a deliver is AlreadyDelivered (exit 1).\n",
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
    listing.set_defaults(cli_names={"signal_name": "--signal-name"})
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
        if args.profile not in session.available_profiles:
            raise InvalidSignalRequest(f"--profile: no AWS profile is named {args.profile!r}")
    return FlowSignalsClient(
        args.api_url,
        bearer_token=os.environ.get(BEARER_TOKEN_VARIABLE) or None,
        session=session,
        region=args.region,
        timeout=args.timeout,
        max_retries=args.retries,
    )


def _say(text: str) -> None:
    print(f"flowsignals: {text}", file=sys.stderr)


def _how_to_retry(args: argparse.Namespace) -> None:
    """After a delivery whose outcome is unknown: the retry that cannot deliver twice."""
    key = getattr(args, "idempotency_key", None)
    if key is not None:
        _say(
            "the delivery may have been made; retrying it is safe with the same key:"
            f" --idempotency-key {key}"
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
        _say("error: give a command (flowsignals --help lists them)")
        return EXIT_BAD_INPUT
    names = {**CLI_NAMES, **getattr(args, "cli_names", {})}
    if getattr(args, "payload_file", None) is not None:
        names["payload_json"] = "--payload-file"
    try:
        command: Command = args.command
        return command(_client(args), args)
    except InvalidSignalRequest as error:  # PayloadTooLarge too: nothing was written
        _say(f"invalid request: {rename_fields(str(error), names)}")
        return EXIT_BAD_INPUT
    except StoreUnavailable as error:
        _say(f"service unavailable: {error}")
        _how_to_retry(args)
        return EXIT_UNAVAILABLE
    except NotAllowedToDecide as error:  # nothing was written
        _say(f"not allowed to decide: {error}")
        return EXIT_OTHER_ERROR
    except FlowSignalError as error:
        _say(f"error: {error}")
        _how_to_retry(args)
        return EXIT_OTHER_ERROR
    except KeyboardInterrupt:
        _say("interrupted")
        _how_to_retry(args)
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug: never an exit status that reads as an answer
        _say(f"internal error ({type(error).__name__}); please report it")
        _how_to_retry(args)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
