-- The device flow (issue 14, RFC 8628 and Zoho's /oauth/v3/device; in step with
-- sqlite/0012_device_codes.sql). One row per device authorization, found by the device code's
-- SHA-256 when the device polls and by the user code's SHA-256 at the verification page
-- (neither is stored in the clear; the user code is hashed in its normal form, upper-case
-- without the dash). A user code is unique while its row exists: an expired row holding the
-- same user code is deleted before a new one is added. status: pending, approved (user_id
-- set), denied, other_dc (user_location set), used (the tokens were issued). interval_secs
-- grows by 5 with each slow_down; last_poll_at is the last counted poll. Rows go a day after
-- they expire (the sweep), so a late poll still hears `expired`. Tokens issued for a device
-- code carry its hash in code_hash, as a code's do.
CREATE TABLE device_codes (
    device_code_hash BYTEA PRIMARY KEY,
    user_code_hash   BYTEA NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    offline          BOOLEAN NOT NULL,
    status           TEXT NOT NULL,
    user_id          BIGINT REFERENCES users(id) ON DELETE CASCADE,
    user_location    TEXT,
    interval_secs    BIGINT NOT NULL,
    last_poll_at     BIGINT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX device_codes_by_expiry ON device_codes(expires_at);

-- Wrong user codes typed at the verification page (grantd-core's device.rs): one tally per
-- source, and the global one under the empty source. A right code is never counted; a tally
-- goes (the sweep) once its window has passed.
CREATE TABLE device_guesses (
    source          TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    since           BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    forget_at       BIGINT NOT NULL
);
CREATE INDEX device_guesses_by_forget_at ON device_guesses(forget_at);
