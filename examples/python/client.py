"""How a Python service calls identityd, with stubs generated from proto/ alone.

Copy what you need:
  - identityd_error() reads code, reason and details (ErrorInfo, BadRequest, RetryInfo) of a failure;
  - call_with_retry() retries what the server says may be retried, with backoff and jitter;
  - RequireSession is WSGI middleware validating the caller's session on every request;
  - main() logs in, uses a user access token, and shows each error a service should handle.

Run it against a throwaway server with `examples/run.sh python`; main() checks every answer and
exits non-zero on the first one that is not what the contract promises.
"""

import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# The stubs generate_stubs() in examples/run.sh writes from proto/ (python -m grpc_tools.protoc).
sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))
from identity.v1 import access_token_service_pb2 as tokens_pb  # noqa: E402
from identity.v1 import access_token_service_pb2_grpc as tokens_grpc  # noqa: E402
from identity.v1 import login_service_pb2 as login_pb  # noqa: E402
from identity.v1 import login_service_pb2_grpc as login_grpc  # noqa: E402
from identity.v1 import session_service_pb2 as sessions_pb  # noqa: E402
from identity.v1 import session_service_pb2_grpc as sessions_grpc  # noqa: E402

ERROR_DOMAIN = "identityd"

# Deadlines: every call gets one. ValidateSession sits on your request path, so keep it short; a
# login hashes a password (tens of milliseconds, longer when the server is busy).
VALIDATE_TIMEOUT_S = 0.5
CALL_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 10.0

T = TypeVar("T")


# --- The error model: a gRPC code, a stable reason, and details ---------------------------------


@dataclass
class IdentitydError:
    """What an identityd failure says: branch on `reason`, never on `message`."""

    code: grpc.StatusCode
    message: str
    reason: str = ""  # ErrorInfo.reason, e.g. "INVALID_CREDENTIALS"; "" if not from identityd
    metadata: dict = field(default_factory=dict)  # ErrorInfo.metadata, e.g. {"field": "user_name"}
    field_violations: list = field(default_factory=list)  # BadRequest: [(field, description)]
    retry_delay: Optional[float] = None  # RetryInfo.retry_delay in seconds, when retrying helps

    @property
    def retryable(self) -> bool:
        """True when calling again unchanged may succeed.

        UNAVAILABLE (STORE_UNAVAILABLE, SHUTTING_DOWN, or no connection at all) and
        RESOURCE_EXHAUSTED with a RetryInfo (OVERLOADED) are. RESOURCE_EXHAUSTED without one is not:
        TOKEN_LIMIT_REACHED stays until a token is revoked, MESSAGE_TOO_LARGE until the request
        shrinks. ABORTED (CONCURRENT_CHANGE) means read again and decide again, which only the caller
        can do. DEADLINE_EXCEEDED is retried by call_with_retry only for reads (idempotent=True).
        """
        if self.code == grpc.StatusCode.UNAVAILABLE:
            return True
        return self.code == grpc.StatusCode.RESOURCE_EXHAUSTED and self.retry_delay is not None


def identityd_error(error: grpc.RpcError) -> IdentitydError:
    """Reads the google.rpc.Status that identityd sends in grpc-status-details-bin."""
    result = IdentitydError(code=error.code(), message=error.details() or "")
    status = rpc_status.from_call(error)  # None when the server sent no details (e.g. no connection)
    if status is None:
        return result
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                result.reason = info.reason
                result.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            result.field_violations = [(v.field, v.description) for v in bad_request.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            result.retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return result


# --- Retry with backoff ---------------------------------------------------------------------------


def call_with_retry(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_delay_s: float = 0.05,
    max_delay_s: float = 5.0,
    idempotent: bool = False,
    on_retry: Callable[[IdentitydError], None] = lambda error: None,
) -> T:
    """Calls `call` until it succeeds, fails for good, or `attempts` run out.

    Waits the server's RetryInfo.retry_delay when it gives one, otherwise exponential backoff from
    base_delay_s, capped at max_delay_s; either way plus up to as much again at random, so that
    clients refused together do not come back together.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except grpc.RpcError as rpc_error:
            error = identityd_error(rpc_error)
            retryable = error.retryable or (
                idempotent and error.code == grpc.StatusCode.DEADLINE_EXCEEDED
            )
            if attempt == attempts or not retryable:
                raise
            on_retry(error)
            delay = error.retry_delay
            if delay is None:
                delay = min(max_delay_s, base_delay_s * 2 ** (attempt - 1))
            time.sleep(delay + random.uniform(0, delay))
    raise AssertionError("unreachable")


def bearer(token: str):
    """The call metadata naming the caller: a session token or a user access token."""
    return (("authorization", f"Bearer {token}"),)


# --- Validating the caller's session in a request middleware ---------------------------------------


class RequireSession:
    """WSGI middleware: lets a request through only with a valid identityd session.

    The session token comes as `Authorization: Bearer <token>`; the validated session is put in
    environ["identityd.session"] (user_id, tenant_id, user_name, impersonator_user_id, ...).
    Invalid or missing: 401. identityd unreachable: 503, never a pass (fail closed).
    """

    def __init__(self, app, sessions: sessions_grpc.SessionServiceStub):
        self.app = app
        self.sessions = sessions

    def __call__(self, environ, start_response):
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _plain(start_response, "401 Unauthorized", "log in first")
        request = sessions_pb.ValidateSessionRequest(session_token=token)
        try:
            # A short deadline and one retry: the request you are serving has its own deadline.
            session = call_with_retry(
                lambda: self.sessions.ValidateSession(request, timeout=VALIDATE_TIMEOUT_S),
                attempts=2,
                idempotent=True,
            )
        except grpc.RpcError as rpc_error:
            error = identityd_error(rpc_error)
            return _plain(start_response, "503 Service Unavailable", f"identityd: {error.code.name}")
        # An unknown, expired, ended or malformed token is valid = false, not an error.
        if not session.valid:
            return _plain(start_response, "401 Unauthorized", "session not valid: log in again")
        if session.is_force_change_password:
            return _plain(start_response, "403 Forbidden", "change your password first")
        environ["identityd.session"] = session
        return self.app(environ, start_response)


def _plain(start_response, status: str, text: str):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


def hello_app(environ, start_response):
    """The service's own handler: it only runs for a validated session."""
    session = environ["identityd.session"]
    return _plain(start_response, "200 OK", f"hello {session.user_name} of tenant {session.tenant_id}")


# --- The walk-through, checking every answer -------------------------------------------------------


class Checks:
    def __init__(self):
        self.passed = 0

    def __call__(self, condition: bool, what: str):
        if not condition:
            print(f"FAILED: {what}", file=sys.stderr)
            print(f"python: {self.passed} passed, 1 failed")
            sys.exit(1)
        self.passed += 1
        print(f"ok: {what}")


def expect_error(call: Callable[[], object]) -> IdentitydError:
    try:
        call()
    except grpc.RpcError as rpc_error:
        return identityd_error(rpc_error)
    raise AssertionError("the call succeeded, but an error was expected")


def wsgi_get(app, authorization: Optional[str]):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello"}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    answer = {}

    def start_response(status, headers):
        answer["status"] = status

    body = b"".join(app(environ, start_response)).decode()
    return answer["status"], body


def main():
    sys.stdout.reconfigure(line_buffering=True)
    target = os.environ["IDENTITYD_TARGET"]
    user_name = os.environ["DEMO_USER"]
    password = os.environ["DEMO_PASSWORD"]
    check = Checks()

    # In production use grpc.secure_channel(target, grpc.ssl_channel_credentials()). One channel
    # for the whole process: it multiplexes calls and reconnects by itself.
    with grpc.insecure_channel(target) as channel:
        login = login_grpc.LoginServiceStub(channel)
        sessions = sessions_grpc.SessionServiceStub(channel)
        tokens = tokens_grpc.AccessTokenServiceStub(channel)

        # Log in. The session token is returned only here: keep it as secret as the password.
        signed_in = call_with_retry(
            lambda: login.Login(
                login_pb.LoginRequest(user_name=user_name, password=password), timeout=LOGIN_TIMEOUT_S
            )
        )
        session_token = signed_in.session_token
        check(signed_in.user.user_name == user_name and session_token != "", "Login with a password")
        me = sessions.GetCurrentUser(
            sessions_pb.GetCurrentUserRequest(), metadata=bearer(session_token), timeout=CALL_TIMEOUT_S
        )
        check(me.session.session_id == signed_in.session.session_id, "GetCurrentUser names the session")

        # A request middleware validating the caller's session.
        app = RequireSession(hello_app, sessions)
        status, body = wsgi_get(app, f"Bearer {session_token}")
        check(status.startswith("200") and user_name in body, f"middleware lets a valid session in: {body!r}")
        status, _ = wsgi_get(app, None)
        check(status.startswith("401"), "middleware refuses a request without a token")
        status, _ = wsgi_get(app, "Bearer not-a-session-token")
        check(status.startswith("401"), "middleware refuses an unknown token")

        # Reasons and details. A wrong password says only INVALID_CREDENTIALS, as an unknown user does.
        error = expect_error(
            lambda: login.Login(
                login_pb.LoginRequest(user_name=user_name, password="not the password"),
                timeout=LOGIN_TIMEOUT_S,
            )
        )
        check(
            error.code == grpc.StatusCode.UNAUTHENTICATED
            and error.reason == "INVALID_CREDENTIALS"
            and not error.retryable,
            f"a wrong password: {error.code.name} {error.reason}",
        )
        error = expect_error(
            lambda: tokens.CreateUserAccessToken(
                tokens_pb.CreateUserAccessTokenRequest(user_access_token_name=""),
                metadata=bearer(session_token),
                timeout=CALL_TIMEOUT_S,
            )
        )
        check(
            error.code == grpc.StatusCode.INVALID_ARGUMENT
            and error.reason == "INVALID_ARGUMENT"
            and any(name == "user_access_token_name" for name, _ in error.field_violations),
            f"bad input names its fields in a BadRequest: {error.field_violations}",
        )
        error = expect_error(
            lambda: sessions.GetCurrentUser(sessions_pb.GetCurrentUserRequest(), timeout=CALL_TIMEOUT_S)
        )
        check(
            error.code == grpc.StatusCode.UNAUTHENTICATED and error.reason == "MISSING_CREDENTIALS",
            f"no bearer: {error.code.name} {error.reason}",
        )

        # A user access token for a script: created with a session opened by signing in; its
        # secret is returned only here.
        created = tokens.CreateUserAccessToken(
            tokens_pb.CreateUserAccessTokenRequest(
                user_access_token_name="python-example",
                description="the Python client example",
                expiration_days=1,
            ),
            metadata=bearer(session_token),
            timeout=CALL_TIMEOUT_S,
        )
        secret = created.token
        check(
            secret.startswith("idat_") and created.user_access_token.name == "python-example",
            "CreateUserAccessToken answers the secret once",
        )
        me = sessions.GetCurrentUser(
            sessions_pb.GetCurrentUserRequest(), metadata=bearer(secret), timeout=CALL_TIMEOUT_S
        )
        check(me.user.user_name == user_name, "the token as the bearer reads (GetCurrentUser)")
        token_login = call_with_retry(
            lambda: login.Login(login_pb.LoginRequest(token=secret), timeout=LOGIN_TIMEOUT_S)
        )
        check(token_login.session_token != "", "Login with the token opens a session")
        for credential, how in ((secret, "the token"), (token_login.session_token, "a session opened with it")):
            error = expect_error(
                lambda: tokens.CreateUserAccessToken(
                    tokens_pb.CreateUserAccessTokenRequest(user_access_token_name="minted-by-a-token"),
                    metadata=bearer(credential),
                    timeout=CALL_TIMEOUT_S,
                )
            )
            check(
                error.code == grpc.StatusCode.PERMISSION_DENIED and error.reason == "ACCESS_TOKEN_NOT_ALLOWED",
                f"{how} may not change anything: {error.reason}",
            )
        tokens.DeleteUserAccessToken(
            tokens_pb.DeleteUserAccessTokenRequest(user_access_token_name="python-example"),
            metadata=bearer(session_token),
            timeout=CALL_TIMEOUT_S,
        )
        error = expect_error(lambda: login.Login(login_pb.LoginRequest(token=secret), timeout=LOGIN_TIMEOUT_S))
        check(
            error.code == grpc.StatusCode.UNAUTHENTICATED and error.reason == "TOKEN_REVOKED",
            f"a deleted token is refused: {error.reason}",
        )
        session = sessions.ValidateSession(
            sessions_pb.ValidateSessionRequest(session_token=token_login.session_token),
            timeout=VALIDATE_TIMEOUT_S,
        )
        check(not session.valid, "the sessions opened with a deleted token end with it")

        # RESOURCE_EXHAUSTED that retrying does not cure: TOKEN_LIMIT_REACHED has no RetryInfo.
        # (The example server allows a few live tokens per user.)
        names = []
        for n in range(100):
            name = f"limit-{n}"
            try:
                tokens.CreateUserAccessToken(
                    tokens_pb.CreateUserAccessTokenRequest(user_access_token_name=name, expiration_days=1),
                    metadata=bearer(session_token),
                    timeout=CALL_TIMEOUT_S,
                )
                names.append(name)
            except grpc.RpcError as rpc_error:
                error = identityd_error(rpc_error)
                break
        check(
            error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            and error.reason == "TOKEN_LIMIT_REACHED"
            and error.retry_delay is None
            and not error.retryable,
            f"after {len(names)} tokens: {error.reason}, not retryable",
        )
        for name in names:
            tokens.DeleteUserAccessToken(
                tokens_pb.DeleteUserAccessTokenRequest(user_access_token_name=name),
                metadata=bearer(session_token),
                timeout=CALL_TIMEOUT_S,
            )

        # RESOURCE_EXHAUSTED that retrying does cure: a login storm beyond the server's hashing
        # capacity answers OVERLOADED with a RetryInfo, and call_with_retry waits and tries again.
        overloaded = []
        lock = threading.Lock()

        def note(error: IdentitydError):
            with lock:
                overloaded.append(error.reason)

        def storm_login(_):
            return call_with_retry(
                lambda: login.Login(
                    login_pb.LoginRequest(user_name=user_name, password=password), timeout=LOGIN_TIMEOUT_S
                ),
                attempts=10,
                on_retry=note,
            )

        # A storm of 8 logins at once overloads the example server (one hashing thread, no queue);
        # a few rounds at most, in case the scheduler ran them one by one.
        logged_in = 0
        for _round in range(5):
            with ThreadPoolExecutor(max_workers=8) as pool:
                logged_in += sum(1 for r in pool.map(storm_login, range(8)) if r.session_token)
            if overloaded:
                break
        check(
            "OVERLOADED" in overloaded and logged_in % 8 == 0,
            f"a login storm: {len(overloaded)} OVERLOADED answers retried, all {logged_in} logins in",
        )

        # Log out: the session token is refused from then on.
        login.Logout(login_pb.LogoutRequest(), metadata=bearer(session_token), timeout=CALL_TIMEOUT_S)
        session = sessions.ValidateSession(
            sessions_pb.ValidateSessionRequest(session_token=session_token), timeout=VALIDATE_TIMEOUT_S
        )
        check(not session.valid, "after Logout the session is not valid")
        status, _ = wsgi_get(app, f"Bearer {session_token}")
        check(status.startswith("401"), "middleware refuses the ended session")

    print(f"python: {check.passed} passed, 0 failed")


if __name__ == "__main__":
    main()
