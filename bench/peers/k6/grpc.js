// identityd's gRPC Login (password) or ValidateSession, closed loop as http.js, with the contract
// read from the server by reflection. Latency (op_ms) is timed around each call, in whole
// milliseconds (what the script's clock gives).
//
//   TARGET                host:port
//   OPERATION             login or validate
//   USER, PASSWORD_FILE   the login's user name, and a file holding its password
//   TOKENS                for validate: a file of session tokens, one a line; caller i sends the i-th
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const ok = new Counter('op_ok');
const failed = new Counter('op_failed');
const latency = new Trend('op_ms', true);

const target = __ENV.TARGET || '127.0.0.1:50051';
const operation = __ENV.OPERATION || 'validate';
const user = __ENV.USER || '';
const password = __ENV.PASSWORD_FILE ? open(__ENV.PASSWORD_FILE).trim() : '';
const tokens = __ENV.TOKENS ? open(__ENV.TOKENS).split('\n').filter((line) => line.length > 0) : [];
const client = new grpc.Client();

function parseDuration(text) {
  const found = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!found) {
    throw new Error(`DURATION ${text}: expected a number and ms, s or m`);
  }
  return parseFloat(found[1]) * { ms: 1, s: 1000, m: 60000 }[found[2]];
}
const durationMs = parseDuration(__ENV.DURATION || '10s');

export const options = {
  scenarios: {
    measured: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '64', 10),
      duration: __ENV.DURATION || '10s',
      gracefulStop: __ENV.GRACEFUL_STOP || '0s',
    },
  },
};

// An answer that arrives after the measured duration is not counted, whatever it is: with
// gracefulStop 0 the calls in flight at the end are cancelled, and their failures are the run's end,
// not the server's.
function measured() {
  return Date.now() <= exec.scenario.startTime + durationMs;
}

export default function () {
  if (__ITER === 0) {
    client.connect(target, { plaintext: true, reflect: true });
  }
  let response;
  let good;
  const started = Date.now();
  if (operation === 'login') {
    response = client.invoke('identity.v1.LoginService/Login', { user_name: user, password: password }, { timeout: '120s' });
    good = response && response.status === grpc.StatusOK && response.message && response.message.sessionToken;
  } else {
    response = client.invoke('identity.v1.SessionService/ValidateSession',
      { session_token: tokens[(__VU - 1) % tokens.length] }, { timeout: '120s' });
    good = response && response.status === grpc.StatusOK && response.message && response.message.valid === true;
  }
  if (!measured()) {
    return;
  }
  latency.add(Date.now() - started);
  if (good) {
    ok.add(1);
  } else {
    failed.add(1, { status: String(response ? response.status : 'none') });
  }
}
