// identityd's gRPC Login (password) or ValidateSession, closed loop as http.js, with the contract
// read from the server by reflection. Latency is k6's own grpc_req_duration (every call, failures
// included).
//
//   TARGET                host:port
//   OPERATION             login or validate
//   USER, PASSWORD_FILE   the login's user name, and a file holding its password
//   TOKENS                for validate: a file of session tokens, one a line; caller i sends the i-th
import grpc from 'k6/net/grpc';
import { Counter } from 'k6/metrics';

const ok = new Counter('op_ok');
const failed = new Counter('op_failed');

const target = __ENV.TARGET || '127.0.0.1:50051';
const operation = __ENV.OPERATION || 'validate';
const user = __ENV.USER || '';
const password = __ENV.PASSWORD_FILE ? open(__ENV.PASSWORD_FILE).trim() : '';
const tokens = __ENV.TOKENS ? open(__ENV.TOKENS).split('\n').filter((line) => line.length > 0) : [];
const client = new grpc.Client();

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

export default function () {
  if (__ITER === 0) {
    client.connect(target, { plaintext: true, reflect: true });
  }
  let response;
  let good;
  if (operation === 'login') {
    response = client.invoke('identity.v1.LoginService/Login', { user_name: user, password: password }, { timeout: '120s' });
    good = response && response.status === grpc.StatusOK && response.message && response.message.sessionToken;
  } else {
    response = client.invoke('identity.v1.SessionService/ValidateSession',
      { session_token: tokens[(__VU - 1) % tokens.length] }, { timeout: '120s' });
    good = response && response.status === grpc.StatusOK && response.message && response.message.valid === true;
  }
  if (good) {
    ok.add(1);
  } else {
    failed.add(1, { status: String(response ? response.status : 'none') });
  }
}
