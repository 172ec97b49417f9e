-- The API console and account pages (in step with sqlite/0002_console.sql).

ALTER TABLE clients ADD COLUMN js_domain TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(user_id);
CREATE INDEX clients_by_owner ON clients(owner_id);
