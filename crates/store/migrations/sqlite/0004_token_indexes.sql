-- A refresh deletes its refresh token's expired access tokens: with `expires_at` in the index,
-- the live ones (nearly all) are skipped without reading their rows.
DROP INDEX access_tokens_by_refresh;
CREATE INDEX access_tokens_by_refresh ON access_tokens(refresh_id, created_at, expires_at);

-- A redeemed code records the tokens it issued, so a replay revokes them by id (access tokens
-- refreshed from its refresh token go by cascade). The tokens' code_hash indexes, each a page
-- at a random place written by every exchange, go.
ALTER TABLE grant_codes ADD COLUMN refresh_id INTEGER;
ALTER TABLE grant_codes ADD COLUMN access_id INTEGER;
UPDATE grant_codes SET
    refresh_id = (SELECT max(r.id) FROM refresh_tokens r WHERE r.code_hash = grant_codes.code_hash),
    access_id = (SELECT min(a.id) FROM access_tokens a WHERE a.code_hash = grant_codes.code_hash)
WHERE redeemed_at IS NOT NULL;
DROP INDEX refresh_tokens_by_code;
DROP INDEX access_tokens_by_code;
