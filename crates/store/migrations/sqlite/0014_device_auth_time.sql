-- OpenID Connect for the device flow (issue 14): when the user who approved a device
-- authorization signed in, so that its ID token (and those of its refresh token) carry that
-- auth_time as the code flow's do.
ALTER TABLE device_codes ADD COLUMN auth_time INTEGER;
