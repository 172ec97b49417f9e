//! `login-timing` (issue 12, hole 3): whether a failed sign-in's latency tells an unknown email,
//! a wrong password and a throttled attempt apart. One connection, one request at a time, the
//! three kinds interleaved (in a rotating order), so a drift in the machine's load falls on all
//! three alike. Prints each kind's median and the two-sided p-value of the Mann-Whitney U test
//! for each pair (a large p-value: no evidence that the distributions differ).

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::http::Conn;
use crate::seed;

const KINDS: [&str; 3] = ["unknown email", "wrong password", "throttled"];

/// Runs `samples` attempts of each kind against the server at `addr`, whose store holds
/// `users` seeded users; prints the summary. The throttled account is user 1, held back from
/// this address by five wrong passwords first, so run this last.
pub async fn login_timing(addr: SocketAddr, samples: usize, users: u64) -> Result<()> {
    if users < 3 {
        bail!("login-timing needs at least three seeded users");
    }
    let mut conn = Conn::new(addr)?;
    let page = conn.get("/", &[]).await?;
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("grantd_pre_us="))
        })
        .map(str::to_owned);
    let (Some(cookie), Some(csrf)) = (cookie, crate::ops::form_field(&page.body, "csrf_token"))
    else {
        bail!("login-timing: no login form at /: {}", page.excerpt());
    };
    let throttled = seed::email(1);
    for _ in 0..5 {
        attempt(&mut conn, &cookie, &csrf, &throttled, "wrong password").await?;
    }
    let mut times: [Vec<f64>; 3] = Default::default();
    for i in 0..samples {
        for k in 0..3 {
            let kind = (i + k) % 3;
            let email = match kind {
                0 => format!("nobody{i}@bench.invalid"),
                // Each account gets at most four wrong passwords, so none is throttled.
                1 => seed::email(2 + (i as u64 % (users - 2)) as i64),
                _ => throttled.clone(),
            };
            let ms = attempt(&mut conn, &cookie, &csrf, &email, "wrong password").await?;
            times[kind].push(ms);
        }
    }
    println!("login-timing: {samples} failed sign-ins of each kind, one at a time");
    for (kind, sample) in KINDS.iter().zip(&times) {
        println!("  {kind:<15} median {:.2} ms", median(sample));
    }
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        println!(
            "  {} vs {}: Mann-Whitney U p = {:.3}",
            KINDS[a],
            KINDS[b],
            mann_whitney_p(&times[a], &times[b])
        );
    }
    Ok(())
}

/// One failed sign-in; its latency in milliseconds. Anything but the login page again is an
/// error: the measurement is only of failures.
async fn attempt(
    conn: &mut Conn,
    cookie: &str,
    csrf: &str,
    email: &str,
    password: &str,
) -> Result<f64> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf_token", csrf),
            ("next", "/"),
            ("email", email),
            ("password", password),
        ])
        .finish();
    let start = Instant::now();
    let reply = conn
        .post_form("/signin", &[("cookie", cookie)], body)
        .await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if reply.status.as_u16() != 200 {
        bail!(
            "login-timing: POST /signin → {}: {}",
            reply.status,
            reply.excerpt()
        );
    }
    Ok(ms)
}

fn median(sample: &[f64]) -> f64 {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The two-sided p-value of the Mann-Whitney U test (normal approximation with the tie
/// correction and a continuity correction; sound from about 20 samples a side).
fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_sum_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Tied values share the mean of their ranks (1-based).
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let total = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / variance.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// The complementary error function (Numerical Recipes' `erfcc`, fractional error below
/// 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rank_test_tells_shifted_samples_apart_and_equal_ones_not() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let same: Vec<f64> = (0..50).map(|x| f64::from(x) + 0.5).collect();
        let shifted: Vec<f64> = (0..50).map(|x| f64::from(x) + 30.0).collect();
        assert!(mann_whitney_p(&a, &same) > 0.5);
        assert!(mann_whitney_p(&a, &shifted) < 1e-6);
        assert!((mann_whitney_p(&a, &a) - 1.0).abs() < 1e-9);
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
