// How a TypeScript service calls identityd with @grpc/grpc-js, from the contract in proto/ alone:
// @grpc/proto-loader loads the .proto files at run time, and the types `npm run generate` writes
// from them (proto-loader-gen-types, into src/gen/) make tsc check every field this file uses.
//
// Copy what you need:
//   - identitydError() reads code, reason and details (ErrorInfo, BadRequest, RetryInfo);
//   - callWithRetry() retries what the server says may be retried, with backoff and jitter;
//   - requireSession() is HTTP middleware validating the caller's session on every request;
//   - main() logs in, uses a user access token, and shows each error a service should handle.
//
// Run it against a throwaway server with `examples/run.sh typescript`; main() checks every answer
// and exits non-zero on the first one that is not what the contract promises.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { getProtoPath } from 'google-proto-files';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

import type { ProtoGrpcType as AccessTokenProto } from './gen/access_token_service';
import type { AccessTokenServiceClient } from './gen/identity/v1/AccessTokenService';
import type { LoginServiceClient } from './gen/identity/v1/LoginService';
import type { SessionServiceClient } from './gen/identity/v1/SessionService';
import type { ValidateSessionResponse__Output } from './gen/identity/v1/ValidateSessionResponse';
import type { ProtoGrpcType as LoginProto } from './gen/login_service';
import type { ProtoGrpcType as SessionProto } from './gen/session_service';

const ERROR_DOMAIN = 'identityd';

// Deadlines: every call gets one. ValidateSession sits on your request path, so keep it short; a
// login hashes a password (tens of milliseconds, longer when the server is busy).
const VALIDATE_TIMEOUT_MS = 500;
const CALL_TIMEOUT_MS = 5_000;
const LOGIN_TIMEOUT_MS = 10_000;

// The contract, loaded with the same options the types were generated with (package.json).
const PROTO_DIR = path.resolve(__dirname, '../../../proto');
const LOADER_OPTIONS: protoLoader.Options = {
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

type Identity = (LoginProto & SessionProto & AccessTokenProto)['identity']['v1'];

function loadContract(): Identity {
  const definition = protoLoader.loadSync(
    [
      'identity/v1/login_service.proto',
      'identity/v1/session_service.proto',
      'identity/v1/access_token_service.proto',
    ],
    LOADER_OPTIONS,
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as LoginProto &
    SessionProto &
    AccessTokenProto;
  return loaded.identity.v1;
}

// --- The error model: a gRPC code, a stable reason, and details ------------------------------------

/** What an identityd failure says: branch on `reason`, never on `message`. */
export interface IdentitydError {
  code: grpc.status;
  codeName: string;
  message: string;
  /** ErrorInfo.reason, e.g. "INVALID_CREDENTIALS"; "" when the failure is not from identityd. */
  reason: string;
  /** ErrorInfo.metadata, e.g. { field: "user_name" } with ALREADY_EXISTS. */
  metadata: Record<string, string>;
  /** BadRequest field violations, with INVALID_ARGUMENT. */
  fieldViolations: { field: string; description: string }[];
  /** RetryInfo.retry_delay, when the server says retrying helps. */
  retryDelayMs?: number;
  /**
   * True when calling again unchanged may succeed: UNAVAILABLE (STORE_UNAVAILABLE, SHUTTING_DOWN, or
   * no connection at all), and RESOURCE_EXHAUSTED with a RetryInfo (OVERLOADED). RESOURCE_EXHAUSTED
   * without one is not: TOKEN_LIMIT_REACHED stays until a token is revoked, MESSAGE_TOO_LARGE until the
   * request shrinks. ABORTED (CONCURRENT_CHANGE) means read again and decide again, which only the
   * caller can do. DEADLINE_EXCEEDED is retried by callWithRetry only for reads (idempotent).
   */
  retryable: boolean;
}

// google.rpc.Status and its details, read with protobufjs from the googleapis protos; field names
// as in the .proto files (type_url, field_violations, retry_delay).
const rpcTypes = new protobuf.Root().loadSync(
  [getProtoPath('rpc', 'status.proto'), getProtoPath('rpc', 'error_details.proto')],
  { keepCase: true },
);
const StatusType = rpcTypes.lookupType('google.rpc.Status');
const DETAIL_TYPES: Record<string, protobuf.Type> = Object.fromEntries(
  ['ErrorInfo', 'BadRequest', 'RetryInfo'].map((name) => [
    `type.googleapis.com/google.rpc.${name}`,
    rpcTypes.lookupType(`google.rpc.${name}`),
  ]),
);

interface AnyDetail {
  type_url: string;
  value: Uint8Array;
}

export function identitydError(error: grpc.ServiceError): IdentitydError {
  const result: IdentitydError = {
    code: error.code,
    codeName: grpc.status[error.code],
    message: error.details,
    reason: '',
    metadata: {},
    fieldViolations: [],
    retryable: false,
  };
  const [bin] = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (bin instanceof Buffer) {
    const details = (StatusType.decode(bin) as unknown as { details: AnyDetail[] }).details;
    for (const detail of details) {
      const type = DETAIL_TYPES[detail.type_url];
      if (type === undefined) continue;
      const message = type.toObject(type.decode(detail.value), { longs: Number, defaults: true });
      switch (type.name) {
        case 'ErrorInfo':
          if (message.domain === ERROR_DOMAIN) {
            result.reason = message.reason;
            result.metadata = message.metadata ?? {};
          }
          break;
        case 'BadRequest':
          result.fieldViolations = message.field_violations.map(
            (v: { field: string; description: string }) => ({ field: v.field, description: v.description }),
          );
          break;
        case 'RetryInfo': {
          const delay = message.retry_delay ?? { seconds: 0, nanos: 0 };
          result.retryDelayMs = delay.seconds * 1000 + delay.nanos / 1e6;
          break;
        }
      }
    }
  }
  result.retryable =
    result.code === grpc.status.UNAVAILABLE ||
    (result.code === grpc.status.RESOURCE_EXHAUSTED && result.retryDelayMs !== undefined);
  return result;
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as grpc.ServiceError).code === 'number';
}

// --- Calls: promises with a deadline, retry with backoff --------------------------------------------

// A generated unary method, typed by its last overload, (request, callback), which is the one
// TypeScript infers from; every generated unary method also takes (request, metadata, options,
// callback), which is how call() invokes it.
type UnaryMethod<Req, Res> = (request: Req, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
type UnaryMethodWithOptions<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/** One unary call as a promise, with `authorization: Bearer <token>` when a token is given. */
function call<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  request: NoInfer<Req>,
  options: { timeoutMs: number; bearer?: string },
): Promise<Res> {
  const metadata = new grpc.Metadata();
  if (options.bearer !== undefined) metadata.set('authorization', `Bearer ${options.bearer}`);
  const deadline = Date.now() + options.timeoutMs;
  const invoke = method as unknown as UnaryMethodWithOptions<Req, Res>;
  return new Promise((resolve, reject) => {
    invoke.call(client, request, metadata, { deadline }, (error, response) => {
      if (error) reject(error);
      else resolve(response as Res);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `attempt` until it succeeds, fails for good, or `attempts` run out. Waits the server's
 * RetryInfo.retry_delay when it gives one, otherwise exponential backoff from baseDelayMs capped at
 * maxDelayMs; either way plus up to as much again at random, so that clients refused together do not
 * come back together.
 */
export async function callWithRetry<T>(
  attempt: () => Promise<T>,
  options: {
    attempts?: number;
    baseDelayMs?: number;
    maxDelayMs?: number;
    idempotent?: boolean;
    onRetry?: (error: IdentitydError) => void;
  } = {},
): Promise<T> {
  const { attempts = 6, baseDelayMs = 50, maxDelayMs = 5_000, idempotent = false } = options;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isServiceError(error)) throw error;
      const failure = identitydError(error);
      const retryable =
        failure.retryable || (idempotent && failure.code === grpc.status.DEADLINE_EXCEEDED);
      if (n >= attempts || !retryable) throw error;
      options.onRetry?.(failure);
      const delay = failure.retryDelayMs ?? Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
      await sleep(delay + Math.random() * delay);
    }
  }
}

// --- Validating the caller's session in a request middleware ---------------------------------------

type SessionHandler = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
  session: ValidateSessionResponse__Output,
) => void;

/**
 * HTTP middleware: calls `next` only with a valid identityd session, read from
 * `Authorization: Bearer <token>`. Invalid or missing: 401. identityd unreachable: 503, never a pass
 * (fail closed).
 */
export function requireSession(sessions: SessionServiceClient, next: SessionHandler): http.RequestListener {
  return async (request, response) => {
    const [scheme, token] = (request.headers.authorization ?? '').split(' ', 2);
    if (scheme?.toLowerCase() !== 'bearer' || !token) {
      return plain(response, 401, 'log in first');
    }
    let session: ValidateSessionResponse__Output;
    try {
      // A short deadline and one retry: the request you are serving has its own deadline.
      session = await callWithRetry(
        () =>
          call(sessions, sessions.ValidateSession, { sessionToken: token }, { timeoutMs: VALIDATE_TIMEOUT_MS }),
        { attempts: 2, idempotent: true },
      );
    } catch (error) {
      const name = isServiceError(error) ? grpc.status[error.code] : 'error';
      return plain(response, 503, `identityd: ${name}`);
    }
    // An unknown, expired, ended or malformed token is valid = false, not an error.
    if (!session.valid) return plain(response, 401, 'session not valid: log in again');
    if (session.isForceChangePassword) return plain(response, 403, 'change your password first');
    next(request, response, session);
  };
}

function plain(response: http.ServerResponse, status: number, text: string) {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(text);
}

/** The service's own handler: it only runs for a validated session. */
const hello: SessionHandler = (_request, response, session) => {
  plain(response, 200, `hello ${session.userName} of tenant ${session.tenantId}`);
};

// --- The walk-through, checking every answer --------------------------------------------------------

let passed = 0;

function check(condition: boolean, what: string) {
  if (!condition) {
    console.error(`FAILED: ${what}`);
    console.log(`typescript: ${passed} passed, 1 failed`);
    process.exit(1);
  }
  passed++;
  console.log(`ok: ${what}`);
}

async function expectError(promise: Promise<unknown>): Promise<IdentitydError> {
  try {
    await promise;
  } catch (error) {
    if (isServiceError(error)) return identitydError(error);
    throw error;
  }
  throw new Error('the call succeeded, but an error was expected');
}

async function main() {
  const target = process.env.IDENTITYD_TARGET!;
  const userName = process.env.DEMO_USER!;
  const password = process.env.DEMO_PASSWORD!;
  const identity = loadContract();

  // In production use grpc.credentials.createSsl(). One client per service for the whole process
  // (they can share a channel): calls are multiplexed, and the channel reconnects by itself.
  const credentials = grpc.credentials.createInsecure();
  const login: LoginServiceClient = new identity.LoginService(target, credentials);
  const sessions: SessionServiceClient = new identity.SessionService(target, credentials);
  const tokens: AccessTokenServiceClient = new identity.AccessTokenService(target, credentials);

  // Log in. The session token is returned only here: keep it as secret as the password.
  const signedIn = await callWithRetry(() =>
    call(login, login.Login, { userName, password }, { timeoutMs: LOGIN_TIMEOUT_MS }),
  );
  const sessionToken = signedIn.sessionToken;
  check(signedIn.user?.userName === userName && sessionToken !== '', 'Login with a password');
  const me = await call(sessions, sessions.GetCurrentUser, {}, { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken });
  check(me.session?.sessionId === signedIn.session?.sessionId, 'GetCurrentUser names the session');

  // A request middleware validating the caller's session, in a real HTTP server.
  const server = http.createServer(requireSession(sessions, hello));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hello`;
  const get = async (authorization?: string) => {
    const answer = await fetch(url, { headers: authorization ? { authorization } : {} });
    return { status: answer.status, body: await answer.text() };
  };
  let page = await get(`Bearer ${sessionToken}`);
  check(page.status === 200 && page.body.includes(userName), `middleware lets a valid session in: ${page.body}`);
  check((await get()).status === 401, 'middleware refuses a request without a token');
  check((await get('Bearer not-a-session-token')).status === 401, 'middleware refuses an unknown token');

  // Reasons and details. A wrong password says only INVALID_CREDENTIALS, as an unknown user does.
  let failure = await expectError(
    call(login, login.Login, { userName, password: 'not the password' }, { timeoutMs: LOGIN_TIMEOUT_MS }),
  );
  check(
    failure.code === grpc.status.UNAUTHENTICATED && failure.reason === 'INVALID_CREDENTIALS' && !failure.retryable,
    `a wrong password: ${failure.codeName} ${failure.reason}`,
  );
  failure = await expectError(
    call(tokens, tokens.CreateUserAccessToken, { userAccessTokenName: '' }, { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken }),
  );
  check(
    failure.code === grpc.status.INVALID_ARGUMENT &&
      failure.reason === 'INVALID_ARGUMENT' &&
      failure.fieldViolations.some((v) => v.field === 'user_access_token_name'),
    `bad input names its fields in a BadRequest: ${JSON.stringify(failure.fieldViolations)}`,
  );
  failure = await expectError(call(sessions, sessions.GetCurrentUser, {}, { timeoutMs: CALL_TIMEOUT_MS }));
  check(
    failure.code === grpc.status.UNAUTHENTICATED && failure.reason === 'MISSING_CREDENTIALS',
    `no bearer: ${failure.codeName} ${failure.reason}`,
  );

  // A user access token for a script: created with a session opened by signing in; its secret is
  // returned only here.
  const created = await call(
    tokens,
    tokens.CreateUserAccessToken,
    { userAccessTokenName: 'typescript-example', description: 'the TypeScript client example', expirationDays: 1 },
    { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken },
  );
  const secret = created.token;
  check(
    secret.startsWith('idat_') && created.userAccessToken?.name === 'typescript-example',
    'CreateUserAccessToken answers the secret once',
  );
  const asToken = await call(sessions, sessions.GetCurrentUser, {}, { timeoutMs: CALL_TIMEOUT_MS, bearer: secret });
  check(asToken.user?.userName === userName, 'the token as the bearer reads (GetCurrentUser)');
  const tokenLogin = await callWithRetry(() =>
    call(login, login.Login, { token: secret }, { timeoutMs: LOGIN_TIMEOUT_MS }),
  );
  check(tokenLogin.sessionToken !== '', 'Login with the token opens a session');
  for (const [credential, how] of [
    [secret, 'the token'],
    [tokenLogin.sessionToken, 'a session opened with it'],
  ]) {
    failure = await expectError(
      call(tokens, tokens.CreateUserAccessToken, { userAccessTokenName: 'minted-by-a-token' }, { timeoutMs: CALL_TIMEOUT_MS, bearer: credential }),
    );
    check(
      failure.code === grpc.status.PERMISSION_DENIED && failure.reason === 'ACCESS_TOKEN_NOT_ALLOWED',
      `${how} may not change anything: ${failure.reason}`,
    );
  }
  await call(
    tokens,
    tokens.DeleteUserAccessToken,
    { userAccessTokenName: 'typescript-example' },
    { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken },
  );
  failure = await expectError(call(login, login.Login, { token: secret }, { timeoutMs: LOGIN_TIMEOUT_MS }));
  check(
    failure.code === grpc.status.UNAUTHENTICATED && failure.reason === 'TOKEN_REVOKED',
    `a deleted token is refused: ${failure.reason}`,
  );
  const ended = await call(
    sessions,
    sessions.ValidateSession,
    { sessionToken: tokenLogin.sessionToken },
    { timeoutMs: VALIDATE_TIMEOUT_MS },
  );
  check(!ended.valid, 'the sessions opened with a deleted token end with it');

  // RESOURCE_EXHAUSTED that retrying does not cure: TOKEN_LIMIT_REACHED has no RetryInfo. (The
  // example server allows a few live tokens per user.)
  const names: string[] = [];
  for (let n = 0; n < 100; n++) {
    const name = `limit-${n}`;
    try {
      await call(
        tokens,
        tokens.CreateUserAccessToken,
        { userAccessTokenName: name, expirationDays: 1 },
        { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken },
      );
      names.push(name);
    } catch (error) {
      if (!isServiceError(error)) throw error;
      failure = identitydError(error);
      break;
    }
  }
  check(
    failure.code === grpc.status.RESOURCE_EXHAUSTED &&
      failure.reason === 'TOKEN_LIMIT_REACHED' &&
      failure.retryDelayMs === undefined &&
      !failure.retryable,
    `after ${names.length} tokens: ${failure.reason}, not retryable`,
  );
  for (const name of names) {
    await call(tokens, tokens.DeleteUserAccessToken, { userAccessTokenName: name }, { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken });
  }

  // RESOURCE_EXHAUSTED that retrying does cure: a login storm beyond the server's hashing capacity
  // answers OVERLOADED with a RetryInfo, and callWithRetry waits and tries again. 8 logins at once
  // overload the example server (one hashing thread, no queue); a few rounds at most, in case they
  // happened to arrive one by one.
  const overloaded: string[] = [];
  let loggedIn = 0;
  for (let round = 0; round < 5 && overloaded.length === 0; round++) {
    const storm = Array.from({ length: 8 }, () =>
      callWithRetry(() => call(login, login.Login, { userName, password }, { timeoutMs: LOGIN_TIMEOUT_MS }), {
        attempts: 10,
        onRetry: (error) => overloaded.push(error.reason),
      }),
    );
    loggedIn += (await Promise.all(storm)).filter((answer) => answer.sessionToken !== '').length;
  }
  check(
    overloaded.includes('OVERLOADED') && loggedIn % 8 === 0,
    `a login storm: ${overloaded.length} OVERLOADED answers retried, all ${loggedIn} logins in`,
  );

  // Log out: the session token is refused from then on.
  await call(login, login.Logout, {}, { timeoutMs: CALL_TIMEOUT_MS, bearer: sessionToken });
  const afterLogout = await call(sessions, sessions.ValidateSession, { sessionToken }, { timeoutMs: VALIDATE_TIMEOUT_MS });
  check(!afterLogout.valid, 'after Logout the session is not valid');
  page = await get(`Bearer ${sessionToken}`);
  check(page.status === 401, 'middleware refuses the ended session');

  server.close();
  for (const client of [login, sessions, tokens]) client.close();
  console.log(`typescript: ${passed} passed, 0 failed`);
}

main().catch((error) => {
  console.error(error);
  console.log(`typescript: ${passed} passed, 1 failed`);
  process.exit(1);
});
