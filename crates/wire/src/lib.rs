//! grantd-wire: the serde types of every JSON body grantd sends, so the server, the SDK and
//! tests agree on one definition of each. Only shapes live here; which error name and status a
//! failure gets is `grantd-core`'s table, and the server decides when to send what.
//!
//! Field order is part of the contract: each struct declares its fields in the order the server
//! has always sent them (for bodies once built with `serde_json::json!`, that is alphabetical).

pub mod datacenter;
pub mod device;
pub mod discovery;
pub mod error;
pub mod oidc;
pub mod resource;
pub mod status;
pub mod token;

pub use device::{DeviceAuthorization, ZohoDeviceCode};
pub use discovery::{Metadata, ServerInfo};
pub use error::ErrorBody;
pub use oidc::{Jwk, JwkSet};
pub use resource::{Introspection, UserInfo};
pub use status::Status;
pub use token::{EnhanceTokenResponse, TokenResponse};
