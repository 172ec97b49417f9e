//! Reading `rows.rs`'s named row structs from rusqlite rows, column by column in the order of
//! the `SELECT` that reads them (what the derived `FromRow` does for PostgreSQL).

use rusqlite::Row;

use crate::rows::*;

pub(crate) trait ReadRow: Sized {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self>;
}

impl ReadRow for UserRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        user_at(row, 0)
    }
}

/// A user's columns, starting at `first` (they follow an access token's in a join).
fn user_at(row: &Row<'_>, first: usize) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(first)?,
        email: row.get(first + 1)?,
        name: row.get(first + 2)?,
        password_hash: row.get(first + 3)?,
        is_admin: row.get(first + 4)?,
    })
}

impl ReadRow for TallyRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(TallyRow {
            failures: row.get(0)?,
            since: row.get(1)?,
            last_at: row.get(2)?,
        })
    }
}

impl ReadRow for DeviceRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(DeviceRow {
            device_code_hash: row.get(0)?,
            client_id: row.get(1)?,
            scopes: row.get(2)?,
            offline: row.get(3)?,
            status: row.get(4)?,
            user_id: row.get(5)?,
            user_location: row.get(6)?,
            interval_secs: row.get(7)?,
            last_poll_at: row.get(8)?,
            expires_at: row.get(9)?,
            auth_time: row.get(10)?,
        })
    }
}

impl ReadRow for ClientRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ClientRow {
            id: row.get(0)?,
            kind: row.get(1)?,
            name: row.get(2)?,
            homepage: row.get(3)?,
            redirect_uris: row.get(4)?,
            secret_hash: row.get(5)?,
            owner_id: row.get(6)?,
            dialect: row.get(7)?,
            js_domain: row.get(8)?,
            created_at: row.get(9)?,
            introspect_any: row.get(10)?,
            home: row.get(11)?,
            id_token_alg: row.get(12)?,
        })
    }
}

impl ReadRow for EnabledDcRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(EnabledDcRow {
            location: row.get(0)?,
            own_secret: row.get(1)?,
        })
    }
}

impl ReadRow for CodeRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(CodeRow {
            code_hash: row.get(0)?,
            client_id: row.get(1)?,
            user_id: row.get(2)?,
            redirect_uri: row.get(3)?,
            scopes: row.get(4)?,
            issue_refresh: row.get(5)?,
            code_challenge: row.get(6)?,
            expires_at: row.get(7)?,
            redeemed_at: row.get(8)?,
            nonce: row.get(9)?,
            auth_time: row.get(10)?,
        })
    }
}

impl ReadRow for AccessRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AccessRow {
            client_id: row.get(0)?,
            user_id: row.get(1)?,
            scopes: row.get(2)?,
            expires_at: row.get(3)?,
        })
    }
}

impl ReadRow for AccessOwnerRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AccessOwnerRow {
            client_id: row.get(0)?,
            scopes: row.get(1)?,
            expires_at: row.get(2)?,
            user: user_at(row, 3)?,
        })
    }
}

impl ReadRow for RefreshRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RefreshRow {
            client_id: row.get(0)?,
            user_id: row.get(1)?,
            scopes: row.get(2)?,
        })
    }
}

impl ReadRow for RefreshGrantRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RefreshGrantRow {
            id: row.get(0)?,
            client_id: row.get(1)?,
            user_id: row.get(2)?,
            scopes: row.get(3)?,
            auth_time: row.get(4)?,
        })
    }
}

impl ReadRow for EnhanceRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(EnhanceRow {
            refresh_id: row.get(0)?,
            client_id: row.get(1)?,
            user_id: row.get(2)?,
            scopes: row.get(3)?,
            expires_at: row.get(4)?,
        })
    }
}

impl ReadRow for RetiredRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RetiredRow {
            id: row.get(0)?,
            client_id: row.get(1)?,
        })
    }
}

impl ReadRow for MintedRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(MintedRow {
            id: row.get(0)?,
            created_at: row.get(1)?,
            expires_at: row.get(2)?,
        })
    }
}

impl ReadRow for ConsentRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ConsentRow {
            scopes: row.get(0)?,
            redirect_uris: row.get(1)?,
        })
    }
}

impl ReadRow for IdRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(IdRow { id: row.get(0)? })
    }
}

impl ReadRow for ScopeRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ScopeRow {
            name: row.get(0)?,
            description: row.get(1)?,
        })
    }
}

impl ReadRow for CodeSummaryRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(CodeSummaryRow {
            created_at: row.get(0)?,
            expires_at: row.get(1)?,
            redeemed_at: row.get(2)?,
            scopes: row.get(3)?,
            description: row.get(4)?,
        })
    }
}

impl ReadRow for AppRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AppRow {
            id: row.get(0)?,
            name: row.get(1)?,
            homepage: row.get(2)?,
            consented: row.get(3)?,
            granted_at: row.get(4)?,
            last_used: row.get(5)?,
            active: row.get(6)?,
            token_scopes: row.get(7)?,
        })
    }
}

impl ReadRow for SessionRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(SessionRow {
            token_hash: row.get(0)?,
            created_at: row.get(1)?,
            user_agent: row.get(2)?,
        })
    }
}

impl ReadRow for ExpiryRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ExpiryRow {
            id: row.get(0)?,
            expires_at: row.get(1)?,
        })
    }
}

impl ReadRow for PendingConsentRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(PendingConsentRow {
            request: row.get(0)?,
            expires_at: row.get(1)?,
        })
    }
}

impl ReadRow for SigningKeyRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(SigningKeyRow {
            kid: row.get(0)?,
            alg: row.get(1)?,
            public_jwk: row.get(2)?,
            private_key: row.get(3)?,
            created_at: row.get(4)?,
            retired_at: row.get(5)?,
            expires_at: row.get(6)?,
        })
    }
}
