//! The embedded SQLite store (rusqlite only). Skeleton: being written.

mod accounts;
mod checkpoint;
mod console;
mod sessions;
mod tokens;
mod wal_sync;

#[allow(unused_imports)]
use crate::{model::*, rows::*, statements::*, verbs::*, StoreError};
#[allow(unused_imports)]
use grantd_core::{
    grant::*, secret::SecretHash, Client, ClientId, Limits, OAuthError, Scopes, Timestamp,
};

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        crate::migrations::sqlite(url).await?;
        Ok(Self {})
    }
}

type Answer<T> = Result<T, StoreError>;
