//! Zoho's incremental authorization (CONTRACT.md "Incremental authorization"): a client trades
//! its refresh token for a short-lived enhance token, then sends the user to consent to more
//! scopes for that refresh token's grant. Which scopes are asked for, and what the grant holds
//! after an approval, are decided here.

use crate::client::ClientId;
use crate::clock::Timestamp;
use crate::scope::Scopes;

/// An enhance token lives ten minutes, as Zoho's does (`expires_in: 600`).
pub const ENHANCE_TOKEN_LIFETIME_SECS: i64 = 600;

/// The grant an enhance token stands for: one refresh token's, with the scopes it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnhanceGrant {
    /// The refresh token's row: rotation changes its hash, never its grant.
    pub refresh_id: i64,
    pub client_id: ClientId,
    pub user_id: i64,
    pub scopes: Scopes,
    pub expires_at: Timestamp,
}

impl EnhanceGrant {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// What the consent page asks for: only what the grant does not already cover, so a user
    /// is never asked again for what they granted.
    pub fn extra_scopes(&self, requested: &Scopes) -> Scopes {
        extra_scopes(&self.scopes, requested)
    }
}

/// The requested scopes that `granted` does not cover (possibly none).
pub fn extra_scopes(granted: &Scopes, requested: &Scopes) -> Scopes {
    Scopes::from_vec(
        requested
            .iter()
            .filter(|wanted| !granted.covers(wanted))
            .cloned()
            .collect(),
    )
}

/// The grant's scopes once the user approved `extra`: the union, each scope once.
pub fn enhanced_scopes(granted: &Scopes, extra: &Scopes) -> Scopes {
    granted.union(extra)
}

/// The user's answer on the consent page for an enhance token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnhanceDecision {
    /// Add `extra` to the grant, and remember the consent for the registered `redirect_uri`.
    Accept { extra: Scopes, redirect_uri: String },
    /// Change nothing; the enhance token is used up all the same.
    Reject,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap_or_default()
    }

    #[test]
    fn only_what_the_grant_lacks_is_asked_for() {
        let granted = scopes("ZohoCRM.modules.ALL,AaaServer.profile.READ");
        let requested = scopes("ZohoCRM.modules.leads.READ,ZohoCRM.settings.READ,Demo.x.READ");
        assert_eq!(
            extra_scopes(&granted, &requested),
            scopes("ZohoCRM.settings.READ,Demo.x.READ")
        );
        assert!(extra_scopes(&granted, &scopes("AaaServer.profile.READ")).is_empty());
    }

    #[test]
    fn approval_merges_once() {
        let granted = scopes("A.b.READ");
        let merged = enhanced_scopes(&granted, &scopes("C.d.ALL,a.b.read"));
        assert_eq!(merged.to_stored(), "A.b.READ C.d.ALL");
        assert_eq!(enhanced_scopes(&granted, &Scopes::default()), granted);
    }

    #[test]
    fn lives_ten_minutes() {
        let grant = EnhanceGrant {
            refresh_id: 1,
            client_id: ClientId::new("1000.A".into()),
            user_id: 1,
            scopes: scopes("A.b.READ"),
            expires_at: Timestamp(100).plus(ENHANCE_TOKEN_LIFETIME_SECS),
        };
        assert!(grant.is_live(Timestamp(699)));
        assert!(!grant.is_live(Timestamp(700)));
        assert_eq!(
            grant.extra_scopes(&scopes("A.b.READ,C.d.READ")),
            scopes("C.d.READ")
        );
    }
}
