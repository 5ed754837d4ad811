"""A Flask app calling a tcpmsg service, served by gunicorn with gevent workers.

    BACKEND_PORT=3000 gunicorn -k gevent -w 2 -b 127.0.0.1:8000 --chdir examples/recipes gunicorn_gevent_app:app

One client per worker process: ``lazy=True`` opens nothing at import, in the gunicorn
master, so no socket is shared across the fork; each worker connects on its first call,
and its greenlets (one per HTTP request) share that connection.
"""

from __future__ import annotations

import os

import tcpmsg_gevent
from flask import Flask, jsonify

app = Flask(__name__)
orders = tcpmsg_gevent.connect("127.0.0.1", int(os.environ.get("BACKEND_PORT", "3000")), lazy=True, timeout=5)


@app.get("/sum/<int:a>/<int:b>")
def total(a: int, b: int) -> object:
    return jsonify(sum=orders.send({"cmd": "sum"}, [a, b]), worker=os.getpid())


@app.errorhandler(OSError)  # the backend is down (ConnectionClosedError, timeouts are OSErrors)
def backend_down(exc: OSError) -> object:
    return jsonify(error=str(exc)), 503
