"""The exceptions a store raises. Every one derives from ``FlowSignalError``."""


class FlowSignalError(Exception):
    """Base of every flowsignals error; raised alone for configuration faults
    (a missing table, access denied) that retrying cannot fix."""


class InvalidSignalRequest(FlowSignalError, ValueError):
    """Bad input. The message names the field and says why; nothing was written."""


class PayloadTooLarge(InvalidSignalRequest):
    """The payload is over 262,144 bytes of UTF-8."""


class StoreUnavailable(FlowSignalError):
    """The database throttled, failed (5xx) or could not be reached after retries.

    Nothing was half-written: every store operation is a single-item atomic write or a read."""
