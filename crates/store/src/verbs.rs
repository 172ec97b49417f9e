//! The store's verbs, grouped by the part of grantd that speaks them: tokens (the token
//! endpoint, revocation, introspection, validation), sessions and consent (the browser flows),
//! accounts (users and what they see of themselves), and the console (clients and scopes).
//! Each verb is one atomic step: a write commits wholly or not at all, durably before it
//! answers, and whether its caller still waits never changes its outcome. Each backend
//! implements every trait once; `Store` implements them by delegation, so handlers stay
//! non-generic, and the conformance suite holds both backends to the same contract.
//! Where a verb decides inside its transaction (caps, throttles, consent), it calls
//! `grantd-core`; the caller passes code and refresh rules in as `decide`.

use std::future::Future;

use grantd_core::enhance::{EnhanceDecision, EnhanceGrant};
use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::signin::{Attempt, Gate, Tallies};
use grantd_core::source::Source;
use grantd_core::{Client, ClientId, Limits, OAuthError, Scopes, Timestamp};

use crate::model::{
    AccessIssue, ClientUpdate, CodeIssue, CodeSummary, ConnectedApp, DeviceDecision, DeviceLookup,
    DevicePoll, EnabledDc, NewAccess, NewClient, NewCode, NewDeviceCode, NewEnhanceToken,
    NewTokens, Redemption, RefreshOutcome, ScopeEntry, SessionSummary, SigningKeyRecord, TokenInfo,
    User,
};
use crate::StoreError;

type Answer<T> = Result<T, StoreError>;

/// Codes and tokens: issue, redeem, refresh, validate, introspect, revoke, sweep.
pub trait TokenVerbs: Send + Sync {
    /// Stores a code unless the client has made `codes_per_window` codes in the window
    /// (`throttle::code_throttle`); records the consent it carries in the same transaction.
    fn add_code(
        &self,
        code: &NewCode,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<CodeIssue>> + Send;

    /// Redeems a code: `decide` (the core's rules) sees the stored grant; on success the code
    /// is marked used and the tokens are stored, the refresh token within the per-(user,
    /// client) cap (`throttle::refresh_tokens_to_evict`). A replayed code revokes everything
    /// it issued.
    fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<Redemption>> + Send;

    /// Mints an access token from a refresh token held by `client`, within the refresh
    /// throttle and the cap on active access tokens (`throttle::mint_bookkeeping` with
    /// `MintQuota::per_refresh_token`). With `rotate_to` (public clients,
    /// `ClientType::rotates_refresh_tokens`) the refresh token is rotated in the same
    /// transaction: the family takes that hash and the presented one is retired. A retired one
    /// presented again revokes the whole family (`RefreshOutcome::Replayed`).
    #[allow(clippy::too_many_arguments)] // the request, the rule, what to store, the time
    fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static,
        access: &NewAccess,
        rotate_to: Option<&SecretHash>,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<RefreshOutcome>> + Send;

    /// Stores an access token that no refresh token stands behind (`client_credentials`),
    /// within the client's mint throttle and its cap on active tokens (`throttle::
    /// mint_bookkeeping` with `MintQuota::client_credentials`): the client's expired tokens and
    /// its oldest beyond the cap go in the same transaction.
    fn add_access_token(
        &self,
        access: &NewAccess,
        client: &ClientId,
        user_id: i64,
        scopes: &Scopes,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<AccessIssue>> + Send;

    /// The grant behind a live access token; `None` if unknown, expired or revoked.
    fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<AccessGrant>>> + Send;

    /// A live access token and the user it speaks for, in one read: the resource path.
    fn access_owner(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<(AccessGrant, User)>>> + Send;

    /// A live access token or a refresh token, for introspection.
    fn token_info(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<TokenInfo>>> + Send;

    /// Revokes a refresh token (with every access token minted from it) or an access token.
    /// With `client`, only that client's tokens are touched. Returns whether one was found.
    fn revoke(
        &self,
        hash: &SecretHash,
        client: Option<&ClientId>,
    ) -> impl Future<Output = Answer<bool>> + Send;

    /// Deletes what can no longer be used: expired access tokens (a chunk at a time, each
    /// chunk its own write), sessions and pending consents, codes and device codes a day past
    /// expiry, and sign-in and user-code guess tallies every rule counts as zero.
    /// Returns how many rows went.
    fn sweep(&self, now: Timestamp) -> impl Future<Output = Answer<u64>> + Send;
}

/// The device flow (RFC 8628; CONTRACT.md "Device flow"): device authorizations, the
/// verification page's look-ups and decisions, and polls.
pub trait DeviceVerbs: Send + Sync {
    /// Stores a pending device authorization. `Conflict` if a live one has the same user code
    /// (the caller draws another); an expired one holding it is deleted first.
    fn add_device_code(
        &self,
        code: &NewDeviceCode,
        now: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;

    /// Looks up a typed user code for the verification page, within the guess throttle
    /// (`device::admit_guess`, `device::after_guess`): one transaction, so parallel guesses
    /// cannot race past it. A code that is not live and pending counts as a wrong guess
    /// from `source` and globally; a right one does not count.
    fn find_device_code(
        &self,
        user_code_hash: &SecretHash,
        source: &Source,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<DeviceLookup>> + Send;

    /// Records the user's decision on a live, pending authorization: once (`false` if it was
    /// decided already, expired or unknown).
    fn decide_device_code(
        &self,
        user_code_hash: &SecretHash,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> impl Future<Output = Answer<bool>> + Send;

    /// A device polls with its device code, as `client` (`device::poll` decides, and its
    /// bookkeeping is written in the same transaction). An approved authorization issues
    /// `tokens` once (the refresh token only for `access_type=offline`, within the
    /// per-(user, client) cap) and is used from then on.
    fn poll_device_code(
        &self,
        device_code_hash: &SecretHash,
        client: &ClientId,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<DevicePoll>> + Send;
}

/// Zoho's incremental authorization (CONTRACT.md "Incremental authorization"; grantd-core's
/// enhance.rs): enhance tokens, bound to one refresh token's grant, used once.
pub trait EnhanceVerbs: Send + Sync {
    /// Stores an enhance token for the refresh token `refresh_hash`, if `client` holds it;
    /// `false` (nothing stored) if the refresh token is unknown, revoked or another client's.
    fn add_enhance_token(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        token: &NewEnhanceToken,
        now: Timestamp,
    ) -> impl Future<Output = Answer<bool>> + Send;

    /// A live enhance token's grant, with the scopes it holds now.
    fn enhance_grant(
        &self,
        token_hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<EnhanceGrant>>> + Send;

    /// Uses a live enhance token of `client` and `user_id` up, once, and applies the user's
    /// decision in the same transaction: an accept adds the extra scopes to the refresh
    /// token's grant (`enhance::enhanced_scopes`) and to the user's consent for the redirect
    /// URI (`Consent::merge`); a reject changes nothing else. `false` if the token was not
    /// live, already used, or not theirs.
    fn use_enhance_token(
        &self,
        token_hash: &SecretHash,
        client: &ClientId,
        user_id: i64,
        decision: &EnhanceDecision,
        now: Timestamp,
    ) -> impl Future<Output = Answer<bool>> + Send;
}

/// Browser sessions, pending consents and remembered consent: what the redirect flow and the
/// sign-in pages keep between requests.
pub trait SessionVerbs: Send + Sync {
    fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;

    /// The user a live session belongs to.
    fn session_user(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<User>>> + Send;

    fn remove_session(&self, hash: &SecretHash) -> impl Future<Output = Answer<()>> + Send;

    /// When a live session's user signed in (OpenID Connect's `auth_time`, `max_age`).
    fn session_started(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<Timestamp>>> + Send;

    fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;

    /// Takes (deletes and returns) a live pending consent of this session, so it is decided
    /// once.
    fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Option<String>>> + Send;

    /// The scopes the user has consented to for this client, for whichever redirect URI.
    fn consent(
        &self,
        user_id: i64,
        client: &ClientId,
    ) -> impl Future<Output = Answer<Option<Scopes>>> + Send;

    /// The scopes the user has consented to for this client, only if the consent covered this
    /// registered redirect URI too (`Consent::scopes_for`).
    fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> impl Future<Output = Answer<Option<Scopes>>> + Send;
}

/// Users: sign-in bookkeeping, profile, password, and what they see of their own grants and
/// sessions.
pub trait AccountVerbs: Send + Sync {
    /// Adds a user; `Conflict` if the email is taken.
    fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> impl Future<Output = Answer<i64>> + Send;
    fn user_count(&self) -> impl Future<Output = Answer<i64>> + Send;
    fn user_by_email(&self, email: &str) -> impl Future<Output = Answer<Option<User>>> + Send;
    fn user(&self, id: i64) -> impl Future<Output = Answer<Option<User>>> + Send;
    fn users(&self) -> impl Future<Output = Answer<Vec<User>>> + Send;

    /// Counts a sign-in attempt (or a change-password attempt) before its password is checked,
    /// and answers whether it may be checked (`signin::admit`; RFC 6819 §5.1.4.2.3): one
    /// transaction, so any number of parallel attempts check at most as many passwords as the
    /// tallies allow. The same write whether or not the account exists, and whether or not
    /// the attempt is refused.
    fn begin_sign_in(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<Gate>> + Send;
    /// The attempt's password matched: its (account, source) back-off is cleared and its count
    /// taken back (`signin::after_success`).
    fn sign_in_succeeded(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> impl Future<Output = Answer<()>> + Send;
    /// The three tallies an attempt would read, as stored (a missing one is zero).
    fn sign_in_tallies(&self, attempt: &Attempt) -> impl Future<Output = Answer<Tallies>> + Send;
    /// Clears an account's back-off from every source and its ceiling (`grantd user unlock`,
    /// the console's Users page); how many tallies went.
    fn unlock_account(&self, account: &SecretHash) -> impl Future<Output = Answer<u64>> + Send;

    /// Sets a new password hash and ends every other session of the user.
    fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> impl Future<Output = Answer<()>> + Send;
    fn set_user_name(&self, user_id: i64, name: &str) -> impl Future<Output = Answer<()>> + Send;

    /// The user's live browser sessions, newest first.
    fn sessions_of(
        &self,
        user_id: i64,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Vec<SessionSummary>>> + Send;
    /// Ends one of the user's sessions, named by its handle.
    fn remove_user_session(
        &self,
        user_id: i64,
        handle: &str,
    ) -> impl Future<Output = Answer<bool>> + Send;

    /// Every client the user authorized (by consent, or by a Self Client code), with its
    /// active refresh tokens.
    fn connected_apps(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Answer<Vec<ConnectedApp>>> + Send;
    /// Revokes everything the user granted the client: tokens, unredeemed codes, consent.
    fn revoke_grant(
        &self,
        user_id: i64,
        client: &ClientId,
    ) -> impl Future<Output = Answer<()>> + Send;

    /// Remembers that the data center `location` knew the email keyed `email_key`
    /// (`datacenter::email_key`), replacing what was remembered before.
    fn remember_email_home(
        &self,
        email_key: &SecretHash,
        location: &str,
        now: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;
    /// Where the email keyed `email_key` was last found, if anywhere.
    fn email_home(
        &self,
        email_key: &SecretHash,
    ) -> impl Future<Output = Answer<Option<String>>> + Send;
}

/// The registry the console manages: clients and scopes.
pub trait ConsoleVerbs: Send + Sync {
    /// `Conflict` if the scope is registered (in any spelling).
    fn add_scope(&self, name: &str, description: &str) -> impl Future<Output = Answer<()>> + Send;
    /// Every registered scope as (name, description), by name.
    fn scopes(&self) -> impl Future<Output = Answer<Vec<ScopeEntry>>> + Send;
    /// The registry's spelling and description of each scope; `Err` names an unknown one.
    fn registered(
        &self,
        scopes: &Scopes,
    ) -> impl Future<Output = Answer<Result<Vec<ScopeEntry>, String>>> + Send;

    /// `Conflict` if the owner already has a Self Client.
    fn add_client(
        &self,
        client: &NewClient,
        now: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;
    fn client(&self, id: &str) -> impl Future<Output = Answer<Option<Client>>> + Send;
    fn clients(&self) -> impl Future<Output = Answer<Vec<Client>>> + Send;
    fn clients_of(&self, owner_id: i64) -> impl Future<Output = Answer<Vec<Client>>> + Send;
    /// Deletes the client with its codes, tokens and consents.
    fn remove_client(&self, id: &str) -> impl Future<Output = Answer<bool>> + Send;
    /// Replaces a confidential client's secret; the old one stops working with this commit.
    fn set_client_secret(
        &self,
        id: &str,
        hash: &SecretHash,
    ) -> impl Future<Output = Answer<bool>> + Send;
    /// Changes a client's settings, only if `owner_id` owns it.
    fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> impl Future<Output = Answer<bool>> + Send;
    /// Sets the algorithm a client's ID tokens are signed with (`None`: the server default),
    /// only if `owner_id` owns it; a client mirrored from another data center never changes
    /// here. `false` if nothing changed.
    fn set_client_id_token_alg(
        &self,
        id: &ClientId,
        owner_id: i64,
        alg: Option<SigningAlg>,
    ) -> impl Future<Output = Answer<bool>> + Send;
    /// The Self Client's codes, newest first.
    fn codes_of(&self, client: &ClientId) -> impl Future<Output = Answer<Vec<CodeSummary>>> + Send;

    /// Enables a client registered here at data center `location`, with `secret` as its own
    /// secret there (`None`: the home secret); again, replaces that secret. `false` if there
    /// is no such client registered here.
    fn enable_client_dc(
        &self,
        id: &ClientId,
        location: &str,
        secret: Option<&SecretHash>,
        now: Timestamp,
    ) -> impl Future<Output = Answer<bool>> + Send;
    /// `false` if it was not enabled there.
    fn disable_client_dc(
        &self,
        id: &ClientId,
        location: &str,
    ) -> impl Future<Output = Answer<bool>> + Send;
    /// Where a client registered here is enabled, by location.
    fn client_dcs(&self, id: &ClientId) -> impl Future<Output = Answer<Vec<EnabledDc>>> + Send;
    /// The clients registered here and enabled at `location`, each with the secret hash that
    /// works there, by id: what that data center mirrors.
    fn clients_enabled_for(
        &self,
        location: &str,
    ) -> impl Future<Output = Answer<Vec<Client>>> + Send;
    /// Makes the clients mirrored from `home` exactly `clients`, in one transaction: new ones
    /// added, changed ones updated, the rest removed with their tokens. A client registered
    /// here is never touched.
    fn mirror_clients(
        &self,
        home: &str,
        clients: &[Client],
        now: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;
}

/// OpenID Connect's signing keys: made at first start and by `grantd keys rotate`, read by every
/// node into memory (the token endpoint never reads them from here), and published until the
/// last ID token each signed has expired.
pub trait KeyVerbs: Send + Sync {
    /// Every key still published (`oidc::is_published`): the active ones first (at most one
    /// per algorithm, RS256's first), then retired ones, newest first.
    fn signing_keys(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Answer<Vec<SigningKeyRecord>>> + Send;

    /// Stores `key` as the active key of its algorithm only if that algorithm has none;
    /// `false` if it had one (made by another node meanwhile, say).
    fn add_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> impl Future<Output = Answer<bool>> + Send;

    /// Retires the active key of `key`'s algorithm (published until `retired_expires_at`) and
    /// makes `key` that algorithm's active one, in one transaction; the other algorithms' keys
    /// are untouched. `Conflict` if another rotation won a race.
    fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retired_expires_at: Timestamp,
    ) -> impl Future<Output = Answer<()>> + Send;
}
