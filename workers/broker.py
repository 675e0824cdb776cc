"""Which jobs the broker still holds, read from the transport itself (for the reconciler)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from celery import Celery

from core.settings import Settings

QUEUES = ("cpu", "gpu")
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport keeps priorities in sibling lists


def broker_job_ids(app: Celery, settings: Settings) -> set[str] | None:
    """Job ids in the queues and in delivered-but-unacknowledged messages; None if unknown."""
    url = settings.celery_broker_url
    if url.startswith("redis"):
        return _job_ids(_redis_messages(app, settings.broker_prefix))
    if url.startswith("filesystem"):
        folder = settings.broker_dir / "queue"
        return _job_ids(p.read_text("utf-8") for p in folder.glob("*.msg"))
    return None


def _redis_messages(app: Celery, prefix: str) -> Iterable[str]:
    with app.connection_for_read() as conn:
        client = conn.default_channel.client
        for queue in QUEUES:
            for key in client.scan_iter(f"{prefix}{queue}*"):
                if key.decode() == f"{prefix}{queue}" or PRIORITY_SEP in key.decode():
                    yield from (m.decode() for m in client.lrange(key, 0, -1))
        for raw in client.hvals(f"{prefix}unacked"):
            yield json.dumps(json.loads(raw)[0])


def _job_ids(messages: Iterable[str]) -> set[str]:
    ids = set()
    for raw in messages:
        try:
            message = json.loads(raw)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            ids.add(str(args[0]))
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not one of our messages
    return ids
