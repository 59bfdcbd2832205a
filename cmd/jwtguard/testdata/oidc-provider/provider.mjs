// An OpenID provider for jwtguard's end-to-end test: panva's oidc-provider
// on a loopback port, issuing JWT access tokens that carry the session's
// sid, and sending back-channel logout tokens to jwtguard.
//
// Reads one JSON line on stdin once it has printed {"issuer": ...}:
//   {"jwk": <private JWK>, "client_id", "client_secret", "redirect_uri",
//    "backchannel_logout_uri", "audience"}
// then prints {"ready": true} and serves until stdin closes.
import * as http from 'node:http';
import * as readline from 'node:readline';

import Provider from 'oidc-provider';

const server = http.createServer((req, res) => {
  res.statusCode = 503;
  res.end('not configured yet');
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
console.log(JSON.stringify({ issuer }));

const lines = readline.createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const cfg = JSON.parse(first);

const provider = new Provider(issuer, {
  jwks: { keys: [cfg.jwk] },
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: cfg.jwk.alg,
    backchannel_logout_uri: cfg.backchannel_logout_uri,
    backchannel_logout_session_required: true,
  }],
  clientDefaults: { id_token_signed_response_alg: cfg.jwk.alg },
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: cfg.audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: cfg.jwk.alg } },
      }),
    },
  },
  formats: {
    customizers: {
      // The session's sid, as the logout token names it.
      jwt(ctx, token, jwt) { jwt.payload.sid = token.sid; },
    },
  },
  cookies: { keys: ['jwtguard-e2e-cookie-key-0123456789'] },
  pkce: { required: () => true },
  // oidc-provider refuses to fetch special-use addresses (SSRF protection);
  // in this test jwtguard listens on loopback, so the guard is set aside.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
});
provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message, err.cause?.message ?? ''));
provider.on('backchannel.success', () => console.error('backchannel.success'));
provider.on('server_error', (ctx, err) => console.error('server_error', err));
server.removeAllListeners('request');
server.on('request', provider.callback());
console.log(JSON.stringify({ ready: true }));
lines.on('close', () => { server.close(); process.exit(0); });
