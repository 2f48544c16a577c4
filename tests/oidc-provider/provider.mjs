// A real OpenID Provider for the integration tests: panva's oidc-provider with its development
// login and consent pages, one confidential client and three accounts. The harness starts it with
//   PORT             the port to listen on (the issuer is http://127.0.0.1:PORT)
//   CLIENT_ID        the client's id
//   CLIENT_SECRET    the client's secret
//   REDIRECT_URIS    the client's redirect URIs, space-separated
//   POST_LOGOUT_REDIRECT_URIS   the client's post-logout redirect URIs, space-separated
// and reads "listening" on standard output once it serves; POST /test/clock moves its clock. It signs ID tokens with a key made at
// each start, so that starting it again on the same port is a provider that rotated its keys.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return value;
};

const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;

// Any password is accepted by the development login page: the account id is what is typed.
const accounts = {
  'alice': { email: 'alice@example.com', email_verified: true, preferred_username: 'alice' },
  'bob': { email: 'bob@example.com', email_verified: false, preferred_username: 'bob' },
  'carol': { email: 'carol@example.com', email_verified: true, preferred_username: 'carol' },
};

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: env('REDIRECT_URIS').split(' '),
    post_logout_redirect_uris: (process.env.POST_LOGOUT_REDIRECT_URIS || '').split(' ').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomUUID()] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username'],
  },
  // The ID token carries the claims itself, as the relying party reads only the ID token.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
});

// The tests move the provider's clock forward (POST /test/clock?advance=SECONDS), so that what it
// issued expires without a test waiting for it: oidc-provider reads the time from Date.now.
let clockOffsetMs = 0;
const realNow = Date.now;
Date.now = () => realNow() + clockOffsetMs;
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/test/clock') {
    clockOffsetMs += Number(ctx.query.advance) * 1000;
    ctx.status = 204;
    return;
  }
  await next();
});

// The development pages warn loudly on every start; the tests know.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
