//! The rules of an authorization request (RFC 6749 §4.1.1, RFC 7636, CONTRACT.md
//! `/oauth/v2/auth`): which clients must send a PKCE challenge and in what form, when the user
//! is asked to consent, and when the code will carry a refresh token. Pure decisions; the
//! server parses parameters into these types, the store remembers consents and codes.

use std::fmt;

use crate::client::ClientType;
use crate::error::OAuthError;
use crate::grant::AccessType;
use crate::pkce;

/// A well-formed S256 code challenge (RFC 7636 §4.2), the only method grantd accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// The challenge a request sent as `code_challenge` and `code_challenge_method`, by the
    /// requirements of `kind`; `None` when a confidential client sent neither.
    pub fn from_request(
        kind: ClientType,
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<CodeChallenge>, OAuthError> {
        match (challenge, method) {
            // RFC 9700 §2.1.1: public clients must use PKCE.
            (None, None) if kind.is_public() => Err(OAuthError::InvalidRequest(
                "code_challenge is required for this client",
            )),
            (None, None) => Ok(None),
            (Some(challenge), Some("S256")) if pkce::is_well_formed(challenge) => {
                Ok(Some(CodeChallenge(challenge.to_owned())))
            }
            (Some(_), Some("S256")) => {
                Err(OAuthError::InvalidRequest("code_challenge is malformed"))
            }
            // RFC 7636 §4.3: no method means `plain`, which RFC 9700 §2.1.1 rules out.
            (Some(_), _) => Err(OAuthError::InvalidRequest(
                "code_challenge_method must be S256",
            )),
            (None, Some(_)) => Err(OAuthError::InvalidRequest(
                "code_challenge_method without code_challenge",
            )),
        }
    }

    /// Wraps a challenge that was checked before it was kept (a pending consent, a code).
    pub fn from_stored(challenge: String) -> CodeChallenge {
        CodeChallenge(challenge)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Not a secret (it is a hash of one), but shown shortened like one, to keep logs short.
impl fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeChallenge(..)")
    }
}

/// The consent half of `prompt` (the OpenID Connect half is `oidc::Interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Ask only for what the user has not granted yet.
    Default,
    /// Ask again, even for scopes already granted (and so allow a new refresh token).
    Consent,
}

impl Prompt {
    /// `prompt` is a space-separated list (OIDC Core §3.1.2.1), `consent` one of its values.
    pub fn parse(raw: Option<&str>) -> Prompt {
        match raw {
            Some(list) if list.split(' ').any(|v| v == "consent") => Prompt::Consent,
            _ => Prompt::Default,
        }
    }
}

/// CONTRACT.md step 4 (T-028): the consent page is shown on `prompt=consent` or when the user's
/// earlier consent for this redirect URI does not cover every requested scope; otherwise the
/// request is approved at once.
pub fn must_ask_consent(prompt: Prompt, already_covered: bool) -> bool {
    prompt == Prompt::Consent || !already_covered
}

/// CONTRACT.md (token endpoint): a code yields a refresh token only for `access_type=offline`,
/// and then only on the user's first consent for the client or an explicit `prompt=consent`.
pub fn issues_refresh_token(access: AccessType, prompt: Prompt, first_consent: bool) -> bool {
    access == AccessType::Offline && (first_consent || prompt == Prompt::Consent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: [ClientType; 2] = [ClientType::Client, ClientType::Mobile];

    fn challenge(len: usize) -> String {
        "a".repeat(len)
    }

    #[test]
    fn public_clients_must_send_a_challenge_confidential_ones_may() {
        for kind in PUBLIC {
            assert_eq!(
                CodeChallenge::from_request(kind, None, None),
                Err(OAuthError::InvalidRequest(
                    "code_challenge is required for this client"
                )),
                "{kind:?}"
            );
        }
        assert_eq!(
            CodeChallenge::from_request(ClientType::Server, None, None),
            Ok(None)
        );
        for kind in [ClientType::Server, ClientType::Client, ClientType::Mobile] {
            let sent = challenge(43);
            let parsed = CodeChallenge::from_request(kind, Some(&sent), Some("S256"));
            assert_eq!(
                parsed.ok().flatten().map(|c| c.as_str().to_owned()),
                Some(sent),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn challenge_length_boundaries() {
        for (len, ok) in [(42, false), (43, true), (128, true), (129, false)] {
            let sent = challenge(len);
            let parsed = CodeChallenge::from_request(ClientType::Server, Some(&sent), Some("S256"));
            assert_eq!(parsed.is_ok(), ok, "{len}");
            if !ok {
                assert_eq!(
                    parsed,
                    Err(OAuthError::InvalidRequest("code_challenge is malformed"))
                );
            }
        }
    }

    #[test]
    fn only_s256_and_never_a_method_alone() {
        let sent = challenge(43);
        for method in [None, Some("plain"), Some("s256"), Some("S512")] {
            assert_eq!(
                CodeChallenge::from_request(ClientType::Mobile, Some(&sent), method),
                Err(OAuthError::InvalidRequest(
                    "code_challenge_method must be S256"
                )),
                "{method:?}"
            );
        }
        for kind in [ClientType::Server, ClientType::Client] {
            assert_eq!(
                CodeChallenge::from_request(kind, None, Some("S256")),
                Err(OAuthError::InvalidRequest(
                    "code_challenge_method without code_challenge"
                ))
            );
        }
    }

    #[test]
    fn prompt_parsing() {
        assert_eq!(Prompt::parse(Some("consent")), Prompt::Consent);
        assert_eq!(Prompt::parse(Some("login consent")), Prompt::Consent);
        for other in [None, Some("login"), Some("none"), Some("CONSENT")] {
            assert_eq!(Prompt::parse(other), Prompt::Default, "{other:?}");
        }
    }

    #[test]
    fn consent_is_asked_unless_covered_and_not_prompted() {
        assert!(!must_ask_consent(Prompt::Default, true));
        assert!(must_ask_consent(Prompt::Default, false));
        assert!(must_ask_consent(Prompt::Consent, true));
        assert!(must_ask_consent(Prompt::Consent, false));
    }

    #[test]
    fn refresh_token_only_offline_and_on_first_or_prompted_consent() {
        use AccessType::{Offline, Online};
        let cases = [
            (Offline, Prompt::Default, true, true),
            (Offline, Prompt::Default, false, false),
            (Offline, Prompt::Consent, false, true),
            (Offline, Prompt::Consent, true, true),
            (Online, Prompt::Default, true, false),
            (Online, Prompt::Consent, true, false),
            (Online, Prompt::Consent, false, false),
            (Online, Prompt::Default, false, false),
        ];
        for (access, prompt, first, expected) in cases {
            assert_eq!(
                issues_refresh_token(access, prompt, first),
                expected,
                "{access:?} {prompt:?} first={first}"
            );
        }
    }
}
