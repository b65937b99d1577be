//! The handshake data of a socket, shaped like the reference's `socket.handshake`.

use std::time::{SystemTime, UNIX_EPOCH};

use ignis_engine::RequestInfo;
use ignis_proto::Value;
use ignis_proto::value::Map;

/// What the client sent when it connected.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// Headers of the first HTTP request of the session, names lower-cased; repeated headers are
    /// joined with `", "` as Node does.
    pub headers: Vec<(String, String)>,
    /// When the session opened, in JavaScript's `Date.toString()` form (UTC).
    pub time: String,
    /// The client's IP address.
    pub address: String,
    /// Whether the request carried an `Origin` header.
    pub xdomain: bool,
    /// Whether the connection was encrypted.
    pub secure: bool,
    /// When the session opened, in milliseconds since the Unix epoch.
    pub issued: u64,
    /// Path and query of the first request.
    pub url: String,
    /// The query parameters of the first request (`EIO`, `transport`, and the client's own).
    pub query: Vec<(String, String)>,
    /// The auth payload of the CONNECT packet (`{}` when there was none).
    pub auth: Value,
}

impl Handshake {
    pub(crate) fn new(info: &RequestInfo, auth: Value) -> Handshake {
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in &info.parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                None => headers.push((name.as_str().to_string(), value)),
            }
        }
        let query = info
            .parts
            .uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let issued = info
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Handshake {
            xdomain: info.parts.headers.contains_key(http::header::ORIGIN),
            headers,
            time: js_date_string(info.time),
            address: info.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            secure: false,
            issued,
            url: info
                .parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            query,
            auth,
        }
    }

    /// A header by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON shape of the reference (`fetchSockets`, the Redis adapter).
    pub fn to_value(&self) -> Value {
        let pairs = |list: &[(String, String)]| {
            let mut m = Map::with_capacity(list.len());
            for (k, v) in list {
                m.insert(k.clone(), v.clone());
            }
            Value::Map(m)
        };
        let mut m = Map::with_capacity(9);
        m.insert("headers", pairs(&self.headers));
        m.insert("time", self.time.clone());
        m.insert("address", self.address.clone());
        m.insert("xdomain", self.xdomain);
        m.insert("secure", self.secure);
        m.insert("issued", Value::from_u64(self.issued));
        m.insert("url", self.url.clone());
        m.insert("query", pairs(&self.query));
        m.insert("auth", self.auth.clone());
        Value::Map(m)
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
    let dur = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = dur.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        dur.subsec_millis()
    )
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
    }
}
