//! The parsed form of filter and action expressions.

use crate::message::SystemProperty;
use crate::sql::like::LikePattern;
use crate::value::{ArithmeticOp, ComparisonOp, Value};

/// A property reference, resolved when parsed: `sys.` names are checked then, so a filter
/// naming a system property that does not exist is refused up front.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PropertyRef {
    System(SystemProperty),
    User(String),
}

impl PropertyRef {
    /// Resolves a name given as a string (the argument of `property(name)`): `sys.X`,
    /// `user.X` or a bare user property name. `None` for an unknown system property.
    pub(crate) fn from_qualified_name(name: &str) -> Option<PropertyRef> {
        match name.split_once('.') {
            Some((scope, rest)) if scope.eq_ignore_ascii_case("sys") => {
                SystemProperty::from_name(rest).map(PropertyRef::System)
            }
            Some((scope, rest)) if scope.eq_ignore_ascii_case("user") => {
                Some(PropertyRef::User(rest.to_owned()))
            }
            _ => Some(PropertyRef::User(name.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikeSource {
    /// Pattern and escape were constants: compiled (and validated) at parse time.
    Compiled(LikePattern),
    Dynamic {
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Constant(Value),
    Property(PropertyRef),
    /// `property(name)` / `p(name)` with a computed name.
    PropertyByName(Box<Expr>),
    NewId,
    Negate(Box<Expr>),
    UnaryPlus(Box<Expr>),
    Not(Box<Expr>),
    Arithmetic {
        op: ArithmeticOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Comparison {
        op: ComparisonOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Chains of AND (and of OR) are flattened so a long chain does not nest deeply.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
    In {
        operand: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        operand: Box<Expr>,
        pattern: LikeSource,
        negated: bool,
    },
    Exists(PropertyRef),
}

/// One statement of a rule action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Statement {
    Set { target: PropertyRef, value: Expr },
    Remove(PropertyRef),
}
