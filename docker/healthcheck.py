"""Container healthcheck: exit 0 only when the API answers 200 on /health/ready.

Standard library only, so the image needs no curl. Proxies are bypassed on purpose: the target is
this container's own loopback, and an inherited HTTP_PROXY would otherwise swallow the request.
"""

import os
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/ready"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:  # HTTPError (503 while loading) is a URLError
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
