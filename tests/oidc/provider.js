// A real OpenID Connect provider (the `oidc-provider` package) on loopback,
// started by the staff single sign-on tests (tests/e2e/staff_console/sso.rs).
//
// Environment:
//   PORT           port to listen on (127.0.0.1)
//   REDIRECT_URI   the Coursegate callback registered for the client
//   CLIENT_ID      default "coursegate"
//   CLIENT_SECRET  default "coursegate-test-secret"
//
// Test shortcuts (no login form, everything else is the real provider):
//   - the interaction page signs in the account named by the `login_hint`
//     of the authorization request; the account's email is the hint itself;
//   - an account whose name starts with "unverified" has email_verified=false;
//   - for an account whose name starts with "wrong-aud", the token endpoint
//     returns an ID token re-signed with the provider's own key whose `aud`
//     is another client ("someone-else"): a genuine wrong-audience token.
'use strict';

const { randomUUID } = require('node:crypto');
const jose = require('jose');

async function main() {
  const port = Number(process.env.PORT || 0);
  const redirectUri = process.env.REDIRECT_URI;
  if (!port || !redirectUri) {
    console.error('PORT and REDIRECT_URI are required');
    process.exit(2);
  }
  const clientId = process.env.CLIENT_ID || 'coursegate';
  const clientSecret = process.env.CLIENT_SECRET || 'coursegate-test-secret';
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: `k-${randomUUID()}`, alg: 'RS256', use: 'sig' };

  const { default: Provider } = await import('oidc-provider');
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // Put the scope's claims into the ID token itself.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: id,
            email_verified: !id.startsWith('unverified'),
            name: `Test ${id.split('@')[0]}`,
          };
        },
      };
    },
    // Consent is implied: the grant covers what the client asked for.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
      await grant.save();
      return grant;
    },
  });

  provider.use(async (ctx, next) => {
    const m = ctx.method === 'GET' && ctx.path.match(/^\/interaction\/([^/]+)$/);
    if (m) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const account = details.params.login_hint || 'nobody@nowhere.example';
      const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account } }, {
        mergeWithLastSubmission: false,
      });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
      const claims = jose.decodeJwt(ctx.body.id_token);
      if (String(claims.sub).startsWith('wrong-aud')) {
        ctx.body.id_token = await new jose.SignJWT({ ...claims, aud: 'someone-else', azp: 'someone-else' })
          .setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' })
          .sign(privateKey);
      }
    }
  });

  provider.listen(port, '127.0.0.1', () => {
    console.log(`oidc-provider listening on ${issuer}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
