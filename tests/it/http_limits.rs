//! HTTP limits (issue 12, hole 4; T-088): oversized and ambiguous requests are refused, slow
//! and idle connections are closed after their (here shortened) timeouts while others are still
//! served, connections are capped, and a full password queue answers 503 at once. Malformed
//! requests go over raw TCP, since an HTTP client would not send them.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{start, start_with, Http, TestServer};

/// Longest any raw exchange below may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(15);

fn host(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a new connection (while reading, so an early answer is not lost) and
/// reads until the server closes it; returns the answer and how long until the close.
async fn exchange(host: &str, request: Vec<u8>) -> (String, Duration) {
    let start = Instant::now();
    let stream = TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {host}: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    // The server may answer and close before reading everything: a failed write is expected.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    let _ = writing.await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[tokio::test]
async fn t088_a_64_kb_header_block_is_431_and_16_kib_is_the_default_limit() {
    skip_without_postgres!();
    let server = start().await;
    let host = host(&server);
    let request = |filler: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
        .into_bytes()
    };
    let (answer, _) = exchange(&host, request(64 * 1024)).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    let (answer, _) = exchange(&host, request(17 * 1024)).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    // Just under the limit is served (and `Connection: close` lets the exchange end).
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    let (answer, _) = exchange(&host, request.into_bytes()).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    // 500 header lines are refused too.
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n{many}\r\n");
    let (answer, _) = exchange(&host, request.into_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
}

#[tokio::test]
async fn t088_a_repeated_or_missing_host_is_400_and_the_connection_closed() {
    skip_without_postgres!();
    let server = start().await;
    let host = host(&server);
    let requests = [
        format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nHost: evil.test\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n\r\n"),
        "GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n".to_owned(),
    ];
    for request in requests {
        // No `Connection: close`: the server closes the connection on its own.
        let (answer, _) = exchange(&host, request.clone().into_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{request:?}: {answer}");
        assert!(answer.contains("invalid_request"), "{answer}");
    }
}

#[tokio::test]
async fn t088_content_length_with_transfer_encoding_is_400_in_either_order() {
    skip_without_postgres!();
    let server = start().await;
    let host = host(&server);
    let headers = [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "transfer-encoding: chunked\r\ncontent-length: 0",
    ];
    for framing in headers {
        let request = format!(
            "POST /oauth/v2/token HTTP/1.1\r\nHost: {host}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n0\r\n\r\n"
        );
        let (answer, _) = exchange(&host, request.into_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{framing:?}: {answer}");
        assert!(answer.contains("invalid_request"), "{answer}");
    }
    // Either one alone is served as usual (the token endpoint's own error, not a framing one).
    let request = format!(
        "POST /oauth/v2/token HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         e\r\ngrant_type=foo\r\n0\r\n\r\n"
    );
    let (answer, _) = exchange(&host, request.into_bytes()).await;
    assert!(!answer.contains("Transfer-Encoding must not"), "{answer}");
    // No client authentication: the token endpoint's invalid_client.
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert!(answer.contains("invalid_client"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_are_closed_after_the_header_timeout_and_others_are_served() {
    skip_without_postgres!();
    const TRICKLERS: usize = 300;
    let timeout = Duration::from_secs(1);
    let server = start_with(|s| s.http.header_read_timeout = timeout).await;
    let host = host(&server);
    let mut tricklers = Vec::new();
    for _ in 0..TRICKLERS {
        let stream = TcpStream::connect(&host).await.unwrap();
        let host = host.clone();
        tricklers.push(tokio::spawn(async move {
            let opened = Instant::now();
            let (mut reader, mut writer) = stream.into_split();
            let head = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ");
            let _ = writer.write_all(head.as_bytes()).await;
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            let mut byte = [0; 1];
            let closed = async {
                loop {
                    tokio::select! {
                        read = reader.read(&mut byte) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        },
                        _ = ticks.tick() => {
                            // One byte at a time, never the end of the headers.
                            let _ = writer.write_all(b"a").await;
                        }
                    }
                }
            };
            tokio::time::timeout(PATIENCE, closed)
                .await
                .map(|()| opened.elapsed())
        }));
    }
    // Let every trickler get going, then ask as an ordinary client would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = Http::new().get(server.at("/healthz")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.elapsed < Duration::from_secs(1),
        "an ordinary request took {:?} among {TRICKLERS} tricklers",
        reply.elapsed
    );
    for trickler in tricklers {
        let lived = trickler
            .await
            .unwrap()
            .expect("a trickling connection was never closed");
        assert!(
            lived >= timeout - Duration::from_millis(100),
            "closed after {lived:?}, before the header timeout of {timeout:?}"
        );
    }
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_refused_after_the_body_timeout() {
    skip_without_postgres!();
    let timeout = Duration::from_millis(500);
    let server = start_with(|s| s.http.body_read_timeout = timeout).await;
    let host = host(&server);
    // Announces 100 bytes and sends 10.
    let request = format!(
        "POST /oauth/v2/token HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
         grant_type"
    );
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let start = Instant::now();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    let answered = tokio::time::timeout(PATIENCE, async {
        // Until the whole error body is in (or the server closes).
        while !String::from_utf8_lossy(&answer).ends_with('}') {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        start.elapsed()
    })
    .await
    .expect("no answer to a stalled body");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answered >= timeout, "answered after {answered:?}");
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    skip_without_postgres!();
    let idle = Duration::from_millis(500);
    let server = start_with(|s| s.http.idle_timeout = idle).await;
    let host = host(&server);
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let sent = Instant::now();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    // The answer, then the close: the connection was kept alive, and then it was idle.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the idle connection was never closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("\"ok\""), "{answer}");
    assert!(
        ended - sent >= idle - Duration::from_millis(50),
        "closed {:?} after the request, before the idle timeout",
        ended - sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    skip_without_postgres!();
    let timeout = Duration::from_secs(1);
    let server = start_with(|s| {
        s.http.max_connections = 2;
        s.http.header_read_timeout = timeout;
    })
    .await;
    let host = host(&server);
    // Two silent connections take both places ...
    let silent = [
        TcpStream::connect(&host).await.unwrap(),
        TcpStream::connect(&host).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... so a third is served only once the header timeout has closed one of them.
    let reply = Http::new().get(server.at("/healthz")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.elapsed >= timeout - Duration::from_millis(300),
        "served after {:?}, beyond the cap of 2",
        reply.elapsed
    );
    drop(silent);
}

#[tokio::test]
async fn a_full_password_queue_answers_503_with_retry_after_at_once() {
    skip_without_postgres!();
    let server = start_with(|s| s.http.password_queue = 1).await;
    let user = server.user("ada@example.com").await;
    let browser = server.browser();
    let login = browser.get(server.at("/")).await;
    assert!(login.is_login_page(), "{}", login.body);
    // The one place is taken (as by a sign-in being hashed) ...
    let taken = server.app.passwords.admit().expect("a free place");
    assert!(server.app.passwords.admit().is_none());
    let busy = browser
        .sign_in_on(&login, &user.email, &user.password)
        .await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    let retry_after: u64 = busy.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert!(busy.elapsed < Duration::from_secs(2), "{:?}", busy.elapsed);
    assert!(browser.session().is_none());
    // ... and once it is free, the same form signs in.
    drop(taken);
    let signed_in = browser
        .sign_in_on(&login, &user.email, &user.password)
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.session().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_answered_or_turned_away_never_left_waiting() {
    skip_without_postgres!();
    let server = start_with(|s| s.http.password_queue = 2).await;
    let user = server.user("ada@example.com").await;
    let mut attempts = Vec::new();
    for _ in 0..20 {
        let browser = server.browser();
        let login = browser.get(server.at("/")).await;
        let email = user.email.clone();
        attempts.push(tokio::spawn(async move {
            browser.sign_in_on(&login, &email, "wrong password").await
        }));
    }
    for attempt in attempts {
        let reply = attempt.await.unwrap();
        match reply.status {
            // The generic failure, on the login page again.
            200 => assert!(reply.is_login_page(), "{}", reply.body),
            503 => assert!(reply.header("retry-after").is_some()),
            other => panic!("a sign-in in a burst got {other}: {}", reply.body),
        }
    }
}
