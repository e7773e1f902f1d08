-- Automation API and webhooks: API keys, idempotency records, per-key rate
-- counters, webhook endpoints and their delivery log.
-- Ids are UUIDv7 text and timestamps are written by the application (UTC).

-- API keys. Only a keyed hash of the key is stored; `prefix` is the first
-- characters of the key, shown to staff so they can tell keys apart.
-- `scopes` is a space-separated list (read learners:write enrolments:write links:write).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    allow_link_urls BOOLEAN NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

-- One row per (API key, Idempotency-Key). The row is inserted first, in the
-- same write transaction as the effect, so the unique index makes concurrent
-- duplicates wait for (and then replay) the first.
CREATE TABLE idempotency_keys (
    id TEXT PRIMARY KEY NOT NULL,
    api_key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    UNIQUE (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys(expires_at);

-- Fixed-window request counters per API key (shared by every instance).
CREATE TABLE api_rate_counters (
    id TEXT PRIMARY KEY NOT NULL,
    api_key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    window_start TIMESTAMP NOT NULL,
    hits INTEGER NOT NULL
);
CREATE INDEX api_rate_counters_window ON api_rate_counters(window_start);

-- Webhook endpoints. SENSITIVE: `secret` and `previous_secret` hold the
-- signing secrets as issued (whsec_…), because signing needs the key itself;
-- treat database backups accordingly. `events` is a space-separated filter
-- ("*" = every event).
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMP,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    consecutive_failures INTEGER NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Every delivery attempt, for the delivery log and replay.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    outbox_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    response_status INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at);
