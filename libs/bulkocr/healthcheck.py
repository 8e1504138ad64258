"""`python -m bulkocr.healthcheck [livez|readyz]`: the stack's healthcheck for a bulkocr
service. Exits 0 when the service's ops port answers 200, 1 otherwise (with the answer on
stderr), so the images need no curl; the port comes from the same settings the service reads."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from bulkocr.ops import OpsSettings
from bulkocr.settings import load


def main(argv: list[str]) -> int:
    probe = argv[0] if argv else "livez"
    if probe not in ("livez", "readyz"):
        print(f"usage: python -m bulkocr.healthcheck [livez|readyz], not {probe!r}", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{load(OpsSettings).port}/{probe}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # the task's own loopback
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(f"{url}: {error.code} {error.read().decode(errors='replace')}", file=sys.stderr)
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
