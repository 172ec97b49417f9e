//! Data centers (CONTRACT.md "Data centers"): each grantd deployment is one, named by its
//! location code, and knows its peers from configuration. What a location code may be, and the
//! rule that ties a DC's own listing to its own settings, live here.

use std::collections::BTreeMap;

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

/// The key under which a DC remembers where it found an email (`email_homes`): SHA-256 of the
/// lower-cased address, so the table holds no addresses and `Ada@` finds what `ada@` left.
pub fn email_key(email: &str) -> SecretHash {
    SecretHash::of(&email.to_lowercase())
}

/// Where a browser continues sign-in at an email's home DC (`accounts` is that DC's base URL,
/// from configuration): the same authorization request there, with `login_hint` set to the
/// email, when `next` is one (`/oauth/v2/auth?...`); its sign-in page otherwise (the console).
/// `next` must already be a same-origin path (T-080): only its path and query are kept, so
/// the result is always under `accounts`.
pub fn home_sign_in_url(accounts: &str, next: &str, email: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    match next.strip_prefix("/oauth/v2/auth?") {
        Some(request) => {
            // A hint already in the request is replaced, never repeated (repeated parameters
            // are refused, RFC 6749 §3.1).
            for (name, value) in form_urlencoded::parse(request.as_bytes()) {
                if name != "login_hint" {
                    query.append_pair(&name, &value);
                }
            }
            query.append_pair("login_hint", email);
            format!("{accounts}/oauth/v2/auth?{}", query.finish())
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
        // The console, or anything else: the home DC's sign-in page.
        for next in ["/console", "/account?tab=apps", "/", "/oauth/v2/auth"] {
            assert_eq!(
                home_sign_in_url(eu, next, "ada@example.com"),
                "https://accounts.example.eu/?login_hint=ada%40example.com",
                "{next}"
            );
        }
    }

    #[test]
    fn email_keys_ignore_case() {
        assert_eq!(email_key("Ada@Example.com"), email_key("ada@example.com"));
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
