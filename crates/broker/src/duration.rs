//! ISO-8601 durations as written in Microsoft's emulator `Config.json` (`PT1M`, `PT5S`, `P1D`,
//! `PT0.5S`, `P1DT2H`), plus .NET `TimeSpan` text (`00:01:00`, `1.00:00:00`) which the Azure
//! portal and ARM templates also use for the same properties.

use std::time::Duration;

/// Why a duration string was refused; shown to the user next to the property name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an ISO-8601 duration such as PT30S, PT1M, PT1H or P1D: {reason}")]
pub struct DurationParseError {
    text: String,
    reason: &'static str,
}

const SECS_PER_MINUTE: f64 = 60.0;
const SECS_PER_HOUR: f64 = 3_600.0;
const SECS_PER_DAY: f64 = 86_400.0;
/// Years and months have no fixed length; Service Bus (.NET `XmlConvert`) counts 365 and 30 days.
const SECS_PER_YEAR: f64 = 365.0 * SECS_PER_DAY;
const SECS_PER_MONTH: f64 = 30.0 * SECS_PER_DAY;
const SECS_PER_WEEK: f64 = 7.0 * SECS_PER_DAY;

/// Parses `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]` (case-insensitive designators), or a .NET
/// `TimeSpan` `[d.]hh:mm:ss[.fff]`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationParseError> {
    let trimmed = text.trim();
    let fail = |reason| DurationParseError {
        text: text.to_owned(),
        reason,
    };
    if trimmed.contains(':') {
        return parse_timespan(trimmed).ok_or_else(|| fail("malformed d.hh:mm:ss time span"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let rest = upper
        .strip_prefix('P')
        .ok_or_else(|| fail("it must start with P"))?;
    if rest.is_empty() || rest == "T" {
        return Err(fail("no value after P"));
    }
    let mut seconds = 0.0_f64;
    let mut in_time = false;
    let mut number = String::new();
    let mut seen_any = false;
    for ch in rest.chars() {
        match ch {
            '0'..='9' | '.' | ',' => number.push(if ch == ',' { '.' } else { ch }),
            'T' => {
                if in_time || !number.is_empty() {
                    return Err(fail("misplaced T"));
                }
                in_time = true;
            }
            designator => {
                if number.is_empty() {
                    return Err(fail("a designator without a number"));
                }
                let value: f64 = number.parse().map_err(|_| fail("malformed number"))?;
                number.clear();
                let unit = match (in_time, designator) {
                    (false, 'Y') => SECS_PER_YEAR,
                    (false, 'M') => SECS_PER_MONTH,
                    (false, 'W') => SECS_PER_WEEK,
                    (false, 'D') => SECS_PER_DAY,
                    (true, 'H') => SECS_PER_HOUR,
                    (true, 'M') => SECS_PER_MINUTE,
                    (true, 'S') => 1.0,
                    _ => return Err(fail("unknown designator (use Y, M, W, D, T, H, M, S)")),
                };
                seconds += value * unit;
                seen_any = true;
            }
        }
    }
    if !number.is_empty() {
        return Err(fail("a number without a designator"));
    }
    if !seen_any {
        return Err(fail("no value after P"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| fail("out of range"))
}

/// .NET `TimeSpan` text: `[d.]hh:mm:ss[.fffffff]`.
fn parse_timespan(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once(':') {
        Some((head, _)) if head.contains('.') => {
            let (days, rest) = text.split_once('.')?;
            (days.parse::<u64>().ok()?, rest)
        }
        _ => (0, text),
    };
    let mut parts = clock.split(':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || hours > 23 || minutes > 59 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    let whole = days
        .checked_mul(86_400)?
        .checked_add(hours * 3_600 + minutes * 60)?;
    Duration::from_secs(whole).checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

/// Renders a duration the way the config accepts it back (`PT1M`, `PT0.5S`, `P1D`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "PT0S".to_owned();
    }
    let days = millis / 86_400_000;
    let rem = millis % 86_400_000;
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rem > 0 {
        out.push('T');
        let hours = rem / 3_600_000;
        let minutes = rem % 3_600_000 / 60_000;
        let secs_ms = rem % 60_000;
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if secs_ms > 0 {
            let (secs, ms) = (secs_ms / 1000, secs_ms % 1000);
            if ms == 0 {
                out.push_str(&format!("{secs}S"));
            } else {
                let text = format!("{secs}.{ms:03}");
                out.push_str(text.trim_end_matches('0'));
                out.push('S');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_duration("PT1M"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT5S"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("P1D"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("PT0.5S"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("P1DT2H3M4S"),
            Ok(Duration::from_secs(93_784))
        );
        assert_eq!(parse_duration("pt1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("P1Y"), Ok(Duration::from_secs(365 * 86_400)));
        assert_eq!(parse_duration("P2W"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn timespan_text() {
        assert_eq!(parse_duration("00:01:00"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_duration("1.00:00:30"),
            Ok(Duration::from_secs(86_430))
        );
        assert_eq!(
            parse_duration("10675199.02:48:05.4775807").map(|d| d.as_secs()),
            Ok(10_675_199 * 86_400 + 2 * 3600 + 48 * 60 + 5)
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "", "P", "PT", "1M", "PT1", "PTM", "P1H", "PT1X", "P1.2.3D", "00:61:00",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["PT1M", "PT5S", "P1D", "PT0.5S", "P1DT2H3M4S", "PT0S"] {
            let parsed = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(parsed), text);
        }
    }
}
