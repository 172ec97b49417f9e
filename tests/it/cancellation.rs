//! Requests whose client goes away mid-request (issue 11): a write's outcome never depends on
//! whether its caller still waits. Connections are aborted (TCP reset) at every stage of a
//! token request, in a loop; afterwards every code was redeemed wholly or not at all, and the
//! store still accepts and durably answers writes.

use grantd_core::Dialect;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{start_with, Param, TestClient};

/// A token-endpoint request as raw bytes, the way any form-posting client sends it.
fn token_request(host: &str, client: &TestClient, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in client.body_auth() {
        form.append_pair(name, &value);
    }
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    let body = form.finish();
    format!(
        "POST /oauth/v2/token HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends the first `sent` bytes of `request`, lets the server run for `turns` scheduler
/// turns, then resets the connection without reading a byte of the answer.
async fn abort_after(host: &str, request: &[u8], sent: usize, turns: usize) {
    let sending = async {
        let mut stream = TcpStream::connect(host).await?;
        stream.write_all(&request[..sent]).await?;
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
        // RST instead of FIN: the server learns at once that nobody waits.
        stream.set_zero_linger()
    };
    if let Err(e) = sending.await {
        panic!("cannot send a request to {host}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_token_requests_leave_whole_writes_and_a_working_store() {
    skip_without_postgres!();
    let server = start_with(|s| {
        s.limits.codes_per_window = 1_000;
        s.limits.refreshes_per_window = 1_000;
    })
    .await;
    let host = server.url.trim_start_matches("http://").to_owned();
    let user = server.user("ada@example.com").await;
    let client = server.self_client(&user, Dialect::Standard).await;
    let first = server
        .self_code(&client, &user, "AaaServer.profile.READ", 3)
        .await;
    let refresh = server
        .exchange(&client, &first)
        .await
        .tokens()
        .refresh
        .unwrap();

    let mut codes = Vec::new();
    for round in 0..40 {
        let code = server
            .self_code(&client, &user, "AaaServer.profile.READ", 3)
            .await;
        let exchange = token_request(
            &host,
            &client,
            &[("grant_type", "authorization_code"), ("code", &code)],
        );
        let refreshing = token_request(
            &host,
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        );
        // Cut in the headers, in the body, or after the whole request at a varying point of
        // the server's work.
        let cut = [exchange.len() / 3, exchange.len() - 1, exchange.len()][round % 3];
        abort_after(&host, &exchange, cut, round % 7).await;
        abort_after(&host, &refreshing, refreshing.len(), round % 5).await;
        codes.push(code);
    }

    // The store still accepts writes and answers them durably: a refresh, and its token works.
    let fresh = server.refresh(&client, &refresh).await.tokens();
    assert!(server.access_works(&fresh.access).await);
    // Every code that was redeemed recorded the tokens it issued, in the same commit.
    let half_redeemed = server
        .count(
            "SELECT count(*) FROM grant_codes WHERE client_id = $1 \
             AND redeemed_at IS NOT NULL AND access_id IS NULL",
            &[Param::Text(&client.id)],
        )
        .await;
    assert_eq!(half_redeemed, 0, "a redemption was cut in half");
    // Each aborted exchange either never happened (the code still works) or happened whole
    // (the code is used).
    for code in &codes {
        let reply = server.exchange(&client, code).await;
        if reply.status == 200 {
            assert!(server.access_works(&reply.tokens().access).await);
        } else {
            let error = reply.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(error, "invalid_grant", "{}", reply.body);
        }
    }
}
