"""Celery tasks calling a tcpmsg service: one client per worker process, opened after the fork.

    BACKEND_PORT=3000 celery -A celery_app worker --pool prefork -c 2     (in examples/recipes)

The broker is ``CELERY_BROKER`` (default ``redis://localhost``); ``CELERY_DIR`` instead
uses kombu's filesystem transport and a file result backend in that directory (what the
tests run: no broker server needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tcpmsg_threads
from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

app = Celery("jobs", broker=os.environ.get("CELERY_BROKER", "redis://localhost"))
if os.environ.get("CELERY_DIR"):
    folder = Path(os.environ["CELERY_DIR"])
    for sub in ("queue", "processed", "results", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    app.conf.broker_url = "filesystem://"
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),  # kombu's default is ./control, in the caller's cwd
    }
    app.conf.result_backend = f"file://{folder / 'results'}"

calc: Any = None


@worker_process_init.connect
def open_client(**_: Any) -> None:
    global calc
    calc = tcpmsg_threads.connect("127.0.0.1", int(os.environ.get("BACKEND_PORT", "3000")), lazy=True, timeout=10)


@worker_process_shutdown.connect
def close_client(**_: Any) -> None:
    if calc is not None:
        calc.close()


@app.task(autoretry_for=(OSError,), retry_backoff=0.2, max_retries=20)
def total(a: int, b: int) -> dict[str, int]:
    return {"sum": calc.send({"cmd": "sum"}, [a, b]), "worker": os.getpid()}
