"""A relying party built on authlib, against a real `grantd serve` (tests/oidc_libs.rs starts it
and passes its address and a registered client in the environment): discovery, the code flow
with a nonce, and ID token validation with authlib's own OpenID Connect client code (signature
against the published JWKS, iss, aud, exp, nonce, at_hash). The browser's part (sign-in,
consent) is driven over HTTP with the pages' own forms. Prints one line per check; exits
non-zero on the first failure."""

import html
import os
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set")
    return value


ISSUER = env("GRANTD_ISSUER")
REDIRECT_URI = env("REDIRECT_URI")
EMAIL = env("USER_EMAIL")
PASSWORD = env("USER_PASSWORD")


def check(condition, what):
    if not condition:
        raise SystemExit(f"check failed: {what}")
    print(f"ok: {what}", flush=True)


class RelyingParty(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's framework-independent client app: discovery, authorization URL, token,
    ID token parsing, on `requests`."""

    client_cls = OAuth2Session


def hidden_fields(page, action):
    start = page.find(f'action="{action}"')
    if start < 0:
        raise SystemExit(f"no form for {action} in: {page[:500]}")
    form = page[start : page.find("</form>", start)]
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    return {name: html.unescape(value) for name, value in fields}


def authorize(browser, url):
    """Signs in and consents as needed; the redirect to the client, with the code."""
    response = browser.get(url, allow_redirects=False)
    for _ in range(8):
        location = response.headers.get("location")
        if location:
            target = urljoin(ISSUER, location)
            if target.startswith(REDIRECT_URI):
                return urlparse(target)
            response = browser.get(target, allow_redirects=False)
            continue
        page = response.text
        if 'action="/signin"' in page:
            fields = {**hidden_fields(page, "/signin"), "email": EMAIL, "password": PASSWORD}
            response = browser.post(urljoin(ISSUER, "/signin"), data=fields, allow_redirects=False)
        elif 'action="/oauth/v2/auth/consent"' in page:
            fields = {**hidden_fields(page, "/oauth/v2/auth/consent"), "decision": "accept"}
            response = browser.post(
                urljoin(ISSUER, "/oauth/v2/auth/consent"), data=fields, allow_redirects=False
            )
        else:
            raise SystemExit(f"unexpected page {response.status_code}: {page[:500]}")
    raise SystemExit("too many hops")


def refused(work, what):
    try:
        work()
    except Exception as e:  # noqa: BLE001 - any refusal by the library will do
        print(f"ok: {what} is refused ({type(e).__name__}: {e})", flush=True)
        return
    raise SystemExit(f"check failed: {what} was accepted")


def main():
    rp = RelyingParty(
        None,
        name="grantd",
        client_id=env("CLIENT_ID"),
        client_secret=env("CLIENT_SECRET"),
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    metadata = rp.load_server_metadata()
    check(metadata["issuer"] == ISSUER, f"discovery names the issuer {ISSUER}")

    started = rp.create_authorization_url(REDIRECT_URI)
    check(bool(started.get("nonce")), "authlib sends a nonce")
    callback = authorize(requests.Session(), started["url"])
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    check(query.get("state") == started["state"], "the state comes back")
    check(query.get("iss") == ISSUER, "the authorization response names the issuer")
    token = rp.fetch_access_token(
        REDIRECT_URI, code=query["code"], code_verifier=started["code_verifier"]
    )
    check("id_token" in token, "the token response has an id_token")

    user = rp.parse_id_token(token, nonce=started["nonce"])
    check(user["email"] == EMAIL and user["email_verified"] is True, "the ID token validates")
    check(user["nonce"] == started["nonce"], "with the nonce sent")
    check(user["aud"] == rp.client_id and user["iss"] == ISSUER, "for this client, by the issuer")

    refused(lambda: rp.parse_id_token(token, nonce="another nonce"), "an ID token with another nonce")
    header, payload, signature = token["id_token"].split(".")
    forged = {**token, "id_token": ".".join([header, payload[:-4] + "AAAA", signature])}
    refused(lambda: rp.parse_id_token(forged, nonce=started["nonce"]), "a tampered ID token")
    stranger = RelyingParty(
        None,
        name="other",
        client_id="1000.SOMEONEELSE",
        client_secret="x",
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    )
    refused(
        lambda: stranger.parse_id_token(token, nonce=started["nonce"]),
        "an ID token for another client",
    )
    print("authlib: all checks passed", flush=True)


if __name__ == "__main__":
    main()
