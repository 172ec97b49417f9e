-- The code throttle ("at most N codes per client in a window") numbers each client's codes, so
-- it checks one code, the N-th newest, instead of counting every code in the window: a count
-- walks as many index entries as the client made codes in the window, which a raised limit
-- lets grow without bound. Existing codes are numbered in the order they were made; a new
-- code takes the client's highest number plus one, read from the index.
ALTER TABLE grant_codes ADD COLUMN seq INTEGER;
UPDATE grant_codes SET seq = numbered.n
  FROM (SELECT code_hash AS h,
               row_number() OVER (PARTITION BY client_id ORDER BY created_at, code_hash) AS n
          FROM grant_codes) AS numbered
 WHERE numbered.h = grant_codes.code_hash;
CREATE UNIQUE INDEX grant_codes_by_client_seq ON grant_codes(client_id, seq);
DROP INDEX grant_codes_by_client;
