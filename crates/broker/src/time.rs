//! Wall-clock instants as the broker stores and reports them.
//!
//! Service Bus (and AMQP `timestamp`) work in milliseconds since the Unix epoch, so that is
//! the broker's only time unit: no conversions between clock types anywhere in the crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), the resolution of an AMQP `timestamp`.
/// `Default` is the Unix epoch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(i64);

/// .NET ticks (100 ns) at the Unix epoch; Service Bus reports session lock expiry in ticks.
const DOTNET_TICKS_AT_UNIX_EPOCH: i64 = 621_355_968_000_000_000;

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            // A clock before 1970 is a misconfigured host; clamp rather than panic.
            Err(_) => 0,
        };
        Self(millis)
    }

    /// Builds a timestamp from milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch: the value of an AMQP `timestamp`.
    pub const fn as_unix_millis(self) -> i64 {
        self.0
    }

    /// The same instant in .NET ticks (100 ns since 0001-01-01), as used by
    /// `com.microsoft:locked-until-utc`.
    pub fn as_dotnet_ticks(self) -> i64 {
        self.0
            .saturating_mul(10_000)
            .saturating_add(DOTNET_TICKS_AT_UNIX_EPOCH)
    }

    /// `self + duration`, saturating at the far future instead of overflowing.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// Time from `self` until `later`, zero when `later` is not after `self`.
    pub fn until(self, later: Timestamp) -> Duration {
        let millis = later.0.saturating_sub(self.0).max(0);
        Duration::from_millis(millis.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_ticks_of_unix_epoch() {
        assert_eq!(
            Timestamp::from_unix_millis(0).as_dotnet_ticks(),
            DOTNET_TICKS_AT_UNIX_EPOCH
        );
        assert_eq!(
            Timestamp::from_unix_millis(1).as_dotnet_ticks(),
            DOTNET_TICKS_AT_UNIX_EPOCH + 10_000
        );
    }

    #[test]
    fn saturating_arithmetic() {
        let t = Timestamp::from_unix_millis(i64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(10)).as_unix_millis(),
            i64::MAX
        );
        let a = Timestamp::from_unix_millis(1000);
        assert_eq!(a.until(Timestamp::from_unix_millis(500)), Duration::ZERO);
        assert_eq!(
            a.until(Timestamp::from_unix_millis(1500)),
            Duration::from_millis(500)
        );
    }
}
