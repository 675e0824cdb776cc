"""Run a worker: ``python -m workers worker -Q cpu,gpu --concurrency 1`` (Celery's own CLI)."""

import sys

from workers.app import create_celery

create_celery().worker_main(sys.argv[1:])
