"""shared.collector, pinned to the interpreter its thresholds were measured on."""

import gc
import sys

from shared.collector import THRESHOLDS, settle_after_start


def test_a_started_service_has_its_start_up_frozen_and_rare_full_collections() -> None:
    # Measured on CPython 3.11's generational collector (bench/README.md); a new interpreter
    # (3.14's incremental collector, say) is measured again before this test moves.
    assert sys.version_info[:2] == (3, 11)
    before = gc.get_threshold()
    try:
        settle_after_start()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
