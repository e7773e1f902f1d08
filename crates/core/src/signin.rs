//! Self-service "email me a sign-in link" (`/signin`) and the staff
//! equivalent. The response never depends on whether the address is known or
//! throttled: [`request`] returns `Ok(())` in every case a person could
//! distinguish, and does its work (or none) inside the transaction.

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{repo, Tx};
use serde_json::json;

use crate::{
    audit::{self, Actor},
    courses::LinkPolicy,
    learners::IdentityRef,
    links::{self, IssueLearner, LinkSettings},
    sessions::{self, ClientInfo, Destination, SessionPolicy, StartLearner, Started},
    tokens::Secret,
    types::{mask_email, Email},
    CoreError,
};

/// Counts one request against the database-kept limits; `false` = throttled.
/// Keys hold keyed hashes, never the address or IP itself.
pub fn allowed(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    email: &str,
    ip: Option<&str>,
) -> Result<bool, CoreError> {
    let n = now.naive_utc();
    if let Some(ip) = ip {
        // The peer address may carry a port; the limit is per IP.
        let ip = ip
            .parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| ip.to_string());
        let k = format!("ip5m:{}", secret.hash("ratelimit", &ip));
        if !repo::links::hit(tx, &k, n, Duration::minutes(5), settings.per_ip_5min)? {
            return Ok(false);
        }
    }
    let e = secret.hash("ratelimit", &email.to_lowercase());
    if !repo::links::hit(
        tx,
        &format!("addr1m:{e}"),
        n,
        Duration::seconds(60),
        settings.per_address_minute,
    )? {
        return Ok(false);
    }
    if !repo::links::hit(
        tx,
        &format!("addr1h:{e}"),
        n,
        Duration::hours(1),
        settings.per_address_hour,
    )? {
        return Ok(false);
    }
    Ok(true)
}

fn anon(client: &ClientInfo) -> Actor {
    Actor {
        kind: "anonymous",
        id: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    }
}

/// A learner asks for a sign-in link. Known, unknown and throttled addresses
/// all return `Ok(())`. A known learner gets a one-time link to the dashboard
/// plus a 6-digit code that works only in the browser that asked
/// (`browser_hash`).
#[allow(clippy::too_many_arguments)]
pub fn request(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    base_url: &str,
    email: &Email,
    browser_hash: &str,
    client: &ClientInfo,
) -> Result<(), CoreError> {
    let masked = mask_email(email.as_str());
    if !allowed(
        tx,
        now,
        secret,
        settings,
        email.as_str(),
        client.ip.as_deref(),
    )? {
        audit::record(
            tx,
            now,
            &anon(client),
            "signin.throttled",
            None,
            json!({ "email": masked }),
        )?;
        return Ok(());
    }
    let Some(learner) = repo::learners::find_by_email(tx, &email.lower())? else {
        audit::record(
            tx,
            now,
            &anon(client),
            "signin.unknown_address",
            None,
            json!({ "email": masked }),
        )?;
        return Ok(());
    };
    let issued = links::issue_learner(
        tx,
        now,
        secret,
        settings,
        &anon(client),
        IssueLearner {
            learner_id: learner.id.clone(),
            destination: Destination::Dashboard,
            kind: Some(LinkPolicy::Once),
            send: None,
        },
    )?;
    let code = links::new_code(
        tx,
        now,
        secret,
        settings,
        "signin",
        browser_hash,
        Some(&learner.id),
        Some(&issued.link.id),
        &Destination::Dashboard,
    )?;
    crate::mailq::enqueue(
        tx,
        now,
        crate::mailq::Mail {
            template: "signin_link",
            to: learner.email.as_deref().unwrap_or(email.as_str()),
            to_name: learner.name.as_deref(),
            context: json!({
                "link": format!("{base_url}{}", issued.path()),
                "learner": { "name": learner.name, "email": learner.email },
                "code": code,
                "expires_minutes": settings.once_ttl.num_minutes(),
                "code_expires_minutes": settings.code_ttl.num_minutes(),
                "signin_url": format!("{base_url}/signin"),
            }),
            link_id: Some(&issued.link.id),
            subject: ("learner", &learner.id),
        },
    )?;
    audit::record(
        tx,
        now,
        &anon(client),
        "signin.requested",
        Some(("learner", &learner.id)),
        json!({ "link_id": issued.link.id }),
    )?;
    Ok(())
}

/// Completes a self-service sign-in with the code, in the browser that asked.
#[allow(clippy::too_many_arguments)]
pub fn complete_with_code(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    policy: &SessionPolicy,
    browser_hash: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<Started, CoreError> {
    let row = links::verify_code(
        tx,
        now,
        secret,
        settings,
        "signin",
        browser_hash,
        code,
        client,
    )?;
    let learner_id = row
        .learner_id
        .clone()
        .ok_or(CoreError::NotFound("learner"))?;
    let destination: Destination = serde_json::from_str(&row.destination)
        .map_err(|e| CoreError::Internal(format!("code destination: {e}")))?;
    // The code and the link of the same mail are one credential: using the
    // code spends the link.
    if let Some(link_id) = &row.link_id {
        if let Some(mut l) = repo::links::get(tx, link_id)? {
            if l.first_redeemed_at.is_none() {
                l.first_redeemed_at = Some(now.naive_utc());
            }
            l.redeem_count = l.max_redeems;
            repo::links::update(tx, &l)?;
        }
    }
    sessions::start_learner_session(
        tx,
        now,
        secret,
        policy,
        StartLearner {
            identity: IdentityRef::Learner { learner_id },
            destination,
            via: "code".into(),
            client: client.clone(),
        },
    )
}

/// A staff member asks for a sign-in link; same response whatever happens.
pub fn request_staff(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    base_url: &str,
    email: &Email,
    client: &ClientInfo,
) -> Result<(), CoreError> {
    if !allowed(
        tx,
        now,
        secret,
        settings,
        email.as_str(),
        client.ip.as_deref(),
    )? {
        audit::record(
            tx,
            now,
            &anon(client),
            "staff_signin.throttled",
            None,
            json!({ "email": mask_email(email.as_str()) }),
        )?;
        return Ok(());
    }
    match repo::staff::find_by_email(tx, &email.lower())? {
        Some(s) if s.active => {
            links::issue_staff(
                tx,
                now,
                secret,
                settings,
                &anon(client),
                &s.id,
                Some(base_url),
            )?;
        }
        _ => {
            audit::record(
                tx,
                now,
                &anon(client),
                "staff_signin.unknown_address",
                None,
                json!({ "email": mask_email(email.as_str()) }),
            )?;
        }
    }
    Ok(())
}
