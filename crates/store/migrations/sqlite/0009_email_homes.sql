-- Data centers (issue 13): where this DC last found each email that is not its own user, so
-- that when that DC cannot be reached the user is told so (by name) instead of being shown a
-- password page that cannot work. Keyed by SHA-256 of the lower-cased email
-- (grantd_core::datacenter::email_key): the table holds no addresses.
CREATE TABLE email_homes (
    email_key       BLOB PRIMARY KEY,
    location        TEXT NOT NULL,
    seen_at         INTEGER NOT NULL
);
