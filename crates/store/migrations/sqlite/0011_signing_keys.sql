-- OpenID Connect (issue 14). ID tokens are signed with keys kept here: the public half as a
-- JWK (published at /oauth/v2/keys), the private half encrypted with AES-256-GCM under the
-- key-encryption key (key_encryption_key_file), never in the clear. One key is active
-- (retired_at NULL); a retired one stays published until expires_at, when the last ID token
-- it signed has expired.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_key     BLOB NOT NULL,         -- 12-byte nonce || AES-256-GCM ciphertext and tag
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER,
    expires_at      INTEGER
);
-- At most one active key, whichever node or command makes it.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;

-- What an ID token needs of the authorization request: its nonce, and when the user signed
-- in (auth_time), kept with the code and, for refreshes, with the refresh token.
ALTER TABLE grant_codes ADD COLUMN nonce TEXT;
ALTER TABLE grant_codes ADD COLUMN auth_time INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN auth_time INTEGER;

INSERT INTO scopes (key, name, description) VALUES
    ('openid', 'openid', 'Sign you in with your account'),
    ('email', 'email', 'Read your email address'),
    ('profile', 'profile', 'Read your name');
