//! What a user has consented to for one client: scopes, remembered per registered redirect
//! URI (consent given for one URI is not consent for another). The store keeps one of these per
//! (user, client); whether it covers a request and how a new approval merges into it are
//! decided here.

use crate::scope::Scopes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub scopes: Scopes,
    /// The registered redirect URIs the consent was given for.
    pub redirect_uris: Vec<String>,
}

impl Consent {
    /// The consented scopes, if the consent was given for `redirect_uri` too.
    pub fn scopes_for(&self, redirect_uri: &str) -> Option<&Scopes> {
        self.redirect_uris
            .iter()
            .any(|u| u == redirect_uri)
            .then_some(&self.scopes)
    }

    /// The consent after the user also approved `scopes` for `redirect_uri`: the union of the
    /// scopes, and the URI added once.
    pub fn merge(prior: Option<Consent>, scopes: &Scopes, redirect_uri: &str) -> Consent {
        let mut consent = match prior {
            Some(prior) => Consent {
                scopes: prior.scopes.union(scopes),
                redirect_uris: prior.redirect_uris,
            },
            None => Consent {
                scopes: scopes.clone(),
                redirect_uris: Vec::new(),
            },
        };
        if !consent.redirect_uris.iter().any(|u| u == redirect_uri) {
            consent.redirect_uris.push(redirect_uri.to_owned());
        }
        consent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> Scopes {
        Scopes::from_stored(s)
    }

    #[test]
    fn consent_covers_only_the_uris_it_was_given_for() {
        let consent = Consent::merge(None, &scopes("a.b.READ"), "https://app/cb");
        assert_eq!(
            consent.scopes_for("https://app/cb"),
            Some(&scopes("a.b.READ"))
        );
        assert_eq!(consent.scopes_for("https://app/other"), None);
        assert_eq!(
            consent.scopes_for("https://app/cb/"),
            None,
            "exact match only"
        );
    }

    #[test]
    fn approvals_merge_scopes_and_uris_once() {
        let first = Consent::merge(None, &scopes("a.b.READ"), "https://app/cb");
        let second = Consent::merge(Some(first), &scopes("c.d.ALL"), "https://app/two");
        let again = Consent::merge(Some(second.clone()), &scopes("a.b.READ"), "https://app/cb");
        assert_eq!(again.scopes, scopes("a.b.READ").union(&scopes("c.d.ALL")));
        assert_eq!(
            again.redirect_uris,
            vec!["https://app/cb", "https://app/two"]
        );
        assert_eq!(
            again,
            Consent {
                scopes: second.scopes.clone(),
                redirect_uris: second.redirect_uris.clone()
            }
        );
    }
}
