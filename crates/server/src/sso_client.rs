//! The OpenID Connect side of staff single sign-on (the `openidconnect`
//! crate): discovery, the authorization request (code flow, PKCE S256,
//! nonce, state) and, at the callback, the code exchange and the ID-token
//! checks (signature by the provider's JWKS, issuer, audience, expiry,
//! nonce). Every failure becomes an [`SsoRefusal`] with its own code; the
//! rules about who may sign in live in `coursegate_core::sso`.
//!
//! The provider's metadata is fetched on each sign-in (two small requests)
//! so that nothing is cached per instance. HTTP redirects are not followed
//! (the openidconnect crate's advice against SSRF).

use chrono::{DateTime, Utc};
use coursegate_core::sso::{LoginState, SsoRefusal, VerifiedIdentity};
use openidconnect::{
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use crate::config::SsoConfig;

/// A started authorization request: where to send the browser, and what to
/// keep for the callback.
pub struct Authorize {
    pub url: String,
    pub state: String,
    pub login: LoginState,
}

fn http_client() -> Result<reqwest::Client, SsoRefusal> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|_| SsoRefusal::ProviderUnavailable)
}

async fn discover(
    http: &reqwest::Client,
    cfg: &SsoConfig,
) -> Result<CoreProviderMetadata, SsoRefusal> {
    let issuer = IssuerUrl::new(cfg.issuer.clone()).map_err(|_| SsoRefusal::ProviderUnavailable)?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, issuer = %cfg.issuer, "OpenID Connect discovery failed");
            SsoRefusal::ProviderUnavailable
        })
}

/// Discovers the provider and builds the authorization request.
pub async fn authorize(
    cfg: &SsoConfig,
    redirect_uri: &str,
    login_hint: Option<&str>,
) -> Result<Authorize, SsoRefusal> {
    let http = http_client()?;
    let meta = discover(&http, cfg).await?;
    let redirect =
        RedirectUrl::new(redirect_uri.to_string()).map_err(|_| SsoRefusal::ProviderUnavailable)?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(cfg.client_id.clone()),
        Some(ClientSecret::new(cfg.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if let Some(h) = login_hint {
        req = req.add_extra_param("login_hint", h.to_string());
    }
    let (url, state, nonce) = req.url();
    Ok(Authorize {
        url: url.to_string(),
        state: state.secret().clone(),
        login: LoginState {
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        },
    })
}

fn refusal_for_claims(e: &ClaimsVerificationError) -> SsoRefusal {
    match e {
        ClaimsVerificationError::InvalidAudience(_) => SsoRefusal::WrongAudience,
        ClaimsVerificationError::InvalidNonce(_) => SsoRefusal::NonceMismatch,
        _ => SsoRefusal::TokenInvalid,
    }
}

/// Exchanges the code (with the PKCE verifier) and checks the ID token.
pub async fn finish(
    cfg: &SsoConfig,
    redirect_uri: &str,
    code: &str,
    login: &LoginState,
    now: DateTime<Utc>,
) -> Result<VerifiedIdentity, SsoRefusal> {
    let http = http_client()?;
    let meta = discover(&http, cfg).await?;
    let redirect =
        RedirectUrl::new(redirect_uri.to_string()).map_err(|_| SsoRefusal::ProviderUnavailable)?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(cfg.client_id.clone()),
        Some(ClientSecret::new(cfg.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|_| SsoRefusal::ProviderUnavailable)?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OpenID Connect code exchange failed");
            SsoRefusal::TokenExchangeFailed
        })?;
    let id_token = token.id_token().ok_or(SsoRefusal::TokenInvalid)?;
    let verifier = client.id_token_verifier().set_time_fn(move || now);
    let claims = id_token
        .claims(&verifier, &Nonce::new(login.nonce.clone()))
        .map_err(|e| {
            tracing::info!(error = %e, "ID token refused");
            refusal_for_claims(&e)
        })?;
    Ok(VerifiedIdentity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified() == Some(true),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    })
}
