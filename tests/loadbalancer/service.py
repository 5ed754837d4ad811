"""The router each backend behind HAProxy serves: it says who answered and whom it saw."""

from __future__ import annotations

import os
import time
from typing import Any

from sansio_tcpmsg import Router

router = Router()

NAME = os.environ.get("APP_NAME", "app")


@router.message("work")
def work(data: Any, ctx: Any) -> dict[str, Any]:
    time.sleep(0.005)  # a call takes a little while: some are in flight when a backend dies
    return {"name": NAME, "peer": list(ctx.peer), "echo": data}
