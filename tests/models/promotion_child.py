"""A registry client in its own process, for the cross-process promotion test.

    python -m tests.models.promotion_child SETTINGS_JSON promote V1,V2,...
    python -m tests.models.promotion_child SETTINGS_JSON read

SETTINGS_JSON is a Settings dump (data directory, store, secrets in clear). Both modes print
`ready` once the registry is open and wait for a line on stdin: a promoter then promotes its
versions (forced, one after the other) and prints one JSON line per promotion; a reader loads the
active model and classifies an image until stdin closes, printing one JSON line per load.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback

from catalog.settings import Settings
from models.classifier import Classifier
from models.registry import Registry
from tests.models.helpers import random_images

KEEP_EVERYTHING = 1000


def main() -> None:
    settings = Settings(_env_file=None, **json.loads(sys.argv[1]))
    mode = sys.argv[2]
    registry = Registry.from_settings(settings, keep_last=KEEP_EVERYTHING)
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "promote":
        for version in sys.argv[3].split(","):
            result = registry.promote(version, force=True)
            print(json.dumps({"version": version, "promoted": result.promoted, "previous": result.previous}),
                  flush=True)  # fmt: skip
        return
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    image = random_images(1, seed=3)[0]
    while not closed.is_set():
        try:
            state = registry.pointer.read()
            classifier = Classifier.from_registry(registry, intra_op_threads=1)
            [answer] = classifier.predict_batch([image])
            line = {
                "version": classifier.version,
                "registered": state.active in (state.registered or []),
                "answers": len(answer),
            }
        except Exception:  # noqa: BLE001 - any failure at all is what the test looks for
            line = {"error": traceback.format_exc()}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
