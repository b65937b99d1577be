//! The page the chat serves: `/` is the HTML under a strict Content-Security-Policy, revalidated
//! on each visit; the assets it names are served with their types and cached for good; other
//! paths are 404s, and the API keeps its routes.

mod common;

use std::time::Duration;

use common::{Backend, TestChat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(port: u16, path: &str, extra: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the answer comes in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// The asset path the page loads with `attribute="/assets/…ext"`.
fn named(html: &str, ext: &str) -> String {
    html.split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(ext))
        .unwrap_or_else(|| panic!("the page names a {ext} asset:\n{html}"))
        .to_string()
}

#[tokio::test]
async fn serves_the_page_and_its_assets() {
    let chat = TestChat::start(Backend::Sqlite).await;
    let port = chat.port;

    let page = get(port, "/", "").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self' ws: wss:",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("data-testid=\"composer\""));

    // Revalidation: the same page is a 304 without a body.
    let etag = page.header("etag").expect("an ETag").to_string();
    let again = get(port, "/", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = get(port, "/", "If-None-Match: \"something-else\"\r\n").await;
    assert_eq!(other.status, 200);

    let js = get(port, &named(&html, ".js"), "").await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        js.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // The bundle holds the app and socket.io-client: the chat's events and the client's path.
    let code = js.text();
    assert!(code.contains("message:send") && code.contains("/io"));

    let css = get(port, &named(&html, ".css"), "").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    let icon = get(port, &named(&html, ".svg"), "").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));

    // Every asset the binary holds answers; an unknown one does not.
    for name in ignis_chat::page::asset_names() {
        assert_eq!(get(port, &format!("/assets/{name}"), "").await.status, 200);
    }
    assert_eq!(get(port, "/assets/main-nothing.js", "").await.status, 404);
    assert_eq!(get(port, "/index.html", "").await.status, 404);
    assert_eq!(get(port, "/some/client/route", "").await.status, 404);

    // The API and Socket.IO keep their routes.
    let me = get(port, "/api/auth/me", "").await;
    assert_eq!(me.status, 401);
    assert!(me.text().contains("UNAUTHORIZED"));
    let handshake = get(port, "/io/?EIO=4&transport=polling", "").await;
    assert_eq!(handshake.status, 200);
    assert!(handshake.text().contains("\"sid\""), "{}", handshake.text());

    chat.stop().await;
}
