//! Sign-in throttling (RFC 6819 §5.1.4.2.3, which warns that lockouts are a denial-of-service
//! tool): which password checks may happen, as pure decisions over three tallies of failed
//! attempts. The store keeps the tallies and applies these inside one transaction per attempt;
//! the server reads the source off the request and picks the page.
//!
//! Every attempt is counted as a failure *before* its password is checked, and a success takes
//! its own count back, so any number of parallel attempts check at most as many passwords as
//! the tallies allow. Three tallies bound three attacks:
//! - (account, source): exponential back-off after a few failures. The owner elsewhere is never
//!   held back by an attacker here, and the attacker here gets a check per growing delay.
//! - (source, any account): a limit per window, against spraying one password over many
//!   accounts.
//! - (account, any source): a generous ceiling per window, against guessing spread over many
//!   sources.

use crate::clock::Timestamp;
use crate::limits::Limits;
use crate::secret::SecretHash;
use crate::source::Source;

/// What a sign-in attempt is counted under: the account as typed (the hash of the email, so
/// unknown emails are counted alike and nothing typed into the email field is stored), and the
/// source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub account: SecretHash,
    pub source: Source,
}

impl Attempt {
    pub fn new(email: &str, source: Source) -> Self {
        Self {
            account: account_key(email),
            source,
        }
    }
}

/// The key of an account's tallies: the email exactly as the user table holds it (emails are
/// compared exactly, T-076).
pub fn account_key(email: &str) -> SecretHash {
    SecretHash::of(email)
}

/// One tally of failed attempts. `since` is when its window (or, for a back-off, its streak of
/// failures) began; `last` the last attempt it counted. A tally never stored is `Tally::ZERO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub failures: i64,
    pub since: Timestamp,
    pub last: Timestamp,
}

impl Tally {
    pub const ZERO: Tally = Tally {
        failures: 0,
        since: Timestamp(0),
        last: Timestamp(0),
    };

    /// Nothing to remember: the store deletes such a row rather than keep it.
    pub fn is_zero(&self) -> bool {
        self.failures <= 0
    }

    fn counted(self, now: Timestamp) -> Tally {
        let since = if self.is_zero() { now } else { self.since };
        Tally {
            failures: self.failures.saturating_add(1),
            since,
            last: now,
        }
    }

    fn forgiven(self) -> Tally {
        if self.failures <= 1 {
            Tally::ZERO
        } else {
            Tally {
                failures: self.failures - 1,
                ..self
            }
        }
    }

    /// This tally as a window of `window_secs`: zero once the window has passed.
    fn in_window(self, window_secs: i64, now: Timestamp) -> Tally {
        if self.is_zero() || now.0 >= self.since.0.saturating_add(window_secs) {
            Tally::ZERO
        } else {
            self
        }
    }
}

/// The three tallies an attempt reads and writes, in `Tallies::keys` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tallies {
    /// This account from this source: the back-off.
    pub pair: Tally,
    /// This source, whatever the account: the spraying limit.
    pub source: Tally,
    /// This account, whatever the source: the ceiling.
    pub account: Tally,
}

impl Tallies {
    pub const ZERO: Tallies = Tallies {
        pair: Tally::ZERO,
        source: Tally::ZERO,
        account: Tally::ZERO,
    };
}

/// Where each tally is kept: (account key, source), with an empty key for a source's tally
/// across accounts and an empty source for an account's across sources. In the order the
/// store locks them (bytewise), so concurrent attempts cannot deadlock.
pub fn keys(attempt: &Attempt) -> [(Vec<u8>, String); 3] {
    let account = attempt.account.as_bytes().to_vec();
    let source = attempt.source.as_str().to_owned();
    // The empty key sorts first, the empty source before any other for the same key.
    [
        (Vec::new(), source.clone()),
        (account.clone(), String::new()),
        (account, source),
    ]
}

/// `keys`' order, read back into named tallies.
pub fn from_keyed([source, account, pair]: [Tally; 3]) -> Tallies {
    Tallies {
        pair,
        source,
        account,
    }
}

/// `Tallies` in `keys`' order, for writing.
pub fn to_keyed(tallies: Tallies) -> [Tally; 3] {
    [tallies.source, tallies.account, tallies.pair]
}

/// Whether an attempt may check a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check it; the attempt already counts as a failure until `after_success` forgives it.
    Check,
    /// Do not check it (answer as for a wrong password); the tallies are unchanged.
    Refuse,
}

/// How long the (account, source) pair must wait after its `failures`-th failure before the
/// next check: nothing for the first `signin_failures_before_backoff`, then
/// `signin_backoff_secs` doubling with each further failure, at most `signin_backoff_max_secs`.
pub fn backoff_secs(failures: i64, limits: &Limits) -> i64 {
    let beyond = failures.saturating_sub(limits.signin_failures_before_backoff);
    if beyond < 0 {
        return 0;
    }
    let max = limits.signin_backoff_max_secs.max(0);
    let doublings = u32::try_from(beyond).unwrap_or(u32::MAX).min(62);
    limits
        .signin_backoff_secs
        .max(0)
        .saturating_mul(1_i64 << doublings)
        .min(max)
}

/// An attempt at `now`: checked only if the pair's back-off has passed, the source is under
/// its limit across accounts and the account under its ceiling across sources; if so each
/// tally counts it. A refused attempt changes nothing, so hammering does not extend a back-off.
pub fn admit(before: Tallies, now: Timestamp, limits: &Limits) -> (Gate, Tallies) {
    let current = current(before, now, limits);
    let pair = current.pair;
    let pair_ready = pair.is_zero()
        || now.0
            >= pair
                .last
                .0
                .saturating_add(backoff_secs(pair.failures, limits));
    let admitted = pair_ready
        && current.source.failures < limits.signin_failures_per_source
        && current.account.failures < limits.signin_failures_per_account;
    if !admitted {
        return (Gate::Refuse, before);
    }
    let after = Tallies {
        pair: pair.counted(now),
        source: current.source.counted(now),
        account: current.account.counted(now),
    };
    (Gate::Check, after)
}

/// The password matched: the pair's back-off is cleared, and the attempt's own count is taken
/// back from the source's and the account's tallies.
pub fn after_success(before: Tallies, now: Timestamp, limits: &Limits) -> Tallies {
    let current = current(before, now, limits);
    Tallies {
        pair: Tally::ZERO,
        source: current.source.forgiven(),
        account: current.account.forgiven(),
    }
}

/// The tallies as they stand at `now`: windows that have passed and back-offs forgotten after
/// `signin_backoff_reset_secs` without an attempt are zero.
fn current(before: Tallies, now: Timestamp, limits: &Limits) -> Tallies {
    let window = limits.signin_failure_window_secs;
    let pair = if now.0
        >= before
            .pair
            .last
            .0
            .saturating_add(limits.signin_backoff_reset_secs)
    {
        Tally::ZERO
    } else {
        before.pair
    };
    Tallies {
        pair,
        source: before.source.in_window(window, now),
        account: before.account.in_window(window, now),
    }
}

/// When a tally counts as zero by every rule above, so the sweep may delete it: a window
/// has passed since its last attempt, and so has the back-off's reset time.
pub fn forget_at(tally: &Tally, limits: &Limits) -> Timestamp {
    tally.last.plus(
        limits
            .signin_backoff_reset_secs
            .max(limits.signin_failure_window_secs),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn limits() -> Limits {
        Limits::default()
    }

    /// `n` attempts at `at`, each admitted or not, from `start`.
    fn attempts(start: Tallies, n: usize, at: Timestamp, limits: &Limits) -> (usize, Tallies) {
        let mut tallies = start;
        let mut checked = 0;
        for _ in 0..n {
            let (gate, after) = admit(tallies, at, limits);
            if gate == Gate::Check {
                checked += 1;
            }
            tallies = after;
        }
        (checked, tallies)
    }

    #[test]
    fn the_backoff_starts_after_five_failures_and_doubles_up_to_fifteen_minutes() {
        let limits = limits(); // 5 free, 30 s doubling, at most 900 s
        for failures in 0..5 {
            assert_eq!(backoff_secs(failures, &limits), 0, "{failures}");
        }
        assert_eq!(backoff_secs(5, &limits), 30);
        assert_eq!(backoff_secs(6, &limits), 60);
        assert_eq!(backoff_secs(8, &limits), 240);
        assert_eq!(backoff_secs(9, &limits), 480);
        assert_eq!(backoff_secs(10, &limits), 900);
        assert_eq!(backoff_secs(1_000, &limits), 900);
        assert_eq!(backoff_secs(i64::MAX, &limits), 900);
    }

    #[test]
    fn a_burst_at_one_instant_checks_only_the_free_failures() {
        let limits = limits();
        let (checked, tallies) = attempts(Tallies::ZERO, 100, NOW, &limits);
        assert_eq!(checked, 5);
        assert_eq!(tallies.pair.failures, 5);
        assert_eq!(tallies.source.failures, 5);
        assert_eq!(tallies.account.failures, 5);
        // One second short of the back-off: refused, and the refusal does not extend it.
        let (checked, same) = attempts(tallies, 10, NOW.plus(29), &limits);
        assert_eq!((checked, same), (0, tallies));
        // At the back-off: one check, then 60 s more.
        let (checked, tallies) = attempts(tallies, 10, NOW.plus(30), &limits);
        assert_eq!(checked, 1);
        assert_eq!(tallies.pair.last, NOW.plus(30));
        assert_eq!(attempts(tallies, 1, NOW.plus(89), &limits).0, 0);
        assert_eq!(attempts(tallies, 1, NOW.plus(90), &limits).0, 1);
    }

    #[test]
    fn the_owner_elsewhere_is_not_held_back_by_a_pair_in_back_off() {
        let limits = limits();
        let (_, attacker) = attempts(Tallies::ZERO, 5, NOW, &limits);
        // The owner's own pair is fresh; the account's tally is shared but far from its ceiling.
        let owner = Tallies {
            pair: Tally::ZERO,
            source: Tally::ZERO,
            account: attacker.account,
        };
        assert_eq!(admit(owner, NOW, &limits).0, Gate::Check);
    }

    #[test]
    fn a_success_clears_the_pair_and_forgives_its_own_count() {
        let limits = limits();
        let (_, tallies) = attempts(Tallies::ZERO, 3, NOW, &limits);
        let after = after_success(tallies, NOW, &limits);
        assert_eq!(after.pair, Tally::ZERO);
        assert_eq!(after.source.failures, 2);
        assert_eq!(after.account.failures, 2);
        assert_eq!(after.source.since, NOW);
        let (_, one) = attempts(Tallies::ZERO, 1, NOW, &limits);
        assert_eq!(after_success(one, NOW, &limits), Tallies::ZERO);
    }

    #[test]
    fn the_source_limit_stops_spraying_across_accounts() {
        let limits = Limits {
            signin_failures_per_source: 3,
            ..limits()
        };
        // Each attempt names another account: fresh pair and account tallies every time.
        let mut source = Tally::ZERO;
        let mut checked = 0;
        for _ in 0..10 {
            let before = Tallies {
                source,
                ..Tallies::ZERO
            };
            let (gate, after) = admit(before, NOW, &limits);
            checked += usize::from(gate == Gate::Check);
            source = after.source;
        }
        assert_eq!(checked, 3);
        // The window is fixed from its first failure: one hour later it starts again.
        let later = Tallies {
            source,
            ..Tallies::ZERO
        };
        assert_eq!(admit(later, NOW.plus(3599), &limits).0, Gate::Refuse);
        let (gate, after) = admit(later, NOW.plus(3600), &limits);
        assert_eq!(gate, Gate::Check);
        assert_eq!(after.source.failures, 1);
        assert_eq!(after.source.since, NOW.plus(3600));
    }

    #[test]
    fn the_account_ceiling_holds_across_sources() {
        let limits = Limits {
            signin_failures_per_account: 4,
            ..limits()
        };
        let mut account = Tally::ZERO;
        let mut checked = 0;
        for _ in 0..10 {
            let before = Tallies {
                account,
                ..Tallies::ZERO
            };
            let (gate, after) = admit(before, NOW, &limits);
            checked += usize::from(gate == Gate::Check);
            account = after.account;
        }
        assert_eq!(checked, 4);
        let later = Tallies {
            account,
            ..Tallies::ZERO
        };
        assert_eq!(admit(later, NOW.plus(3600), &limits).0, Gate::Check);
    }

    #[test]
    fn a_quiet_pair_is_forgotten_after_a_day() {
        let limits = limits();
        let (_, tallies) = attempts(Tallies::ZERO, 30, NOW, &limits);
        assert_eq!(tallies.pair.failures, 5);
        let pair_only = Tallies {
            pair: tallies.pair,
            ..Tallies::ZERO
        };
        let day = NOW.plus(86_400);
        let (gate, after) = admit(pair_only, day, &limits);
        assert_eq!(gate, Gate::Check);
        assert_eq!(after.pair.failures, 1, "a new streak");
        assert_eq!(after.pair.since, day);
        assert_eq!(forget_at(&tallies.pair, &limits), day);
        assert_eq!(forget_at(&tallies.source, &limits), day);
    }

    #[test]
    fn keys_are_in_lock_order_and_round_trip() {
        let attempt = Attempt::new("ada@example.com", Source::of([127, 0, 0, 2].into()));
        let keys = keys(&attempt);
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys[0].0, Vec::<u8>::new());
        assert_eq!(keys[1].1, "");
        let tallies = Tallies {
            pair: Tally {
                failures: 1,
                ..Tally::ZERO
            },
            source: Tally {
                failures: 2,
                ..Tally::ZERO
            },
            account: Tally {
                failures: 3,
                ..Tally::ZERO
            },
        };
        assert_eq!(from_keyed(to_keyed(tallies)), tallies);
        assert_ne!(
            Attempt::new("ADA@example.com", attempt.source.clone()).account,
            attempt.account,
            "emails are compared exactly"
        );
    }
}
