//! Durations, sizes and counts as written in `tool.fnhost` tables, checked against the bounds
//! each setting allows: durations by `humantime` ("30s", "250ms", "1h 30m"), sizes by
//! `bytesize` (a byte count, "128MiB", "10MB"). A value outside its bounds — zero, a duration
//! that would overflow the clock, a memory limit beyond what wasm32 can address — is refused at
//! load with the bounds in the message, never clamped.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::schema::Size;

/// A duration like "30s" or "250ms", within `bounds`.
pub fn duration(text: &str, bounds: RangeInclusive<Duration>) -> Result<Duration, String> {
    let text = text.trim();
    let d = humantime::parse_duration(text).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("\"{text}\" has no unit; use ms, s, m or h")
        }
        humantime::DurationError::NumberOverflow => format!("\"{text}\" is too large"),
        e => format!("\"{text}\" is not a duration like \"30s\" or \"250ms\" ({e})"),
    })?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    if !bounds.contains(&d) {
        return Err(format!(
            "\"{text}\" is out of range: must be from {} to {}",
            humantime::format_duration(*bounds.start()),
            humantime::format_duration(*bounds.end())
        ));
    }
    Ok(d)
}

/// A size in bytes (a number, or a string with a unit), within `bounds`.
pub fn size(value: &Size, bounds: RangeInclusive<u64>) -> Result<u64, String> {
    let bytes = match value {
        Size::Bytes(n) => {
            u64::try_from(*n).map_err(|_| format!("must not be negative, got {n}"))?
        }
        Size::Text(text) => {
            let text = text.trim();
            // bytesize saturates on overflow and accepts fractions ("1.5GiB"); a value that does
            // not fit is caught by the bounds below.
            text.parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|_| {
                    format!("\"{text}\" is not a size like \"128MiB\" (units: B, KiB, MiB, GiB, KB, MB, GB)")
                })?
        }
    };
    if !bounds.contains(&bytes) {
        return Err(format!(
            "{} is out of range: must be from {} to {}",
            shown(value),
            bytesize::ByteSize(*bounds.start()).display().iec(),
            bytesize::ByteSize(*bounds.end()).display().iec()
        ));
    }
    Ok(bytes)
}

fn shown(value: &Size) -> String {
    match value {
        Size::Bytes(n) => format!("{n} bytes"),
        Size::Text(t) => format!("\"{t}\""),
    }
}

/// A whole number within `bounds` (counts of requests, headers, connections).
pub fn count(n: i64, bounds: RangeInclusive<i64>) -> Result<usize, String> {
    if !bounds.contains(&n) {
        return Err(format!(
            "must be an integer from {} to {}, got {n}",
            bounds.start(),
            bounds.end()
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(86_400);

    #[test]
    fn durations() {
        assert_eq!(duration("250ms", ANY), Ok(Duration::from_millis(250)));
        assert_eq!(duration("30s", ANY), Ok(Duration::from_secs(30)));
        assert_eq!(duration("2m", ANY), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h 30m", ANY), Ok(Duration::from_secs(5400)));
        let cases = [
            ("5", "no unit"),
            ("0s", "greater than zero"),
            ("abc", "not a duration"),
            ("25h", "out of range"),
            ("99999999999999999999s", "too large"),
        ];
        for (text, want) in cases {
            let err = duration(text, ANY).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn sizes() {
        let any = 1..=u64::MAX;
        assert_eq!(
            size(&Size::Text("128MiB".into()), any.clone()),
            Ok(128 << 20)
        );
        assert_eq!(
            size(&Size::Text("10MB".into()), any.clone()),
            Ok(10_000_000)
        );
        assert_eq!(size(&Size::Bytes(4096), any.clone()), Ok(4096));
        let bounded = 64 << 10..=4 << 30;
        for (value, want) in [
            (Size::Text("12 parsecs".into()), "not a size"),
            (Size::Bytes(-1), "negative"),
            (Size::Text("64GiB".into()), "out of range"),
            (Size::Text("99999999999EiB".into()), "out of range"),
            (Size::Bytes(1), "out of range"),
        ] {
            let err = size(&value, bounded.clone()).unwrap_err();
            assert!(err.contains(want), "{value:?}: {err}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(count(4, 1..=10), Ok(4));
        assert!(count(0, 1..=10).unwrap_err().contains("from 1 to 10"));
    }
}
