//! grantd-core: the domain types and every rule of the accounts server, as pure functions of
//! data and `now`. No IO lives here: the store remembers, the server translates.

pub mod authorization;
pub mod client;
pub mod clock;
pub mod consent;
pub mod datacenter;
pub mod device;
pub mod enhance;
pub mod error;
pub mod grant;
pub mod limits;
pub mod oidc;
pub mod peer_auth;
pub mod pkce;
pub mod redirect;
pub mod scope;
pub mod secret;
pub mod signin;
pub mod source;
pub mod throttle;

pub use authorization::{CodeChallenge, Prompt};
pub use client::{Client, ClientId, ClientType, Dialect};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::OAuthError;
pub use limits::Limits;
pub use redirect::RedirectUri;
pub use scope::{Scope, Scopes};
