"""The HTML pages of approval links: plain words, every value escaped (``_text``), no script,
one form.

Each page is whole in one answer (its style inline, allowed by hash in the page's
Content-Security-Policy, which forbids scripts, framing and posting elsewhere)."""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from datetime import datetime
from html import escape
from http import HTTPStatus

from flowsignals.core.models import FlowSignalWaiter
from flowsignals.lambdas.approvals.service import Approval, Outcome

_STYLE = """
body{margin:0;background:#f3f4f6;color:#111827;font:16px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{margin:0 0 .5rem;font-size:1.5rem}
p{margin:.5rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:1.25rem 0}
dt{color:#6b7280}
dd{margin:0;overflow-wrap:anywhere;font-weight:600}
button{margin-top:.5rem;padding:.7rem 1.6rem;border:0;border-radius:8px;font-size:1rem;
font-weight:600;color:#fff;background:#15803d;cursor:pointer}
button.failure{background:#b91c1c}
dd,strong{unicode-bidi:isolate}
.char{padding:0 .15em;border-radius:3px;background:#fef3c7;color:#92400e;
font:.8em ui-monospace,monospace}
.note{color:#6b7280;font-size:.875rem}
.done{color:#15803d}
.stop{color:#b91c1c}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
}


# Characters that hide themselves or turn the text around them: controls, format characters
# (direction marks, embeddings, overrides, isolates, zero-width), unassigned, private-use and
# surrogate code points, line and paragraph separators; and the other default-ignorable ones
# (Unicode's DerivedCoreProperties): fillers drawn as nothing, variation selectors.
_HIDING_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)


def _hides(character: str) -> bool:
    return (
        unicodedata.category(character) in _HIDING_CATEGORIES
        or _IGNORABLE.match(character) is not None
    )


def _text(value: str, *, marked: bool = True) -> str:
    """``value`` as a page shows it, the one way every value (the callers' text above all:
    run ids, signal names, step keys, errors, who decided) reaches a page: HTML escaped, and
    each character that hides itself or reorders the text around it spelt as ``<U+XXXX>``,
    so a page says what the link does. Marked as such, except where no markup may go (the
    title)."""
    shown = []
    for character in escape(value):
        if _hides(character):
            code = f"&lt;U+{ord(character):04X}&gt;"
            character = f'<span class="char">{code}</span>' if marked else code
        shown.append(character)
    return "".join(shown)


def _when(instant: datetime | None) -> str:
    return "—" if instant is None else instant.strftime("%Y-%m-%d %H:%M UTC")


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_text(title, marked=False)} · flowsignals</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _details(rows: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>" for name, value in rows)
    return f"<dl>{items}</dl>"


def approval_page(approval: Approval) -> tuple[HTTPStatus, str]:
    """The page of a link that opened: what it does, or what it did."""
    link, label = approval.link, approval.label
    step, recorded = approval.step, approval.recorded
    step_key = "—" if step is None else step.step_key
    if recorded is not None:
        step_key = recorded.step_key
    approver = link.approver or "anyone with this link"
    facts = [("Run", link.run_id), ("Signal", link.signal_name), ("Action", label)]
    outcome = approval.outcome
    if outcome is Outcome.WAITING:
        quorum = [] if step is None or step.quorum == 1 else [("Approvals so far", _tally(step))]
        kind = "failure" if link.actions[approval.action].failure is not None else "payload"
        title = f"{label}?"
        body = (
            f"<h1>{_text(title)}</h1>"
            f"<p>Your answer <strong>{_text(label)}</strong> goes to the step"
            f" <strong>{_text(step_key)}</strong> of the run"
            f" <strong>{_text(link.run_id)}</strong>.</p>"
            + _details(
                [
                    *facts,
                    ("Step", step_key),
                    ("Your answer is recorded as", approver),
                    *quorum,
                    ("Link works until", _when(link.expires_at)),
                ]
            )
            + f'<form method="post"><button type="submit" class="{kind}">{_text(label)}'
            "</button></form>"
            '<p class="note">Opening this page changed nothing: only the button sends'
            " your answer.</p>"
        )
    elif outcome is Outcome.DONE:
        title = f"Done: {label}"
        again = " (recorded earlier: this click changed nothing)" if approval.replayed else ""
        body = (
            f'<h1 class="done">{_text(title)}</h1>'
            f"<p>The step <strong>{_text(step_key)}</strong> has your answer"
            f"{_text(again)}.</p>" + _details([*facts, ("Step", step_key), *_who(approval)])
        )
    elif outcome is Outcome.PENDING:
        title = f"Approved: {_tally(step)}"
        body = (
            f'<h1 class="done">{_text(title)}</h1>'
            f"<p>Your answer <strong>{_text(label)}</strong> is recorded. The step"
            f" <strong>{_text(step_key)}</strong> waits for more approvals before it goes"
            " on.</p>" + _details([*facts, ("Step", step_key), ("Approvals so far", _tally(step))])
        )
    elif outcome is Outcome.NOT_ALLOWED:
        title = "Not yours to decide"
        body = (
            f'<h1 class="stop">{_text(title)}</h1>'
            f"<p>This link was made for <strong>{_text(approver)}</strong>, who is not"
            " among the people who may decide the step waiting for it. Nothing was"
            " changed.</p>" + _details(facts)
        )
    elif outcome is Outcome.DECIDED:
        title = "Already decided"
        decision = approval.decision() or "decided"
        body = (
            f'<h1 class="stop">{_text(title)}</h1>'
            f"<p>The step <strong>{_text(step_key)}</strong> already has an answer:"
            f" <strong>{_text(decision)}</strong>. Nothing was changed.</p>"
            + _details([*facts, ("Step", step_key), ("Decided", decision), *_who(approval)])
        )
    elif outcome is Outcome.STEP_EXPIRED:
        title = "Too late"
        body = (
            f'<h1 class="stop">{_text(title)}</h1>'
            f"<p>The step <strong>{_text(step_key)}</strong> stopped waiting for an answer."
            " Nothing was changed.</p>"
            + _details(
                [
                    *facts,
                    ("Step", step_key),
                    ("Waited until", _when(None if step is None else step.expires_at)),
                ]
            )
        )
    else:
        title = "Nothing to decide"
        body = (
            f'<h1 class="stop">{_text(title)}</h1>'
            f"<p>No step of the run <strong>{_text(link.run_id)}</strong> waits for this"
            " answer now. If the run has not reached the step yet, open this link again"
            " later.</p>" + _details([*facts, ("Link works until", _when(link.expires_at))])
        )
    return outcome.status, _page(title, body)


def _who(approval: Approval) -> list[tuple[str, str]]:
    """Who decided and when: as kept on the link, else as the step shows it."""
    recorded, step = approval.recorded, approval.step
    if recorded is not None:
        return [("By", recorded.by), ("At", _when(recorded.at))]
    by = "someone" if step is None or step.delivered_by is None else step.delivered_by
    return [("By", by), ("At", _when(None if step is None else step.delivered_at))]


def _tally(step: FlowSignalWaiter | None) -> str:
    if step is None:
        return "—"
    return f"{len(step.approved_by)} of {step.quorum} approvals"


def _notice(status: HTTPStatus, title: str, words: str) -> tuple[HTTPStatus, str]:
    return status, _page(title, f'<h1 class="stop">{_text(title)}</h1><p>{_text(words)}</p>')


def bad_link_page() -> tuple[HTTPStatus, str]:
    """A token we did not sign, or one altered: no detail."""
    return _notice(
        HTTPStatus.FORBIDDEN,
        "This link is not valid",
        "Open the whole link from your message, or ask for a new one.",
    )


def unreadable_page() -> tuple[HTTPStatus, str]:
    """A request whose body cannot be read (the page's form sends none)."""
    return _notice(
        HTTPStatus.BAD_REQUEST,
        "This request could not be read",
        "Open the link again and use its button. Nothing was changed.",
    )


def expired_link_page(expired_at: datetime) -> tuple[HTTPStatus, str]:
    return _notice(
        HTTPStatus.GONE,
        "This link has expired",
        f"It worked until {_when(expired_at)}. Nothing was changed; ask for a new link.",
    )


def unavailable_page(status: HTTPStatus) -> tuple[HTTPStatus, str]:
    return _notice(
        status,
        "Please try again",
        "Your answer could not be handled just now, and nothing was changed."
        " Reload this page in a minute.",
    )
