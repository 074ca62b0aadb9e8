"""A client of the flowsignals HTTP API with the store's method names and answers.

    from flowsignals.client import FlowSignalsClient

    client = FlowSignalsClient("https://abc123.execute-api.eu-west-1.amazonaws.com")
    client.register_waiter("order-1", "manager-approval", "approve", timeout_seconds=3600)
    result = client.deliver_signal("order-1", "approve", '{"approved": true}')
    result.idempotency_key  # a retry with it delivers nothing more

The console script ``flowsignals`` (``flowsignals.client.cli``) offers the same on a shell.
"""

from flowsignals.client.client import ClientDeliveryResult, FlowSignalsClient

__all__ = ["ClientDeliveryResult", "FlowSignalsClient"]
