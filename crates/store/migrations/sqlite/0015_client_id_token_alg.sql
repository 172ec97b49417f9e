-- The ID-token signing algorithm per client (issue 14, OpenID Connect Dynamic Client
-- Registration's id_token_signed_response_alg). The server keeps an active key for every
-- algorithm it signs with, so a client's choice always has a key: one active key per alg
-- instead of one in all. Retired keys stay published until expires_at, as before.
DROP INDEX signing_keys_one_active;
CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg)
    WHERE retired_at IS NULL;

-- RS256 or EdDSA; NULL: the server's id_token_signing_alg.
ALTER TABLE clients ADD COLUMN id_token_alg TEXT;
