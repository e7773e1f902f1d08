//! Every rejection reason of id_token verification, the 1EdTech certification
//! bad payloads, and the valid teacher/student variants.

use chrono::Duration;
use serde_json::json;

use crate::claims::{names, roles, MessageType};
use crate::error::LtiError;
use crate::testing::{self, fixed_now, TokenMinter};
use crate::token::{peek_kid, peek_unverified, verify_launch, Expectations, Verifier};
use crate::LaunchClaims;

fn verify_with(token: &str, exp: &Expectations) -> Result<LaunchClaims, LtiError> {
    verify_launch(token, &testing::platform_keys(), exp, fixed_now())
}

fn verify(token: &str) -> Result<LaunchClaims, LtiError> {
    verify_with(token, &testing::expectations())
}

fn minter() -> TokenMinter {
    TokenMinter::new(fixed_now())
}

#[track_caller]
fn rejects(token: &str, code: &str) -> LtiError {
    let err = verify(token).expect_err("token should be refused");
    assert_eq!(err.code(), code, "got {err:?}");
    assert!(!err.plain_words().is_empty());
    assert!(!err.advice(None).is_empty());
    err
}

// ---------- valid launches ----------

#[test]
fn full_instructor_launch_is_accepted() {
    let c = verify(&minter().mint()).unwrap();
    assert_eq!(c.message_type, MessageType::ResourceLink);
    assert_eq!(c.version, "1.3.0");
    assert_eq!(c.deployment_id, testing::DEPLOYMENT_ID);
    assert_eq!(c.sub.as_deref(), Some("user-0001"));
    assert_eq!(c.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(c.email.as_deref(), Some("ada@example.edu"));
    assert!(c.is_instructor());
    assert!(!c.is_learner());
    assert_eq!(c.context.as_ref().unwrap().id, "ctx-1");
    assert_eq!(c.resource_link.as_ref().unwrap().id, "rl-1");
    assert_eq!(
        c.resource_link.as_ref().unwrap().title.as_deref(),
        Some("Week 1")
    );
    assert_eq!(c.custom_param("course"), Some("intro"));
    assert_eq!(
        c.launch_presentation
            .as_ref()
            .unwrap()
            .document_target
            .as_deref(),
        Some("iframe")
    );
    assert_eq!(c.product_family(), Some("test"));
    assert_eq!(c.raw["iss"], testing::ISSUER);
    assert_eq!(c.display_name().as_deref(), Some("Ada Lovelace"));
}

#[test]
fn learner_launch_with_services_and_storage() {
    let t = minter()
        .roles(&[roles::LEARNER])
        .claim(
            names::AGS_ENDPOINT,
            json!({"scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
                   "lineitems": "https://p/li", "lineitem": "https://p/li/1"}),
        )
        .claim(
            names::NRPS,
            json!({"context_memberships_url": "https://p/m", "service_versions": ["2.0"]}),
        )
        .claim(names::PLATFORM_STORAGE, json!({"target": "_parent"}))
        .mint();
    let c = verify(&t).unwrap();
    assert!(c.is_learner() && !c.is_instructor());
    let ags = c.ags.unwrap();
    assert!(ags.can_post_scores());
    assert_eq!(ags.lineitem.as_deref(), Some("https://p/li/1"));
    assert_eq!(c.nrps.unwrap().context_memberships_url, "https://p/m");
    assert_eq!(c.lti_storage_target.as_deref(), Some("_parent"));
}

#[test]
fn valid_variants_from_certification_are_accepted() {
    for who in [roles::INSTRUCTOR, roles::LEARNER] {
        let short = if who == roles::INSTRUCTOR {
            "Instructor"
        } else {
            "Learner"
        };
        let inst = if who == roles::INSTRUCTOR {
            roles::INSTITUTION_FACULTY
        } else {
            roles::INSTITUTION_STUDENT
        };
        let variants: Vec<(&str, TokenMinter)> = vec![
            (
                "multiple roles",
                minter().roles(&[who, inst, roles::MENTOR]),
            ),
            ("short role name", minter().roles(&[short])),
            (
                "unknown role",
                minter().roles(&["http://purl.imsglobal.org/vocab/lis/v2/membership#Dragon"]),
            ),
            ("empty roles", minter().roles(&[])),
            (
                "email only",
                minter()
                    .roles(&[who])
                    .without("name")
                    .without("given_name")
                    .without("family_name"),
            ),
            ("names only", minter().roles(&[who]).without("email")),
            (
                "no PII",
                minter()
                    .roles(&[who])
                    .without("name")
                    .without("given_name")
                    .without("family_name")
                    .without("email"),
            ),
            (
                "email without context",
                minter()
                    .roles(&[who])
                    .without("name")
                    .without("given_name")
                    .without("family_name")
                    .without(names::CONTEXT),
            ),
            (
                "only resource link",
                minter()
                    .roles(&[who])
                    .without(names::CONTEXT)
                    .without(names::TOOL_PLATFORM)
                    .without(names::LAUNCH_PRESENTATION)
                    .without(names::CUSTOM)
                    .without("name")
                    .without("given_name")
                    .without("family_name")
                    .without("email"),
            ),
        ];
        for (name, m) in variants {
            let c = verify(&m.mint()).unwrap_or_else(|e| panic!("{name} ({short}): {e:?}"));
            match name {
                "short role name" | "multiple roles" => {
                    assert_eq!(c.is_instructor(), who == roles::INSTRUCTOR, "{name}");
                    if name == "short role name" {
                        assert_eq!(c.is_learner(), who == roles::LEARNER, "{name}");
                    }
                }
                "unknown role" | "empty roles" => {
                    assert!(!c.is_instructor() && !c.is_learner(), "{name}")
                }
                "no PII" => {
                    assert!(c.name.is_none() && c.email.is_none() && c.display_name().is_none())
                }
                "email only" => assert_eq!(c.display_name().as_deref(), Some("ada@example.edu")),
                "email without context" => assert!(c.context.is_none()),
                _ => {}
            }
        }
    }
}

#[test]
fn deep_linking_request_is_accepted() {
    let t = minter()
        .deep_linking(testing::RETURN_URL, Some("opaque-data"))
        .mint();
    let c = verify(&t).unwrap();
    assert_eq!(c.message_type, MessageType::DeepLinking);
    let s = c.deep_linking_settings.unwrap();
    assert_eq!(s.deep_link_return_url, testing::RETURN_URL);
    assert_eq!(s.data.as_deref(), Some("opaque-data"));
    assert!(s.accepts_multiple() && s.accepts_resource_links());
    assert!(c.resource_link.is_none());
}

#[test]
fn anonymous_launch_only_when_allowed() {
    let t = minter().without("sub").mint();
    rejects(&t, "sub_missing");
    let c = verify_with(&t, &testing::expectations().allow_anonymous(true)).unwrap();
    assert!(c.sub.is_none());
}

#[test]
fn nonce_is_checked_by_caller_when_not_given() {
    let t = minter().nonce("whatever").mint();
    let exp = Expectations::new(testing::ISSUER, testing::CLIENT_ID);
    let c = verify_with(&t, &exp).unwrap();
    assert_eq!(c.nonce, "whatever");
}

#[test]
fn multiple_audiences_with_matching_azp_are_accepted_when_trusted() {
    let t = minter()
        .claim("aud", json!([testing::CLIENT_ID, "other"]))
        .claim("azp", testing::CLIENT_ID)
        .mint();
    let mut exp = testing::expectations();
    exp.trusted_audiences.push("other".into());
    verify_with(&t, &exp).unwrap();
    // A single aud as an array is fine.
    let t = minter().claim("aud", json!([testing::CLIENT_ID])).mint();
    verify(&t).unwrap();
}

#[test]
fn skew_is_tolerated() {
    let t = minter()
        .claim("iat", fixed_now().timestamp() + 50)
        .claim("exp", fixed_now().timestamp() - 50)
        .mint();
    verify(&t).unwrap();
}

#[test]
fn target_link_uri_with_query_and_trailing_slash_matches() {
    let t = minter()
        .claim(
            names::TARGET_LINK_URI,
            format!("{}/?course=intro", testing::LAUNCH_URL),
        )
        .mint();
    verify(&t).unwrap();
}

#[test]
fn traced_verification_records_kid_and_age() {
    let v = Verifier::new(testing::expectations());
    let t = minter().claim("iat", fixed_now().timestamp() - 7).mint();
    let (r, trace) = v.verify_traced(&t, &testing::platform_keys(), fixed_now());
    r.unwrap();
    assert_eq!(trace.kid.as_deref(), Some(testing::PLATFORM_KID));
    assert_eq!(trace.age_secs, Some(7));
    assert!(trace.checks.iter().all(|c| c.ok));
    let (r, trace) = v.verify_traced(
        &minter().nonce("x").mint(),
        &testing::platform_keys(),
        fixed_now(),
    );
    assert_eq!(r.unwrap_err(), LtiError::NonceMismatch);
    let last = trace.checks.last().unwrap();
    assert_eq!((last.name, last.ok), ("nonce", false));
}

// ---------- 1EdTech certification: known bad payloads (§6.1.1) ----------

#[test]
fn cert_no_kid() {
    assert_eq!(
        rejects(&minter().kid(None).mint(), "kid_missing"),
        LtiError::KidMissing
    );
}

#[test]
fn cert_incorrect_kid() {
    let e = rejects(
        &minter().kid(Some("imsglobalorg-wrong")).mint(),
        "kid_unknown",
    );
    assert_eq!(
        e,
        LtiError::KidUnknown {
            kid: "imsglobalorg-wrong".into()
        }
    );
}

#[test]
fn cert_wrong_lti_version() {
    let e = rejects(
        &minter().claim(names::VERSION, "1.2.0").mint(),
        "version_invalid",
    );
    assert_eq!(
        e,
        LtiError::VersionInvalid {
            got: "1.2.0".into()
        }
    );
}

#[test]
fn cert_no_lti_version() {
    rejects(&minter().without(names::VERSION).mint(), "version_missing");
}

#[test]
fn cert_not_a_jwt() {
    for garbage in [
        "",
        "garbage",
        "abc.def",
        "a.b.c.d",
        "%%%.%%%.%%%",
        "eyJ9.eyJ9.sig",
    ] {
        rejects(garbage, "malformed_token");
    }
    // Header that is valid base64 but not JSON.
    rejects("bm90IGpzb24.eyJhIjoxfQ.c2ln", "malformed_token");
    // Payload that is not JSON (signature check comes first for a valid header, so
    // sign a payload that is not JSON with the platform key).
    use base64::Engine;
    let h =
        crate::token::B64.encode(json!({"alg":"RS256","kid":testing::PLATFORM_KID}).to_string());
    let p = crate::token::B64.encode("not json");
    let input = format!("{h}.{p}");
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(testing::PLATFORM_KEY_PEM.as_bytes()).unwrap();
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
    rejects(&format!("{input}.{sig}"), "malformed_token");
}

#[test]
fn cert_missing_lti_claims() {
    let t = minter()
        .without(names::MESSAGE_TYPE)
        .without(names::ROLES)
        .without(names::DEPLOYMENT_ID)
        .without(names::RESOURCE_LINK)
        .mint();
    // The first missing claim in check order is reported.
    rejects(&t, "message_type_missing");
}

#[test]
fn cert_timestamps_incorrect() {
    let now = fixed_now().timestamp();
    rejects(
        &minter()
            .claim("exp", now - 3600)
            .claim("iat", now - 3900)
            .mint(),
        "token_expired",
    );
    rejects(
        &minter()
            .claim("iat", now + 3600)
            .claim("exp", now + 7200)
            .mint(),
        "iat_in_future",
    );
}

#[test]
fn cert_message_type_missing() {
    rejects(
        &minter().without(names::MESSAGE_TYPE).mint(),
        "message_type_missing",
    );
}

#[test]
fn cert_role_missing() {
    rejects(&minter().without(names::ROLES).mint(), "roles_missing");
}

#[test]
fn cert_deployment_id_missing() {
    rejects(
        &minter().without(names::DEPLOYMENT_ID).mint(),
        "deployment_id_missing",
    );
    rejects(
        &minter().claim(names::DEPLOYMENT_ID, "").mint(),
        "deployment_id_missing",
    );
}

#[test]
fn cert_resource_link_id_missing() {
    rejects(
        &minter().without_field(names::RESOURCE_LINK, "id").mint(),
        "resource_link_missing",
    );
    rejects(
        &minter().without(names::RESOURCE_LINK).mint(),
        "resource_link_missing",
    );
}

#[test]
fn cert_user_id_missing() {
    rejects(&minter().without("sub").mint(), "sub_missing");
    rejects(&minter().claim("sub", "").mint(), "sub_missing");
}

// ---------- every other rejection reason ----------

#[test]
fn alg_none_is_refused() {
    let e = rejects(&minter().header_alg("none").mint(), "alg_not_allowed");
    assert_eq!(e, LtiError::AlgNotAllowed { alg: "none".into() });
}

#[test]
fn alg_hs256_is_refused() {
    rejects(&minter().header_alg("HS256").mint(), "alg_not_allowed");
}

#[test]
fn other_rsa_algs_are_refused() {
    rejects(&minter().header_alg("RS512").mint(), "alg_not_allowed");
    rejects(&minter().header_alg("PS256").mint(), "alg_not_allowed");
}

#[test]
fn bad_signature() {
    let e = rejects(&minter().sign_with_other_key().mint(), "bad_signature");
    assert_eq!(e, LtiError::BadSignature);
    // Tampered payload.
    let good = minter().mint();
    let mut parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let other = crate::token::B64.encode(
        serde_json::Value::Object(minter().claim("sub", "admin").claims().clone()).to_string(),
    );
    parts[1] = &other;
    rejects(&parts.join("."), "bad_signature");
}

#[test]
fn iss_mismatch() {
    let e = rejects(
        &minter().claim("iss", "https://evil.example").mint(),
        "iss_mismatch",
    );
    assert_eq!(
        e,
        LtiError::IssMismatch {
            expected: testing::ISSUER.into(),
            got: "https://evil.example".into()
        }
    );
    rejects(&minter().without("iss").mint(), "iss_mismatch");
    rejects(
        &minter()
            .claim("iss", format!("{}/", testing::ISSUER))
            .mint(),
        "iss_mismatch",
    );
}

#[test]
fn aud_mismatch() {
    rejects(
        &minter().claim("aud", "someone-else").mint(),
        "aud_mismatch",
    );
    rejects(&minter().without("aud").mint(), "aud_mismatch");
}

#[test]
fn aud_untrusted_extra_audience() {
    let t = minter()
        .claim("aud", json!([testing::CLIENT_ID, "other"]))
        .claim("azp", testing::CLIENT_ID)
        .mint();
    rejects(&t, "aud_untrusted");
}

#[test]
fn azp_missing_with_several_audiences() {
    let mut exp = testing::expectations();
    exp.trusted_audiences.push("other".into());
    let t = minter()
        .claim("aud", json!([testing::CLIENT_ID, "other"]))
        .mint();
    assert_eq!(verify_with(&t, &exp).unwrap_err(), LtiError::AzpMissing);
}

#[test]
fn azp_mismatch() {
    let t = minter().claim("azp", "other").mint();
    assert_eq!(rejects(&t, "azp_mismatch").code(), "azp_mismatch");
}

#[test]
fn exp_missing() {
    rejects(&minter().without("exp").mint(), "exp_missing");
}

#[test]
fn token_expired_just_beyond_skew() {
    let now = fixed_now().timestamp();
    rejects(&minter().claim("exp", now - 61).mint(), "token_expired");
}

#[test]
fn iat_missing() {
    rejects(&minter().without("iat").mint(), "iat_missing");
}

#[test]
fn iat_in_future_beyond_skew() {
    let now = fixed_now().timestamp();
    rejects(&minter().claim("iat", now + 61).mint(), "iat_in_future");
    // A configurable skew lets it through.
    let t = minter().claim("iat", now + 61).mint();
    verify_with(&t, &testing::expectations().with_skew_secs(120)).unwrap();
}

#[test]
fn token_too_old() {
    let now = fixed_now().timestamp();
    let t = minter()
        .claim("iat", now - 600)
        .claim("exp", now + 600)
        .mint();
    verify(&t).unwrap();
    let e = verify_with(&t, &testing::expectations().with_max_age_secs(300)).unwrap_err();
    assert_eq!(e.code(), "token_too_old");
}

#[test]
fn token_not_yet_valid() {
    let now = fixed_now().timestamp();
    rejects(
        &minter().claim("nbf", now + 3600).mint(),
        "token_not_yet_valid",
    );
}

#[test]
fn nonce_missing() {
    rejects(&minter().without("nonce").mint(), "nonce_missing");
}

#[test]
fn nonce_mismatch() {
    rejects(
        &minter().nonce("replayed-or-forged").mint(),
        "nonce_mismatch",
    );
}

#[test]
fn message_type_invalid() {
    let e = rejects(
        &minter().claim(names::MESSAGE_TYPE, "LtiWhatever").mint(),
        "message_type_invalid",
    );
    assert_eq!(
        e,
        LtiError::MessageTypeInvalid {
            got: "LtiWhatever".into()
        }
    );
}

#[test]
fn deep_linking_without_settings() {
    let t = minter()
        .deep_linking(testing::RETURN_URL, None)
        .without(names::DEEP_LINKING_SETTINGS)
        .mint();
    rejects(&t, "deep_linking_settings_missing");
}

#[test]
fn target_link_uri_missing_and_mismatch() {
    rejects(
        &minter().without(names::TARGET_LINK_URI).mint(),
        "target_link_uri_missing",
    );
    let e = rejects(
        &minter()
            .claim(names::TARGET_LINK_URI, "https://evil.example/lti/launch")
            .mint(),
        "target_link_uri_mismatch",
    );
    assert!(matches!(e, LtiError::TargetLinkUriMismatch { .. }));
    // Without configured launch URLs the check is skipped.
    let exp = Expectations::new(testing::ISSUER, testing::CLIENT_ID).with_nonce(testing::NONCE);
    verify_with(&minter().without(names::TARGET_LINK_URI).mint(), &exp).unwrap();
}

#[test]
fn roles_not_an_array_is_invalid() {
    rejects(
        &minter().claim(names::ROLES, json!({"a": 1})).mint(),
        "claim_invalid",
    );
}

#[test]
fn custom_not_an_object_is_invalid() {
    rejects(&minter().claim(names::CUSTOM, "x").mint(), "claim_invalid");
}

#[test]
fn exp_of_wrong_type_is_invalid() {
    rejects(&minter().claim("exp", "tomorrow").mint(), "claim_invalid");
}

#[test]
fn expired_by_time_passing() {
    let t = minter().mint();
    let later = fixed_now() + Duration::seconds(300 + 61);
    let e = verify_launch(
        &t,
        &testing::platform_keys(),
        &testing::expectations(),
        later,
    )
    .unwrap_err();
    assert_eq!(e.code(), "token_expired");
}

#[test]
fn keys_from_a_plain_jwkset_work_too() {
    let set = testing::platform_jwk_set();
    verify_launch(
        &minter().mint(),
        &set,
        &testing::expectations(),
        fixed_now(),
    )
    .unwrap();
}

// ---------- peek ----------

#[test]
fn peek_reads_without_verifying() {
    let t = minter().sign_with_other_key().claim("azp", "x").mint();
    let u = peek_unverified(&t).unwrap();
    assert_eq!(u.iss, testing::ISSUER);
    assert_eq!(u.aud, vec![testing::CLIENT_ID.to_string()]);
    assert_eq!(u.azp.as_deref(), Some("x"));
    assert_eq!(u.client_id(), Some("x"));
    assert_eq!(u.kid.as_deref(), Some(testing::PLATFORM_KID));
    assert_eq!(u.alg.as_deref(), Some("RS256"));
    assert_eq!(u.deployment_id.as_deref(), Some(testing::DEPLOYMENT_ID));
    // Even a token without kid can be peeked, so the real reason is reported by verify.
    assert!(peek_unverified(&minter().kid(None).mint())
        .unwrap()
        .kid
        .is_none());
    assert_eq!(
        peek_unverified("nope").unwrap_err().code(),
        "malformed_token"
    );
    assert_eq!(
        peek_unverified(&minter().without("iss").mint())
            .unwrap_err()
            .code(),
        "malformed_token"
    );
}

#[test]
fn the_kid_is_read_from_the_header_alone() {
    assert_eq!(
        peek_kid(&minter().mint()).as_deref(),
        Some(testing::PLATFORM_KID)
    );
    // The payload is not looked at: even one without iss gives its kid.
    assert_eq!(
        peek_kid(&minter().without("iss").mint()).as_deref(),
        Some(testing::PLATFORM_KID)
    );
    assert_eq!(peek_kid(&minter().kid(None).mint()), None);
    assert_eq!(peek_kid("nope"), None);
    assert_eq!(peek_kid("a.b"), None);
}

// ---------- error catalogue ----------

#[test]
fn codes_are_unique_snake_case_and_advice_mentions_lms() {
    let mut seen = std::collections::HashSet::new();
    for c in LtiError::ALL_CODES {
        assert!(seen.insert(*c), "duplicate {c}");
        assert!(c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
    }
    let e = LtiError::IssMismatch {
        expected: "a".into(),
        got: "b".into(),
    };
    assert!(e.advice(Some("Canvas")).contains("canvas.instructure.com"));
    assert!(e.advice(Some("blackboard")).contains("blackboard.com"));
    let e = LtiError::TokenRequestFailed {
        url: "u".into(),
        status: Some(400),
        body: String::new(),
    };
    assert!(e.advice(Some("D2L")).contains("OAuth2 audience"));
    assert!(!e.advice(Some("unknown lms")).contains("Brightspace"));
    assert_eq!(
        crate::Lms::from_issuer("https://canvas.instructure.com"),
        Some(crate::Lms::Canvas)
    );
    assert_eq!(
        crate::Lms::from_issuer("https://blackboard.com"),
        Some(crate::Lms::Blackboard)
    );
}

#[test]
fn only_context_roles_may_connect_an_unmapped_link() {
    let lis = "http://purl.imsglobal.org/vocab/lis/v2/";
    for (role, context_instructor) in [
        (format!("{lis}membership#Instructor"), true),
        (format!("{lis}membership#ContentDeveloper"), true),
        (format!("{lis}membership#Administrator"), true),
        ("Instructor".to_string(), true),
        (
            format!("{lis}membership/Instructor#TeachingAssistant"),
            false,
        ),
        (format!("{lis}institution/person#Faculty"), false),
        (format!("{lis}institution/person#Instructor"), false),
        (format!("{lis}system/person#Administrator"), false),
        (format!("{lis}membership#Learner"), false),
    ] {
        let c = verify(&minter().roles(&[role.as_str()]).mint()).unwrap();
        assert_eq!(c.is_context_instructor(), context_instructor, "{role}");
    }
}

/// A JWKS whose key `kid` has a modulus of `bits` bits (only its size
/// matters: the launch is refused before any signature is checked).
fn jwks_with_key_of(kid: &str, bits: usize) -> serde_json::Value {
    use base64::Engine;
    let mut n = vec![0xc5u8; bits / 8];
    n[0] = 0x80 | 0x45;
    json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"
    }]})
}

#[test]
fn a_platform_key_under_2048_bits_is_refused_as_too_short() {
    let doc = jwks_with_key_of("weak-1024", 1024);
    let set = crate::token::PlatformKeys::parse_jwks_lenient(&doc);
    let keys = crate::token::PlatformKeys::from_jwks(&set);
    // Published (so an unknown-kid refetch is not triggered), but unusable.
    assert!(keys.contains("weak-1024"));
    assert_eq!(keys.kids(), vec!["weak-1024"]);
    let token = minter().kid(Some("weak-1024")).mint();
    let expected = LtiError::KeyTooShort {
        kid: "weak-1024".into(),
        bits: 1024,
    };
    let e = verify_launch(&token, &keys, &testing::expectations(), fixed_now()).unwrap_err();
    assert_eq!(e, expected);
    assert_eq!(e.code(), "key_too_short");
    // The raw key set gives the same answer.
    let e = verify_launch(&token, &set, &testing::expectations(), fixed_now()).unwrap_err();
    assert_eq!(e, expected);
    assert!(e.advice(None).contains("at least 2,048 bits"));
}

#[test]
fn key_sizes_are_read_from_the_modulus() {
    for (bits, usable) in [(1024, false), (2040, false), (2048, true), (4096, true)] {
        let doc = jwks_with_key_of("k", bits);
        let set = crate::token::PlatformKeys::parse_jwks_lenient(&doc);
        assert_eq!(crate::token::rsa_bits(&set.keys[0]), Some(bits));
        let keys = crate::token::PlatformKeys::from_jwks(&set);
        use crate::token::KeyLookup;
        assert_eq!(keys.key_for("k").is_some(), usable, "{bits}");
        assert_eq!(keys.short_key_bits("k").is_some(), !usable, "{bits}");
    }
}
