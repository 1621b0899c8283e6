//! Typed property values and the operators a SQL filter applies to them.
//!
//! Service Bus evaluates filters with C# operator semantics ("operators follow C# implicit
//! conversion semantics whenever possible"), so this module is where those rules live:
//! integers widen to doubles, `long` arithmetic is checked, `string + x` concatenates, and a
//! timestamp minus a timestamp is a duration. `Value::Null` doubles as SQL's *unknown*: a
//! missing property evaluates to it, and every operator propagates it.

use std::cmp::Ordering;
use std::fmt;

use uuid::Uuid;

use crate::error::EvaluationError;

/// A property value as the filter engine sees it.
///
/// The AMQP integer types (byte … ulong) map to `Long` and float/double to `Double`; the
/// broker converts at its edge. Times are milliseconds, the precision of an AMQP timestamp.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL NULL; also what a missing property evaluates to (*unknown*).
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    String(String),
    /// Milliseconds since the Unix epoch, UTC (AMQP `timestamp`, .NET `DateTime`).
    Timestamp(i64),
    /// A signed length of time in milliseconds (.NET `TimeSpan`, e.g. `sys.TimeToLive`).
    Duration(i64),
    Uuid(Uuid),
    Binary(Vec<u8>),
}

impl Value {
    /// The type's name as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Long(_) => "integer",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::Uuid(_) => "uuid",
            Value::Binary(_) => "binary",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Long(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Long(i64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Double(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<Uuid> for Value {
    fn from(value: Uuid) -> Self {
        Value::Uuid(value)
    }
}

/// Renders a value the way .NET's `ToString()` does where it matters for `string + x`
/// concatenation: `True`/`False`, lowercase hyphenated GUIDs, `[-][d.]hh:mm:ss[.fffffff]` for
/// durations. Timestamps are rendered as RFC 3339 UTC (`.NET` would use the culture's format).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Long(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::String(s) => f.write_str(s),
            Value::Timestamp(ms) => write_timestamp(f, *ms),
            Value::Duration(ms) => write_duration(f, *ms),
            Value::Uuid(u) => write!(f, "{}", u.hyphenated()),
            Value::Binary(bytes) => {
                for b in bytes {
                    write!(f, "{b:02X}")?;
                }
                Ok(())
            }
        }
    }
}

fn write_duration(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    let sign = if ms < 0 { "-" } else { "" };
    let total = ms.unsigned_abs();
    let millis = total % 1000;
    let secs = total / 1000;
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
    );
    f.write_str(sign)?;
    if days > 0 {
        write!(f, "{days}.")?;
    }
    write!(f, "{hours:02}:{minutes:02}:{seconds:02}")?;
    if millis > 0 {
        // TimeSpan prints seven fractional digits (ticks).
        write!(f, ".{:07}", millis * 10_000)?;
    }
    Ok(())
}

fn write_timestamp(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        (in_day / 60_000) % 60,
        (in_day / 1000) % 60,
        in_day % 1000,
    );
    write!(
        f,
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z"
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, valid for the whole i64 millisecond range divided into days.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
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

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

impl ArithmeticOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Subtract => "-",
            ArithmeticOp::Multiply => "*",
            ArithmeticOp::Divide => "/",
            ArithmeticOp::Modulo => "%",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComparisonOp {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl ComparisonOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ComparisonOp::Equal => "=",
            ComparisonOp::NotEqual => "<>",
            ComparisonOp::Less => "<",
            ComparisonOp::LessOrEqual => "<=",
            ComparisonOp::Greater => ">",
            ComparisonOp::GreaterOrEqual => ">=",
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, ComparisonOp::Equal | ComparisonOp::NotEqual)
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            ComparisonOp::Equal => ordering == Ordering::Equal,
            ComparisonOp::NotEqual => ordering != Ordering::Equal,
            ComparisonOp::Less => ordering == Ordering::Less,
            ComparisonOp::LessOrEqual => ordering != Ordering::Greater,
            ComparisonOp::Greater => ordering == Ordering::Greater,
            ComparisonOp::GreaterOrEqual => ordering != Ordering::Less,
        }
    }
}

fn mismatch(operator: &'static str, left: &Value, right: &Value) -> EvaluationError {
    EvaluationError::TypeMismatch {
        operator,
        left: left.type_name(),
        right: right.type_name(),
    }
}

/// Applies a comparison. Unknown (null) on either side gives unknown (`Value::Null`);
/// otherwise a `Value::Bool`.
pub(crate) fn compare(
    op: ComparisonOp,
    left: &Value,
    right: &Value,
) -> Result<Value, EvaluationError> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    let ordering = match (left, right) {
        (Value::Long(a), Value::Long(b)) => Some(a.cmp(b)),
        // C# promotes long to double when the other operand is a double; NaN compares false
        // for every operator except <>.
        (Value::Long(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
        (Value::Double(a), Value::Long(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        // Ordinal (case-sensitive) comparison, as Service Bus compares string values.
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Timestamp(a), Value::Timestamp(b)) | (Value::Duration(a), Value::Duration(b)) => {
            Some(a.cmp(b))
        }
        (Value::Bool(a), Value::Bool(b)) if op.is_equality() => Some(a.cmp(b)),
        (Value::Uuid(a), Value::Uuid(b)) if op.is_equality() => Some(a.cmp(b)),
        (Value::Binary(a), Value::Binary(b)) if op.is_equality() => Some(a.cmp(b)),
        _ => return Err(mismatch(op.symbol(), left, right)),
    };
    Ok(Value::Bool(match ordering {
        Some(ordering) => op.holds(ordering),
        None => op == ComparisonOp::NotEqual,
    }))
}

/// Applies `+ - * / %`. Unknown on either side gives unknown.
pub(crate) fn arithmetic(
    op: ArithmeticOp,
    left: &Value,
    right: &Value,
) -> Result<Value, EvaluationError> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    let overflow = || EvaluationError::Overflow {
        operator: op.symbol(),
    };
    match (left, right) {
        (Value::Long(a), Value::Long(b)) => {
            let (a, b) = (*a, *b);
            if b == 0 && matches!(op, ArithmeticOp::Divide | ArithmeticOp::Modulo) {
                return Err(EvaluationError::DivisionByZero);
            }
            let result = match op {
                ArithmeticOp::Add => a.checked_add(b),
                ArithmeticOp::Subtract => a.checked_sub(b),
                ArithmeticOp::Multiply => a.checked_mul(b),
                // Truncates toward zero and keeps the dividend's sign, like C#.
                ArithmeticOp::Divide => a.checked_div(b),
                ArithmeticOp::Modulo => a.checked_rem(b),
            };
            result.map(Value::Long).ok_or_else(overflow)
        }
        (Value::Long(_) | Value::Double(_), Value::Long(_) | Value::Double(_)) => {
            let (a, b) = (as_f64(left), as_f64(right));
            // IEEE semantics as in C#: x / 0.0 is ±infinity or NaN, never an error.
            Ok(Value::Double(match op {
                ArithmeticOp::Add => a + b,
                ArithmeticOp::Subtract => a - b,
                ArithmeticOp::Multiply => a * b,
                ArithmeticOp::Divide => a / b,
                ArithmeticOp::Modulo => a % b,
            }))
        }
        // C# binds `string + object` (either order) to concatenation.
        (Value::String(_), _) | (_, Value::String(_)) if op == ArithmeticOp::Add => {
            Ok(Value::String(format!("{left}{right}")))
        }
        (Value::Timestamp(t), Value::Duration(d)) | (Value::Duration(d), Value::Timestamp(t))
            if op == ArithmeticOp::Add =>
        {
            t.checked_add(*d).map(Value::Timestamp).ok_or_else(overflow)
        }
        (Value::Timestamp(t), Value::Duration(d)) if op == ArithmeticOp::Subtract => {
            t.checked_sub(*d).map(Value::Timestamp).ok_or_else(overflow)
        }
        (Value::Timestamp(a), Value::Timestamp(b)) if op == ArithmeticOp::Subtract => {
            a.checked_sub(*b).map(Value::Duration).ok_or_else(overflow)
        }
        (Value::Duration(a), Value::Duration(b)) => match op {
            ArithmeticOp::Add => a.checked_add(*b).map(Value::Duration).ok_or_else(overflow),
            ArithmeticOp::Subtract => a.checked_sub(*b).map(Value::Duration).ok_or_else(overflow),
            _ => Err(mismatch(op.symbol(), left, right)),
        },
        _ => Err(mismatch(op.symbol(), left, right)),
    }
}

/// Unary minus. Unknown gives unknown.
pub(crate) fn negate(operand: &Value) -> Result<Value, EvaluationError> {
    match operand {
        Value::Null => Ok(Value::Null),
        Value::Long(v) => v
            .checked_neg()
            .map(Value::Long)
            .ok_or(EvaluationError::Overflow { operator: "-" }),
        Value::Double(v) => Ok(Value::Double(-v)),
        Value::Duration(v) => v
            .checked_neg()
            .map(Value::Duration)
            .ok_or(EvaluationError::Overflow { operator: "-" }),
        other => Err(EvaluationError::UnaryTypeMismatch {
            operator: "-",
            operand: other.type_name(),
        }),
    }
}

/// Unary plus: the identity on numbers and durations.
pub(crate) fn unary_plus(operand: &Value) -> Result<Value, EvaluationError> {
    match operand {
        Value::Null | Value::Long(_) | Value::Double(_) | Value::Duration(_) => Ok(operand.clone()),
        other => Err(EvaluationError::UnaryTypeMismatch {
            operator: "+",
            operand: other.type_name(),
        }),
    }
}

fn as_f64(value: &Value) -> f64 {
    match value {
        Value::Long(v) => *v as f64,
        Value::Double(v) => *v,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arithmetic_is_checked_and_truncates() {
        let l = Value::Long;
        assert_eq!(arithmetic(ArithmeticOp::Divide, &l(7), &l(2)), Ok(l(3)));
        assert_eq!(arithmetic(ArithmeticOp::Divide, &l(-7), &l(2)), Ok(l(-3)));
        assert_eq!(arithmetic(ArithmeticOp::Modulo, &l(-7), &l(3)), Ok(l(-1)));
        assert_eq!(
            arithmetic(ArithmeticOp::Add, &l(i64::MAX), &l(1)),
            Err(EvaluationError::Overflow { operator: "+" })
        );
        assert_eq!(
            arithmetic(ArithmeticOp::Divide, &l(i64::MIN), &l(-1)),
            Err(EvaluationError::Overflow { operator: "/" })
        );
        assert_eq!(
            arithmetic(ArithmeticOp::Modulo, &l(1), &l(0)),
            Err(EvaluationError::DivisionByZero)
        );
    }

    #[test]
    fn mixed_numbers_widen_to_double() {
        assert_eq!(
            arithmetic(ArithmeticOp::Divide, &Value::Long(7), &Value::Double(2.0)),
            Ok(Value::Double(3.5))
        );
        assert_eq!(
            arithmetic(ArithmeticOp::Divide, &Value::Double(1.0), &Value::Long(0)),
            Ok(Value::Double(f64::INFINITY))
        );
        assert_eq!(
            compare(ComparisonOp::Equal, &Value::Long(2), &Value::Double(2.0)),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn nan_is_unequal_to_everything() {
        let nan = Value::Double(f64::NAN);
        assert_eq!(
            compare(ComparisonOp::Equal, &nan, &nan),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            compare(ComparisonOp::NotEqual, &nan, &nan),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            compare(ComparisonOp::Less, &nan, &nan),
            Ok(Value::Bool(false))
        );
    }

    #[test]
    fn string_concatenation_formats_like_dotnet() {
        let s = |v: &str| Value::String(v.into());
        assert_eq!(
            arithmetic(ArithmeticOp::Add, &s("n="), &Value::Long(5)),
            Ok(s("n=5"))
        );
        assert_eq!(
            arithmetic(ArithmeticOp::Add, &Value::Bool(true), &s("!")),
            Ok(s("True!"))
        );
        assert!(arithmetic(ArithmeticOp::Subtract, &s("a"), &s("b")).is_err());
    }

    #[test]
    fn time_arithmetic() {
        let t = Value::Timestamp(1_000_000);
        let d = Value::Duration(500);
        assert_eq!(
            arithmetic(ArithmeticOp::Add, &t, &d),
            Ok(Value::Timestamp(1_000_500))
        );
        assert_eq!(
            arithmetic(
                ArithmeticOp::Subtract,
                &Value::Timestamp(2_000),
                &Value::Timestamp(500)
            ),
            Ok(Value::Duration(1_500))
        );
        assert!(arithmetic(ArithmeticOp::Add, &t, &t).is_err());
    }

    #[test]
    fn display_matches_dotnet_forms() {
        assert_eq!(
            Value::Duration(90_061_500).to_string(),
            "1.01:01:01.5000000"
        );
        assert_eq!(Value::Duration(-1_000).to_string(), "-00:00:01");
        assert_eq!(Value::Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Value::Timestamp(1_709_210_096_789).to_string(),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(Value::Double(2.0).to_string(), "2");
    }

    #[test]
    fn incompatible_comparisons_are_errors() {
        assert!(compare(
            ComparisonOp::Equal,
            &Value::String("1".into()),
            &Value::Long(1)
        )
        .is_err());
        assert!(compare(ComparisonOp::Less, &Value::Bool(true), &Value::Bool(false)).is_err());
        assert_eq!(
            compare(ComparisonOp::Equal, &Value::Null, &Value::Long(1)),
            Ok(Value::Null)
        );
    }
}
