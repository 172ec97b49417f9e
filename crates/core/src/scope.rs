//! Scopes: `Service.scope.OPERATION`, with optional deeper levels. Input is case-insensitive;
//! the registry's spelling is canonical. `S.x.ALL` covers every `S.x.OP` and `S.x.*.OP`.

use std::fmt;

const OPERATIONS: [&str; 5] = ["ALL", "READ", "CREATE", "UPDATE", "DELETE"];
/// Generous for real scopes, small enough that a hostile list stays cheap to check.
const MAX_SCOPE_LEN: usize = 128;
const MAX_SCOPES: usize = 64;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeError {
    Empty,
    Malformed,
    TooMany,
}

impl Scope {
    /// Checks the shape only; whether the scope exists is the registry's question. The
    /// built-in OpenID Connect scopes (`openid`, `email`, `profile`) are the one exception to
    /// Zoho's shape.
    pub fn parse(raw: &str) -> Result<Scope, ScopeError> {
        if crate::oidc::SCOPES
            .iter()
            .any(|oidc| oidc.eq_ignore_ascii_case(raw))
        {
            return Ok(Scope(raw.to_owned()));
        }
        if raw.is_empty() || raw.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::Malformed);
        }
        let well_formed_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        let segments: Vec<&str> = raw.split('.').collect();
        let operation_known = segments.last().is_some_and(|op| {
            OPERATIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(op))
        });
        if !well_formed_chars
            || segments.len() < 3
            || segments.iter().any(|s| s.is_empty())
            || !operation_known
        {
            return Err(ScopeError::Malformed);
        }
        Ok(Scope(raw.to_owned()))
    }

    /// Wraps a value that was validated before it was stored.
    pub fn from_stored(canonical: String) -> Scope {
        Scope(canonical)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry key: scopes compare case-insensitively.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    fn is_all(&self) -> bool {
        self.segments()
            .last()
            .is_some_and(|op| op.eq_ignore_ascii_case("ALL"))
    }

    /// Does holding `self` grant `wanted`?
    pub fn covers(&self, wanted: &Scope) -> bool {
        if self.0.eq_ignore_ascii_case(&wanted.0) {
            return true;
        }
        if !self.is_all() {
            return false;
        }
        let granted: Vec<&str> = self.segments().collect();
        let wanted: Vec<&str> = wanted.segments().collect();
        let prefix = &granted[..granted.len() - 1];
        wanted.len() > prefix.len()
            && prefix
                .iter()
                .zip(&wanted)
                .all(|(g, w)| g.eq_ignore_ascii_case(w))
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty, de-duplicated set of scopes in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a comma- or space-separated list (Zoho uses commas, RFC 6749 spaces).
    pub fn parse(raw: &str) -> Result<Scopes, ScopeError> {
        let mut scopes = Vec::new();
        for part in raw.split([',', ' ']).filter(|p| !p.is_empty()) {
            if scopes.len() == MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
            scopes.push(Scope::parse(part)?);
        }
        if scopes.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(Scopes::from_vec(scopes))
    }

    pub fn from_vec(mut scopes: Vec<Scope>) -> Scopes {
        scopes.sort_by_key(|s| s.key());
        scopes.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
        Scopes(scopes)
    }

    /// Reads the form written by `to_stored`.
    pub fn from_stored(stored: &str) -> Scopes {
        Scopes(
            stored
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| Scope(s.to_owned()))
                .collect(),
        )
    }

    /// Space-separated, which is also the wire form of RFC 6749's `scope`.
    pub fn to_stored(&self) -> String {
        let mut out = String::new();
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&scope.0);
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn covers(&self, wanted: &Scope) -> bool {
        self.0.iter().any(|granted| granted.covers(wanted))
    }

    pub fn covers_all(&self, wanted: &Scopes) -> bool {
        wanted.iter().all(|w| self.covers(w))
    }

    pub fn union(&self, other: &Scopes) -> Scopes {
        Scopes::from_vec(self.0.iter().chain(other.0.iter()).cloned().collect())
    }

    /// Replaces each scope's spelling with the registry's; `None` names the first unknown one.
    pub fn canonicalize(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Scopes, &Scope> {
        let mut canonical = Vec::with_capacity(self.0.len());
        for scope in &self.0 {
            match lookup(&scope.key()) {
                Some(name) => canonical.push(Scope(name)),
                None => return Err(scope),
            }
        }
        Ok(Scopes::from_vec(canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(raw: &str) -> Scopes {
        Scopes::parse(raw).unwrap_or_default()
    }

    #[test]
    fn parses_commas_and_spaces() {
        assert_eq!(
            scopes("ZohoCRM.modules.ALL,AaaServer.profile.READ").to_stored(),
            "AaaServer.profile.READ ZohoCRM.modules.ALL"
        );
        assert_eq!(scopes("A.b.READ  A.b.READ").to_stored(), "A.b.READ");
    }

    #[test]
    fn rejects_malformed_scopes() {
        for bad in [
            "",
            "A.READ",
            "A.b.WRITE",
            "A..READ",
            "A.b.READ;drop",
            "A.b.READ\n",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let many = vec!["A.b.READ"; 65].join(",");
        assert_eq!(Scopes::parse(&many), Err(ScopeError::TooMany));
    }

    #[test]
    fn openid_connect_scopes_are_built_in_shapes() {
        assert_eq!(
            scopes("openid,email profile AaaServer.profile.READ").to_stored(),
            "AaaServer.profile.READ email openid profile"
        );
        for bad in ["openidx", "open.id", "emails"] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
        assert!(scopes("openid").covers(&Scope("OpenID".into())));
        assert!(!scopes("openid").covers(&Scope("profile".into())));
    }

    #[test]
    fn all_covers_operations_below_it() {
        let granted = scopes("ZohoCRM.modules.ALL");
        for wanted in [
            "ZohoCRM.modules.READ",
            "zohocrm.modules.leads.delete",
            "ZohoCRM.modules.ALL",
        ] {
            assert!(
                granted.covers(&Scope::parse(wanted).unwrap_or(Scope(String::new()))),
                "{wanted}"
            );
        }
        for wanted in [
            "ZohoCRM.settings.READ",
            "ZohoCRM.modulesx.READ",
            "Other.modules.READ",
        ] {
            assert!(!granted.covers(&Scope(wanted.into())), "{wanted}");
        }
        assert!(!scopes("ZohoCRM.modules.READ").covers(&Scope("ZohoCRM.modules.ALL".into())));
        assert!(!scopes("ZohoCRM.modules.READ").covers(&Scope("ZohoCRM.modules.leads.READ".into())));
    }

    #[test]
    fn canonicalize_uses_the_registry_spelling() {
        let registry =
            |key: &str| (key == "zohocrm.modules.all").then(|| "ZohoCRM.modules.ALL".to_owned());
        assert_eq!(
            scopes("zohocrm.MODULES.all")
                .canonicalize(registry)
                .map(|s| s.to_stored()),
            Ok("ZohoCRM.modules.ALL".to_owned())
        );
        assert!(scopes("Nope.bad.READ").canonicalize(registry).is_err());
    }
}
