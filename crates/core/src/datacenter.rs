//! Data centers (CONTRACT.md "Data centers"): each grantd deployment is one, named by its
//! location code, and knows its peers from configuration. What a location code may be, and the
//! rule that ties a DC's own listing to its own settings, live here.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::client::{Client, ClientType};
use crate::error::{Elsewhere, OAuthError};
use crate::secret::SecretHash;

/// Another data center, as this one knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its `{accounts}`: the public base URL of its accounts server.
    pub accounts: String,
    /// Its `{api_domain}`.
    pub api_domain: String,
}

/// A data center code: 1 to 16 lower-case letters, digits or dashes (`us`, `eu`, `com-au`).
pub fn is_location(code: &str) -> bool {
    (1..=16).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The other data centers, from the `[datacenters.<location>]` tables. Every DC may list them
/// all, itself included (one shared file for every DC); its own entry must then say what its own
/// settings say, so two DCs never disagree about where one of them is.
pub fn peers(
    own: (&str, &str, &str),
    listed: BTreeMap<String, Peer>,
) -> Result<BTreeMap<String, Peer>, String> {
    let (location, accounts, api_domain) = own;
    let mut peers = BTreeMap::new();
    for (code, peer) in listed {
        if !is_location(&code) {
            return Err(format!(
                "[datacenters.{code}]: {code:?} is not a data center code"
            ));
        }
        if code == location {
            if peer.accounts != accounts || peer.api_domain != api_domain {
                return Err(format!(
                    "[datacenters.{code}] lists this data center with accounts {:?} and \
                     api_domain {:?}, but its own settings say {accounts:?} and {api_domain:?}",
                    peer.accounts, peer.api_domain
                ));
            }
            continue;
        }
        peers.insert(code, peer);
    }
    Ok(peers)
}

/// The mark every code and token a data center mints carries in its first 8 hex digits, so any
/// DC can tell from a token alone which DC issued it, with no network call and no lookup. It
/// is public (derived from the location code), which costs the token 32 of its 256 random bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcTag([u8; 4]);

impl DcTag {
    pub fn of(location: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"grantd data center ")
            .chain_update(location.as_bytes())
            .finalize();
        Self([digest[0], digest[1], digest[2], digest[3]])
    }

    pub fn bytes(self) -> [u8; 4] {
        self.0
    }

    /// The tag a presented token carries, if it has the contract's `1000.` + hex shape.
    pub fn of_token(token: &str) -> Option<Self> {
        let hex_part = token.strip_prefix("1000.")?.get(..8)?;
        let mut tag = [0u8; 4];
        hex::decode_to_slice(hex_part, &mut tag).ok()?;
        Some(Self(tag))
    }
}

/// The peer that issued `token`, when the token is not this DC's own: where to send whoever
/// presented it here. Only consulted after the token was not found locally, so a token of ours
/// can never be misattributed, and a garbage token names a peer only by a 1-in-2³² chance.
pub fn issuer<'p>(token: &str, peers: &'p BTreeMap<String, Peer>) -> Option<(&'p str, &'p Peer)> {
    let tag = DcTag::of_token(token)?;
    peers
        .iter()
        .find(|(code, _)| DcTag::of(code) == tag)
        .map(|(code, peer)| (code.as_str(), peer))
}

/// The error for a code or token not found here: the bad-grant error naming its issuer when
/// its tag says a peer minted it, `otherwise` when it is just unknown.
pub fn unknown_here(
    token: &str,
    what: &'static str,
    peers: &BTreeMap<String, Peer>,
    otherwise: OAuthError,
) -> OAuthError {
    issued_elsewhere(token, what, peers).map_or(otherwise, OAuthError::IssuedElsewhere)
}

/// Where a token not found here was issued, when its tag names a peer.
pub fn issued_elsewhere(
    token: &str,
    what: &'static str,
    peers: &BTreeMap<String, Peer>,
) -> Option<Elsewhere> {
    issuer(token, peers).map(|(location, peer)| Elsewhere {
        what,
        location: location.to_owned(),
        accounts: peer.accounts.clone(),
    })
}

/// Whether `client` may be enabled at data center `location` (`grantd client enable-dc`), as
/// seen from its home `own` with these peers; the reason if not.
pub fn may_enable(
    client: &Client,
    location: &str,
    own: &str,
    peers: &BTreeMap<String, Peer>,
    own_secret: bool,
) -> Result<(), String> {
    managed_here(client)?;
    if location == own {
        return Err(format!(
            "data center {location} is this client's home: it is enabled here already"
        ));
    }
    if !peers.contains_key(location) {
        return Err(format!(
            "no data center {location:?} is configured here (see [datacenters.<location>])"
        ));
    }
    if client.kind == ClientType::SelfClient {
        return Err("a Self Client stays in its home data center".into());
    }
    if own_secret && client.secret_hash.is_none() {
        return Err("a public client has no secret to have its own of".into());
    }
    Ok(())
}

/// A client mirrored from its home data center is changed only there.
pub fn managed_here(client: &Client) -> Result<(), String> {
    match &client.home {
        None => Ok(()),
        Some(home) => Err(format!(
            "client {} is registered at data center {home}: change it there",
            client.id
        )),
    }
}

/// The key under which a DC remembers where it found an email (`email_homes`): SHA-256 of the
/// address, so the table holds no addresses. Exactly as typed, as every DC matches its users
/// (T-076: no case folding, so look-alikes never collide): `Ada@` is not `ada@`.
pub fn email_key(email: &str) -> SecretHash {
    SecretHash::of(email)
}

/// Where a browser continues sign-in at an email's home DC (`accounts` is that DC's base URL,
/// from configuration): the same request there, with `login_hint` set to the email, when
/// `next` is an authorization request (`/oauth/v2/auth?...`) or the device page with its code
/// (`/oauth/v3/device?...`, after the device authorization was handed over); its sign-in page
/// otherwise (the console). `next` must already be a same-origin path (T-080): only its path
/// and query are kept, so the result is always under `accounts`.
pub fn home_sign_in_url(accounts: &str, next: &str, email: &str) -> String {
    const CARRIED: [&str; 2] = ["/oauth/v2/auth", "/oauth/v3/device"];
    let mut query = form_urlencoded::Serializer::new(String::new());
    let carried = CARRIED.iter().find_map(|path| {
        let request = next.strip_prefix(path)?.strip_prefix('?')?;
        Some((path, request))
    });
    match carried {
        Some((path, request)) => {
            // A hint already in the request is replaced, never repeated (repeated parameters
            // are refused, RFC 6749 §3.1).
            for (name, value) in form_urlencoded::parse(request.as_bytes()) {
                if name != "login_hint" {
                    query.append_pair(&name, &value);
                }
            }
            query.append_pair("login_hint", email);
            format!("{accounts}{path}?{}", query.finish())
        }
        None => {
            query.append_pair("login_hint", email);
            format!("{accounts}/?{}", query.finish())
        }
    }
}

/// Every data center's accounts server by location, this one's included: what
/// `/oauth/serverinfo` lists.
pub fn accounts_servers(
    own: (&str, &str),
    peers: &BTreeMap<String, Peer>,
) -> BTreeMap<String, String> {
    let mut servers: BTreeMap<String, String> = peers
        .iter()
        .map(|(code, peer)| (code.clone(), peer.accounts.clone()))
        .collect();
    servers.insert(own.0.to_owned(), own.1.to_owned());
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: (&str, &str, &str) = (
        "us",
        "https://accounts.example.com",
        "https://api.example.com",
    );

    fn peer(accounts: &str, api_domain: &str) -> Peer {
        Peer {
            accounts: accounts.into(),
            api_domain: api_domain.into(),
        }
    }

    #[test]
    fn location_codes() {
        for ok in ["us", "eu", "in", "com-au", "jp1", "abcdefghijklmnop"] {
            assert!(is_location(ok), "{ok}");
        }
        for bad in ["", "EU", "eu west", "eu_west", "abcdefghijklmnopq", "ü"] {
            assert!(!is_location(bad), "{bad}");
        }
    }

    #[test]
    fn the_own_entry_may_be_listed_if_it_matches() {
        let listed = BTreeMap::from([
            ("us".to_owned(), peer(US.1, US.2)),
            (
                "eu".to_owned(),
                peer("https://accounts.example.eu", "https://api.example.eu"),
            ),
        ]);
        let peers = peers(US, listed).unwrap();
        assert_eq!(peers.keys().collect::<Vec<_>>(), ["eu"]);
        let servers = accounts_servers((US.0, US.1), &peers);
        assert_eq!(
            servers,
            BTreeMap::from([
                ("eu".to_owned(), "https://accounts.example.eu".to_owned()),
                ("us".to_owned(), US.1.to_owned()),
            ])
        );
    }

    #[test]
    fn a_mismatched_own_entry_or_a_bad_code_is_refused() {
        let wrong_url =
            BTreeMap::from([("us".to_owned(), peer("https://elsewhere.example", US.2))]);
        assert!(peers(US, wrong_url)
            .unwrap_err()
            .contains("[datacenters.us]"));
        let wrong_api = BTreeMap::from([("us".to_owned(), peer(US.1, "https://api.elsewhere"))]);
        assert!(peers(US, wrong_api).is_err());
        let bad_code = BTreeMap::from([("EU".to_owned(), peer("https://a.eu", "https://b.eu"))]);
        assert!(peers(US, bad_code).is_err());
    }

    #[test]
    fn a_token_names_the_peer_that_minted_it() {
        let peers = BTreeMap::from([
            (
                "eu".to_owned(),
                peer("https://accounts.example.eu", "https://api.example.eu"),
            ),
            (
                "in".to_owned(),
                peer("https://accounts.example.in", "https://api.example.in"),
            ),
        ]);
        let eu = hex::encode(DcTag::of("eu").bytes());
        let token = format!("1000.{eu}{}.{}", "a".repeat(24), "b".repeat(32));
        let (code, found) = issuer(&token, &peers).unwrap();
        assert_eq!(code, "eu");
        assert_eq!(found.accounts, "https://accounts.example.eu");
        let ours = format!(
            "1000.{}{}.{}",
            hex::encode(DcTag::of("us").bytes()),
            "a".repeat(24),
            "b".repeat(32)
        );
        assert!(issuer(&ours, &peers).is_none());
        for garbage in ["", "1000.", "1000.zz", "1000.abc", "2000.abcdef12.x"] {
            assert!(issuer(garbage, &peers).is_none(), "{garbage}");
        }
        assert_ne!(DcTag::of("eu"), DcTag::of("us"));
        let error = unknown_here(&token, "refresh token", &peers, OAuthError::InvalidClient);
        assert_eq!(
            error.description(),
            "this refresh token was issued by data center eu; use https://accounts.example.eu"
        );
        let fallback = OAuthError::InvalidGrant("unknown");
        assert_eq!(
            unknown_here(&ours, "grant code", &peers, fallback.clone()),
            fallback
        );
    }

    fn a_client(kind: ClientType, home: Option<&str>) -> Client {
        Client {
            id: crate::ClientId::new("1000.A".into()),
            kind,
            name: "A".into(),
            homepage: None,
            redirect_uris: vec![],
            secret_hash: (!kind.is_public()).then(|| crate::secret::SecretHash::of("s")),
            owner_id: None,
            dialect: crate::Dialect::Standard,
            js_domain: None,
            created_at: crate::Timestamp(0),
            introspect_any: false,
            home: home.map(str::to_owned),
            id_token_alg: None,
        }
    }

    #[test]
    fn which_clients_may_be_enabled_where() {
        let peers = BTreeMap::from([(
            "eu".to_owned(),
            peer("https://accounts.example.eu", "https://api.example.eu"),
        )]);
        let server = a_client(ClientType::Server, None);
        let mobile = a_client(ClientType::Mobile, None);
        assert_eq!(may_enable(&server, "eu", "us", &peers, true), Ok(()));
        assert_eq!(may_enable(&mobile, "eu", "us", &peers, false), Ok(()));
        let refused = [
            (may_enable(&mobile, "eu", "us", &peers, true), "public"),
            (may_enable(&server, "us", "us", &peers, false), "home"),
            (may_enable(&server, "in", "us", &peers, false), "configured"),
            (
                may_enable(
                    &a_client(ClientType::SelfClient, None),
                    "eu",
                    "us",
                    &peers,
                    false,
                ),
                "Self Client",
            ),
            (
                may_enable(
                    &a_client(ClientType::Server, Some("in")),
                    "eu",
                    "us",
                    &peers,
                    false,
                ),
                "registered at data center in",
            ),
        ];
        for (answer, why) in refused {
            assert!(
                answer.as_ref().is_err_and(|e| e.contains(why)),
                "{why}: {answer:?}"
            );
        }
        assert!(managed_here(&server).is_ok());
    }

    #[test]
    fn the_home_dc_gets_the_same_request_with_a_login_hint() {
        let eu = "https://accounts.example.eu";
        assert_eq!(
            home_sign_in_url(
                eu,
                "/oauth/v2/auth?response_type=code&client_id=1000.A&state=a+b%26c&login_hint=x",
                "ada+1@example.com"
            ),
            "https://accounts.example.eu/oauth/v2/auth?response_type=code&client_id=1000.A\
             &state=a+b%26c&login_hint=ada%2B1%40example.com"
        );
        assert_eq!(
            home_sign_in_url(
                eu,
                "/oauth/v3/device?user_code=ABCD-2345",
                "ada@example.com"
            ),
            "https://accounts.example.eu/oauth/v3/device?user_code=ABCD-2345\
             &login_hint=ada%40example.com"
        );
        // The console, or anything else: the home DC's sign-in page.
        for next in [
            "/console",
            "/account?tab=apps",
            "/",
            "/oauth/v2/auth",
            "/oauth/v2/authx?a=b",
            "/oauth/v3/devices?user_code=X",
        ] {
            assert_eq!(
                home_sign_in_url(eu, next, "ada@example.com"),
                "https://accounts.example.eu/?login_hint=ada%40example.com",
                "{next}"
            );
        }
    }

    #[test]
    fn email_keys_match_exactly_as_users_do() {
        assert_eq!(email_key("ada@example.com"), email_key("ada@example.com"));
        assert_ne!(email_key("Ada@Example.com"), email_key("ada@example.com"));
        assert_ne!(email_key("ada@example.com"), email_key("bob@example.com"));
    }

    #[test]
    fn a_single_data_center_lists_only_itself() {
        let peers = peers(US, BTreeMap::new()).unwrap();
        assert!(peers.is_empty());
        assert_eq!(
            accounts_servers((US.0, US.1), &peers),
            BTreeMap::from([("us".to_owned(), US.1.to_owned())])
        );
    }
}
