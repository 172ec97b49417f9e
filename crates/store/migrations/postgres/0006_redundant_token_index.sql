-- refresh_tokens_by_grant (user_id, client_id, id) answers every lookup by user_id alone, so
-- refresh_tokens_by_user only cost an index entry at a random place per new refresh token.
DROP INDEX refresh_tokens_by_user;
