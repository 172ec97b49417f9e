//! The shared application state handed to every handler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use grantd_core::datacenter::{DcTag, Peer};
use grantd_core::oidc::SigningAlg;
use grantd_core::peer_auth::DcSecret;
use grantd_core::source::TrustedProxies;
use grantd_core::{Clock, Dialect, Limits};
use grantd_store::Store;

use crate::connection::HttpLimits;
use crate::password::Passwords;
use crate::peers::{NonceGuard, PeerClient};
use crate::signing::{Kek, KeyRing};

/// What this deployment is: its public URL, data center and defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `{accounts}`: the public base URL, without a trailing slash. Every absolute URL the
    /// server writes is built from it, never from the request's Host header (T-094).
    pub public_url: String,
    /// This data center's code (`us`, `eu`, ...).
    pub location: String,
    /// `{api_domain}`: where resource APIs of this data center live.
    pub api_domain: String,
    /// The error dialect where the client is unknown.
    pub default_dialect: Dialect,
    pub limits: Limits,
    /// Header size, timeouts, the connection cap and the password queue (`[http]`).
    pub http: HttpLimits,
    /// Peers whose `X-Forwarded-For` names the client, for sign-in throttling (`source.rs`).
    pub trusted_proxies: TrustedProxies,
    /// The other data centers, by location (`[datacenters.<location>]`); empty for a single DC.
    pub datacenters: BTreeMap<String, Peer>,
    /// The secret shared with the peers (`dc_secret_file`); without it `/dc/v1/*` is 404 and
    /// no peer is asked anything.
    pub dc_secret: Option<DcSecret>,
    /// How often peers' client records are fetched (`dc_sync_interval_ms`).
    pub dc_sync_interval: Duration,
    /// Seals the signing keys at rest (`key_encryption_key_file`). `None` (tests, embedding):
    /// a key made for this process, so keys it seals cannot be opened after a restart.
    pub kek: Option<Kek>,
    /// The algorithm of the ID tokens of clients that choose none (`id_token_signing_alg`;
    /// `oidc::id_token_alg`). Every algorithm has a key whatever this says.
    pub id_token_signing_alg: SigningAlg,
    /// How often each node rereads the signing keys, so `grantd keys rotate` reaches it.
    pub key_reload_interval: Duration,
}

impl Settings {
    pub fn new(public_url: &str) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self {
            api_domain: public_url.clone(),
            public_url,
            location: "us".into(),
            default_dialect: Dialect::Standard,
            limits: Limits::default(),
            http: HttpLimits::default(),
            trusted_proxies: TrustedProxies::default(),
            datacenters: BTreeMap::new(),
            dc_secret: None,
            dc_sync_interval: Duration::from_millis(3000),
            kek: None,
            id_token_signing_alg: SigningAlg::Rs256,
            key_reload_interval: Duration::from_secs(5),
        }
    }

    /// Cookies get `Secure` and the `__Host-` prefix when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    /// What every code and token minted here starts with (`DcTag`), derived once.
    pub tag: DcTag,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub passwords: Passwords,
    /// Signed calls to the other data centers; `None` for a single DC (no peers or no secret).
    pub peers: Option<PeerClient>,
    /// Nonces of the server-to-server requests this node accepted (`peers::Signed`).
    pub nonces: NonceGuard,
    /// The ID-token signing keys, in memory (`signing.rs`).
    pub keys: KeyRing,
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let passwords = Passwords::with_queue(settings.http.password_queue);
        let peers = peer_client(&settings, &clock);
        let kek = settings.kek.clone().unwrap_or_else(Kek::generate);
        let keys = KeyRing::new(kek);
        Self(Arc::new(Inner {
            tag: DcTag::of(&settings.location),
            store,
            clock,
            settings,
            passwords,
            peers,
            nonces: NonceGuard::new(),
            keys,
        }))
    }

    /// Makes or opens the signing keys before serving (`signing::KeyRing::prepare`).
    pub async fn prepare_keys(&self) -> Result<(), crate::signing::KeyError> {
        self.keys.prepare(&self.store, self.clock.now()).await
    }
}

/// The client for calls to peers, when there are peers and a secret to sign with.
fn peer_client(settings: &Settings, clock: &Arc<dyn Clock>) -> Option<PeerClient> {
    let secret = settings.dc_secret.clone()?;
    if settings.datacenters.is_empty() {
        return None;
    }
    let made = PeerClient::new(
        &settings.location,
        secret,
        settings.datacenters.clone(),
        clock.clone(),
    );
    match made {
        Ok(client) => Some(client),
        Err(e) => {
            // Then every peer counts as unreachable: this DC still serves its own users.
            tracing::error!(error = %e, "cannot call other data centers");
            None
        }
    }
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
