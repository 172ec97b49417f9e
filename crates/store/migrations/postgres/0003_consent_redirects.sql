-- Consent is remembered per redirect URI as well as per scope: a client approved for one of
-- its registered URIs asks again before sending codes to another (RFC 6819 §5.2.4.1, T-028).
-- Space-separated registered URIs (they cannot contain spaces). Existing consents are asked
-- again once.

ALTER TABLE consents ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
