"""The garbage collector set for a long-running service: start-up's objects frozen, full
collections rare, so no collection stops every request in flight (bench/README.md)."""

import gc

# Python's defaults are (700, 10, 10). A request's objects die by reference count; what the
# collector finds is what outlives requests (remembered stages, cached statements), and with
# the defaults a service under load stopped every request in flight for a full collection.
THRESHOLDS = (10_000, 10, 100)


def settle_after_start() -> None:
    """Freeze what start-up built (no collection walks it again) and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
