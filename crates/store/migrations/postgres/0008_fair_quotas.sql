-- Fair quotas (issue 12; in step with sqlite/0008_fair_quotas.sql). The code throttle counts
-- per (user, client), not per client, so one user cannot spend a client's codes for everyone:
-- codes are numbered per (client, user), the existing ones again in the order they were made,
-- and the throttle still checks one code.
DROP INDEX grant_codes_by_client_seq;
UPDATE grant_codes SET seq = numbered.n
  FROM (SELECT code_hash AS h,
               row_number() OVER (PARTITION BY client_id, user_id
                                  ORDER BY created_at, code_hash) AS n
          FROM grant_codes) AS numbered
 WHERE numbered.h = grant_codes.code_hash;
CREATE UNIQUE INDEX grant_codes_by_grant_seq ON grant_codes(client_id, user_id, seq);

-- client_credentials access tokens (neither refreshed nor from a code) count per client: at
-- most so many minted per window and so many live. Each mint reads the client's, from here.
CREATE INDEX access_tokens_client_credentials ON access_tokens(client_id, created_at, expires_at)
    WHERE refresh_id IS NULL AND code_hash IS NULL;

-- A client flagged as a resource server may introspect every token; any other client only
-- its own (RFC 7662 §2.1, §4). Existing clients see only their own tokens from now on.
ALTER TABLE clients ADD COLUMN introspect_any BOOLEAN NOT NULL DEFAULT FALSE;

-- Public clients' refresh tokens rotate (RFC 9700 §2.2.2). A family is one refresh_tokens row:
-- a refresh gives it a new hash and remembers the old one here, so its access tokens, its cap
-- and its throttle stay the family's. A remembered hash presented again revokes the family
-- (the row; its access tokens and these by cascade).
CREATE TABLE retired_refresh_tokens (
    token_hash      BYTEA PRIMARY KEY,
    refresh_id      BIGINT NOT NULL REFERENCES refresh_tokens(id) ON DELETE CASCADE,
    retired_at      BIGINT NOT NULL
);
CREATE INDEX retired_refresh_tokens_by_family ON retired_refresh_tokens(refresh_id);
