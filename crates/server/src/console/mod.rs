//! The API console (`/console`) and the account pages (`/account`): server-rendered pages for
//! signed-in users. Every change is a POST carrying the session's CSRF token; a user reaches
//! only their own clients, codes, apps and sessions (anything else is a 404).

pub mod account;
pub mod admin_pages;
pub mod clients;

use axum::http::StatusCode;

use grantd_core::{Client, ClientType, Timestamp};
use grantd_store::ConsoleVerbs;

use crate::app::App;
use crate::error::ErrorPage;
use crate::session::SignedIn;

/// What the console adds to a signed-in request.
impl SignedIn {
    /// One of this user's clients; anyone else's, or none, is "not found" (no existence leak).
    pub async fn own_client(&self, app: &App, id: &str) -> Result<Client, ErrorPage> {
        let client = if id.len() <= 128 {
            app.store.client(id).await?
        } else {
            None
        };
        client
            .filter(|c| c.owner_id == Some(self.user.id))
            .ok_or(ErrorPage {
                status: StatusCode::NOT_FOUND,
                message: "There is no such client in your console.".into(),
            })
    }
}

pub fn type_label(kind: ClientType) -> &'static str {
    match kind {
        ClientType::Server => "Server-based",
        ClientType::Client => "Client-based",
        ClientType::Mobile => "Mobile",
        ClientType::NonBrowser => "Non-browser",
        ClientType::SelfClient => "Self Client",
    }
}

pub fn type_help(kind: ClientType) -> &'static str {
    match kind {
        ClientType::Server => "Web apps with a server that keeps the secret.",
        ClientType::Client => "JavaScript apps in the browser, with PKCE.",
        ClientType::Mobile => "iOS and Android apps, with PKCE.",
        ClientType::NonBrowser => "Devices and command-line tools without a browser.",
        ClientType::SelfClient => "Your own scripts, with codes made here.",
    }
}

/// `2026-01-01 09:30 UTC`. Civil-from-days (H. Hinnant's algorithm), so no date crate is
/// needed for one format.
pub fn datetime(t: Timestamp) -> String {
    let days = t.0.div_euclid(86_400);
    let secs = t.0.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(datetime(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(datetime(Timestamp(1_767_225_600)), "2026-01-01 00:00 UTC");
        assert_eq!(datetime(Timestamp(951_827_400)), "2000-02-29 12:30 UTC");
    }
}
