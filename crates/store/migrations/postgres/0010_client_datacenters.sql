-- Data centers (issue 13). A client registered here may be enabled at other data centers,
-- each with the home secret (secret_hash NULL) or one of its own; they pull its record.
CREATE TABLE client_datacenters (
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    location        TEXT NOT NULL,
    secret_hash     BYTEA,
    enabled_at      BIGINT NOT NULL,
    PRIMARY KEY (client_id, location)
);
CREATE INDEX client_datacenters_by_location ON client_datacenters(location);

-- A client another data center registered and enabled here is mirrored into clients with its
-- home's location; NULL for a client registered here.
ALTER TABLE clients ADD COLUMN home TEXT;
CREATE INDEX clients_by_home ON clients(home) WHERE home IS NOT NULL;
