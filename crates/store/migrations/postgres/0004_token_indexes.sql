-- A refresh deletes its refresh token's expired access tokens: with `expires_at` in the index,
-- the live ones (nearly all) are skipped without reading their rows.
DROP INDEX access_tokens_by_refresh;
CREATE INDEX access_tokens_by_refresh ON access_tokens(refresh_id, created_at, expires_at);
-- Only tokens issued by a code exchange have a code; refreshed ones stay out of this index.
DROP INDEX access_tokens_by_code;
CREATE INDEX access_tokens_by_code ON access_tokens(code_hash) WHERE code_hash IS NOT NULL;
