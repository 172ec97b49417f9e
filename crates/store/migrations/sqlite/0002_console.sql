-- The API console and account pages: a JavaScript domain for client-based apps, and what the
-- Sessions page shows about each signed-in browser.

ALTER TABLE clients ADD COLUMN js_domain TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(user_id);
CREATE INDEX clients_by_owner ON clients(owner_id);
