"""The keys that sign approval links: a Secrets Manager secret in AWS (its current version signs,
its previous one still verifies, so a rotation breaks no link), or a fixed key (``make run``,
tests). A key is the JSON ``{"keyId": "...", "key": "..."}``; the key id goes into each token."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowsignals.core.errors import FlowSignalError

# A version of the secret is read again after this long, so a rotation reaches warm functions.
SECRET_MAX_AGE_SECONDS = 300


class LinkKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    keyId: Annotated[str, Field(pattern="^[A-Za-z0-9_-]{1,32}$")]
    key: Annotated[str, Field(min_length=32, repr=False)]

    @classmethod
    def parse(cls, text: str | dict[str, Any], source: str) -> LinkKey:
        try:
            if isinstance(text, str):
                return cls.model_validate_json(text)
            return cls.model_validate(text)
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
    """``AWSCURRENT`` signs; a token of the key id before it (``AWSPREVIOUS``) still verifies."""

    def __init__(self, secret_id: str, client: Any = None) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self._secret_id = secret_id
        # One provider per version stage: a provider's cache does not tell stages apart.
        self._current = SecretsProvider(boto3_client=client)
        self._previous = SecretsProvider(boto3_client=client)

    def signing_key(self) -> LinkKey:
        return self._read(self._current, "AWSCURRENT")

    def key_for(self, key_id: str) -> bytes | None:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        current = self.signing_key()
        if key_id == current.keyId:
            return current.secret
        try:
            previous = self._read(self._previous, "AWSPREVIOUS")
        except GetParameterError:  # never rotated: there is no previous version
            return None
        return previous.secret if key_id == previous.keyId else None

    def _read(self, provider: Any, stage: str) -> LinkKey:
        value = provider.get(
            self._secret_id, max_age=SECRET_MAX_AGE_SECONDS, transform="json", VersionStage=stage
        )
        return LinkKey.parse(value, f"the secret {self._secret_id} ({stage})")
