//! Durability under load (issue 5): `kill -9` the real `grantd serve` while the `mixed`
//! scenario runs against it, restart it on the same database, and check that everything the
//! load generator was told before the kill still holds. Ten rounds on SQLite and ten on
//! PostgreSQL, each round on the database the previous rounds left.
//!
//! - The load: `WORKERS` concurrent workers, each a browser signed in once through the login
//!   form plus the client's backend, doing the `mixed` scenario of `grantd-bench`: 70 %
//!   refresh_token grants over the refresh tokens the worker holds, 20 % redirect flows
//!   (`prompt=consent&access_type=offline`: consent page → Accept → 302 with a code →
//!   `authorization_code` grant, which issues a refresh token; or, once the worker has
//!   consented, the silent flow, which issues an access token only), 5 % revocations (of an
//!   access token or of a refresh token with its access tokens) and 5 % introspections.
//! - Each worker keeps a ledger: every token from a 2xx answer, and every revocation answered
//!   `200 {"status":"success"}`. Before the kill every answer must be the right one.
//! - After `kill_after(round)` acknowledged answers the server gets SIGKILL while workers are
//!   still sending. Requests in flight then have an unknown outcome and are not checked (a
//!   revocation in flight makes its token, and a refresh token's access tokens, unknown).
//! - Restarted on the same database: every acknowledged access token still opens
//!   `/oauth/user/info` and every acknowledged refresh token is still active at introspection,
//!   unless an acknowledged revocation covers it, in which case it is refused — tokens of
//!   every earlier round included. The next round's load then refreshes the old refresh tokens
//!   and runs silent flows on the old sessions and consents, which must survive too.
//!
//! The configuration lifts every cap and throttle the load could reach, so no acknowledged
//! token may disappear legitimately. The SQLite database lives in a temporary directory; the
//! PostgreSQL test creates its own database through `GRANTD_TEST_POSTGRES` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards even on failure,
//! and says it is skipped without that variable. Ports are ephemeral; nothing sleeps for a
//! fixed time. Each round prints one line (to stderr, past the harness's capture).

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use reqwest::Url;
use tokio::sync::Notify;

use support::http::{send, Http, Reply};
use support::node::*;
use support::oauth::{auth_url, TestClient};
use support::postgres::{self, PgDatabase};

/// Kill-and-restart rounds per backend.
const ROUNDS: usize = 10;
/// Concurrent load-generator workers.
const WORKERS: usize = 16;
/// Requests at once while checking after a restart.
const CHECKERS: usize = 16;
const PUBLIC_URL: &str = "http://accounts.grantd.test";
/// The built-in profile scope (so tokens open `/oauth/user/info`) and one registered here.
const SCOPE: &str = "AaaServer.profile.READ,Demo.x.READ";
/// No cap or throttle the load could reach: every refresh is allowed and no token is evicted
/// (not even beyond 20 refresh tokens per user and client), so an acknowledged token can only
/// stop working by an acknowledged revocation.
const CONFIG: &str = "[limits]\n\
                      codes_per_window = 1000000\n\
                      refreshes_per_window = 1000000\n\
                      active_access_tokens_per_refresh = 1000000\n\
                      refresh_tokens_per_grant = 1000000\n";

/// Acknowledged answers the load generator waits for before killing the server in `round`
/// (1 to `ROUNDS`): a different point of the load each round, from 40 to 373.
fn kill_after(round: usize) -> usize {
    3 + 37 * round
}

// ---- what the load generator was told ---------------------------------------------------------

/// What an acknowledged token's fate is, as far as the load generator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Issued with a 2xx; no revocation sent.
    Live,
    /// A revocation is on the way.
    Revoking,
    /// A revocation was acknowledged: refused from then on.
    Revoked,
    /// A revocation was in flight at a kill: either way is right.
    Unknown,
}

#[derive(Debug)]
struct Token {
    value: String,
    /// The round whose load received it.
    round: usize,
    fate: Fate,
    /// For an access token, the refresh token (index in `Ledger::refresh`) it came from,
    /// whose revocation revokes it too.
    parent: Option<usize>,
}

/// What a token must do after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Works,
    Refused,
    Either,
}

#[derive(Debug, Default)]
struct Ledger {
    refresh: Vec<Token>,
    access: Vec<Token>,
    revocations: usize,
}

impl Ledger {
    fn expect_refresh(&self, i: usize) -> Expect {
        match self.refresh[i].fate {
            Fate::Live => Expect::Works,
            Fate::Revoked => Expect::Refused,
            Fate::Revoking | Fate::Unknown => Expect::Either,
        }
    }

    fn expect_access(&self, i: usize) -> Expect {
        let token = &self.access[i];
        let parent = token.parent.map(|p| self.expect_refresh(p));
        match (token.fate, parent) {
            (Fate::Revoked, _) | (_, Some(Expect::Refused)) => Expect::Refused,
            (Fate::Live, None | Some(Expect::Works)) => Expect::Works,
            _ => Expect::Either,
        }
    }
}

// ---- one round of load ------------------------------------------------------------------------

/// What every worker of a round shares.
struct Load {
    base: String,
    app: TestClient,
    round: usize,
    /// Acknowledged answers that trigger the kill.
    target: usize,
    answers: AtomicUsize,
    in_flight: AtomicUsize,
    /// Set just before the kill: from then on, a failed request is expected.
    killed: AtomicBool,
    /// Woken when `target` answers arrived or a worker failed.
    reached: Notify,
    failure: Mutex<Option<String>>,
}

enum Failure {
    /// No (complete) answer.
    Lost(String),
    /// An answer, but not the right one.
    Wrong(String),
}

impl Load {
    /// One request, read completely; counted as in flight meanwhile.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let reply = Reply::of(request).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        reply.map_err(Failure::Lost)
    }

    /// A right answer arrived.
    fn answered(&self) {
        if self.answers.fetch_add(1, Ordering::SeqCst) + 1 == self.target {
            self.reached.notify_one();
        }
    }

    fn fail(&self, why: String) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        self.reached.notify_one();
    }

    fn assert_no_failure(&self) {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(failure) = failure {
            panic!("round {}: {failure}", self.round);
        }
    }

    fn auth_url(&self, extra: &[(&str, &str)]) -> String {
        auth_url(&self.base, &self.app, SCOPE, extra)
    }
}

fn wrong(what: &str, reply: &Reply) -> Failure {
    Failure::Wrong(format!("{what} → {}: {}", reply.status, reply.body))
}

/// The code of a redirect to the client.
fn code_of(reply: &Reply) -> Result<String, Failure> {
    let location = reply
        .header("location")
        .filter(|_| reply.status == 302)
        .ok_or_else(|| wrong("the authorization (a redirect with a code)", reply))?;
    let url = Url::parse(location).map_err(|e| Failure::Wrong(format!("{location}: {e}")))?;
    if !url.as_str().starts_with(REDIRECT_URI) {
        return Err(Failure::Wrong(format!("redirected to {url}")));
    }
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Failure::Wrong(format!("no code in {url}")))
}

/// The body as JSON (`null` if it is not JSON: a worker reports, never panics).
fn json_of(reply: &Reply) -> serde_json::Value {
    reply.try_json().unwrap_or_default()
}

/// A token from a 200 token-endpoint answer.
fn token_in(reply: &Reply, field: &str) -> Result<String, Failure> {
    json_of(reply)[field]
        .as_str()
        .filter(|_| reply.status == 200)
        .map(str::to_owned)
        .ok_or_else(|| wrong(&format!("the token request (no {field})"), reply))
}

/// A browser (the user's, signed in once) and the client's backend, with what they were told.
struct Worker {
    id: usize,
    browser: Http,
    api: Http,
    rng: u64,
    /// This worker has had a consent acknowledged, so silent flows must work.
    consented: bool,
    ledger: Ledger,
}

impl Worker {
    /// splitmix64: a deterministic sequence per worker.
    fn roll(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random element of `items`.
    fn pick(&mut self, items: &[usize]) -> Option<usize> {
        if items.is_empty() {
            None
        } else {
            Some(items[(self.roll() % items.len() as u64) as usize])
        }
    }

    fn live_refresh(&self) -> Vec<usize> {
        (0..self.ledger.refresh.len())
            .filter(|&i| self.ledger.refresh[i].fate == Fate::Live)
            .collect()
    }

    fn live_access(&self) -> Vec<usize> {
        (0..self.ledger.access.len())
            .filter(|&i| self.ledger.expect_access(i) == Expect::Works)
            .collect()
    }

    /// The `mixed` scenario until the server is killed (or an answer is wrong).
    async fn drive(mut self, load: Arc<Load>) -> Worker {
        loop {
            let step = match self.roll() % 100 {
                0..70 => self.refresh(&load).await,
                70..85 => self.flow(&load, true).await,
                85..90 => self.flow(&load, !self.consented).await,
                90..95 => self.revoke(&load).await,
                _ => self.introspect(&load).await,
            };
            match step {
                Ok(()) => {}
                // The server is gone: this request's outcome is unknown.
                Err(Failure::Lost(_)) if load.killed.load(Ordering::SeqCst) => return self,
                Err(Failure::Lost(e)) => {
                    load.fail(format!(
                        "worker {}: a request failed before the kill: {e}",
                        self.id
                    ));
                    return self;
                }
                Err(Failure::Wrong(e)) => {
                    load.fail(format!(
                        "worker {}: a wrong answer before the kill: {e}",
                        self.id
                    ));
                    return self;
                }
            }
        }
    }

    /// A refresh_token grant with one of this worker's live refresh tokens.
    async fn refresh(&mut self, load: &Load) -> Result<(), Failure> {
        let Some(r) = self.pick(&self.live_refresh()) else {
            return self.flow(load, true).await;
        };
        let reply = load
            .call(refresh(
                &self.api,
                &load.base,
                &load.app,
                &self.ledger.refresh[r].value,
            ))
            .await?;
        let access = token_in(&reply, "access_token")?;
        self.ledger.access.push(Token {
            value: access,
            round: load.round,
            fate: Fate::Live,
            parent: Some(r),
        });
        load.answered();
        Ok(())
    }

    /// The redirect flow with the worker's session: with `consent`, `prompt=consent` and
    /// `access_type=offline` (consent page, Accept, a refresh token); without, the silent
    /// approval of an earlier consent (an access token only).
    async fn flow(&mut self, load: &Load, consent: bool) -> Result<(), Failure> {
        let nonce = self.roll() % 1_000_000;
        let state = format!("w{}r{}n{nonce}", self.id, load.round);
        let mut extra = vec![("state", state.as_str())];
        if consent {
            extra.extend([("access_type", "offline"), ("prompt", "consent")]);
        }
        let mut reply = load
            .call(self.browser.client.get(load.auth_url(&extra)))
            .await?;
        if consent {
            if !reply.is_consent_page() {
                return Err(wrong("the authorization (the consent page)", &reply));
            }
            load.answered();
            let mut form = reply.form_with("decision");
            form.set("decision", "accept");
            reply = load
                .call(self.browser.client.post(form.action).form(&form.fields))
                .await?;
        }
        let code = code_of(&reply)?;
        if !reply
            .header("location")
            .is_some_and(|l| l.contains(&format!("state={state}")))
        {
            return Err(wrong("the authorization (state not echoed)", &reply));
        }
        self.consented |= consent;
        load.answered();

        let reply = load
            .call(exchange(&self.api, &load.base, &load.app, &code))
            .await?;
        let access = token_in(&reply, "access_token")?;
        let parent = if consent {
            let refresh = token_in(&reply, "refresh_token")?;
            self.ledger.refresh.push(Token {
                value: refresh,
                round: load.round,
                fate: Fate::Live,
                parent: None,
            });
            Some(self.ledger.refresh.len() - 1)
        } else {
            None
        };
        self.ledger.access.push(Token {
            value: access,
            round: load.round,
            fate: Fate::Live,
            parent,
        });
        load.answered();
        Ok(())
    }

    /// Revokes a live access token, or a live refresh token (with its access tokens) while
    /// the worker keeps at least two others.
    async fn revoke(&mut self, load: &Load) -> Result<(), Failure> {
        let refresh_tokens = self.live_refresh();
        let which = if self.roll().is_multiple_of(2) && refresh_tokens.len() >= 3 {
            self.pick(&refresh_tokens).map(|i| (true, i))
        } else {
            self.pick(&self.live_access()).map(|i| (false, i))
        };
        let Some((is_refresh, i)) = which else {
            return self.flow(load, true).await;
        };
        let token = if is_refresh {
            &mut self.ledger.refresh[i]
        } else {
            &mut self.ledger.access[i]
        };
        token.fate = Fate::Revoking;
        let sent = load.call(revoke(&self.api, &load.base, &token.value)).await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(lost) => {
                token.fate = Fate::Unknown;
                return Err(lost);
            }
        };
        if reply.status != 200 || json_of(&reply) != serde_json::json!({"status": "success"}) {
            return Err(wrong("the revocation", &reply));
        }
        token.fate = Fate::Revoked;
        self.ledger.revocations += 1;
        load.answered();
        Ok(())
    }

    /// Introspects a live access token (or, one time in four, a live refresh token).
    async fn introspect(&mut self, load: &Load) -> Result<(), Failure> {
        let token = if self.roll().is_multiple_of(4) {
            self.pick(&self.live_refresh())
                .map(|i| self.ledger.refresh[i].value.clone())
        } else {
            self.pick(&self.live_access())
                .map(|i| self.ledger.access[i].value.clone())
        };
        let Some(token) = token else {
            return self.refresh(load).await;
        };
        let reply = load
            .call(introspect(&self.api, &load.base, &load.app, &token))
            .await?;
        if reply.status != 200 || json_of(&reply)["active"] != true {
            return Err(wrong("the introspection of a live token", &reply));
        }
        load.answered();
        Ok(())
    }
}

/// What one round's load did.
struct Round {
    answers: usize,
    in_flight_at_kill: usize,
    load_time: Duration,
}

/// Runs the load on `node` until `kill_after(round)` answers, kills the server, and waits for
/// the workers to notice.
async fn load_and_kill(
    node: Node,
    app: &TestClient,
    round: usize,
    workers: Vec<Worker>,
) -> (Vec<Worker>, Round) {
    let started = Instant::now();
    let load = Arc::new(Load {
        base: node.url.clone(),
        app: app.clone(),
        round,
        target: kill_after(round),
        answers: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
        reached: Notify::new(),
        failure: Mutex::new(None),
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.drive(load.clone())))
        .collect();
    let reached = tokio::time::timeout(WAIT, load.reached.notified()).await;
    load.assert_no_failure();
    assert!(
        reached.is_ok(),
        "round {round}: {} answers within {WAIT:?}, wanted {}",
        load.answers.load(Ordering::SeqCst),
        load.target
    );

    let in_flight_at_kill = load.in_flight.load(Ordering::SeqCst);
    load.killed.store(true, Ordering::SeqCst);
    let status = node.kill();
    assert!(!status.success(), "killed: {status}");
    let load_time = started.elapsed();

    let workers = tokio::time::timeout(WAIT, join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("round {round}: workers still running {WAIT:?} after the kill"))
        .into_iter()
        .map(|joined| joined.unwrap_or_else(|e| panic!("worker: {e}")))
        .collect();
    load.assert_no_failure();
    let answers = load.answers.load(Ordering::SeqCst);
    assert!(answers >= load.target, "round {round}: {answers} answers");
    (
        workers,
        Round {
            answers,
            in_flight_at_kill,
            load_time,
        },
    )
}

// ---- after a restart ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Checked {
    work: usize,
    refused: usize,
    unknown: usize,
}

/// One acknowledged token to check.
struct Check {
    worker: usize,
    refresh: bool,
    index: usize,
    round: usize,
    value: String,
    expect: Expect,
}

/// Checks every token in every worker's ledger against the restarted server at `base`.
async fn check_all(
    base: &str,
    app: &TestClient,
    workers: &[Worker],
    after_round: usize,
) -> Checked {
    let mut checks = Vec::new();
    let mut checked = Checked::default();
    for worker in workers {
        let ledger = &worker.ledger;
        for (refresh, tokens) in [(true, &ledger.refresh), (false, &ledger.access)] {
            for (index, token) in tokens.iter().enumerate() {
                let expect = if refresh {
                    ledger.expect_refresh(index)
                } else {
                    ledger.expect_access(index)
                };
                match expect {
                    Expect::Works => checked.work += 1,
                    Expect::Refused => checked.refused += 1,
                    Expect::Either => {
                        checked.unknown += 1;
                        continue;
                    }
                }
                checks.push(Check {
                    worker: worker.id,
                    refresh,
                    index,
                    round: token.round,
                    value: token.value.clone(),
                    expect,
                });
            }
        }
    }
    let http = Http::new();
    let failures: Vec<String> = stream::iter(checks)
        .map(|check| {
            let http = http.clone();
            async move {
                let (ok, reply) = if check.refresh {
                    let reply = send(introspect(&http, base, app, &check.value)).await;
                    let json = reply.json();
                    let ok = match check.expect {
                        Expect::Works => {
                            reply.status == 200
                                && json["active"] == true
                                && json["token_type"] == "Bearer"
                                && json.get("exp").is_none()
                        }
                        _ => reply.status == 200 && json == serde_json::json!({"active": false}),
                    };
                    (ok, reply)
                } else {
                    let reply = send(user_info(&http, base, &check.value)).await;
                    let ok = match check.expect {
                        Expect::Works => reply.status == 200 && reply.json()["Email"] == EMAIL,
                        _ => reply.status == 401,
                    };
                    (ok, reply)
                };
                (!ok).then(|| {
                    format!(
                        "{} token #{} of worker {} (acknowledged in round {}) should be {}: \
                         {} {}",
                        if check.refresh { "refresh" } else { "access" },
                        check.index,
                        check.worker,
                        check.round,
                        if check.expect == Expect::Works {
                            "working"
                        } else {
                            "refused (revoked)"
                        },
                        reply.status,
                        reply.body
                    )
                })
            }
        })
        .buffer_unordered(CHECKERS)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "after the kill of round {after_round}, {} of {} acknowledged tokens and revocations \
         were lost:\n{}",
        failures.len(),
        checked.work + checked.refused,
        failures[..failures.len().min(20)].join("\n")
    );
    checked
}

// ---- the test --------------------------------------------------------------------------------

fn say(line: &str) {
    // Straight to stderr, past the harness's capture, so CI logs show the work done.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The rounds on `database` (created here through the admin CLI), with files in `dir`.
async fn kill_and_restart(backend: &str, database: &str, dir: &Path) {
    let started = Instant::now();
    let config = dir.join("grantd.toml");
    std::fs::write(&config, CONFIG).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    succeeded(&["migrate"], &grantd(database, None, &["migrate"], None));
    let scope = ["scope", "add", "Demo.x.READ", "--description", "Read x"];
    succeeded(&scope, &grantd(database, Some(&config), &scope, None));
    add_user(database, Some(&config), EMAIL);
    let app = add_server_client(database, &config, "Crash test app");

    let mut node = Node::start(dir, "start", database, &config, PUBLIC_URL);
    // Every worker signs in once, through the login form; the sessions must survive every
    // kill, as must the consents given in the first round. One after another: sixteen
    // sign-ins of one account from one address at once are what a guessing burst looks like,
    // and sign-in throttling checks only five of them (issue 12).
    let mut workers: Vec<Worker> = Vec::with_capacity(WORKERS);
    for id in 0..WORKERS {
        let browser = Http::browser(&node.url);
        let load_url = auth_url(&node.url, &app, SCOPE, &[]);
        sign_in_at(&browser, &load_url, &node.url, EMAIL).await;
        workers.push(Worker {
            id,
            browser,
            api: Http::new(),
            rng: 0x5eed_0000 + id as u64,
            consented: false,
            ledger: Ledger::default(),
        });
    }

    let mut total_answers = 0;
    let mut last = Checked::default();
    for round in 1..=ROUNDS {
        let (after, done) = load_and_kill(node, &app, round, workers).await;
        workers = after;
        total_answers += done.answers;
        assert!(
            done.in_flight_at_kill >= 1,
            "round {round}: no request was in flight at the kill"
        );

        let restarted = Instant::now();
        node = Node::start(
            dir,
            &format!("restart-{round}"),
            database,
            &config,
            PUBLIC_URL,
        );
        let checked = check_all(&node.url, &app, &workers, round).await;
        let (access, refresh, revocations) = workers.iter().fold((0, 0, 0), |sum, w| {
            (
                sum.0 + w.ledger.access.len(),
                sum.1 + w.ledger.refresh.len(),
                sum.2 + w.ledger.revocations,
            )
        });
        say(&format!(
            "crash {backend} {round}/{ROUNDS}: SIGKILL after {} acknowledged answers (K={}, \
             {:.1?} of load) with {} requests in flight; acknowledged so far \
             {access} access + {refresh} refresh tokens, {revocations} revocations; after the \
             restart {} work, {} are refused as revoked, {} unknown (revocation in flight at a \
             kill); restart + check {:.1?}",
            done.answers,
            kill_after(round),
            done.load_time,
            done.in_flight_at_kill,
            checked.work,
            checked.refused,
            checked.unknown,
            restarted.elapsed(),
        ));
        last = checked;
    }
    drop(node);
    // The checks were not vacuous: tokens of both kinds held, and revocations held too.
    assert!(last.work > 0 && last.refused > 0, "{last:?}");
    say(&format!(
        "crash {backend}: {ROUNDS} kills, {total_answers} acknowledged answers, {} tokens \
         checked after the last restart, nothing lost, in {:.1?}",
        last.work + last.refused,
        started.elapsed()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_token_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/grantd.db", dir.path().display());
    kill_and_restart("sqlite", &database, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_token_across_kill_9() {
    let Some(admin_url) = postgres::server("postgres_keeps_every_acknowledged_token_across_kill_9")
    else {
        return;
    };
    let db = PgDatabase::create(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    kill_and_restart("postgres", &db.url(), dir.path()).await;
}
