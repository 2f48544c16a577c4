// One HTTP operation, closed loop: each of --vus callers sends its next request when its last one
// is answered, for DURATION, and requests still in flight at the end are not counted (with
// GRACEFUL_STOP, as for a warm-up, the run waits that long for them to be answered).
//
//   METHOD, URL           the request
//   BODY                  a file whose content is the request body (optional)
//   HEADERS               JSON object of headers sent with every request (optional)
//   TOKENS, TOKEN_HEADER  a file of credentials, one a line; each caller sends one of them in the
//   TOKEN_FORMAT          header TOKEN_HEADER, written as TOKEN_FORMAT with {} standing for it
//   EXPECT_STATUS         the status a successful answer has
//   EXPECT_BODY           text a successful answer's body contains (optional)
//
// Successful answers are counted in op_ok, the others in op_failed (by status in op_failed's tags);
// op_ms is the latency of every answer, failures included.
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const ok = new Counter('op_ok');
const failed = new Counter('op_failed');
const latency = new Trend('op_ms', true);

const method = __ENV.METHOD || 'GET';
const url = __ENV.URL;
const body = __ENV.BODY ? open(__ENV.BODY) : null;
const headers = JSON.parse(__ENV.HEADERS || '{}');
const tokens = __ENV.TOKENS ? open(__ENV.TOKENS).split('\n').filter((line) => line.length > 0) : [];
const tokenHeader = __ENV.TOKEN_HEADER || '';
const tokenFormat = __ENV.TOKEN_FORMAT || '{}';
const expectStatus = parseInt(__ENV.EXPECT_STATUS || '200', 10);
const expectBody = __ENV.EXPECT_BODY || '';

function parseDuration(text) {
  const found = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!found) {
    throw new Error(`DURATION ${text}: expected a number and ms, s or m`);
  }
  return parseFloat(found[1]) * { ms: 1, s: 1000, m: 60000 }[found[2]];
}
const durationMs = parseDuration(__ENV.DURATION || '10s');

export const options = {
  discardResponseBodies: expectBody === '',
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
  const sent = Object.assign({}, headers);
  if (tokens.length > 0) {
    sent[tokenHeader] = tokenFormat.replace('{}', tokens[(__VU - 1) % tokens.length]);
  }
  // A fresh cookie jar for every request: a login is always a new login, and a validation carries
  // only the credential given.
  const response = http.request(method, url, body, { headers: sent, jar: new http.CookieJar(), timeout: '120s' });
  if (!measured()) {
    return;
  }
  latency.add(response.timings.duration);
  if (response.status === expectStatus && (expectBody === '' || (response.body || '').includes(expectBody))) {
    ok.add(1);
  } else {
    failed.add(1, { status: String(response.status) });
  }
}
