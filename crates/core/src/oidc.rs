//! OpenID Connect Core 1.0 as rules: the built-in scopes, the `prompt` and `max_age`
//! parameters and when they force a sign-in, the claims of an ID token and of userinfo, and
//! how long a retired signing key stays published. Pure; the server signs and serves, the
//! store remembers keys, codes' nonces and sign-in times.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::client::Client;
use crate::clock::Timestamp;
use crate::error::OAuthError;
use crate::scope::{Scope, Scopes};

/// OIDC Core §3.1.2.1: the scope that makes a request an OpenID Connect one.
pub const OPENID: &str = "openid";
/// OIDC Core §5.4: `email`, `email_verified`.
pub const EMAIL: &str = "email";
/// OIDC Core §5.4: the name claims grantd has (`name`, `given_name`, `family_name`).
pub const PROFILE: &str = "profile";
/// The built-in OIDC scopes, which do not have Zoho's `Service.scope.OPERATION` shape.
pub const SCOPES: [&str; 3] = [OPENID, EMAIL, PROFILE];

/// Longest `nonce` kept with a code: far above what libraries send (22–43 characters), small
/// enough that a hostile one costs nothing to store.
pub const MAX_NONCE_LEN: usize = 255;

/// How long past its retirement a key stays in the JWKS beyond the last ID token it signed:
/// covers nodes that have not reloaded their keys yet (they reload every few seconds).
pub const RETIRED_KEY_GRACE_SECS: i64 = 300;

fn has(scopes: &Scopes, name: &str) -> bool {
    scopes.covers(&Scope::from_stored(name.to_owned()))
}

/// Whether `openid` was granted: only then is there an ID token or userinfo.
pub fn is_openid(scopes: &Scopes) -> bool {
    has(scopes, OPENID)
}

/// A JWS algorithm ID tokens are signed with: the server keeps an active key for each, and
/// each client signs with its own choice or the server's `id_token_signing_alg`
/// (`id_token_alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA-2048 key: what every relying party supports
    /// (OIDC Core §15.1 makes it mandatory), so the default.
    Rs256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm the server signs with, RS256 first: the order discovery lists them in.
    pub const ALL: [SigningAlg; 2] = [SigningAlg::Rs256, SigningAlg::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// The JOSE names, exactly (they are case-sensitive in JOSE).
    pub fn parse(raw: &str) -> Option<SigningAlg> {
        match raw {
            "RS256" => Some(SigningAlg::Rs256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which algorithm signs `client`'s ID tokens: its own choice (OpenID Connect Dynamic Client
/// Registration 1.0 §2, `id_token_signed_response_alg`), or else `server_default`
/// (`id_token_signing_alg`). Mirrored clients carry their home's choice, so a client signs the
/// same way at every data center that serves it.
pub fn id_token_alg(client: &Client, server_default: SigningAlg) -> SigningAlg {
    client.id_token_alg.unwrap_or(server_default)
}

/// OIDC Core §3.1.3.6: the left half of the access token's hash, base64url. The hash is the
/// one of the signature algorithm: SHA-256 for RS256, SHA-512 for Ed25519 (as relying parties
/// such as openid-client compute it).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    match alg {
        SigningAlg::Rs256 => {
            let digest = Sha256::digest(access_token.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..16])
        }
        SigningAlg::EdDsa => {
            let digest = Sha512::digest(access_token.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..32])
        }
    }
}

/// Who the claims describe.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The ZUID.
    pub id: i64,
    pub email: &'a str,
    pub name: &'a str,
}

/// First and last name: the display name split at its first space, as Zoho shows them.
pub fn split_name(display_name: &str) -> (&str, &str) {
    display_name.split_once(' ').unwrap_or((display_name, ""))
}

/// OIDC Core §5.1 claims about the user, as far as the granted scopes allow (§5.4): the body
/// of `/oauth/v2/userinfo` and part of every ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// The ZUID, as a string (JWT `sub` is a string).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// grantd's emails are set by an administrator, never confirmed by mail: `false` would
    /// make relying parties refuse them, so they count as verified by whoever added the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

impl UserClaims {
    /// `sub` always; `email`, `email_verified` with `email`; the names with `profile`.
    pub fn of(user: Subject<'_>, scopes: &Scopes) -> UserClaims {
        let email = has(scopes, EMAIL);
        let profile = has(scopes, PROFILE);
        let (given, family) = split_name(user.name);
        UserClaims {
            sub: user.id.to_string(),
            email: email.then(|| user.email.to_owned()),
            email_verified: email.then_some(true),
            name: profile.then(|| user.name.to_owned()),
            given_name: profile.then(|| given.to_owned()),
            family_name: (profile && !family.is_empty()).then(|| family.to_owned()),
        }
    }
}

/// The payload of an ID token (OIDC Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// `{accounts}` exactly.
    pub iss: String,
    /// The client the token is for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the user last signed in (the browser session's start).
    pub auth_time: i64,
    /// As the authorization request sent it; never on a refresh (OIDC Core §12.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub at_hash: String,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// What an ID token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenFor<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub user: Subject<'a>,
    pub scopes: &'a Scopes,
    pub auth_time: Timestamp,
    pub nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
    pub alg: SigningAlg,
    /// An ID token lives as long as the access token issued with it.
    pub lifetime_secs: i64,
}

pub fn id_token_claims(token: IdTokenFor<'_>, now: Timestamp) -> IdTokenClaims {
    IdTokenClaims {
        iss: token.issuer.to_owned(),
        aud: token.client_id.to_owned(),
        exp: now.plus(token.lifetime_secs).0,
        iat: now.0,
        auth_time: token.auth_time.0,
        nonce: token.nonce.map(str::to_owned),
        at_hash: at_hash(token.access_token, token.alg),
        user: UserClaims::of(token.user, token.scopes),
    }
}

/// The OIDC half of `prompt` (OIDC Core §3.1.2.1): a space-separated list; `consent` is read by
/// `authorization::Prompt`. Unknown values (`select_account`) are ignored, as before OIDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interaction {
    /// `prompt=none`: never show a page; answer `login_required` / `consent_required`.
    pub none: bool,
    /// `prompt=login`: sign in again even with a session.
    pub login: bool,
}

impl Interaction {
    pub fn parse(prompt: Option<&str>) -> Result<Interaction, OAuthError> {
        let values: Vec<&str> = prompt
            .unwrap_or("")
            .split(' ')
            .filter(|v| !v.is_empty())
            .collect();
        let none = values.contains(&"none");
        if none && values.len() > 1 {
            return Err(OAuthError::InvalidRequest(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(Interaction {
            none,
            login: values.contains(&"login"),
        })
    }
}

/// `max_age` (OIDC Core §3.1.2.1): seconds, a non-negative integer.
pub fn parse_max_age(raw: Option<&str>) -> Result<Option<i64>, OAuthError> {
    match raw {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(v.parse().ok())
        }
        Some(_) => Err(OAuthError::InvalidRequest(
            "max_age must be a number of seconds",
        )),
    }
}

/// `nonce`: kept with the code and echoed in the ID token, so bounded.
pub fn parse_nonce(raw: Option<&str>) -> Result<Option<String>, OAuthError> {
    match raw {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= MAX_NONCE_LEN => Ok(Some(v.to_owned())),
        Some(_) => Err(OAuthError::InvalidRequest("nonce is empty or too long")),
    }
}

/// Longer than any email address (RFC 5321 §4.5.3.1).
const MAX_EMAIL_LEN: usize = 254;

/// A `login_hint` worth acting on: one that could be an email address (short enough, one `@`
/// between two non-empty parts, no spaces). Anything else (OpenID Connect lets it be any
/// identifier) is ignored, never looked up.
pub fn login_hint_email(hint: &str) -> Option<&str> {
    let plausible = hint.len() <= MAX_EMAIL_LEN
        && hint
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !hint.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(hint)
}

/// Whether the signed-in user is not who `login_hint` names: the session will not do, and the
/// user must sign in as that account (or, with `prompt=none`, the client is told
/// `interaction_required`). Emails compare exactly, as sign-in compares them (T-076).
pub fn hint_names_another_user(hint: Option<&str>, signed_in_email: &str) -> bool {
    hint.and_then(login_hint_email)
        .is_some_and(|hint| hint != signed_in_email)
}

/// Whether an existing session will do: not when `prompt=login` asks for a new sign-in, nor
/// when it started longer than `max_age` seconds ago (OIDC Core §3.1.2.1).
pub fn session_is_fresh_enough(
    interaction: Interaction,
    max_age: Option<i64>,
    signed_in_at: Timestamp,
    now: Timestamp,
) -> bool {
    if interaction.login {
        return false;
    }
    match max_age {
        Some(max_age) => now.0.saturating_sub(signed_in_at.0) <= max_age,
        None => true,
    }
}

/// When a key retired now may leave the JWKS: after every ID token it signed has expired,
/// with a grace for nodes still signing with it until they reload.
pub fn retired_key_expires_at(now: Timestamp, id_token_lifetime_secs: i64) -> Timestamp {
    now.plus(id_token_lifetime_secs)
        .plus(RETIRED_KEY_GRACE_SECS)
}

/// Whether a stored key is still published: the active one, or a retired one until it expires.
pub fn is_published(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_none_or(|at| now < at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_hints_are_acted_on() {
        for ok in ["ada@example.com", "a@b", "ada+tag@example.co.uk"] {
            assert_eq!(login_hint_email(ok), Some(ok));
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a da@example.com",
            "a\t@b",
            &long,
        ] {
            assert_eq!(login_hint_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_hint_for_someone_else_asks_for_another_sign_in() {
        let ada = "ada@example.com";
        assert!(hint_names_another_user(Some("bob@example.com"), ada));
        assert!(hint_names_another_user(Some("Ada@example.com"), ada));
        assert!(!hint_names_another_user(Some(ada), ada));
        assert!(!hint_names_another_user(None, ada));
        // Not an email: not acted on.
        assert!(!hint_names_another_user(Some("+1 555 0100"), ada));
    }

    fn scopes(raw: &str) -> Scopes {
        Scopes::parse(raw).unwrap_or_default()
    }

    const ADA: Subject<'static> = Subject {
        id: 42,
        email: "ada@example.com",
        name: "Ada King Lovelace",
    };

    fn token(scopes: &Scopes, nonce: Option<&'static str>) -> IdTokenClaims {
        id_token_claims(
            IdTokenFor {
                issuer: "https://accounts.example",
                client_id: "1000.ABC",
                user: ADA,
                scopes,
                auth_time: Timestamp(900),
                nonce,
                access_token: "1000.a.b",
                alg: SigningAlg::Rs256,
                lifetime_secs: 3600,
            },
            Timestamp(1000),
        )
    }

    #[test]
    fn openid_alone_gives_only_the_subject() {
        let claims = token(&scopes("openid"), None);
        assert_eq!(claims.iss, "https://accounts.example");
        assert_eq!(claims.aud, "1000.ABC");
        assert_eq!(
            (claims.iat, claims.exp, claims.auth_time),
            (1000, 4600, 900)
        );
        assert_eq!(claims.nonce, None);
        assert_eq!(
            claims.user,
            UserClaims {
                sub: "42".into(),
                email: None,
                email_verified: None,
                name: None,
                given_name: None,
                family_name: None,
            }
        );
        let json = serde_json::to_string(&claims).unwrap_or_default();
        assert_eq!(
            json,
            concat!(
                r#"{"iss":"https://accounts.example","aud":"1000.ABC","exp":4600,"iat":1000,"#,
                r#""auth_time":900,"at_hash":"nykRfowcSPE-JYEFcysZXQ","sub":"42"}"#
            )
        );
    }

    #[test]
    fn email_and_profile_add_their_claims() {
        let claims = token(&scopes("openid email profile"), Some("n-0S6_WzA2Mj"));
        assert_eq!(claims.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
        assert_eq!(claims.user.email.as_deref(), Some("ada@example.com"));
        assert_eq!(claims.user.email_verified, Some(true));
        assert_eq!(claims.user.name.as_deref(), Some("Ada King Lovelace"));
        assert_eq!(claims.user.given_name.as_deref(), Some("Ada"));
        assert_eq!(claims.user.family_name.as_deref(), Some("King Lovelace"));
        let only_email = UserClaims::of(ADA, &scopes("openid email"));
        assert!(only_email.name.is_none() && only_email.email.is_some());
        let one_name = Subject { name: "Ada", ..ADA };
        let profile = UserClaims::of(one_name, &scopes("openid profile"));
        assert_eq!(profile.given_name.as_deref(), Some("Ada"));
        assert_eq!(profile.family_name, None);
    }

    #[test]
    fn at_hash_follows_the_algorithm() {
        // OIDC Core §3.1.3.6 for RS256: SHA-256, left 128 bits.
        let sha256 = Sha256::digest(b"1000.a.b");
        assert_eq!(
            at_hash("1000.a.b", SigningAlg::Rs256),
            URL_SAFE_NO_PAD.encode(&sha256[..16])
        );
        assert_eq!(at_hash("1000.a.b", SigningAlg::Rs256).len(), 22);
        assert_eq!(at_hash("1000.a.b", SigningAlg::EdDsa).len(), 43);
        assert_ne!(
            at_hash("1000.a.b", SigningAlg::Rs256),
            at_hash("1000.a.c", SigningAlg::Rs256)
        );
    }

    #[test]
    fn prompt_values() {
        assert_eq!(Interaction::parse(None), Ok(Interaction::default()));
        let none = Interaction::parse(Some("none"));
        assert_eq!(none.map(|i| (i.none, i.login)), Ok((true, false)));
        let login = Interaction::parse(Some("login consent"));
        assert_eq!(login.map(|i| (i.none, i.login)), Ok((false, true)));
        assert!(Interaction::parse(Some("none consent")).is_err());
        assert_eq!(
            Interaction::parse(Some("select_account")),
            Ok(Interaction::default())
        );
    }

    #[test]
    fn max_age_and_nonce_parsing() {
        assert_eq!(parse_max_age(None), Ok(None));
        assert_eq!(parse_max_age(Some("0")), Ok(Some(0)));
        assert_eq!(parse_max_age(Some("3600")), Ok(Some(3600)));
        for bad in ["", "-1", "1.5", "ten", "99999999999"] {
            assert!(parse_max_age(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_nonce(Some("abc")), Ok(Some("abc".into())));
        assert!(parse_nonce(Some("")).is_err());
        assert!(parse_nonce(Some(&"n".repeat(256))).is_err());
    }

    #[test]
    fn max_age_and_prompt_login_force_a_sign_in() {
        let plain = Interaction::default();
        let signed_in = Timestamp(1000);
        assert!(session_is_fresh_enough(
            plain,
            None,
            signed_in,
            Timestamp(99_999)
        ));
        assert!(session_is_fresh_enough(
            plain,
            Some(60),
            signed_in,
            Timestamp(1060)
        ));
        assert!(!session_is_fresh_enough(
            plain,
            Some(60),
            signed_in,
            Timestamp(1061)
        ));
        assert!(session_is_fresh_enough(
            plain,
            Some(0),
            signed_in,
            signed_in
        ));
        let login = Interaction {
            none: false,
            login: true,
        };
        assert!(!session_is_fresh_enough(login, None, signed_in, signed_in));
    }

    #[test]
    fn retired_keys_outlive_their_last_token() {
        let retired = retired_key_expires_at(Timestamp(1000), 3600);
        assert!(retired.0 >= 1000 + 3600);
        assert!(is_published(None, Timestamp(i64::MAX)));
        assert!(is_published(Some(retired), Timestamp(4600)));
        assert!(!is_published(Some(retired), retired));
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(SigningAlg::parse("RS256"), Some(SigningAlg::Rs256));
        assert_eq!(SigningAlg::parse("EdDSA"), Some(SigningAlg::EdDsa));
        assert_eq!(SigningAlg::parse("rs256"), None);
        assert_eq!(SigningAlg::EdDsa.to_string(), "EdDSA");
        let listed: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(listed, ["RS256", "EdDSA"]);
    }

    #[test]
    fn a_client_signs_with_its_own_choice_else_the_server_default() {
        let mut client = crate::Client {
            id: crate::ClientId::new("1000.A".into()),
            kind: crate::ClientType::Server,
            name: "A".into(),
            homepage: None,
            redirect_uris: vec![],
            secret_hash: None,
            owner_id: None,
            dialect: crate::Dialect::Standard,
            js_domain: None,
            created_at: Timestamp(0),
            introspect_any: false,
            home: None,
            id_token_alg: None,
        };
        for default in SigningAlg::ALL {
            assert_eq!(id_token_alg(&client, default), default);
        }
        for chosen in SigningAlg::ALL {
            client.id_token_alg = Some(chosen);
            for default in SigningAlg::ALL {
                assert_eq!(id_token_alg(&client, default), chosen);
            }
        }
    }
}
