//! Where a user lives: `POST /dc/v1/users/lookup` answers whether an email is a user of this
//! DC, and `find_home` asks every peer that at once, for an email that is not a local user, so
//! sign-in can send the browser to the user's home DC. A peer found to know an email is
//! remembered (`email_homes`), so that when it is down its users are told so by name.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::task::JoinSet;

use grantd_core::datacenter::email_key;
use grantd_store::{AccountVerbs, StoreError};
use grantd_wire::datacenter::{LookupRequest, LookupResponse};

use super::client::{PeerClient, PeerError};
use super::signed::SignedJson;
use crate::app::App;
use crate::error::store_failure;

pub const LOOKUP_PATH: &str = "/dc/v1/users/lookup";

/// Longer than any email address (RFC 5321 §4.5.3.1); such a value is nobody's.
const MAX_EMAIL_LEN: usize = 254;

/// `POST /dc/v1/users/lookup`: `{"known":true}` if the email is a user here, exactly as the
/// local sign-in compares it.
pub async fn lookup(
    State(app): State<App>,
    SignedJson { body, .. }: SignedJson<LookupRequest>,
) -> Response {
    if body.email.len() > MAX_EMAIL_LEN {
        return Json(LookupResponse { known: false }).into_response();
    }
    match app.store.user_by_email(&body.email).await {
        Ok(user) => Json(LookupResponse {
            known: user.is_some(),
        })
        .into_response(),
        Err(e) => store_failure(e),
    }
}

/// What the peers said about an email.
#[derive(Debug, Default)]
pub struct Survey {
    /// The first peer that knows it.
    pub home: Option<String>,
    /// The peers that gave no answer, with why. Complete only when `home` is `None` (once a
    /// home is found, the others are no longer waited for).
    pub unreachable: Vec<(String, PeerError)>,
}

impl PeerClient {
    /// Asks every peer at once whether it knows `email`; the first `known` ends the survey.
    /// Each call is bounded by the client's timeouts, so this takes at most about 2 s.
    pub async fn survey(&self, email: &str) -> Survey {
        let mut asking = JoinSet::new();
        for location in self.locations() {
            let (client, location) = (self.clone(), location.to_owned());
            let request = LookupRequest {
                email: email.to_owned(),
            };
            asking.spawn(async move {
                let answer = client
                    .post_json::<_, LookupResponse>(&location, LOOKUP_PATH, &request)
                    .await;
                (location, answer)
            });
        }
        let mut survey = Survey::default();
        while let Some(joined) = asking.join_next().await {
            // A task only ends by returning: nothing in it panics and nothing aborts it.
            let Ok((location, answer)) = joined else {
                continue;
            };
            match answer {
                Ok(LookupResponse { known: true }) => {
                    survey.home = Some(location);
                    // Dropping the set aborts the calls still waiting.
                    return survey;
                }
                Ok(LookupResponse { known: false }) => {}
                Err(e) => survey.unreachable.push((location, e)),
            }
        }
        survey.unreachable.sort_by(|a, b| a.0.cmp(&b.0));
        survey
    }
}

/// Where an email that is not a local user lives, as far as this DC can tell now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// A peer knows it (and that is now remembered).
    Peer(String),
    /// No peer that answered knows it, and one that did not is where it was last found.
    Unreachable(String),
    /// Nobody knows it, as far as anyone answered.
    Unknown,
}

/// Asks every peer (in parallel) where `email` lives; a single DC knows of no other home.
pub async fn find_home(app: &App, email: &str) -> Result<Home, StoreError> {
    let Some(peers) = &app.peers else {
        return Ok(Home::Unknown);
    };
    if email.len() > MAX_EMAIL_LEN {
        return Ok(Home::Unknown);
    }
    let survey = peers.survey(email).await;
    let key = email_key(email);
    if let Some(home) = survey.home {
        app.store
            .remember_email_home(&key, &home, app.clock.now())
            .await?;
        return Ok(Home::Peer(home));
    }
    for (location, e) in &survey.unreachable {
        tracing::warn!(peer = %location, error = %e, "a data center did not answer a user lookup");
    }
    if survey.unreachable.is_empty() {
        return Ok(Home::Unknown);
    }
    let silent: BTreeSet<&str> = survey.unreachable.iter().map(|(l, _)| l.as_str()).collect();
    Ok(match app.store.email_home(&key).await? {
        Some(home) if silent.contains(home.as_str()) => Home::Unreachable(home),
        _ => Home::Unknown,
    })
}
