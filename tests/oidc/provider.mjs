// The OpenID Provider the flamingo end-to-end tests log in against: the certified `oidc-provider`
// (pinned by package-lock.json; install with `npm ci --prefix tests/oidc`).
//
// Started by tests/support/oidc.rs, configured through environment variables:
//   OP_PORT              loopback port to listen on (required)
//   OP_CLIENTS           JSON array of oidc-provider client metadata (required)
//   OP_ACCESS_TOKEN_TTL  access-token lifetime in seconds (default 3600)
//   OP_ID_TOKEN_TTL      ID-token lifetime in seconds (default 3600)
//   OP_ROTATE_REFRESH_TOKEN  `1`: a new refresh token on every refresh, and a reused one
//                        revokes the grant (Keycloak, Auth0, Okta with rotation on); default off
//   OP_REFRESH_DELAY_MS  holds the answer to every refresh-token grant this long after the grant
//                        was made (a slow provider; the grant is counted at once); default 0
//   OP_SIGNING_KEY_PEM   an RSA private key (PEM) to sign with instead of a fresh one, so that a
//                        test can sign tokens (logout tokens) the provider's JWKS verifies
//   OP_SIGNING_KID       the `kid` of that key (default: a fresh UUID)
//   OP_RESOURCE_SERVERS  JSON object: resource indicator -> {"accessTokenTTL": seconds}. Each
//                        is an API that gets JWT access tokens (RFC 9068, `aud` = the
//                        indicator) through `resource=`; also turns on the client credentials
//                        grant. Default: none (a `resource=` is refused, as before)
//   OP_TEST_SIGNER       `1`: serve `POST /test/sign`, which signs the JSON object it is sent
//                        as a JWT with the provider's own key (for tokens no grant issues:
//                        another `iss`, an early `nbf`); default off
//
// Without OP_SIGNING_KEY_PEM each start generates a fresh RSA signing key with a fresh `kid`, so
// restarting the provider on the same port is a signing-key rotation.
//
// Back-Channel Logout is on: a client that registers `backchannel_logout_uri` gets a logout token
// posted there when the user logs out at the provider (other clients see no difference). Those
// posts may go to loopback (the apps under test), which oidc-provider refuses by default.
//
// Besides the OpenID Connect endpoints it serves `GET /api/whoami`, a protected API: it answers
// 200 `{"sub", "client", "scope"}` for a valid bearer access token and 401 otherwise, and
// `GET /test/refreshes`, which counts the refresh-token grants it answered:
// `{"success": n, "error": n}`, and `GET /test/backchannel`, which counts the back-channel
// logout posts: `{"success": n, "error": n}` (an error is an answer other than 200/204). It prints
// `oidc-provider listening on <issuer>` once it accepts connections.
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const port = Number.parseInt(process.env.OP_PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('OP_PORT must be the port to listen on');
  process.exit(2);
}
const clients = JSON.parse(process.env.OP_CLIENTS ?? '[]');
const accessTokenTtl = Number.parseInt(process.env.OP_ACCESS_TOKEN_TTL ?? '3600', 10);
const idTokenTtl = Number.parseInt(process.env.OP_ID_TOKEN_TTL ?? '3600', 10);
const rotateRefreshToken = process.env.OP_ROTATE_REFRESH_TOKEN === '1';
const refreshDelayMs = Number.parseInt(process.env.OP_REFRESH_DELAY_MS ?? '0', 10);
const resourceServers = JSON.parse(process.env.OP_RESOURCE_SERVERS ?? '{}');
const testSigner = process.env.OP_TEST_SIGNER === '1';
const issuer = `http://127.0.0.1:${port}`;
const refreshes = { success: 0, error: 0 };
const backchannel = { success: 0, error: 0 };

// The test accounts. Passwords are not checked by the development login form.
const accounts = {
  alice: {
    sub: 'alice',
    name: 'Alice Anderson',
    given_name: 'Alice',
    family_name: 'Anderson',
    email: 'alice@example.com',
    email_verified: true,
    groups: ['admins', 'staff'],
    department: 'Engineering',
  },
  bob: {
    sub: 'bob',
    name: 'Bob Brown',
    given_name: 'Bob',
    family_name: 'Brown',
    email: 'bob@example.com',
    email_verified: false,
    groups: ['staff'],
    department: 'Sales',
  },
};

const privateKey = process.env.OP_SIGNING_KEY_PEM
  ? createPrivateKey(process.env.OP_SIGNING_KEY_PEM)
  : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: process.env.OP_SIGNING_KID || randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...account };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    department: ['department'],
  },
  // Profile claims in the ID token too, not only at userinfo.
  conformIdTokenClaims: false,
  // Expiry tests use short lifetimes: no tolerance.
  clockTolerance: 0,
  cookies: {
    // The app under test shares the cookie jar (cookies ignore ports): no name collisions.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    keys: ['flamingo-test-op-cookie-key'],
  },
  features: {
    claimsParameter: { enabled: true },
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    ...(Object.keys(resourceServers).length > 0
      ? {
          clientCredentials: { enabled: true },
          resourceIndicators: {
            enabled: true,
            async getResourceServerInfo(_ctx, indicator) {
              const server = resourceServers[indicator];
              if (!server) throw new errors.InvalidTarget();
              return {
                scope: 'api',
                audience: indicator,
                accessTokenTTL: server.accessTokenTTL ?? accessTokenTtl,
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg: 'RS256' } },
              };
            },
          },
        }
      : {}),
  },
  // The apps under test listen on loopback: send the logout tokens there without the
  // special-use address guard (a test provider only).
  async fetch(url, options) {
    const { dispatcher: _guard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTokenTtl,
    IdToken: idTokenTtl,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 3600,
  },
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  rotateRefreshToken: () => rotateRefreshToken,
});

// The protected test API: checks the bearer access token against the provider's own store.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/api/whoami') {
    await next();
    return;
  }
  const header = ctx.get('authorization');
  const match = /^Bearer (.+)$/.exec(header);
  const token = match ? await provider.AccessToken.find(match[1]) : undefined;
  if (!token || token.isExpired) {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
    ctx.body = { error: 'invalid_token' };
    return;
  }
  ctx.body = { sub: token.accountId, client: token.clientId, scope: token.scope };
});

// Counts refresh-token grants, for the one-refresh-per-session tests.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/test/refreshes') {
    await next();
    return;
  }
  ctx.body = refreshes;
});
// A slow provider: the answer to a refresh-token grant leaves only after OP_REFRESH_DELAY_MS.
provider.use(async (ctx, next) => {
  await next();
  if (refreshDelayMs > 0 && ctx.oidc?.params?.grant_type === 'refresh_token') {
    await new Promise((resolve) => { setTimeout(resolve, refreshDelayMs); });
  }
});
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') refreshes.success += 1;
});
provider.on('grant.error', (ctx) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') refreshes.error += 1;
});

// Counts back-channel logout posts, for the end-to-end logout tests.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/test/backchannel') {
    await next();
    return;
  }
  ctx.body = backchannel;
});
provider.on('backchannel.success', () => {
  backchannel.success += 1;
});
provider.on('backchannel.error', (_ctx, err) => {
  backchannel.error += 1;
  console.error('backchannel.error', err.message);
});
// Signs what it is sent with the provider's key, for the bearer-token tests (OP_TEST_SIGNER).
if (testSigner) {
  provider.use(async (ctx, next) => {
    if (ctx.path !== '/test/sign' || ctx.method !== 'POST') {
      await next();
      return;
    }
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const claims = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const input = `${b64({ alg: 'RS256', typ: 'at+jwt', kid: signingKey.kid })}.${b64(claims)}`;
    const signature = sign('sha256', Buffer.from(input), privateKey).toString('base64url');
    ctx.type = 'text/plain';
    ctx.body = `${input}.${signature}`;
  });
}

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
