//! The rows every phase writes: sample telemetry shaped like `busdrain send`'s default template
//! (`{"device_id":"dev-K","ts":"…","temperature":…,"seq":…}`, K = seq mod 100), generated
//! deterministically from the sequence number so every phase carries the same data.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Devices the readings are spread over (one Cassandra partition each), as in `busdrain send`.
pub const DEVICES: u64 = 100;

/// The CQL table every phase writes to (one fresh table per phase, same shape).
pub const TABLE_COLUMNS: &str = "device_id text, seq bigint, ts timestamp, temperature double, \
     ingested timestamp, PRIMARY KEY ((device_id), seq)";

/// One telemetry reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: String,
    pub seq: i64,
    /// Event time in epoch milliseconds.
    pub ts_ms: i64,
    pub temperature: f64,
}

impl Reading {
    /// The reading number `seq`, stamped `ts_ms`. The temperature is a fixed function of
    /// `seq` (15.00 ..= 29.99), so two runs generate byte-identical bodies.
    pub fn new(seq: u64, ts_ms: i64) -> Self {
        // A multiplicative hash spreads consecutive numbers over the range.
        let hundredths = (seq.wrapping_mul(2_654_435_761) >> 7) % 1_500;
        Self {
            device_id: format!("dev-{}", seq % DEVICES),
            seq: seq as i64,
            ts_ms,
            temperature: 15.0 + hundredths as f64 / 100.0,
        }
    }

    /// The JSON body of the message carrying this reading.
    pub fn to_json(&self) -> Vec<u8> {
        let ts = OffsetDateTime::from_unix_timestamp_nanos(self.ts_ms as i128 * 1_000_000)
            .ok()
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string());
        format!(
            r#"{{"device_id":"{}","ts":"{ts}","temperature":{:.2},"seq":{}}}"#,
            self.device_id, self.temperature, self.seq
        )
        .into_bytes()
    }
}

/// `count` readings, numbered from 0, one millisecond apart from `start_ms`.
pub fn readings(count: u64, start_ms: i64) -> Vec<Reading> {
    (0..count)
        .map(|seq| Reading::new(seq, start_ms + seq as i64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_send_template_shape_and_deterministic() {
        let reading = Reading::new(142, 1_700_000_000_123);
        let json: serde_json::Value = serde_json::from_slice(&reading.to_json()).unwrap();
        assert_eq!(json["device_id"], "dev-42");
        assert_eq!(json["seq"], 142);
        assert_eq!(json["ts"], "2023-11-14T22:13:20.123Z");
        let t = json["temperature"].as_f64().unwrap();
        assert!((15.0..30.0).contains(&t), "{t}");
        assert_eq!(
            reading.to_json(),
            Reading::new(142, 1_700_000_000_123).to_json()
        );
        let spread: std::collections::HashSet<String> = (0..50)
            .map(|seq| format!("{:.2}", Reading::new(seq, 0).temperature))
            .collect();
        assert!(spread.len() > 25, "temperatures should vary: {spread:?}");
    }
}
