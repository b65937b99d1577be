//! The handshake data of a socket, shaped like the reference's `socket.handshake`.
//!
//! A server keeps this for every connection as long as it lives, so it is packed: the URL, the
//! headers and the decoded query parameters share one reference-counted buffer, built once per
//! Engine.IO session and shared by the sockets of all its namespaces; the date and address
//! strings are formatted only when asked for.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use ignis_proto::Value;
use ignis_proto::value::Map;

/// The part of the handshake that comes from the session's first HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestHead {
    /// The URL, the headers and the query parameters, each string prefixed with its length
    /// (see [`Packed`]).
    packed: Arc<[u8]>,
    peer: Option<SocketAddr>,
    time: SystemTime,
    xdomain: bool,
}

impl RequestHead {
    pub(crate) fn new(parts: &Parts, peer: Option<SocketAddr>, time: SystemTime) -> RequestHead {
        thread_local! {
            /// Where the buffer is put together before it is copied to its own allocation, which
            /// is sized exactly: the scratch space is allocated once per thread, not per session.
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut packed) => {
                let head = RequestHead::pack(parts, peer, time, &mut packed);
                // A rare huge head does not stay allocated for the thread's life.
                if packed.capacity() > 16 * 1024 {
                    *packed = Vec::new();
                }
                head
            }
            // Only if packing re-entered itself, which it does not: a buffer of its own then.
            Err(_) => RequestHead::pack(parts, peer, time, &mut Vec::new()),
        })
    }

    fn pack(
        parts: &Parts,
        peer: Option<SocketAddr>,
        time: SystemTime,
        packed: &mut Vec<u8>,
    ) -> RequestHead {
        packed.clear();
        let url = parts.uri.path_and_query().map_or("", |p| p.as_str());
        let query = parts.uri.query().unwrap_or("");
        let headers = &parts.headers;
        put_str(packed, url.as_bytes());
        // Repeated headers are joined with ", " as Node does; names come lower-cased from http,
        // and a map yields the values of a name one after the other.
        put_len(packed, headers.keys_len());
        let mut xdomain = false;
        let mut values = headers.iter().peekable();
        while let Some((name, first)) = values.next() {
            xdomain |= name == http::header::ORIGIN;
            put_str(packed, name.as_str().as_bytes());
            let mut joined: Option<Vec<u8>> = None;
            while let Some((_, more)) = values.next_if(|(next, _)| *next == name) {
                let joined = joined.get_or_insert_with(|| first.as_bytes().to_vec());
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(more.as_bytes());
            }
            let value = joined.as_deref().unwrap_or(first.as_bytes());
            // Nearly always ASCII, which is checked faster than it is replaced.
            if value.is_ascii() {
                put_str(packed, value);
            } else {
                put_str(packed, String::from_utf8_lossy(value).as_bytes());
            }
        }
        // The count goes first: one byte kept for it, widened in the rare case it needs more.
        let at = packed.len();
        packed.push(0);
        let mut count = 0;
        for (k, v) in ignis_engine::query_pairs(query) {
            put_str(packed, k.as_bytes());
            put_str(packed, v.as_bytes());
            count += 1;
        }
        match u8::try_from(count) {
            Ok(n) if n < 0x80 => packed[at] = n,
            _ => {
                let mut len = Vec::new();
                put_len(&mut len, count);
                packed.splice(at..at + 1, len);
            }
        }
        RequestHead {
            packed: Arc::from(&packed[..]),
            peer,
            time,
            xdomain,
        }
    }

    fn sections(&self) -> (&str, Pairs<'_>, Pairs<'_>) {
        let mut p = Packed(&self.packed);
        let url = p.string();
        let headers = p.pairs();
        let mut rest = Packed(headers.rest);
        // Skip the headers to reach the query.
        for _ in 0..headers.remaining {
            rest.string();
            rest.string();
        }
        (url, headers, rest.pairs())
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    // LEB128: one byte for the short strings that make up nearly every handshake.
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len());
    out.extend_from_slice(s);
}

/// A reader over the packed buffer. The buffer is only ever written by [`RequestHead::new`]
/// from valid UTF-8, so a failed decode yields empty strings rather than an error.
struct Packed<'a>(&'a [u8]);

impl<'a> Packed<'a> {
    fn len(&mut self) -> usize {
        let mut n = 0usize;
        let mut shift = 0;
        while let Some((&byte, rest)) = self.0.split_first() {
            self.0 = rest;
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 || shift > 56 {
                break;
            }
            shift += 7;
        }
        n
    }

    fn string(&mut self) -> &'a str {
        let n = self.len().min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s).unwrap_or_default()
    }

    fn pairs(mut self) -> Pairs<'a> {
        let remaining = self.len();
        Pairs {
            rest: self.0,
            remaining,
        }
    }
}

/// Name/value pairs read from the packed buffer.
#[derive(Clone)]
struct Pairs<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut p = Packed(self.rest);
        let pair = (p.string(), p.string());
        self.rest = p.0;
        Some(pair)
    }
}

/// What the client sent when it connected.
#[derive(Clone, PartialEq)]
pub struct Handshake {
    head: RequestHead,
    /// The auth payload of the CONNECT packet (`{}` when there was none).
    pub auth: Value,
}

impl Handshake {
    /// The handshake of a client whose session opened with this request.
    pub fn from_request(
        parts: &Parts,
        peer: Option<SocketAddr>,
        time: SystemTime,
        auth: Value,
    ) -> Handshake {
        Handshake::new(RequestHead::new(parts, peer, time), auth)
    }

    pub(crate) fn new(head: RequestHead, auth: Value) -> Handshake {
        Handshake { head, auth }
    }

    /// Headers of the first HTTP request of the session, names lower-cased, in the order they
    /// came; repeated headers are joined with `", "` as Node does.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.head.sections().1
    }

    /// A header by its name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The query parameters of the first request (`EIO`, `transport`, and the client's own),
    /// decoded, in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.head.sections().2
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query_pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Path and query of the first request.
    pub fn url(&self) -> &str {
        self.head.sections().0
    }

    /// When the session opened, in JavaScript's `Date.toString()` form (UTC).
    pub fn time(&self) -> String {
        js_date_string(self.head.time)
    }

    /// When the session opened, in milliseconds since the Unix epoch.
    pub fn issued(&self) -> u64 {
        self.head
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// The client's IP address (empty when unknown).
    pub fn address(&self) -> String {
        self.head
            .peer
            .map(|p| p.ip().to_string())
            .unwrap_or_default()
    }

    /// Whether the request carried an `Origin` header.
    pub fn xdomain(&self) -> bool {
        self.head.xdomain
    }

    /// Whether the connection was encrypted (TLS ends before this server).
    pub fn secure(&self) -> bool {
        false
    }

    /// The JSON shape of the reference (`fetchSockets`, the Redis adapter).
    pub fn to_value(&self) -> Value {
        let pairs = |list: &mut dyn Iterator<Item = (&str, &str)>| {
            let mut m = Map::new();
            for (k, v) in list {
                m.insert(k, v);
            }
            Value::Map(m)
        };
        let mut m = Map::with_capacity(9);
        m.insert("headers", pairs(&mut self.headers()));
        m.insert("time", self.time());
        m.insert("address", self.address());
        m.insert("xdomain", self.xdomain());
        m.insert("secure", self.secure());
        m.insert("issued", Value::from_u64(self.issued()));
        m.insert("url", self.url());
        m.insert("query", pairs(&mut self.query_pairs()));
        m.insert("auth", self.auth.clone());
        Value::Map(m)
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("url", &self.url())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("address", &self.address())
            .field("issued", &self.issued())
            .field("auth", &self.auth)
            .finish()
    }
}

/// `Date.prototype.toString()` in UTC: `Sat Feb 14 2026 15:54:08 GMT+0000 (Coordinated Universal Time)`.
pub(crate) fn js_date_string(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:04} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// ISO-8601 with milliseconds, as JavaScript's `Date.prototype.toISOString()`.
pub fn iso_timestamp(time: SystemTime) -> String {
    // Chat events stamp every message, many within the same millisecond: each thread keeps the
    // last one it wrote.
    thread_local! {
        static LAST: Cell<(u128, [u8; 24])> = const { Cell::new((u128::MAX, [0; 24])) };
    }
    let dur = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = dur.as_millis();
    let (cached_millis, cached) = LAST.get();
    if cached_millis == millis {
        return std::str::from_utf8(&cached)
            .map(str::to_owned)
            .unwrap_or_default();
    }
    let secs = dur.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    if !(0..=9999).contains(&y) {
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            y,
            m,
            d,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            dur.subsec_millis()
        );
    }
    // Digits by hand cost a tenth of `format!`.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, y as u64);
    put(5, 2, m as u64);
    put(8, 2, d as u64);
    put(11, 2, (rem / 3600) as u64);
    put(14, 2, (rem % 3600 / 60) as u64);
    put(17, 2, (rem % 60) as u64);
    put(20, 3, u64::from(dur.subsec_millis()));
    LAST.set((millis, out));
    // Digits and punctuation only: always UTF-8.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_format_like_javascript() {
        // 2026-02-14T15:54:08.123Z was a Saturday.
        let t = UNIX_EPOCH + Duration::from_millis(1_771_084_448_123);
        assert_eq!(iso_timestamp(t), "2026-02-14T15:54:08.123Z");
        assert_eq!(
            js_date_string(t),
            "Sat Feb 14 2026 15:54:08 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(iso_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso_timestamp(leap), "2000-02-29T00:00:00.000Z");
        // The same millisecond twice (the cached one), then the next.
        assert_eq!(iso_timestamp(leap), "2000-02-29T00:00:00.000Z");
        let next = leap + Duration::from_micros(1_500);
        assert_eq!(iso_timestamp(next), "2000-02-29T00:00:00.001Z");
        assert_eq!(iso_timestamp(t), "2026-02-14T15:54:08.123Z");
    }

    #[test]
    fn the_packed_head_reads_back_as_it_came() {
        let long = "x".repeat(300);
        let request = http::Request::get(format!(
            "/io/?EIO=4&transport=websocket&foo=a%20b&long={long}"
        ))
        .header("Host", "localhost")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("Origin", "http://example.test")
        .header("x-long", long.as_str())
        .header("x-bin", http::HeaderValue::from_bytes(b"\xffab").unwrap())
        .header("x-bin", "cd")
        .body(())
        .unwrap();
        let (parts, ()) = request.into_parts();
        let peer: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let t = UNIX_EPOCH + Duration::from_millis(1_771_084_448_123);
        let auth = Value::from("token");
        let h = Handshake::from_request(&parts, Some(peer), t, auth.clone());
        let headers: Vec<_> = h.headers().collect();
        assert_eq!(
            headers,
            vec![
                ("host", "localhost"),
                ("x-multi", "one, two"),
                ("origin", "http://example.test"),
                ("x-long", long.as_str()),
                ("x-bin", "\u{fffd}ab, cd"),
            ]
        );
        assert_eq!(h.header("X-MULTI"), Some("one, two"));
        assert_eq!(h.header("absent"), None);
        assert_eq!(h.query("foo"), Some("a b"));
        assert_eq!(h.query("long"), Some(long.as_str()));
        assert_eq!(h.query("EIO"), Some("4"));
        assert_eq!(h.query_pairs().count(), 4);
        assert!(
            h.url()
                .starts_with("/io/?EIO=4&transport=websocket&foo=a%20b&long=xxx")
        );
        assert_eq!(h.address(), "10.1.2.3");
        assert!(h.xdomain());
        assert!(!h.secure());
        assert_eq!(h.issued(), 1_771_084_448_123);
        assert_eq!(h.time(), js_date_string(t));
        assert_eq!(h.auth, auth);
        let v = h.to_value();
        assert_eq!(v.get("url").and_then(Value::as_str), Some(h.url()));
        assert_eq!(
            v.get("headers")
                .and_then(|m| m.get("x-multi"))
                .and_then(Value::as_str),
            Some("one, two")
        );
        assert_eq!(
            v.get("query")
                .and_then(|m| m.get("foo"))
                .and_then(Value::as_str),
            Some("a b")
        );
        assert_eq!(v.get("address").and_then(Value::as_str), Some("10.1.2.3"));

        // More query pairs than a one-byte count holds.
        let many: Vec<String> = (0..300).map(|i| format!("k{i}=v{i}")).collect();
        let uri = format!("/io/?{}", many.join("&"));
        let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
        let h = Handshake::from_request(&parts, None, t, Value::Null);
        assert_eq!(h.query_pairs().count(), 300);
        assert_eq!(h.query("k299"), Some("v299"));

        // No query, no headers, no peer.
        let (parts, ()) = http::Request::get("/io/").body(()).unwrap().into_parts();
        let h = Handshake::from_request(&parts, None, t, Value::Null);
        assert_eq!(h.headers().count(), 0);
        assert_eq!(h.query_pairs().count(), 0);
        assert_eq!(h.url(), "/io/");
        assert_eq!(h.address(), "");
        assert!(!h.xdomain());
    }
}
