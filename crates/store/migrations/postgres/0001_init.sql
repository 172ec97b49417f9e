-- grantd schema, version 1 (PostgreSQL). Kept in step with migrations/sqlite: the same tables,
-- columns and meaning. Secrets appear only as SHA-256 hashes; passwords only as Argon2id.

CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    is_admin        BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins   BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE scopes (
    key             TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL
);

CREATE TABLE clients (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    homepage        TEXT,
    redirect_uris   TEXT NOT NULL,
    secret_hash     BYTEA,
    owner_id        BIGINT REFERENCES users(id) ON DELETE CASCADE,
    dialect         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX clients_one_self_client_per_user ON clients(owner_id) WHERE kind = 'self';

CREATE TABLE grant_codes (
    code_hash       BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri    TEXT,
    scopes          TEXT NOT NULL,
    issue_refresh   BOOLEAN NOT NULL,
    code_challenge  TEXT,
    description     TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    redeemed_at     BIGINT
);
CREATE INDEX grant_codes_by_client ON grant_codes(client_id, created_at);

CREATE TABLE refresh_tokens (
    id              BIGSERIAL PRIMARY KEY,
    token_hash      BYTEA NOT NULL UNIQUE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    code_hash       BYTEA,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens(user_id, client_id, id);
CREATE INDEX refresh_tokens_by_code ON refresh_tokens(code_hash);

CREATE TABLE access_tokens (
    id              BIGSERIAL PRIMARY KEY,
    token_hash      BYTEA NOT NULL UNIQUE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    refresh_id      BIGINT REFERENCES refresh_tokens(id) ON DELETE CASCADE,
    code_hash       BYTEA,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX access_tokens_by_refresh ON access_tokens(refresh_id, created_at);
CREATE INDEX access_tokens_by_code ON access_tokens(code_hash);

CREATE TABLE consents (
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    granted_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE sessions (
    token_hash      BYTEA PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE pending_consents (
    id_hash         BYTEA PRIMARY KEY,
    session_hash    BYTEA NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    request         TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);

INSERT INTO scopes (key, name, description)
VALUES ('aaaserver.profile.read', 'AaaServer.profile.READ', 'Read your name and email address');
