-- grantd schema, version 1. Secrets (client secrets, codes, tokens, session ids) appear only
-- as SHA-256 hashes; passwords only as Argon2id PHC strings.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE scopes (
    key             TEXT PRIMARY KEY,      -- lower-case, for case-insensitive lookup
    name            TEXT NOT NULL,         -- canonical spelling
    description     TEXT NOT NULL
);

CREATE TABLE clients (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    homepage        TEXT,
    redirect_uris   TEXT NOT NULL,         -- JSON array of validated URIs
    secret_hash     BLOB,
    owner_id        INTEGER REFERENCES users(id) ON DELETE CASCADE,
    dialect         TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX clients_one_self_client_per_user ON clients(owner_id) WHERE kind = 'self';

CREATE TABLE grant_codes (
    code_hash       BLOB PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri    TEXT,
    scopes          TEXT NOT NULL,
    issue_refresh   INTEGER NOT NULL,
    code_challenge  TEXT,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    redeemed_at     INTEGER
);
CREATE INDEX grant_codes_by_client ON grant_codes(client_id, created_at);

CREATE TABLE refresh_tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash      BLOB NOT NULL UNIQUE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    code_hash       BLOB,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens(user_id, client_id, id);
CREATE INDEX refresh_tokens_by_code ON refresh_tokens(code_hash);

CREATE TABLE access_tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash      BLOB NOT NULL UNIQUE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    refresh_id      INTEGER REFERENCES refresh_tokens(id) ON DELETE CASCADE,
    code_hash       BLOB,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX access_tokens_by_refresh ON access_tokens(refresh_id, created_at);
CREATE INDEX access_tokens_by_code ON access_tokens(code_hash);

CREATE TABLE consents (
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    granted_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE sessions (
    token_hash      BLOB PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- An authorization request waiting on the consent page; taken (deleted) by the decision, so a
-- replayed consent form finds nothing.
CREATE TABLE pending_consents (
    id_hash         BLOB PRIMARY KEY,
    session_hash    BLOB NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    request         TEXT NOT NULL,
    expires_at      INTEGER NOT NULL
);

INSERT INTO scopes (key, name, description)
VALUES ('aaaserver.profile.read', 'AaaServer.profile.READ', 'Read your name and email address');
