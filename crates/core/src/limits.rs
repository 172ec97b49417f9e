//! The configurable limits of CONTRACT.md's "Limits" table, with their defaults.

#[derive(Debug, Clone)]
pub struct Limits {
    pub code_lifetime_secs: i64,
    pub access_token_lifetime_secs: i64,
    pub refresh_tokens_per_grant: i64,
    pub refreshes_per_window: i64,
    pub refresh_window_secs: i64,
    pub active_access_tokens_per_refresh: i64,
    pub codes_per_window: i64,
    pub code_window_secs: i64,
    pub session_lifetime_secs: i64,
    pub pending_consent_lifetime_secs: i64,
    /// `client_credentials` access tokens minted per client in `client_credentials_window_secs`.
    pub client_credentials_per_window: i64,
    pub client_credentials_window_secs: i64,
    /// Live `client_credentials` access tokens per client; the oldest is invalidated beyond it.
    pub active_client_credentials_tokens: i64,
    /// Sign-in throttling (`signin.rs`): failures of one account from one source before the
    /// back-off starts ...
    pub signin_failures_before_backoff: i64,
    /// ... its first delay, doubling with each further failure ...
    pub signin_backoff_secs: i64,
    /// ... up to this ...
    pub signin_backoff_max_secs: i64,
    /// ... and forgotten after this long without an attempt.
    pub signin_backoff_reset_secs: i64,
    /// Failures from one source across all accounts per window (spraying).
    pub signin_failures_per_source: i64,
    /// Failures of one account across all sources per window (distributed guessing).
    pub signin_failures_per_account: i64,
    pub signin_failure_window_secs: i64,
    /// Device flow (RFC 8628; CONTRACT.md "Limits"): how long a user code and its device code
    /// live ...
    pub device_code_lifetime_secs: i64,
    /// ... the least time between two polls at first (each `slow_down` adds 5 s) ...
    pub device_poll_interval_secs: i64,
    /// ... wrong user codes per source per window at the verification page ...
    pub device_guesses_per_source: i64,
    /// ... wrong user codes from every source together per window ...
    pub device_guesses_global: i64,
    /// ... and that window.
    pub device_guess_window_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            code_lifetime_secs: 60,
            access_token_lifetime_secs: 3600,
            refresh_tokens_per_grant: 20,
            refreshes_per_window: 10,
            refresh_window_secs: 600,
            active_access_tokens_per_refresh: 15,
            codes_per_window: 10,
            code_window_secs: 600,
            session_lifetime_secs: 12 * 3600,
            pending_consent_lifetime_secs: 600,
            client_credentials_per_window: 10,
            client_credentials_window_secs: 600,
            active_client_credentials_tokens: 15,
            signin_failures_before_backoff: 5,
            signin_backoff_secs: 30,
            signin_backoff_max_secs: 900,
            signin_backoff_reset_secs: 86_400,
            signin_failures_per_source: 100,
            signin_failures_per_account: 100,
            signin_failure_window_secs: 3600,
            device_code_lifetime_secs: 300,
            device_poll_interval_secs: 30,
            device_guesses_per_source: 20,
            device_guesses_global: 1000,
            device_guess_window_secs: 600,
        }
    }
}

/// Self Client codes live for one of these durations, chosen at creation.
pub const SELF_CLIENT_CODE_MINUTES: [i64; 4] = [3, 5, 7, 10];
