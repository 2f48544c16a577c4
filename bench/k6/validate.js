// The validate scenario for k6 users: ValidateSession over a pool of live session tokens,
// with the contract read from the server by reflection.
//
//   identityd-load seed --database-url "$DATABASE_URL" --sessions 10000 --tokens-out tokens.txt
//   k6 run -e TARGET=127.0.0.1:50051 -e TOKENS=tokens.txt --vus 64 --duration 10s bench/k6/validate.js
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

const target = __ENV.TARGET || '127.0.0.1:50051';
const tokens = new SharedArray('session tokens', () =>
  open(__ENV.TOKENS || 'tokens.txt').split('\n').filter((line) => line.length > 0),
);
const client = new grpc.Client();

export default function () {
  if (__ITER === 0) {
    client.connect(target, { plaintext: true, reflect: true });
  }
  const token = tokens[(__VU * 7919 + __ITER) % tokens.length];
  const response = client.invoke('identity.v1.SessionService/ValidateSession', { session_token: token });
  check(response, {
    'status is OK': (r) => r && r.status === grpc.StatusOK,
    'session is valid': (r) => r && r.message && r.message.valid === true,
  });
}
