//! The operations a load-generator worker performs, one per scenario, each as a real client
//! would send it (CONTRACT.md), with the status it must get back. An operation may be several
//! HTTP requests (the redirect flow is two or three); its latency is the whole of it.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use serde::Serialize;

use crate::http::{Conn, Reply};
use crate::seed::{self, Kind, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// `GET /healthz`: the server's own floor (routing, middleware, HTTP), no store access.
    Ceiling,
    Refresh,
    Exchange,
    Introspect,
    Userinfo,
    /// The redirect flow with a signed-in browser that has consented before: silent approval.
    Flow,
    /// The redirect flow with `prompt=consent`: the consent page, then the Accept POST.
    FlowConsent,
    Login,
    /// 70 % refresh, 20 % flow, 5 % revoke, 5 % introspect.
    Mixed,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Ceiling => "ceiling",
            Op::Refresh => "refresh",
            Op::Exchange => "exchange",
            Op::Introspect => "introspect",
            Op::Userinfo => "userinfo",
            Op::Flow => "flow",
            Op::FlowConsent => "flow-consent",
            Op::Login => "login",
            Op::Mixed => "mixed",
        }
    }
}

pub enum Outcome {
    Ok {
        http: u32,
    },
    Failed {
        http: u32,
        why: String,
    },
    /// The pool this operation draws from (unredeemed codes) is used up.
    Exhausted,
}

/// What every worker shares: the seeding plan, and the cursors of the pools that operations
/// consume (codes are single-use; a revoked token stays revoked).
pub struct Fixture {
    pub plan: Plan,
    pub next_code: AtomicU64,
    pub code_end: u64,
    pub next_revoke: AtomicU64,
}

impl Fixture {
    pub fn new(plan: Plan) -> Fixture {
        Fixture {
            plan,
            next_code: AtomicU64::new(0),
            code_end: plan.codes,
            next_revoke: AtomicU64::new(0),
        }
    }
}

/// A worker's own state: its login form's pre-session cookie and CSRF token.
#[derive(Default)]
pub struct WorkerState {
    pre_session: Option<(String, String)>,
}

/// Spreads consecutive indices over a pool (a multiplicative permutation when the pool size
/// is coprime with the prime).
fn spread(i: u64, (start, len): (u64, u64)) -> u64 {
    const PRIME: u128 = 2_654_435_761;
    start + ((i as u128 * PRIME) % len as u128) as u64
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn expect(reply: &Reply, what: &str, wanted: u16, http: u32) -> Outcome {
    if reply.status.as_u16() == wanted {
        Outcome::Ok { http }
    } else {
        Outcome::Failed {
            http,
            why: format!("{what} → {}: {}", reply.status.as_u16(), reply.excerpt()),
        }
    }
}

/// The value of `name="FIELD" value="..."` in a server-rendered form.
pub(crate) fn form_field(body: &[u8], field: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let marker = format!("name=\"{field}\" value=\"");
    let start = text.find(&marker)? + marker.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

pub async fn execute(
    fixture: &Fixture,
    op: Op,
    i: u64,
    conn: &mut Conn,
    state: &mut WorkerState,
) -> Outcome {
    match run(fixture, op, i, conn, state).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            http: 1,
            why: format!("{}: {e:#}", op.name()),
        },
    }
}

async fn run(
    fixture: &Fixture,
    op: Op,
    i: u64,
    conn: &mut Conn,
    state: &mut WorkerState,
) -> Result<Outcome> {
    let plan = &fixture.plan;
    match op {
        Op::Ceiling => {
            let reply = conn.get("/healthz", &[]).await?;
            Ok(expect(&reply, "GET /healthz", 200, 1))
        }
        Op::Refresh => refresh(plan, i, conn).await,
        Op::Exchange => {
            let c = fixture.next_code.fetch_add(1, Ordering::Relaxed);
            if c >= fixture.code_end {
                return Ok(Outcome::Exhausted);
            }
            let client = plan.code_client(c);
            let code = seed::secret(Kind::Code, c);
            exchange(conn, client, &code, 0).await
        }
        Op::Introspect => introspect(plan, i, conn).await,
        Op::Userinfo => {
            let t = spread(i, plan.access_pool());
            let auth = format!("Bearer {}", seed::secret(Kind::Access, t));
            let reply = conn
                .get("/oauth/user/info", &[("authorization", &auth)])
                .await?;
            Ok(expect(&reply, "GET /oauth/user/info", 200, 1))
        }
        Op::Flow => flow(plan, i, conn, false).await,
        Op::FlowConsent => flow(plan, i, conn, true).await,
        Op::Login => login(plan, i, conn, state).await,
        Op::Mixed => {
            // Decided by a hash of the index, so the mix holds over any stretch of requests.
            match seed::mix(i) % 100 {
                0..70 => refresh(plan, i, conn).await,
                70..90 => flow(plan, i, conn, false).await,
                90..95 => revoke(fixture, conn).await,
                _ => introspect(plan, i, conn).await,
            }
        }
    }
}

async fn refresh(plan: &Plan, i: u64, conn: &mut Conn) -> Result<Outcome> {
    let t = spread(i, plan.refresh_pool());
    let k = plan.token_client(t);
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &seed::client_id(k)),
        ("client_secret", &seed::secret(Kind::ClientSecret, k)),
        ("refresh_token", &seed::secret(Kind::Refresh, t)),
    ]);
    let reply = conn.post_form("/oauth/v2/token", &[], body).await?;
    Ok(expect(&reply, "POST /oauth/v2/token (refresh)", 200, 1))
}

async fn exchange(conn: &mut Conn, client: u64, code: &str, before: u32) -> Result<Outcome> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", &seed::client_id(client)),
        ("client_secret", &seed::secret(Kind::ClientSecret, client)),
        ("redirect_uri", seed::REDIRECT_URI),
        ("code", code),
    ]);
    let reply = conn.post_form("/oauth/v2/token", &[], body).await?;
    Ok(expect(
        &reply,
        "POST /oauth/v2/token (code)",
        200,
        before + 1,
    ))
}

async fn introspect(plan: &Plan, i: u64, conn: &mut Conn) -> Result<Outcome> {
    let t = spread(i, plan.access_pool());
    let k = plan.token_client(t);
    let body = form(&[
        ("client_id", &seed::client_id(k)),
        ("client_secret", &seed::secret(Kind::ClientSecret, k)),
        ("token", &seed::secret(Kind::Access, t)),
    ]);
    let reply = conn.post_form("/oauth/v2/introspect", &[], body).await?;
    if reply.status == 200 && !reply.body_contains("\"active\":true") {
        return Ok(Outcome::Failed {
            http: 1,
            why: format!("introspect: a live token is inactive: {}", reply.excerpt()),
        });
    }
    Ok(expect(&reply, "POST /oauth/v2/introspect", 200, 1))
}

async fn revoke(fixture: &Fixture, conn: &mut Conn) -> Result<Outcome> {
    let r = fixture.next_revoke.fetch_add(1, Ordering::Relaxed);
    let (start, len) = fixture.plan.revoke_pool();
    // Past the end of the pool, tokens are revoked again: still `200 {"status":"success"}`
    // in the standard dialect (RFC 7009 §2.2).
    let body = form(&[("token", &seed::secret(Kind::Access, start + r % len))]);
    let reply = conn.post_form("/oauth/v2/token/revoke", &[], body).await?;
    Ok(expect(&reply, "POST /oauth/v2/token/revoke", 200, 1))
}

/// `/oauth/v2/auth` with a session cookie → (consent page → Accept) → 302 with a code → the
/// code exchange, as a browser and the client's backend would do it.
async fn flow(plan: &Plan, i: u64, conn: &mut Conn, prompt: bool) -> Result<Outcome> {
    let s = i % plan.sessions;
    let k = (i / plan.sessions) % plan.flow_clients;
    let client = seed::client_id(k);
    // The benchmarked server runs at the default location, `us`; cookie names carry it.
    let cookie = format!("grantd_session_us={}", seed::secret(Kind::Session, s));
    let state = i.to_string();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client.as_str()),
        ("redirect_uri", seed::REDIRECT_URI),
        ("scope", seed::SCOPE),
        ("state", state.as_str()),
    ];
    if prompt {
        query.push(("access_type", "offline"));
        query.push(("prompt", "consent"));
    }
    let path = format!("/oauth/v2/auth?{}", form(&query));
    let mut reply = conn.get(&path, &[("cookie", &cookie)]).await?;
    let mut http = 1;
    if reply.status == 200 {
        let (Some(csrf), Some(consent_id)) = (
            form_field(&reply.body, "csrf_token"),
            form_field(&reply.body, "consent_id"),
        ) else {
            return Ok(Outcome::Failed {
                http,
                why: format!("flow: no consent form: {}", reply.excerpt()),
            });
        };
        let body = form(&[
            ("csrf_token", &csrf),
            ("consent_id", &consent_id),
            ("decision", "accept"),
        ]);
        reply = conn
            .post_form("/oauth/v2/auth/consent", &[("cookie", &cookie)], body)
            .await?;
        http += 1;
    }
    let code = reply
        .header("location")
        .filter(|_| reply.status == 302)
        .and_then(|location| location.split_once('?'))
        .and_then(|(_, query)| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "code")
                .map(|(_, code)| code.into_owned())
        });
    let Some(code) = code else {
        return Ok(Outcome::Failed {
            http,
            why: format!(
                "flow: expected a redirect with a code, got {} {:?}: {}",
                reply.status.as_u16(),
                reply.header("location"),
                reply.excerpt()
            ),
        });
    };
    exchange(conn, k, &code, http).await
}

/// The login form, as a browser posts it: a pre-session cookie (from `GET /`, once per
/// worker) and the CSRF token of its form; every password is verified with Argon2id.
async fn login(plan: &Plan, i: u64, conn: &mut Conn, state: &mut WorkerState) -> Result<Outcome> {
    let mut http = 0;
    if state.pre_session.is_none() {
        let page = conn.get("/", &[]).await?;
        http += 1;
        let cookie = page
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.split(';')
                    .next()
                    .filter(|c| c.starts_with("grantd_pre_us="))
            })
            .map(str::to_owned);
        match (cookie, form_field(&page.body, "csrf_token")) {
            (Some(cookie), Some(csrf)) => state.pre_session = Some((cookie, csrf)),
            _ => {
                return Ok(Outcome::Failed {
                    http,
                    why: format!("login: no pre-session from GET /: {}", page.excerpt()),
                })
            }
        }
    }
    let Some((cookie, csrf)) = &state.pre_session else {
        return Ok(Outcome::Failed {
            http,
            why: "login: no pre-session".into(),
        });
    };
    let user = plan.token_user(i);
    let body = form(&[
        ("csrf_token", csrf),
        ("next", "/"),
        ("email", &seed::email(user)),
        ("password", seed::PASSWORD),
    ]);
    let reply = conn
        .post_form("/signin", &[("cookie", cookie.as_str())], body)
        .await?;
    http += 1;
    if reply.status != 303 {
        // A rejected form gets a fresh pre-session next time.
        state.pre_session = None;
    }
    Ok(expect(&reply, "POST /signin", 303, http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_visits_every_index_of_the_pool() {
        let pool = (500, 1000);
        let seen: std::collections::HashSet<u64> = (0..1000).map(|i| spread(i, pool)).collect();
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().all(|t| (500..1500).contains(t)));
    }

    #[test]
    fn form_fields_are_read_from_rendered_forms() {
        let html = br#"<input type="hidden" name="csrf_token" value="abc123">"#;
        assert_eq!(form_field(html, "csrf_token").as_deref(), Some("abc123"));
        assert_eq!(form_field(html, "consent_id"), None);
    }
}
