//! The quotas the store enforces inside its transactions: the code throttle, the mint
//! throttle with its cap on active access tokens (per refresh token, and per client for
//! `client_credentials`), and the refresh-token cap per user and client. Each is a pure
//! decision over what the transaction read; the store reads, calls one of these, and writes
//! what it says. Sign-in throttling has a module of its own (`signin`).

use crate::clock::Timestamp;
use crate::limits::Limits;

/// Seconds to wait before a refused request may succeed (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

impl RetryAfter {
    /// Until the oldest event of a window of `window_secs` that began at `oldest` leaves it.
    fn until_out_of(oldest: Timestamp, window_secs: i64, now: Timestamp) -> RetryAfter {
        RetryAfter((oldest.0.saturating_add(window_secs) - now.0).max(1))
    }
}

/// The code throttle (CONTRACT.md "Limits"): at most `codes_per_window` codes per (user,
/// client) in `code_window_secs`, so one user cannot spend a client's codes for every other
/// user. Each user's codes for a client are numbered 1, 2, ... in the order they were made, so
/// the window is full exactly when the code numbered `codes_per_window - 1` before the newest
/// was made inside it: one lookup, however high the limit. This names that code's number;
/// `None` when the user has had fewer codes (or none may be made at all).
pub fn code_to_check(newest_seq: i64, limits: &Limits) -> Option<i64> {
    let seq = newest_seq - limits.codes_per_window + 1;
    (limits.codes_per_window > 0 && seq >= 1).then_some(seq)
}

/// Whether a new code is refused: `made` is when the code `code_to_check` named (or, if that
/// one was deleted with its grant, the next older one) was made; `None` if there is none.
pub fn code_throttle(
    made: Option<Timestamp>,
    limits: &Limits,
    now: Timestamp,
) -> Result<(), RetryAfter> {
    let window = limits.code_window_secs;
    if limits.codes_per_window <= 0 {
        return Err(RetryAfter(window.max(1)));
    }
    match made.filter(|made| made.0 > now.minus(window).0) {
        Some(made) => Err(RetryAfter::until_out_of(made, window, now)),
        None => Ok(()),
    }
}

/// An access token already minted from the same source (a refresh token, or a client's
/// `client_credentials` grant), as the mint bookkeeping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minted {
    pub id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// How many access tokens one source may mint (CONTRACT.md "Limits"): `per_window` in
/// `window_secs`, and `active` live at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintQuota {
    pub per_window: i64,
    pub window_secs: i64,
    pub active: i64,
}

impl MintQuota {
    /// Access tokens minted per refresh token: 10 per 10 minutes, 15 active.
    pub fn per_refresh_token(limits: &Limits) -> MintQuota {
        MintQuota {
            per_window: limits.refreshes_per_window,
            window_secs: limits.refresh_window_secs,
            active: limits.active_access_tokens_per_refresh,
        }
    }

    /// `client_credentials` access tokens per client: 10 per 10 minutes, 15 active.
    pub fn client_credentials(limits: &Limits) -> MintQuota {
        MintQuota {
            per_window: limits.client_credentials_per_window,
            window_secs: limits.client_credentials_window_secs,
            active: limits.active_client_credentials_tokens,
        }
    }
}

/// What minting one more access token does to the tokens its source already minted (a
/// refresh, or a `client_credentials` grant; CONTRACT.md "Limits"): refused while
/// `quota.per_window` were minted in the window; otherwise the ids to delete: the expired
/// ones, and the oldest live ones beyond `quota.active` (the token about to be minted counts
/// toward it).
pub fn mint_bookkeeping(
    minted: &[Minted],
    now: Timestamp,
    quota: MintQuota,
) -> Result<Vec<i64>, RetryAfter> {
    let window_start = now.minus(quota.window_secs);
    let in_window = minted.iter().filter(|m| m.created_at > window_start);
    if in_window.clone().count() as i64 >= quota.per_window {
        let oldest = in_window.map(|m| m.created_at).min().unwrap_or(now);
        return Err(RetryAfter::until_out_of(oldest, quota.window_secs, now));
    }
    let (mut doomed, mut live): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for m in minted {
        if m.expires_at <= now {
            doomed.push(m.id);
        } else {
            live.push(m.id);
        }
    }
    // Ids grow with minting, so the smallest are the oldest.
    live.sort_unstable();
    let excess = (live.len() as i64 + 1 - quota.active).max(0);
    doomed.extend(live.iter().take(excess as usize));
    Ok(doomed)
}

/// The refresh-token cap (CONTRACT.md: at most `refresh_tokens_per_grant` per user and
/// client, the oldest deleted first), in one index lookup like the code throttle. Once a new
/// refresh token has been added, the user's tokens for that client are counted from the newest
/// (0) back; the one at this position, if there is one, and every older one go.
pub fn first_evicted_refresh_token(limits: &Limits) -> i64 {
    limits.refresh_tokens_per_grant.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn the_code_to_check_is_the_limit_back_from_the_newest() {
        let limits = limits(); // 10 per window
        assert_eq!(code_to_check(0, &limits), None);
        assert_eq!(code_to_check(9, &limits), None, "fewer than ten codes ever");
        assert_eq!(code_to_check(10, &limits), Some(1));
        assert_eq!(code_to_check(25, &limits), Some(16));
        let none = Limits {
            codes_per_window: 0,
            ..limits
        };
        assert_eq!(code_to_check(25, &none), None);
    }

    #[test]
    fn the_code_throttle_refuses_while_that_code_is_in_the_window() {
        let limits = limits(); // 600 s window
        assert_eq!(code_throttle(None, &limits, NOW), Ok(()));
        assert_eq!(
            code_throttle(Some(NOW.minus(600)), &limits, NOW),
            Ok(()),
            "just out"
        );
        assert_eq!(
            code_throttle(Some(NOW.minus(599)), &limits, NOW),
            Err(RetryAfter(1))
        );
        assert_eq!(
            code_throttle(Some(NOW.minus(18)), &limits, NOW),
            Err(RetryAfter(582))
        );
        assert_eq!(code_throttle(Some(NOW), &limits, NOW), Err(RetryAfter(600)));
        let none = Limits {
            codes_per_window: 0,
            ..limits.clone()
        };
        assert_eq!(code_throttle(None, &none, NOW), Err(RetryAfter(600)));
        let zero_window = Limits {
            codes_per_window: 0,
            code_window_secs: 0,
            ..limits
        };
        assert_eq!(code_throttle(None, &zero_window, NOW), Err(RetryAfter(1)));
    }

    fn minted(id: i64, age: i64, lifetime: i64) -> Minted {
        Minted {
            id,
            created_at: NOW.minus(age),
            expires_at: NOW.minus(age).plus(lifetime),
        }
    }

    fn refresh_bookkeeping(
        minted: &[Minted],
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Vec<i64>, RetryAfter> {
        mint_bookkeeping(minted, now, MintQuota::per_refresh_token(limits))
    }

    #[test]
    fn refresh_is_refused_once_the_window_is_full() {
        let limits = limits(); // 10 per 600 s
        let nine: Vec<Minted> = (0..9).map(|i| minted(i, 100 - i, 3600)).collect();
        assert!(refresh_bookkeeping(&nine, NOW, &limits).is_ok());
        let mut ten = nine.clone();
        ten.push(minted(9, 5, 3600));
        // The oldest in the window was made 100 s ago: 500 s until it leaves.
        assert_eq!(
            refresh_bookkeeping(&ten, NOW, &limits),
            Err(RetryAfter(500))
        );
        // One made exactly a window ago no longer counts.
        ten[0] = minted(0, 600, 3600);
        assert!(refresh_bookkeeping(&ten, NOW, &limits).is_ok());
    }

    #[test]
    fn refresh_deletes_the_expired_and_the_oldest_beyond_the_cap() {
        let limits = Limits {
            refreshes_per_window: 1000,
            ..limits()
        }; // cap 15
        let mut tokens: Vec<Minted> = (1..=14).map(|id| minted(id, 1000 - id, 3600)).collect();
        assert_eq!(
            refresh_bookkeeping(&tokens, NOW, &limits),
            Ok(vec![]),
            "14 + the new one"
        );
        tokens.push(minted(15, 10, 3600));
        assert_eq!(refresh_bookkeeping(&tokens, NOW, &limits), Ok(vec![1]));
        tokens.push(minted(16, 9, 3600));
        tokens.push(minted(0, 5000, 3600)); // expired
        tokens.push(minted(17, 3600, 3600)); // expires now
        assert_eq!(
            refresh_bookkeeping(&tokens, NOW, &limits),
            Ok(vec![0, 17, 1, 2])
        );
    }

    #[test]
    fn client_credentials_have_a_quota_of_their_own() {
        let limits = Limits {
            refreshes_per_window: 1,
            refresh_window_secs: 1,
            active_access_tokens_per_refresh: 1,
            ..limits()
        };
        let quota = MintQuota::client_credentials(&limits);
        assert_eq!(
            quota,
            MintQuota {
                per_window: 10,
                window_secs: 600,
                active: 15
            }
        );
        // Ten in the window, the oldest 30 s ago: refused for the 570 s it stays there.
        let ten: Vec<Minted> = (1..=10).map(|id| minted(id, 31 - id, 3600)).collect();
        assert_eq!(mint_bookkeeping(&ten, NOW, quota), Err(RetryAfter(570)));
        assert_eq!(mint_bookkeeping(&ten[1..], NOW, quota), Ok(vec![]));
        // Fifteen live, made before the window: the oldest goes for the new one.
        let fifteen: Vec<Minted> = (1..=15).map(|id| minted(id, 1000 - id, 3600)).collect();
        assert_eq!(mint_bookkeeping(&fifteen, NOW, quota), Ok(vec![1]));
        // Nothing may be minted at all with a zero quota.
        let none = MintQuota {
            per_window: 0,
            ..quota
        };
        assert_eq!(mint_bookkeeping(&[], NOW, none), Err(RetryAfter(600)));
    }

    /// Which tokens go, given the ids of a user's tokens for one client, newest first, as the
    /// store looks them up.
    fn evicted(newest_first: &[i64], limits: &Limits) -> Vec<i64> {
        let first = first_evicted_refresh_token(limits) as usize;
        newest_first.iter().skip(first).copied().collect()
    }

    #[test]
    fn the_oldest_refresh_tokens_beyond_the_cap_are_evicted() {
        let limits = limits(); // 20
        let twenty: Vec<i64> = (1..=20).rev().collect();
        assert!(evicted(&twenty, &limits).is_empty());
        let twenty_two: Vec<i64> = (1..=22).rev().collect();
        assert_eq!(evicted(&twenty_two, &limits), vec![2, 1]);
        let one = Limits {
            refresh_tokens_per_grant: 1,
            ..limits.clone()
        };
        assert_eq!(evicted(&[9, 7, 3], &one), vec![7, 3]);
        let none = Limits {
            refresh_tokens_per_grant: -1,
            ..limits
        };
        assert_eq!(
            first_evicted_refresh_token(&none),
            0,
            "a negative cap keeps nothing"
        );
    }
}
