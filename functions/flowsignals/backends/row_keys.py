"""The one fact about the table's keys that the notifier needs too, in a module of its own (no
models to load): which rows are no waiters."""

# The sort keys of rows that are no waiters (buffered signals, links) begin with this, and no
# step key can: step keys hold no control characters.
NOT_A_WAITER_PREFIX = "\x1f"
