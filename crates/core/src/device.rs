//! The device flow (RFC 8628, and Zoho's `/oauth/v3/device` dialect of it; CONTRACT.md "Device
//! flow"): user codes (their alphabet, shape and normal form), which clients may use the flow,
//! what a poll answers and what it does to the device code's bookkeeping, and the throttle on
//! guessing user codes. Pure decisions; the store keeps device codes and guess tallies and
//! applies these inside its transactions, the server renders the answers in either dialect.

use std::fmt;

use rand::RngCore;

use crate::client::{ClientId, ClientType};
use crate::clock::Timestamp;
use crate::grant::AccessType;
use crate::limits::Limits;
use crate::scope::Scopes;
use crate::signin::Tally;
use crate::source::Source;

/// RFC 8628 §6.1: no characters that read alike (0/O, 1/I/L), upper-case only, so that a code
/// read off a TV is typed right the first time. 31 symbols, 8 of them: about 39.6 bits.
pub const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const USER_CODE_LEN: usize = 8;

/// Which client types may use the device flow (CONTRACT.md "Client types": `non-browser`
/// only; every other type has a browser and uses the redirect flow, or is a Self Client).
pub fn may_use_device_flow(kind: ClientType) -> bool {
    kind == ClientType::NonBrowser
}

/// A user code in its normal form: 8 characters of [`USER_CODE_ALPHABET`]. Shown to people as
/// `XXXX-XXXX`; typed back in any case, with or without the dash and spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    pub fn generate() -> UserCode {
        // 256 is not a multiple of 31: bytes at or above the largest multiple are drawn again,
        // so every symbol is equally likely (a biased code is easier to guess).
        const FAIR: u8 = (256 - 256 % USER_CODE_ALPHABET.len()) as u8;
        let mut code = String::with_capacity(USER_CODE_LEN);
        let mut rng = rand::rng();
        while code.len() < USER_CODE_LEN {
            let mut byte = [0u8; 1];
            rng.fill_bytes(&mut byte);
            if byte[0] < FAIR {
                let symbol = USER_CODE_ALPHABET[byte[0] as usize % USER_CODE_ALPHABET.len()];
                code.push(symbol as char);
            }
        }
        UserCode(code)
    }

    /// What a person typed, in normal form: case folded, dashes and spaces dropped; `None`
    /// unless that leaves exactly 8 symbols of the alphabet.
    pub fn parse(typed: &str) -> Option<UserCode> {
        if typed.len() > 64 {
            return None;
        }
        let code: String = typed
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid =
            code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        valid.then_some(UserCode(code))
    }

    /// The normal form, as the store keys it (by hash).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `XXXX-XXXX`, as shown to people and sent to devices.
    pub fn display(&self) -> String {
        let (head, tail) = self.0.split_at(USER_CODE_LEN / 2);
        format!("{head}-{tail}")
    }
}

/// Short-lived and guessable only through the throttle, but still a secret: not in logs.
impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserCode(..)")
    }
}

/// Where a device authorization stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user at the verification page.
    Pending,
    /// The user accepted; the next poll gets the tokens. `auth_time`: when the user signed in
    /// (for the ID token); `None` for approvals from before OpenID Connect came to the flow.
    Approved {
        user_id: i64,
        auth_time: Option<Timestamp>,
    },
    /// The user rejected the request.
    Denied,
    /// The user's account lives at another data center: the device must poll there.
    OtherDc { location: String },
    /// Tokens were issued: a device code is single use.
    Used,
}

/// A device authorization as the store keeps it (the device code itself only as a hash, by
/// which it is found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    pub client_id: ClientId,
    pub scopes: Scopes,
    pub access_type: AccessType,
    pub status: DeviceStatus,
    /// The least number of seconds between two polls; grows by 5 with each `slow_down`.
    pub interval_secs: i64,
    pub last_poll_at: Option<Timestamp>,
    pub expires_at: Timestamp,
}

impl DeviceGrant {
    /// A new authorization for `client`: pending, for `device_code_lifetime_secs`, polled no
    /// more often than `device_poll_interval_secs` (CONTRACT.md "Limits").
    pub fn new(
        client_id: ClientId,
        scopes: Scopes,
        access_type: AccessType,
        now: Timestamp,
        limits: &Limits,
    ) -> DeviceGrant {
        DeviceGrant {
            client_id,
            scopes,
            access_type,
            status: DeviceStatus::Pending,
            interval_secs: limits.device_poll_interval_secs,
            last_poll_at: None,
            expires_at: now.plus(limits.device_code_lifetime_secs),
        }
    }

    /// An authorization handed over by the data center where the device began it, because the
    /// user's account lives here (CONTRACT.md "Device flow": the device then polls here): pending
    /// again, never living longer than one begun here, nor polled more often than this DC
    /// allows or more slowly than a few slow_downs would make it. `None` once it has expired.
    pub fn handed_over(
        client_id: ClientId,
        scopes: Scopes,
        access_type: AccessType,
        interval_secs: i64,
        expires_at: Timestamp,
        now: Timestamp,
        limits: &Limits,
    ) -> Option<DeviceGrant> {
        if expires_at <= now {
            return None;
        }
        let fastest = limits.device_poll_interval_secs;
        let slowest = fastest.saturating_add(MAX_HANDED_OVER_SLOW_DOWNS * SLOW_DOWN_STEP_SECS);
        Some(DeviceGrant {
            client_id,
            scopes,
            access_type,
            status: DeviceStatus::Pending,
            interval_secs: interval_secs.clamp(fastest, slowest),
            last_poll_at: None,
            expires_at: expires_at.min(now.plus(limits.device_code_lifetime_secs)),
        })
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Whether the verification page may still decide it: live and pending.
    pub fn awaits_user(&self, now: Timestamp) -> bool {
        self.is_live(now) && self.status == DeviceStatus::Pending
    }

    /// Device codes that expired before this may be deleted: a day later, so that a device
    /// still polling is told `expired` rather than that its code is unknown.
    pub fn forgettable_before(now: Timestamp) -> Timestamp {
        now.minus(86_400)
    }
}

/// What a poll answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollAnswer {
    /// RFC 8628 §3.5 `authorization_pending`.
    Pending,
    /// `slow_down`: polled sooner than the interval after the last poll.
    SlowDown,
    /// `access_denied`.
    Denied,
    /// `expired` (Zoho) / `expired_token` (RFC 8628).
    Expired,
    /// Zoho's `other_dc`, with the data center to poll instead.
    OtherDc { location: String },
    /// Issue the tokens for this user, and mark the code used.
    Issue {
        user_id: i64,
        auth_time: Option<Timestamp>,
    },
    /// The code was already exchanged for tokens.
    Used,
    /// The code was issued to another client: refused, and left as it is.
    OtherClient,
}

/// A poll's answer, and the bookkeeping to write back (`None`: write nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollDecision {
    pub answer: PollAnswer,
    pub update: Option<PollUpdate>,
}

/// What a poll changes on the device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollUpdate {
    pub interval_secs: i64,
    pub last_poll_at: Timestamp,
    /// The tokens are issued: the code is used from now on.
    pub used: bool,
}

/// The slow_down step (RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this
/// and all subsequent requests").
pub const SLOW_DOWN_STEP_SECS: i64 = 5;

/// A handed-over authorization keeps the interval its device was told, up to this many
/// slow_downs above this DC's own.
const MAX_HANDED_OVER_SLOW_DOWNS: i64 = 12;

/// RFC 8628 §3.4–3.5, in this order: a code of another client is refused untouched; a used one
/// is refused; an expired one says so; a poll sooner than the interval after the last one is
/// told to slow down (and the interval grows); otherwise the status decides. Every counted
/// poll is remembered as the last one.
pub fn poll(grant: &DeviceGrant, client: &ClientId, now: Timestamp) -> PollDecision {
    let untouched = |answer| PollDecision {
        answer,
        update: None,
    };
    if grant.client_id != *client {
        return untouched(PollAnswer::OtherClient);
    }
    if grant.status == DeviceStatus::Used {
        return untouched(PollAnswer::Used);
    }
    if !grant.is_live(now) {
        return untouched(PollAnswer::Expired);
    }
    let too_soon = grant
        .last_poll_at
        .is_some_and(|last| now.0 < last.0.saturating_add(grant.interval_secs));
    let counted = |answer, interval_secs, used| PollDecision {
        answer,
        update: Some(PollUpdate {
            interval_secs,
            last_poll_at: now,
            used,
        }),
    };
    if too_soon {
        let slower = grant.interval_secs.saturating_add(SLOW_DOWN_STEP_SECS);
        return counted(PollAnswer::SlowDown, slower, false);
    }
    let interval = grant.interval_secs;
    match &grant.status {
        DeviceStatus::Pending => counted(PollAnswer::Pending, interval, false),
        DeviceStatus::Denied => counted(PollAnswer::Denied, interval, false),
        DeviceStatus::OtherDc { location } => counted(
            PollAnswer::OtherDc {
                location: location.clone(),
            },
            interval,
            false,
        ),
        DeviceStatus::Approved { user_id, auth_time } => counted(
            PollAnswer::Issue {
                user_id: *user_id,
                auth_time: *auth_time,
            },
            interval,
            true,
        ),
        // Handled above; kept exhaustive so a new status is decided here on purpose.
        DeviceStatus::Used => untouched(PollAnswer::Used),
    }
}

/// A device grant yields a refresh token for `access_type=offline`. The user always sees the
/// consent page here (they must confirm the code), so every approval is a prompted consent
/// in the sense of `authorization::issues_refresh_token`.
pub fn issues_refresh_token(access: AccessType) -> bool {
    access == AccessType::Offline
}

// ---- guessing user codes ------------------------------------------------------------------

/// The two tallies of wrong user codes a guess reads and writes: its source's, and everyone's
/// (RFC 8628 §5.1: with ~40 bits a code falls to an unthrottled guesser; the global tally
/// bounds guessing spread over many sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessTallies {
    pub global: Tally,
    pub source: Tally,
}

impl GuessTallies {
    pub const ZERO: GuessTallies = GuessTallies {
        global: Tally::ZERO,
        source: Tally::ZERO,
    };
}

/// Where the tallies are kept, in the order the store locks them (the empty key, the global
/// tally, sorts first), so concurrent guesses cannot deadlock.
pub fn guess_keys(source: &Source) -> [String; 2] {
    [String::new(), source.as_str().to_owned()]
}

/// Whether a user code may be looked up: refused while the source's or the global tally is
/// full, with the seconds until the fuller window ends. A refused guess is not counted, so
/// hammering does not extend the window; a throttled source cannot even try a right code
/// (else a right code passing would tell the guesser it was right).
pub fn admit_guess(before: &GuessTallies, now: Timestamp, limits: &Limits) -> Result<(), i64> {
    let window = limits.device_guess_window_secs;
    let full = |tally: Tally, limit: i64| {
        let current = in_window(tally, window, now);
        (current.failures >= limit).then(|| (current.since.0.saturating_add(window) - now.0).max(1))
    };
    let source = full(before.source, limits.device_guesses_per_source);
    let global = full(before.global, limits.device_guesses_global);
    match (source, global) {
        (None, None) => Ok(()),
        (a, b) => Err(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// The tallies after an admitted guess: a wrong code counts in both, a right one in neither.
pub fn after_guess(
    before: GuessTallies,
    right: bool,
    now: Timestamp,
    limits: &Limits,
) -> GuessTallies {
    let window = limits.device_guess_window_secs;
    let current = GuessTallies {
        global: in_window(before.global, window, now),
        source: in_window(before.source, window, now),
    };
    if right {
        return current;
    }
    GuessTallies {
        global: counted(current.global, now),
        source: counted(current.source, now),
    }
}

/// When a tally counts as zero, so the sweep may delete it.
pub fn guess_forget_at(tally: &Tally, limits: &Limits) -> Timestamp {
    tally.since.plus(limits.device_guess_window_secs)
}

/// A tally as a fixed window of `window_secs` from its first failure: zero once it passed.
fn in_window(tally: Tally, window_secs: i64, now: Timestamp) -> Tally {
    if tally.is_zero() || now.0 >= tally.since.0.saturating_add(window_secs) {
        Tally::ZERO
    } else {
        tally
    }
}

fn counted(tally: Tally, now: Timestamp) -> Tally {
    Tally {
        failures: tally.failures.saturating_add(1),
        since: if tally.is_zero() { now } else { tally.since },
        last: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn grant(status: DeviceStatus, last_poll: Option<i64>) -> DeviceGrant {
        DeviceGrant {
            client_id: ClientId::new("1000.TV".into()),
            scopes: Scopes::from_stored("Demo.x.READ"),
            access_type: AccessType::Offline,
            status,
            interval_secs: 30,
            last_poll_at: last_poll.map(|ago| NOW.minus(ago)),
            expires_at: NOW.plus(100),
        }
    }

    fn tv() -> ClientId {
        ClientId::new("1000.TV".into())
    }

    #[test]
    fn user_codes_have_the_contract_shape_and_no_look_alikes() {
        for _ in 0..200 {
            let code = UserCode::generate();
            assert_eq!(code.as_str().len(), 8);
            assert!(code
                .as_str()
                .bytes()
                .all(|b| USER_CODE_ALPHABET.contains(&b)));
            let shown = code.display();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(UserCode::parse(&shown), Some(code));
        }
        for look_alike in b"0O1IL" {
            assert!(!USER_CODE_ALPHABET.contains(look_alike));
        }
        assert_eq!(USER_CODE_ALPHABET.len(), 31);
        assert_ne!(UserCode::generate(), UserCode::generate());
    }

    #[test]
    fn typed_codes_are_normalised_or_refused() {
        let expected = UserCode::parse("WDJBMJHT");
        assert!(expected.is_some());
        for typed in [
            "wdjb-mjht",
            "WDJB MJHT",
            " wdjbmjht ",
            "Wd-Jb-Mj-Ht",
            "WDJB\u{a0}MJHT",
        ] {
            assert_eq!(UserCode::parse(typed), expected, "{typed:?}");
        }
        for bad in [
            "",
            "WDJB-MJH",
            "WDJB-MJHTX",
            "WDJB-MJH0",
            "WDJB-MJHO",
            "WDJB_MJHT",
            "ÄDJB-MJHT",
        ] {
            assert_eq!(UserCode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UserCode::parse(&"-".repeat(100)), None);
        assert_eq!(format!("{expected:?}"), "Some(UserCode(..))");
    }

    #[test]
    fn only_non_browser_clients_use_the_device_flow() {
        let allowed: Vec<ClientType> = ClientType::ALL
            .into_iter()
            .filter(|k| may_use_device_flow(*k))
            .collect();
        assert_eq!(allowed, [ClientType::NonBrowser]);
    }

    #[test]
    fn a_new_grant_lives_five_minutes_and_polls_every_thirty_seconds() {
        let limits = Limits::default();
        let new = DeviceGrant::new(
            tv(),
            Scopes::from_stored("A.b.READ"),
            AccessType::Online,
            NOW,
            &limits,
        );
        assert_eq!(new.expires_at, NOW.plus(300));
        assert_eq!(new.interval_secs, 30);
        assert!(new.awaits_user(NOW.plus(299)));
        assert!(!new.awaits_user(NOW.plus(300)));
    }

    #[test]
    fn polls_answer_by_status() {
        let cases = [
            (DeviceStatus::Pending, PollAnswer::Pending, false),
            (DeviceStatus::Denied, PollAnswer::Denied, false),
            (
                DeviceStatus::OtherDc {
                    location: "eu".into(),
                },
                PollAnswer::OtherDc {
                    location: "eu".into(),
                },
                false,
            ),
            (
                DeviceStatus::Approved {
                    user_id: 7,
                    auth_time: Some(NOW.minus(60)),
                },
                PollAnswer::Issue {
                    user_id: 7,
                    auth_time: Some(NOW.minus(60)),
                },
                true,
            ),
        ];
        for (status, answer, used) in cases {
            let decision = poll(&grant(status, Some(30)), &tv(), NOW);
            assert_eq!(decision.answer, answer);
            assert_eq!(
                decision.update,
                Some(PollUpdate {
                    interval_secs: 30,
                    last_poll_at: NOW,
                    used
                })
            );
        }
    }

    fn approved() -> DeviceStatus {
        DeviceStatus::Approved {
            user_id: 1,
            auth_time: None,
        }
    }

    #[test]
    fn polling_sooner_than_the_interval_slows_down_by_five_seconds() {
        let first = poll(&grant(DeviceStatus::Pending, None), &tv(), NOW);
        assert_eq!(
            first.answer,
            PollAnswer::Pending,
            "the first poll may come at once"
        );
        let early = poll(&grant(DeviceStatus::Pending, Some(29)), &tv(), NOW);
        assert_eq!(early.answer, PollAnswer::SlowDown);
        assert_eq!(
            early.update,
            Some(PollUpdate {
                interval_secs: 35,
                last_poll_at: NOW,
                used: false
            })
        );
        // Even an approved grant waits for a poll at the right pace.
        let eager = poll(&grant(approved(), Some(1)), &tv(), NOW);
        assert_eq!(eager.answer, PollAnswer::SlowDown);
        // The grown interval holds from then on.
        let mut slowed = grant(DeviceStatus::Pending, Some(34));
        slowed.interval_secs = 35;
        assert_eq!(poll(&slowed, &tv(), NOW).answer, PollAnswer::SlowDown);
        slowed.last_poll_at = Some(NOW.minus(35));
        assert_eq!(poll(&slowed, &tv(), NOW).answer, PollAnswer::Pending);
    }

    #[test]
    fn expired_used_and_foreign_codes_are_refused_untouched() {
        let mut old = grant(approved(), Some(60));
        old.expires_at = NOW;
        assert_eq!(
            poll(&old, &tv(), NOW),
            PollDecision {
                answer: PollAnswer::Expired,
                update: None
            }
        );
        let used = grant(DeviceStatus::Used, Some(1));
        assert_eq!(poll(&used, &tv(), NOW).answer, PollAnswer::Used);
        assert_eq!(poll(&used, &tv(), NOW).update, None);
        let other = ClientId::new("1000.OTHER".into());
        let foreign = poll(&grant(approved(), None), &other, NOW);
        assert_eq!(
            foreign,
            PollDecision {
                answer: PollAnswer::OtherClient,
                update: None
            }
        );
    }

    #[test]
    fn refresh_tokens_only_offline() {
        assert!(issues_refresh_token(AccessType::Offline));
        assert!(!issues_refresh_token(AccessType::Online));
    }

    #[test]
    fn a_handed_over_authorization_is_pending_and_bounded_by_this_dcs_limits() {
        let limits = Limits::default();
        let hand = |interval, expires_at| {
            DeviceGrant::handed_over(
                tv(),
                Scopes::from_stored("Demo.x.READ"),
                AccessType::Offline,
                interval,
                expires_at,
                NOW,
                &limits,
            )
        };
        let fastest = limits.device_poll_interval_secs;
        let kept = hand(fastest + 10, NOW.plus(120)).unwrap();
        assert_eq!(kept.status, DeviceStatus::Pending);
        assert_eq!(kept.interval_secs, fastest + 10, "a grown interval is kept");
        assert_eq!(kept.expires_at, NOW.plus(120));
        assert_eq!(kept.last_poll_at, None);
        assert_eq!(hand(1, NOW.plus(120)).unwrap().interval_secs, fastest);
        assert_eq!(
            hand(i64::MAX, NOW.plus(120)).unwrap().interval_secs,
            fastest + 60
        );
        let lifetime = limits.device_code_lifetime_secs;
        assert_eq!(
            hand(fastest, NOW.plus(lifetime * 10)).unwrap().expires_at,
            NOW.plus(lifetime),
            "never longer-lived than one begun here"
        );
        assert_eq!(hand(fastest, NOW), None, "expired: nothing to hand over");
    }

    fn limits(per_source: i64, global: i64) -> Limits {
        Limits {
            device_guesses_per_source: per_source,
            device_guesses_global: global,
            device_guess_window_secs: 600,
            ..Limits::default()
        }
    }

    /// `n` guesses from one source, each wrong unless `right`; how many were looked up.
    fn guesses(
        start: GuessTallies,
        n: usize,
        right: bool,
        at: Timestamp,
        limits: &Limits,
    ) -> (usize, GuessTallies) {
        let mut tallies = start;
        let mut looked = 0;
        for _ in 0..n {
            if admit_guess(&tallies, at, limits).is_ok() {
                looked += 1;
                tallies = after_guess(tallies, right, at, limits);
            }
        }
        (looked, tallies)
    }

    #[test]
    fn wrong_codes_count_per_source_right_ones_do_not() {
        let limits = limits(5, 100);
        let (looked, tallies) = guesses(GuessTallies::ZERO, 50, false, NOW, &limits);
        assert_eq!(looked, 5);
        assert_eq!(tallies.source.failures, 5);
        assert_eq!(tallies.global.failures, 5);
        assert_eq!(admit_guess(&tallies, NOW.plus(10), &limits), Err(590));
        // A right code from a fresh source is never counted.
        let (looked, right) = guesses(GuessTallies::ZERO, 50, true, NOW, &limits);
        assert_eq!((looked, right), (50, GuessTallies::ZERO));
        // The window is fixed from the first failure.
        assert!(admit_guess(&tallies, NOW.plus(599), &limits).is_err());
        assert!(admit_guess(&tallies, NOW.plus(600), &limits).is_ok());
        let again = after_guess(tallies, false, NOW.plus(600), &limits);
        assert_eq!(again.source.failures, 1);
        assert_eq!(again.source.since, NOW.plus(600));
        assert_eq!(guess_forget_at(&tallies.source, &limits), NOW.plus(600));
    }

    #[test]
    fn the_global_tally_stops_guessing_spread_over_sources() {
        let limits = limits(5, 12);
        let mut global = Tally::ZERO;
        let mut looked = 0;
        for _ in 0..10 {
            // A new source each time: only the global tally carries over.
            let start = GuessTallies {
                global,
                source: Tally::ZERO,
            };
            let (n, after) = guesses(start, 3, false, NOW, &limits);
            looked += n;
            global = after.global;
        }
        assert_eq!(looked, 12);
        let fresh = GuessTallies {
            global,
            source: Tally::ZERO,
        };
        assert_eq!(admit_guess(&fresh, NOW, &limits), Err(600));
    }

    #[test]
    fn guess_keys_lock_the_global_tally_first() {
        let keys = guess_keys(&Source::of([127, 0, 0, 9].into()));
        assert_eq!(keys[0], "");
        assert!(keys[0] < keys[1]);
    }
}
