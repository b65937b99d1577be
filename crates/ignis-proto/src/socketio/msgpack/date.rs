//! Dates in msgpack payloads, turned into the string a JSON client would have received.

/// JavaScript dates span ±100,000,000 days around the epoch.
const MAX_JS_MS: i64 = 8_640_000_000_000_000;

/// `new Date(ms).toJSON()`: `YYYY-MM-DDTHH:MM:SS.sssZ` (years outside 0..=9999 as `±YYYYYY`),
/// or `None` where JavaScript has an invalid date (whose `toJSON` is `null`).
pub(super) fn iso8601_from_millis(ms: i64) -> Option<String> {
    if !(-MAX_JS_MS..=MAX_JS_MS).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    Some(format!(
        "{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z"
    ))
}

/// Milliseconds since the epoch of a msgpack timestamp (extension type -1) body of 4, 8 or 12
/// bytes; `None` if the body is not a valid timestamp.
pub(super) fn millis_from_timestamp(body: &[u8]) -> Option<i64> {
    let (secs, nanos): (i64, u32) = match body.len() {
        4 => (i64::from(u32::from_be_bytes(body.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(body.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => {
            let nanos = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
            let secs = i64::from_be_bytes(body.get(4..)?.try_into().ok()?);
            (secs, nanos)
        }
        _ => return None,
    };
    if nanos >= 1_000_000_000 {
        return None;
    }
    secs.checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_javascript() {
        let cases: &[(i64, Option<&str>)] = &[
            (0, Some("1970-01-01T00:00:00.000Z")),
            (1_700_000_000_123, Some("2023-11-14T22:13:20.123Z")),
            (951_782_400_000, Some("2000-02-29T00:00:00.000Z")),
            (-1, Some("1969-12-31T23:59:59.999Z")),
            (-62_167_219_200_000, Some("0000-01-01T00:00:00.000Z")),
            (-62_167_219_200_001, Some("-000001-12-31T23:59:59.999Z")),
            (253_402_300_800_000, Some("+010000-01-01T00:00:00.000Z")),
            (MAX_JS_MS, Some("+275760-09-13T00:00:00.000Z")),
            (-MAX_JS_MS, Some("-271821-04-20T00:00:00.000Z")),
            (MAX_JS_MS + 1, None),
            (i64::MIN, None),
        ];
        for &(ms, want) in cases {
            assert_eq!(iso8601_from_millis(ms).as_deref(), want, "ms = {ms}");
        }
    }

    #[test]
    fn timestamps() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (&[0, 0, 0, 1], Some(1000)),
            (&[0xff, 0xff, 0xff, 0xff], Some(4_294_967_295_000)),
            // timestamp 64: 5_000_000 ns in the upper 30 bits, 2 s in the lower 34
            (&(((5_000_000u64) << 34) | 2).to_be_bytes(), Some(2005)),
            (
                &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Some(-1000),
            ),
            // 1e9 nanoseconds is not a valid fraction
            (&[0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0], None),
            (
                &[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                None,
            ),
            (&[1, 2, 3], None),
        ];
        for &(body, want) in cases {
            assert_eq!(millis_from_timestamp(body), want, "body = {body:?}");
        }
    }
}
