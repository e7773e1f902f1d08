DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE api_rate_counters;
DROP TABLE idempotency_keys;
DROP TABLE api_keys;
