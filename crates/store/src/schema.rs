//! The one portable schema, written in the type subset both backends share
//! (Text, Integer, BigInt, Bool, Timestamp). Keep it in step with both
//! migration trees; `tests/schema.rs` checks the columns against each backend.

diesel::table! {
    learners (id) {
        id -> Text,
        email -> Nullable<Text>,
        email_lower -> Nullable<Text>,
        name -> Nullable<Text>,
        external_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    learner_identities (id) {
        id -> Text,
        learner_id -> Text,
        kind -> Text,
        identity_key -> Text,
        email_lower -> Nullable<Text>,
        lti_issuer -> Nullable<Text>,
        lti_client_id -> Nullable<Text>,
        lti_sub -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    courses (id) {
        id -> Text,
        slug -> Text,
        title -> Text,
        summary -> Text,
        published -> Bool,
        graded -> Bool,
        link_policy -> Text,
        default_access_days -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lessons (id) {
        id -> Text,
        course_id -> Text,
        position -> Integer,
        title -> Text,
        body_format -> Text,
        body -> Text,
        required -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    enrolments (id) {
        id -> Text,
        learner_id -> Text,
        course_id -> Text,
        source -> Text,
        source_ref -> Nullable<Text>,
        status -> Text,
        starts_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    progress (id) {
        id -> Text,
        enrolment_id -> Text,
        lesson_id -> Text,
        completed_at -> Timestamp,
    }
}

diesel::table! {
    staff_users (id) {
        id -> Text,
        email -> Text,
        email_lower -> Text,
        name -> Nullable<Text>,
        role -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        subject_kind -> Text,
        learner_id -> Nullable<Text>,
        staff_id -> Nullable<Text>,
        via -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        idle_timeout_secs -> BigInt,
        absolute_expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        subject_kind -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        topic -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(learner_identities -> learners (learner_id));
diesel::joinable!(lessons -> courses (course_id));
diesel::joinable!(enrolments -> learners (learner_id));
diesel::joinable!(enrolments -> courses (course_id));
diesel::joinable!(progress -> enrolments (enrolment_id));
diesel::joinable!(progress -> lessons (lesson_id));
diesel::joinable!(sessions -> learners (learner_id));
diesel::joinable!(sessions -> staff_users (staff_id));

diesel::allow_tables_to_appear_in_same_query!(
    learners,
    learner_identities,
    courses,
    lessons,
    enrolments,
    progress,
    staff_users,
    sessions,
    settings,
    audit_log,
    outbox,
);

diesel::table! {
    lti_platforms (id) {
        id -> Text,
        issuer -> Text,
        client_id -> Text,
        name -> Text,
        auth_url -> Text,
        token_url -> Text,
        jwks_url -> Text,
        audience -> Nullable<Text>,
        customer -> Nullable<Text>,
        lms -> Nullable<Text>,
        unknown_deployments -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        trusted_audiences -> Nullable<Text>,
    }
}

diesel::table! {
    lti_deployments (id) {
        id -> Text,
        platform_id -> Text,
        deployment_id -> Text,
        status -> Text,
        name -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lti_login_states (id) {
        id -> Text,
        state_hash -> Text,
        nonce -> Text,
        platform_id -> Text,
        target_link_uri -> Text,
        deployment_hint -> Nullable<Text>,
        storage_target -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    lti_resource_links (id) {
        id -> Text,
        platform_id -> Text,
        deployment_id -> Text,
        context_id -> Nullable<Text>,
        context_title -> Nullable<Text>,
        resource_link_id -> Text,
        title -> Nullable<Text>,
        course_id -> Nullable<Text>,
        lineitem_url -> Nullable<Text>,
        lineitems_url -> Nullable<Text>,
        ags_scopes -> Nullable<Text>,
        nrps_url -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lti_launches (id) {
        id -> Text,
        at -> Timestamp,
        step -> Text,
        platform_id -> Nullable<Text>,
        issuer -> Nullable<Text>,
        client_id -> Nullable<Text>,
        deployment_id -> Nullable<Text>,
        outcome -> Text,
        reason -> Nullable<Text>,
        state_path -> Nullable<Text>,
        lms -> Nullable<Text>,
        checks -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    lti_tickets (id) {
        id -> Text,
        ticket_hash -> Text,
        learner_id -> Text,
        session_id -> Text,
        redirect -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(lti_deployments -> lti_platforms (platform_id));
diesel::joinable!(lti_login_states -> lti_platforms (platform_id));
diesel::joinable!(lti_resource_links -> lti_platforms (platform_id));
diesel::joinable!(lti_resource_links -> courses (course_id));
diesel::allow_tables_to_appear_in_same_query!(
    lti_platforms,
    lti_deployments,
    lti_login_states,
    lti_resource_links,
    courses
);

diesel::table! {
    lti_deep_link_requests (id) {
        id -> Text,
        session_id -> Text,
        platform_id -> Text,
        deployment_id -> Text,
        return_url -> Text,
        data -> Nullable<Text>,
        accept_multiple -> Bool,
        accept_lineitem -> Bool,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Text,
        allow_link_urls -> Bool,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> Text,
        api_key_id -> Text,
        idem_key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_rate_counters (id) {
        id -> Text,
        api_key_id -> Text,
        window_start -> Timestamp,
        hits -> Integer,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        events -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        status -> Text,
        disabled_reason -> Nullable<Text>,
        consecutive_failures -> Integer,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        outbox_id -> Text,
        event_id -> Text,
        event_type -> Text,
        attempt -> Integer,
        outcome -> Text,
        response_status -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(idempotency_keys -> api_keys (api_key_id));
diesel::joinable!(api_rate_counters -> api_keys (api_key_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    idempotency_keys,
    api_rate_counters,
    webhook_endpoints,
    webhook_deliveries,
);

// Magic links, sign-in codes, rate limits, device bindings (2026-11-22-000002).

diesel::table! {
    magic_links (id) {
        id -> Text,
        token_hash -> Text,
        kind -> Text,
        purpose -> Text,
        subject_id -> Text,
        enrolment_id -> Nullable<Text>,
        destination -> Text,
        email -> Text,
        expires_at -> Timestamp,
        first_redeemed_at -> Nullable<Timestamp>,
        redeem_count -> Integer,
        max_redeems -> Integer,
        superseded_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    magic_link_activity (link_id) {
        link_id -> Text,
        sent_at -> Nullable<Timestamp>,
        last_opened_at -> Nullable<Timestamp>,
        opened_count -> Integer,
        suspected_scanner -> Bool,
        last_redeemed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signin_codes (id) {
        id -> Text,
        purpose -> Text,
        code_hash -> Text,
        browser_hash -> Text,
        learner_id -> Nullable<Text>,
        link_id -> Nullable<Text>,
        destination -> Text,
        attempts -> Integer,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rate_limits (key) {
        key -> Text,
        window_start -> Timestamp,
        count -> Integer,
    }
}

diesel::table! {
    device_bindings (id) {
        id -> Text,
        link_id -> Text,
        device_hash -> Text,
        created_at -> Timestamp,
    }
}

// LTI Advantage services (2026-12-01-000006).

diesel::table! {
    lti_enrolment_links (enrolment_id) {
        enrolment_id -> Text,
        platform_id -> Text,
        resource_link_id -> Text,
        lti_sub -> Text,
        last_score_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lti_access_tokens (id) {
        id -> Text,
        platform_id -> Text,
        scope_key -> Text,
        access_token -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

// Staff single sign-on (2026-12-01-000008).

diesel::table! {
    sso_states (id) {
        id -> Text,
        state_hash -> Text,
        browser_hash -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

// Instructor scoping (2026-12-01-000009).

diesel::table! {
    staff_course_scopes (staff_id, course_id) {
        staff_id -> Text,
        course_id -> Text,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
    }
}

diesel::table! {
    invitation_rows (batch_id, line) {
        batch_id -> Text,
        line -> Integer,
        email -> Text,
        course_slug -> Text,
        learner_id -> Text,
        outbox_id -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

// LTI Advantage, more (2026-12-01-000010).

diesel::table! {
    lti_context_rosters (id) {
        id -> Text,
        platform_id -> Text,
        context_id -> Text,
        course_id -> Text,
        differences_url -> Nullable<Text>,
        synced_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lti_roster_removals (enrolment_id) {
        enrolment_id -> Text,
        platform_id -> Text,
        lti_sub -> Text,
        removed_at -> Timestamp,
    }
}

diesel::joinable!(lti_enrolment_links -> enrolments (enrolment_id));
diesel::allow_tables_to_appear_in_same_query!(enrolments, lti_enrolment_links);
