"""The keys that sign approval links: a Secrets Manager secret in AWS (its current version signs,
its previous one still verifies, so a rotation breaks no link), or a fixed key (``make run``,
tests). A key is the JSON ``{"keyId": "...", "key": "..."}``; the key id goes into each token.

The secret is read as the table is: within the invocation's time, a throttled, failing or
silent Secrets Manager being ``StoreUnavailable`` (a 503)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowsignals.backends.aws import aws_errors, budgeted_client
from flowsignals.core.errors import FlowSignalError
from flowsignals.lambdas.observability import logger

# The secret's versions are read again after this long, so a rotation reaches warm functions.
SECRET_MAX_AGE_SECONDS = 300
REFRESH_SECONDS = 10


class LinkKey(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    keyId: Annotated[str, Field(pattern="^[A-Za-z0-9_-]{1,32}$")]
    key: Annotated[str, Field(min_length=32, repr=False)]

    @classmethod
    def parse(cls, text: str, source: str) -> LinkKey:
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            # The message never repeats the value: it is a secret.
            raise FlowSignalError(
                f"flowsignals is misconfigured: {source} must be the JSON"
                ' {"keyId": <1-32 of A-Z a-z 0-9 _ ->, "key": <at least 32 characters>}'
            ) from None

    @property
    def secret(self) -> bytes:
        return self.key.encode()


class LinkKeys(Protocol):
    def signing_key(self) -> LinkKey:
        """The key new links are signed with."""
        ...

    def key_for(self, key_id: str) -> bytes | None:
        """The key a token names, if it is still one of ours."""
        ...


class FixedLinkKeys:
    def __init__(self, key: LinkKey) -> None:
        self._key = key

    def signing_key(self) -> LinkKey:
        return self._key

    def key_for(self, key_id: str) -> bytes | None:
        return self._key.secret if key_id == self._key.keyId else None


class SecretsManagerLinkKeys:
    """``AWSCURRENT`` signs; a token of the key before it (``AWSPREVIOUS``) still verifies.

    Both versions are read together and kept ``SECRET_MAX_AGE_SECONDS``. A token that names
    neither (a key put since, or a forgery) reads them again, at most every
    ``REFRESH_SECONDS``: a rotation reaches a warm process at once, and a stream of forged key
    ids costs no more than one read per interval."""

    def __init__(
        self, secret_id: str, client: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._secret_id = secret_id
        self._client = client
        self._clock = clock
        self._read_at = -math.inf
        self._versions: tuple[LinkKey, LinkKey | None] | None = None

    def signing_key(self) -> LinkKey:
        return self._keys()[0]

    def key_for(self, key_id: str) -> bytes | None:
        found = _named(key_id, self._keys())
        if found is None and self._clock() - self._read_at >= REFRESH_SECONDS:
            found = _named(key_id, self._keys(refresh=True))
        return found

    def _keys(self, *, refresh: bool = False) -> tuple[LinkKey, LinkKey | None]:
        now = self._clock()
        if refresh or self._versions is None or now - self._read_at >= SECRET_MAX_AGE_SECONDS:
            self._versions = (self._current(), self._previous())
            self._read_at = now
        return self._versions

    def _current(self) -> LinkKey:
        text = self._read("AWSCURRENT")
        if text is None:
            raise FlowSignalError(
                f"flowsignals is misconfigured: no secret {self._secret_id} (LINK_SECRET_ID)"
            )
        return LinkKey.parse(text, "the secret's AWSCURRENT version")

    def _previous(self) -> LinkKey | None:
        """The key before the current one, if the secret holds a good one. A previous version
        that is no key (a rotation once stored something else) only costs the links it
        signed: it is ignored, and logged, while the current key signs and verifies."""
        text = self._read("AWSPREVIOUS")
        if text is None:
            return None  # never rotated
        try:
            return LinkKey.parse(text, "the secret's AWSPREVIOUS version")
        except FlowSignalError as error:  # its message never holds the value
            logger.warning("Link key's previous version ignored", extra={"reason": str(error)})
            return None

    def _read(self, stage: str) -> str | None:
        """The text of the secret's version at ``stage`` ("" if it holds binary), or None if
        the secret has no such version (or does not exist)."""
        secrets = self._secrets()
        with aws_errors("Secrets Manager", "GetSecretValue"):
            try:
                answer = secrets.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
            except secrets.exceptions.ResourceNotFoundException:
                return None
        return str(answer.get("SecretString", ""))

    def _secrets(self) -> Any:
        if self._client is None:
            self._client = budgeted_client("secretsmanager")
        return self._client


def _named(key_id: str, versions: tuple[LinkKey, LinkKey | None]) -> bytes | None:
    return next((k.secret for k in versions if k is not None and k.keyId == key_id), None)
