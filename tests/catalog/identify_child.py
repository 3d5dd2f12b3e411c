"""A separate process that reserves one IDENTIFY slot at a common moment and prints when its
slot begins (epoch seconds, by the catalog's clock). Used by tests/catalog/test_identify.py.

    python -m tests.catalog.identify_child DATABASE_URL INTERVAL_S START_AT
"""

from __future__ import annotations

import sys
import time

from catalog.db import make_engine
from catalog.identify import IdentifySlots


def main() -> None:
    url, interval, start_at = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    engine = make_engine(url)
    slots = IdentifySlots(engine, interval)
    while time.time() < start_at:
        time.sleep(0.001)
    print(slots.reserve(0).at, flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
