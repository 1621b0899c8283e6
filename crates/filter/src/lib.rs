//! busdrain-filter: Service Bus subscription rule filters and actions.
//!
//! A pure library: it knows nothing of AMQP or storage. The broker converts a message into
//! [`MessageProperties`] (or implements [`MessageView`]), and asks each subscription's rules
//! what to do with it ([`route`], or [`Filter::evaluate`] and [`SqlRuleAction::apply`]).
//!
//! - [`Filter`]: `True`, `False`, [`CorrelationFilter`] or [`SqlFilter`].
//! - [`SqlFilter::parse`] / [`SqlRuleAction::parse`] refuse malformed expressions with a
//!   [`SqlFilterError`] that says where (`position`, 1-based characters) and what was
//!   expected. Parsing never panics and is bounded in length and depth ([`ParseOptions`]).
//! - Evaluation uses SQL three-valued logic; missing properties are *unknown* and never
//!   match. Type errors at evaluation time are [`EvaluationError`]s (Service Bus "filter
//!   evaluation exceptions"), never panics.
//!
//! ```
//! use busdrain_filter::{route, Filter, MessageProperties, RoutedCopy, Rule, SqlFilter, SqlRuleAction, Value};
//!
//! let rule = Rule {
//!     name: "red".into(),
//!     filter: Filter::Sql(SqlFilter::parse("color = 'red' AND quantity > 5").unwrap()),
//!     action: Some(SqlRuleAction::parse("SET quantity = quantity / 2").unwrap()),
//! };
//! let mut message = MessageProperties::default();
//! message.user.insert("color".into(), Value::from("red"));
//! message.user.insert("quantity".into(), Value::Long(10));
//!
//! let routing = route(&[rule], &message);
//! let RoutedCopy::Modified { properties, .. } = &routing.copies[0] else { unreachable!() };
//! assert_eq!(properties.user["quantity"], Value::Long(5));
//!
//! let error = SqlFilter::parse("color = 'red' AND").unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "syntax error at position 18: expected an expression after 'AND', found the end of the expression"
//! );
//! ```

mod correlation;
mod error;
mod message;
mod rule;
mod sql;
mod value;

pub use correlation::CorrelationFilter;
pub use error::{EvaluationError, SqlFilterError};
pub use message::{
    MessageProperties, MessageView, SystemProperties, SystemProperty, UserProperties,
};
pub use rule::{route, Filter, RoutedCopy, Routing, Rule, RuleFailure, DEFAULT_RULE_NAME};
pub use sql::{ParseOptions, SqlFilter, SqlRuleAction};
pub use value::Value;
