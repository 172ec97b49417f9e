#!/usr/bin/env python3
"""Zoho's Python SDK (zohocrmsdk8-0) against a grantd data center, as an app would use it.

Run by tests/datacenters.rs against a live data center. The SDK is given an Environment whose
accounts URL is that DC's token endpoint (the SDK posts to it as is, like its built-in
https://accounts.zoho.eu/oauth/v2/token), and a file token store in a temp directory:

1. Initializer.initialize with a grant code: the SDK exchanges it and stores the tokens.
2. The stored access token is marked as expiring now (as an hour later), and the SDK is
   initialized again with the refresh token only: it finds the stored row and refreshes.

Prints one JSON object on stdout: {"exchange": row, "refresh": row}, each row what the SDK's
token store holds; on failure {"error": ...} and exit status 1.
"""

import argparse
import csv
import json
import os
import sys
import time

from zohocrmsdk.src.com.zoho.api.authenticator import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore
from zohocrmsdk.src.com.zoho.api.logger import Logger
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig


def data_center(accounts, api_domain):
    """A DataCenter like the SDK's EUDataCenter, for a grantd DC instead of accounts.zoho.eu."""

    class GrantdDataCenter(DataCenter):
        def get_iam_url(self):
            return accounts + "/oauth/v2/token"

        def get_file_upload_url(self):
            return api_domain

        @classmethod
        def PRODUCTION(cls):
            return DataCenter.Environment(api_domain, cls().get_iam_url(), cls().get_file_upload_url())

    return GrantdDataCenter


def stored_rows(path):
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    header, rows = rows[0], rows[1:]
    # The secret stays in the store; the caller has it already.
    return [{k: v for k, v in zip(header, row) if k != "client_secret"} for row in rows]


def expire_now(path):
    """What an hour does to the stored access token: the SDK refreshes within 5 s of expiry."""
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    column = rows[0].index("expiry_time")
    for row in rows[1:]:
        row[column] = str(int(time.time() * 1000))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def initialize(environment, token, store, work):
    Initializer.initialize(
        environment=environment,
        token=token,
        store=store,
        # Neither the CRM field metadata nor the CRM users API exists here.
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=work,
        logger=Logger.get_instance(Logger.Levels.INFO, os.path.join(work, "sdk.log")),
    )


def main():
    parser = argparse.ArgumentParser()
    for name in ["accounts", "api-domain", "client-id", "client-secret", "redirect-uri", "code", "work"]:
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()

    environment = data_center(args.accounts, args.api_domain).PRODUCTION()
    tokens = os.path.join(args.work, "sdk_tokens.csv")
    store = FileStore(tokens)

    # find_user=False: the SDK would otherwise ask Zoho CRM's users API for the user's name.
    initialize(
        environment,
        OAuthToken(
            client_id=args.client_id,
            client_secret=args.client_secret,
            grant_token=args.code,
            redirect_url=args.redirect_uri,
            find_user=False,
        ),
        store,
        args.work,
    )
    exchanged = stored_rows(tokens)
    if len(exchanged) != 1:
        raise RuntimeError("expected one stored token after the exchange, got %d" % len(exchanged))
    exchanged = exchanged[0]

    expire_now(tokens)
    initialize(
        environment,
        OAuthToken(
            client_id=args.client_id,
            client_secret=args.client_secret,
            refresh_token=exchanged["refresh_token"],
            find_user=False,
        ),
        store,
        args.work,
    )
    refreshed = stored_rows(tokens)
    if len(refreshed) != 1:
        raise RuntimeError("expected one stored token after the refresh, got %d" % len(refreshed))

    print(json.dumps({"exchange": exchanged, "refresh": refreshed[0], "token_url": environment.accounts_url}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the SDK's SDKException included: report it, as JSON, and fail
        details = getattr(e, "details", None)
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e), "details": str(details)}))
        sys.exit(1)
