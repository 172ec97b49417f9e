-- Sign-in throttling (issue 12) replaces the per-user lockout, which an attacker could extend
-- forever (one wrong password every 15 minutes) and a burst of parallel guesses could race
-- past. Each attempt is counted here, before its password is checked, in three tallies of
-- failed attempts (grantd-core's signin.rs): (account, source) for the exponential back-off,
-- (empty key, source) for the limit per source across accounts, and (account, empty source)
-- for the ceiling per account across sources. account_key is the SHA-256 of the email as
-- typed, so unknown emails are counted alike and nothing typed is stored; source is the client
-- address (an IPv6 /64). A tally with no failures has no row; the sweep deletes a row once
-- every rule counts it as zero (forget_at, indexed).
CREATE TABLE signin_tallies (
    account_key     BYTEA NOT NULL,
    source          TEXT NOT NULL,
    failures        BIGINT NOT NULL,
    since           BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    forget_at       BIGINT NOT NULL,
    PRIMARY KEY (account_key, source)
);
CREATE INDEX signin_tallies_by_forget_at ON signin_tallies(forget_at);

ALTER TABLE users DROP COLUMN failed_logins;
ALTER TABLE users DROP COLUMN locked_until;
