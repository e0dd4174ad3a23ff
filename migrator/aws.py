"""One way to reach AWS: a client factory and one retry policy for every call.

botocore's own retries are switched off (``max_attempts=1``) so this module is the only retry
layer: throttling, 5xx and dropped connections are retried with jittered backoff; everything else
(validation errors, not found, access denied) surfaces at once. A call that is not idempotent
(create a replica, promote, delete) is never blindly repeated: before each retry we ask
``took_effect()`` whether the first attempt landed, and return that instead of acting twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from migrator.errors import PreflightFailed, StepFailed

log = structlog.get_logger()

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "Rate exceeded",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthorizationError",
        "NotAuthorized",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, botocore.exceptions.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def is_retryable(exc: BaseException) -> bool:
    """Throttling, a 5xx, or a connection that dropped: the service may answer differently next time."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, botocore.parsers.ResponseParserError):
        return True  # an HTML 5xx page from a proxy or the emulator
    if isinstance(exc, botocore.exceptions.ClientError):
        return error_code(exc) in THROTTLING_CODES or http_status(exc) >= 500
    return False


def is_access_denied(exc: BaseException) -> bool:
    return error_code(exc) in ACCESS_DENIED_CODES


def make_client(service: str, *, region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client from the standard credential chain (env, profile, SSO, instance role)."""
    config = botocore.config.Config(
        region_name=region,
        retries={"max_attempts": 1, "mode": "standard"},  # retries are ours, below
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="migrator",
    )
    session = boto3.session.Session(region_name=region)
    return session.client(service, endpoint_url=endpoint_url, config=config)


class AwsCaller:
    """Runs AWS calls under one retry policy; turns access problems into exit-2 errors naming the action."""

    def __init__(
        self,
        *,
        attempts: int = 6,
        max_wait: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.sleep = sleep

    def __call__(
        self,
        action: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        took_effect: Callable[[], T | None] | None = None,
    ) -> T:
        """Call ``fn`` (one AWS request named ``action``, e.g. ``rds:PromoteReadReplica``).

        Non-idempotent calls need ``took_effect``: it is asked before every retry and its non-None
        answer is returned instead of sending the request again.
        """
        if not idempotent and took_effect is None:
            raise ValueError(f"{action}: a non-idempotent call needs took_effect to be retried safely")
        first = True

        def attempt() -> T:
            nonlocal first
            if not first and took_effect is not None:
                landed = took_effect()
                if landed is not None:
                    log.info("aws.retry_not_needed", action=action)
                    return landed
            first = False
            return fn()

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "aws.retry",
                action=action,
                attempt=state.attempt_number,
                error=error_code(exc or Exception()) or type(exc).__name__,
            )

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_wait),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except botocore.exceptions.NoCredentialsError as exc:
            raise PreflightFailed(
                f"no AWS credentials found for {action}",
                hint="configure the standard chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "SSO or an instance role",
            ) from exc
        except botocore.exceptions.ClientError as exc:
            if is_access_denied(exc):
                detail = exc.response.get("Error", {}).get("Message", "")
                raise PreflightFailed(
                    f"AWS refused {action}: {error_code(exc)} ({detail})",
                    hint=f"grant {action} to the migrator's IAM identity (docs/aws.md: minimal policy)",
                ) from exc
            if is_retryable(exc):
                raise StepFailed(
                    f"AWS kept failing {action} after {self.attempts} attempts: {error_code(exc) or exc}",
                    hint="AWS throttled or failed; `migrator run` resumes from here",
                ) from exc
            raise
        except CONNECTION_ERRORS as exc:
            raise StepFailed(
                f"cannot reach AWS for {action} after {self.attempts} attempts: {exc}",
                hint="check network access to the AWS endpoints; `migrator run` resumes from here",
            ) from exc


def parse_address(value: str, *, what: str) -> tuple[str, int]:
    """``"127.0.0.1:3307"`` / ``"[::1]:3307"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PreflightFailed(f"{what}: {value!r} is not host:port")
    return host.strip("[]"), int(port)


def mapped_address(endpoint_map: tuple[tuple[str, str], ...], identifier: str) -> tuple[str, int] | None:
    """The [rds] endpoint_map override for an instance (an SSH tunnel, or a local test server)."""
    for name, address in endpoint_map:
        if name == identifier:
            return parse_address(address, what=f"rds.endpoint_map[{identifier!r}]")
    return None
