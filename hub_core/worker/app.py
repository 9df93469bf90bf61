"""The Celery application of the hub: broker, result backend and task settings.

The broker comes from ``HUB_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``; RabbitMQ
``amqp://guest:guest@127.0.0.1:5672//`` works too). Results, needed only by
``hub dispatch --wait``, go to ``HUB_RESULT_BACKEND``, by default the Redis broker itself or,
with RabbitMQ, back over the broker (``rpc://``).

Tasks are acknowledged late and rejected (so redelivered) when their worker is lost: a task
is never lost, and may run twice, which every operation tolerates (design §9).
"""

from __future__ import annotations

import os

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from hub_core.errors import HubError, InvalidInput

BROKER_ENV = "HUB_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
RESULT_BACKEND_ENV = "HUB_RESULT_BACKEND"
#: Seconds before Redis hands an unacknowledged task (its worker was killed) to another
#: worker. RabbitMQ redelivers as soon as the worker's connection drops.
VISIBILITY_TIMEOUT_ENV = "HUB_BROKER_VISIBILITY_TIMEOUT"
DEFAULT_VISIBILITY_TIMEOUT = 3600
#: Seconds between a Redis worker's sweeps for such tasks (unset: kombu's, about 100 s). A
#: task is handed out again at the first sweep after its visibility timeout.
RESTORE_SECONDS_ENV = "HUB_BROKER_RESTORE_SECONDS"
#: The queue dispatched and scheduled tasks go to, and workers take from by default
#: (``HUB_QUEUE``; one per hub installation sharing a broker).
QUEUE_ENV = "HUB_QUEUE"
DEFAULT_QUEUE = "hub"
#: Seconds to wait for the broker before saying it is unreachable.
CONNECT_TIMEOUT = 5.0


def broker_url() -> str:
    """``HUB_BROKER_URL`` or the default local Redis."""
    return os.environ.get(BROKER_ENV, "").strip() or DEFAULT_BROKER


def queue_name() -> str:
    """``HUB_QUEUE`` or ``hub``."""
    return os.environ.get(QUEUE_ENV, "").strip() or DEFAULT_QUEUE


def result_backend(broker: str) -> str:
    """Where ``--wait`` reads results: ``HUB_RESULT_BACKEND``, the Redis broker, or rpc."""
    explicit = os.environ.get(RESULT_BACKEND_ENV, "").strip()
    if explicit:
        return explicit
    return broker if broker.startswith(("redis://", "rediss://")) else "rpc://"


def safe_url(url: str) -> str:
    """A URL with its password masked, for messages."""
    return str(maybe_sanitize_url(url))


def _seconds(variable: str, example: int) -> int | None:
    """A positive whole number of seconds from ``variable``, or None when it is unset."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidInput(
            f"{variable}={raw!r} must be a whole number of seconds, e.g. {example}."
        )
    return int(raw)


def _transport_options() -> dict[str, int]:
    options = {
        "visibility_timeout": _seconds(VISIBILITY_TIMEOUT_ENV, 3600) or DEFAULT_VISIBILITY_TIMEOUT
    }
    restore = _seconds(RESTORE_SECONDS_ENV, 10)
    if restore is not None:
        # kombu sweeps every interval * throttle seconds; one scan per tick.
        options.update(unacked_restore_interval=restore, unacked_restore_throttle=1)
    return options


def make_app(broker: str | None = None) -> Celery:
    """A Celery app on ``broker`` (default :func:`broker_url`) with the hub's task."""
    broker = broker or broker_url()
    app = Celery("hub", broker=broker, backend=result_backend(broker), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One task at a time per worker slot: a long run does not hold others hostage.
        worker_prefetch_multiplier=1,
        task_default_queue=queue_name(),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_timeout=CONNECT_TIMEOUT,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(),
        # Publishing retries a little, then says the broker is gone (no endless hang).
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=True,
        enable_utc=True,
        timezone="UTC",
    )
    from hub_core.worker.tasks import register

    register(app)
    return app


def _reason(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc).rstrip('.')}"


def check_broker(app: Celery) -> None:
    """Connect to the broker once; a clear error naming it (exit 1) when it is unreachable."""
    url = app.conf.broker_url
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        raise HubError(
            f"Cannot reach the broker {safe_url(url)}: {_reason(exc)}. "
            f"Start it, or point {BROKER_ENV} at a running Redis or RabbitMQ."
        ) from None


#: Redis holding the channels' rate budget shared by every process (read by the plugins).
SHARED_BUDGET_ENV = "HUB_REDIS_URL"


def check_shared_budget() -> None:
    """Reach ``HUB_REDIS_URL`` when it is set, so a worker refuses to start (one clear error
    naming it, exit 1) rather than fail each task it takes."""
    url = os.environ.get(SHARED_BUDGET_ENV, "").strip()
    if not url:
        return
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT).ping()
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise HubError(
            f"Cannot reach Redis at {safe_url(url)} ({SHARED_BUDGET_ENV}), which holds the "
            f"rate budget shared by every hub process: {_reason(exc)}. Start Redis there, or "
            f"unset {SHARED_BUDGET_ENV} to count the budget per process."
        ) from None


def check_result_backend(app: Celery) -> None:
    """Reach the result backend (Redis) that ``--wait`` reads; a clear error when it cannot."""
    url = app.conf.result_backend
    if not str(url).startswith(("redis://", "rediss://")):
        return  # rpc:// rides on the broker, checked already
    try:
        app.backend.client.ping()
    except Exception as exc:
        raise HubError(
            f"Cannot reach the result backend {safe_url(url)}: {_reason(exc)}. "
            f"Start Redis, or point {RESULT_BACKEND_ENV} at a running one."
        ) from None
