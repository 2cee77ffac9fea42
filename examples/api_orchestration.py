"""API orchestration: chained calls with dependencies, parallel branches where independent.

The workflow is data, in ``api_orchestration.json``; the host functions
(``http_get``, ``http_post``) are the fake HTTP services of ``hosts.py``::

    authenticate -> get_user -+-> get_orders -> get_recommendations -+-> build_profile
                              +-> get_loyalty ------------------------+

Run it: ``python examples/api_orchestration.py``. The HTTP timeline it prints shows
``get_loyalty``'s call overlapping the orders and recommendations calls. From the shell::

    python -m actors run examples/api_orchestration.json --api examples.hosts:API \\
        --event '{"user_id": 42}' \\
        --context '{"config": {"client_id": "demo-client", "client_secret": "s3cret"}}'
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import anyio
import structlog
from hosts import Services  # examples/hosts.py, beside this script

from actors import Engine, Workflow

WORKFLOW_FILE = Path(__file__).with_name("api_orchestration.json")
CONFIG = {"client_id": "demo-client", "client_secret": "s3cret"}


async def main() -> int:
    workflow = Workflow.from_file(WORKFLOW_FILE)
    services = Services()
    async with Engine(api=services.api(), context={"config": CONFIG}) as engine:
        services.http.t0 = time.monotonic()
        result = await engine.run(workflow, event={"user_id": 42})
    if result.status != "completed":
        errors = [str(result.steps[name].error) for name in result.failed_steps]
        print(f"customer_profile {result.status}: {errors}")
        return 1

    print("HTTP calls (ms since the run started):")
    for call in services.http.calls:
        start, end = call.start * 1000, call.end * 1000
        print(f"  {start:4.0f}-{end:4.0f}  {call.method:<4} {call.url}  -> {call.status}")
    profile = result.output
    print(f"\nProfile of {profile['user']['name']} <{profile['user']['email']}>")
    print(f"  loyalty:       {profile['loyalty']}")
    print(f"  recent orders: {', '.join(profile['recent_orders'])}")
    print(f"  recommended:   {', '.join(profile['recommended'])}")
    print(f"Assembled from {len(services.http.calls)} calls in {result.duration * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(anyio.run(main))
