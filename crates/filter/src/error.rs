//! Errors: [`SqlFilterError`] when an expression is refused, [`EvaluationError`] when a valid
//! expression cannot be evaluated against a particular message.

use std::fmt;

/// An SQL filter or action expression that was refused, with where and why.
///
/// `position` is the 1-based character (not byte) offset of the offending token in the
/// expression; `line` and `column` (both 1-based) locate it in multi-line expressions.
/// Errors at the end of the input point one past the last character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFilterError {
    pub position: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl SqlFilterError {
    /// An error at the 0-based character `offset` of `source`.
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let mut line = 1;
        let mut column = 1;
        for c in source.chars().take(offset) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        SqlFilterError {
            position: offset + 1,
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for SqlFilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error at position {}", self.position)?;
        if self.line > 1 {
            write!(f, " (line {}, column {})", self.line, self.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SqlFilterError {}

/// Why a well-formed filter or action could not be evaluated against a message.
///
/// Service Bus calls these filter evaluation exceptions; whether the message is then
/// dead-lettered or just not selected is the subscription's choice
/// (`DeadLetteringOnFilterEvaluationExceptions`), so the broker decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    #[error("operator '{operator}' cannot be applied to {left} and {right}")]
    TypeMismatch {
        operator: &'static str,
        left: &'static str,
        right: &'static str,
    },
    #[error("operator '{operator}' cannot be applied to {operand}")]
    UnaryTypeMismatch {
        operator: &'static str,
        operand: &'static str,
    },
    #[error("arithmetic overflow in '{operator}'")]
    Overflow { operator: &'static str },
    #[error("division by zero")]
    DivisionByZero,
    #[error("{context} needs a boolean, found {found}")]
    NotBoolean {
        context: &'static str,
        found: &'static str,
    },
    #[error("{context} needs a string, found {found}")]
    NotString {
        context: &'static str,
        found: &'static str,
    },
    #[error("the LIKE escape must be a single character, found '{0}'")]
    InvalidEscape(String),
    #[error("the LIKE pattern '{0}' ends with its escape character")]
    DanglingEscape(String),
    #[error("'{0}' is not a system property")]
    UnknownSystemProperty(String),
    #[error("sys.{property} cannot be set to a value of type {found}")]
    InvalidSystemValue {
        property: &'static str,
        found: &'static str,
    },
    #[error("sys.{0} is assigned by the broker and cannot be changed by an action")]
    ReadOnlySystemProperty(&'static str),
}
