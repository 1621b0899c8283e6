//! Recursive-descent (Pratt) parser for filter predicates and rule actions.
//!
//! Binding powers, loosest first: OR, AND, NOT, comparisons (`= <> != < <= > >=`, `IS`,
//! `IN`, `LIKE`; not chainable), `+ -`, `* / %`, unary `+ -`. Every recursion goes through
//! [`Parser::expression`], which counts nesting, and every node records its depth, so neither
//! parsing nor evaluating (nor dropping) an accepted expression can exhaust the stack.

use crate::error::SqlFilterError;
use crate::sql::ast::{Expr, LikeSource, PropertyRef, Statement};
use crate::sql::lexer::{tokenize, Token, TokenKind};
use crate::sql::like::{escape_char, LikePattern};
use crate::sql::ParseOptions;
use crate::value::{ArithmeticOp, ComparisonOp, Value};

const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const COMPARISON: u8 = 4;
const ADDITIVE: u8 = 5;
const MULTIPLICATIVE: u8 = 6;
const UNARY: u8 = 7;

/// Words that cannot be bare property names (write `[word]` for a property of that name).
const RESERVED: [&str; 11] = [
    "AND", "OR", "NOT", "IN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "FALSE", "EXISTS",
];

/// What an expression can evaluate to, as far as the parser can tell. Used to refuse
/// `a + b` as a filter or `(a = 1) * 2` before any message arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Condition,
    Value,
    /// A property, parameter, NULL or function: could be either.
    Either,
}

struct Node {
    expr: Expr,
    shape: Shape,
    depth: usize,
    start: usize,
}

#[derive(Debug, Clone, Copy)]
enum Infix {
    Or,
    And,
    Comparison(ComparisonOp),
    Arithmetic(ArithmeticOp),
    Is,
    In { negated: bool },
    Like { negated: bool },
}

pub(crate) fn parse_filter(source: &str, options: &ParseOptions) -> Result<Expr, SqlFilterError> {
    let mut parser = Parser::new(source, options)?;
    let node = parser.expression(0)?;
    parser.expect_end("AND, OR or the end of the filter")?;
    if node.shape == Shape::Value {
        return Err(parser.error(
            node.start,
            "a filter must be a condition (for example: color = 'red'), not a value",
        ));
    }
    Ok(node.expr)
}

pub(crate) fn parse_action(
    source: &str,
    options: &ParseOptions,
) -> Result<Vec<Statement>, SqlFilterError> {
    let mut parser = Parser::new(source, options)?;
    let mut statements = Vec::new();
    loop {
        while parser.peek_kind() == &TokenKind::Semicolon {
            parser.index += 1;
        }
        let token = parser.peek().clone();
        let statement = match &token.kind {
            TokenKind::End if !statements.is_empty() => return Ok(statements),
            TokenKind::Word(w) if w.eq_ignore_ascii_case("SET") => {
                parser.index += 1;
                let target = parser.settable_property("SET")?;
                if parser.peek_kind() != &TokenKind::Equal {
                    return Err(parser.unexpected("'=' after the property in SET"));
                }
                parser.index += 1;
                let value = parser.expression(0)?;
                Statement::Set {
                    target,
                    value: value.expr,
                }
            }
            TokenKind::Word(w) if w.eq_ignore_ascii_case("REMOVE") => {
                parser.index += 1;
                Statement::Remove(parser.settable_property("REMOVE")?)
            }
            _ => return Err(parser.unexpected("SET or REMOVE")),
        };
        statements.push(statement);
        if statements.len() > options.max_action_statements {
            return Err(parser.error(
                token.start,
                format!(
                    "an action may have at most {} statements",
                    options.max_action_statements
                ),
            ));
        }
        // The semicolon between statements is optional, so the next token may also start
        // the next statement.
        match parser.peek_kind() {
            TokenKind::Semicolon | TokenKind::End => {}
            TokenKind::Word(w)
                if w.eq_ignore_ascii_case("SET") || w.eq_ignore_ascii_case("REMOVE") => {}
            _ => return Err(parser.unexpected("';' or the end of the action")),
        }
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    index: usize,
    nesting: usize,
    options: &'a ParseOptions,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str, options: &'a ParseOptions) -> Result<Self, SqlFilterError> {
        // Checked before tokenizing so hostile input costs one pass over its characters.
        if let Some((offset, _)) = source.char_indices().nth(options.max_expression_chars) {
            let chars = options.max_expression_chars + source[offset..].chars().count();
            return Err(SqlFilterError::at(
                source,
                options.max_expression_chars,
                format!(
                    "the expression is {chars} characters long; the maximum is {}",
                    options.max_expression_chars
                ),
            ));
        }
        Ok(Parser {
            source,
            tokens: tokenize(source)?,
            index: 0,
            nesting: 0,
            options,
        })
    }

    fn peek(&self) -> &Token {
        // `tokenize` always ends with `End`, and the parser never advances past it.
        &self.tokens[self.index.min(self.tokens.len() - 1)]
    }

    fn peek_kind(&self) -> &TokenKind {
        &self.peek().kind
    }

    fn peek_word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.index + offset).map(|t| &t.kind) {
            Some(TokenKind::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn is_word(&self, offset: usize, keyword: &str) -> bool {
        self.peek_word(offset)
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> SqlFilterError {
        SqlFilterError::at(self.source, offset, message)
    }

    /// "expected X, found Y" at the current token.
    fn unexpected(&self, expected: &str) -> SqlFilterError {
        let token = self.peek();
        self.error(
            token.start,
            format!("expected {expected}, found {}", token.describe()),
        )
    }

    fn expect_end(&self, expected: &str) -> Result<(), SqlFilterError> {
        if self.peek_kind() == &TokenKind::End {
            return Ok(());
        }
        if self.infix().is_some_and(|(_, bp)| bp == COMPARISON) {
            return Err(self.error(
                self.peek().start,
                "comparisons cannot be chained; combine them with AND or OR",
            ));
        }
        Err(self.unexpected(expected))
    }

    fn node(
        &self,
        expr: Expr,
        shape: Shape,
        children: &[usize],
        start: usize,
    ) -> Result<Node, SqlFilterError> {
        let depth = 1 + children.iter().copied().max().unwrap_or(0);
        if depth > self.options.max_depth {
            return Err(self.error(
                start,
                format!(
                    "the expression is nested too deeply (more than {} levels)",
                    self.options.max_depth
                ),
            ));
        }
        Ok(Node {
            expr,
            shape,
            depth,
            start,
        })
    }

    /// Parses operators binding at least as tightly as `min_bp`.
    fn expression(&mut self, min_bp: u8) -> Result<Node, SqlFilterError> {
        self.nesting += 1;
        if self.nesting > self.options.max_depth {
            return Err(self.error(
                self.peek().start,
                format!(
                    "the expression is nested too deeply (more than {} levels)",
                    self.options.max_depth
                ),
            ));
        }
        let mut left = self.prefix()?;
        let mut compared = false;
        while let Some((infix, bp)) = self.infix() {
            if bp < min_bp {
                break;
            }
            if bp == COMPARISON {
                if compared {
                    return Err(self.error(
                        self.peek().start,
                        "comparisons cannot be chained; combine them with AND or OR",
                    ));
                }
                compared = true;
            }
            left = self.infix_operation(left, infix, bp)?;
        }
        self.nesting -= 1;
        Ok(left)
    }

    fn infix(&self) -> Option<(Infix, u8)> {
        let op = match self.peek_kind() {
            TokenKind::Equal => Infix::Comparison(ComparisonOp::Equal),
            TokenKind::NotEqual => Infix::Comparison(ComparisonOp::NotEqual),
            TokenKind::Less => Infix::Comparison(ComparisonOp::Less),
            TokenKind::LessOrEqual => Infix::Comparison(ComparisonOp::LessOrEqual),
            TokenKind::Greater => Infix::Comparison(ComparisonOp::Greater),
            TokenKind::GreaterOrEqual => Infix::Comparison(ComparisonOp::GreaterOrEqual),
            TokenKind::Plus => Infix::Arithmetic(ArithmeticOp::Add),
            TokenKind::Minus => Infix::Arithmetic(ArithmeticOp::Subtract),
            TokenKind::Star => Infix::Arithmetic(ArithmeticOp::Multiply),
            TokenKind::Slash => Infix::Arithmetic(ArithmeticOp::Divide),
            TokenKind::Percent => Infix::Arithmetic(ArithmeticOp::Modulo),
            TokenKind::Word(w) => {
                let w = w.to_ascii_uppercase();
                match w.as_str() {
                    "OR" => Infix::Or,
                    "AND" => Infix::And,
                    "IS" => Infix::Is,
                    "IN" => Infix::In { negated: false },
                    "LIKE" => Infix::Like { negated: false },
                    "NOT" if self.is_word(1, "IN") => Infix::In { negated: true },
                    "NOT" if self.is_word(1, "LIKE") => Infix::Like { negated: true },
                    _ => return None,
                }
            }
            _ => return None,
        };
        let bp = match op {
            Infix::Or => OR,
            Infix::And => AND,
            Infix::Comparison(_) | Infix::Is | Infix::In { .. } | Infix::Like { .. } => COMPARISON,
            Infix::Arithmetic(ArithmeticOp::Add | ArithmeticOp::Subtract) => ADDITIVE,
            Infix::Arithmetic(_) => MULTIPLICATIVE,
        };
        Some((op, bp))
    }

    fn infix_operation(
        &mut self,
        left: Node,
        infix: Infix,
        bp: u8,
    ) -> Result<Node, SqlFilterError> {
        self.index += 1;
        let start = left.start;
        match infix {
            Infix::Or | Infix::And => {
                let name = if matches!(infix, Infix::Or) {
                    "OR"
                } else {
                    "AND"
                };
                let right = self.expression(bp + 1)?;
                for side in [&left, &right] {
                    self.require_condition(
                        side,
                        &format!("{name} needs a condition on each side"),
                    )?;
                }
                let is_or = matches!(infix, Infix::Or);
                let (mut items, left_child_depth) = match left.expr {
                    Expr::Or(items) if is_or => (items, left.depth - 1),
                    Expr::And(items) if !is_or => (items, left.depth - 1),
                    other => (vec![other], left.depth),
                };
                items.push(right.expr);
                let expr = if is_or {
                    Expr::Or(items)
                } else {
                    Expr::And(items)
                };
                // Flattened, so a long chain is only as deep as its deepest operand plus one.
                self.node(
                    expr,
                    Shape::Condition,
                    &[left_child_depth, right.depth],
                    start,
                )
            }
            Infix::Comparison(op) => {
                let right = self.expression(ADDITIVE)?;
                let expr = Expr::Comparison {
                    op,
                    left: Box::new(left.expr),
                    right: Box::new(right.expr),
                };
                self.node(expr, Shape::Condition, &[left.depth, right.depth], start)
            }
            Infix::Arithmetic(op) => {
                let right = self.expression(bp + 1)?;
                for side in [&left, &right] {
                    self.require_value(side, &format!("'{}'", op.symbol()))?;
                }
                let expr = Expr::Arithmetic {
                    op,
                    left: Box::new(left.expr),
                    right: Box::new(right.expr),
                };
                let shape = Shape::Value;
                self.node(expr, shape, &[left.depth, right.depth], start)
            }
            Infix::Is => {
                let negated = self.is_word(0, "NOT");
                if negated {
                    self.index += 1;
                }
                if !self.is_word(0, "NULL") {
                    let after = if negated { "IS NOT" } else { "IS" };
                    return Err(self.unexpected(&format!("NULL after {after}")));
                }
                self.index += 1;
                let expr = Expr::IsNull {
                    operand: Box::new(left.expr),
                    negated,
                };
                self.node(expr, Shape::Condition, &[left.depth], start)
            }
            Infix::In { negated } => {
                if negated {
                    self.index += 1; // IN after NOT
                }
                if self.peek_kind() != &TokenKind::LeftParen {
                    return Err(self.unexpected("'(' after IN"));
                }
                self.index += 1;
                let mut list = Vec::new();
                let mut depths = vec![left.depth];
                loop {
                    let item = self.expression(ADDITIVE)?;
                    self.require_value(&item, "an IN list")?;
                    depths.push(item.depth);
                    list.push(item.expr);
                    match self.peek_kind() {
                        TokenKind::Comma => self.index += 1,
                        TokenKind::RightParen => {
                            self.index += 1;
                            break;
                        }
                        _ => return Err(self.unexpected("',' or ')' in the IN list")),
                    }
                }
                let expr = Expr::In {
                    operand: Box::new(left.expr),
                    list,
                    negated,
                };
                self.node(expr, Shape::Condition, &depths, start)
            }
            Infix::Like { negated } => {
                if negated {
                    self.index += 1; // LIKE after NOT
                }
                let pattern = self.expression(ADDITIVE)?;
                let escape = if self.is_word(0, "ESCAPE") {
                    self.index += 1;
                    Some(self.expression(ADDITIVE)?)
                } else {
                    None
                };
                let depths = [
                    left.depth,
                    pattern.depth,
                    escape.as_ref().map_or(0, |e| e.depth),
                ];
                let source = self.like_source(pattern, escape)?;
                let expr = Expr::Like {
                    operand: Box::new(left.expr),
                    pattern: source,
                    negated,
                };
                self.node(expr, Shape::Condition, &depths, start)
            }
        }
    }

    /// Compiles constant patterns now so a bad one is refused with its position.
    fn like_source(
        &self,
        pattern: Node,
        escape: Option<Node>,
    ) -> Result<LikeSource, SqlFilterError> {
        let constant_string = |node: &Node, what: &str| -> Result<Option<String>, SqlFilterError> {
            match &node.expr {
                Expr::Constant(Value::String(s)) => Ok(Some(s.clone())),
                Expr::Constant(Value::Null) => Ok(None),
                Expr::Constant(other) => Err(self.error(
                    node.start,
                    format!("{what} must be a string, found {}", other.type_name()),
                )),
                _ if node.shape == Shape::Condition => Err(self.error(
                    node.start,
                    format!("{what} must be a string, found a condition"),
                )),
                _ => Ok(None),
            }
        };
        let pattern_text = constant_string(&pattern, "the LIKE pattern")?;
        // Some(escape) when the escape is known now (including "no ESCAPE clause").
        let constant_escape = match &escape {
            None => Some(None),
            Some(node) => match constant_string(node, "the LIKE escape")? {
                Some(text) => Some(Some(
                    escape_char(&text).map_err(|e| self.error(node.start, e.to_string()))?,
                )),
                None => None,
            },
        };
        if let (Some(text), Some(escape)) = (pattern_text, constant_escape) {
            let compiled = LikePattern::compile(&text, escape)
                .map_err(|e| self.error(pattern.start, e.to_string()))?;
            return Ok(LikeSource::Compiled(compiled));
        }
        Ok(LikeSource::Dynamic {
            pattern: Box::new(pattern.expr),
            escape: escape.map(|e| Box::new(e.expr)),
        })
    }

    fn require_condition(&self, node: &Node, context: &str) -> Result<(), SqlFilterError> {
        if node.shape == Shape::Value {
            return Err(self.error(
                node.start,
                format!("{context}; found a value, not a condition"),
            ));
        }
        Ok(())
    }

    fn require_value(&self, node: &Node, context: &str) -> Result<(), SqlFilterError> {
        if node.shape == Shape::Condition {
            return Err(self.error(
                node.start,
                format!("{context} needs values; found a condition"),
            ));
        }
        Ok(())
    }

    /// Something that can start an expression.
    fn prefix(&mut self) -> Result<Node, SqlFilterError> {
        let token = self.peek().clone();
        let start = token.start;
        match &token.kind {
            TokenKind::Integer(i) => {
                self.index += 1;
                self.node(Expr::Constant(Value::Long(*i)), Shape::Value, &[], start)
            }
            TokenKind::Decimal(d) => {
                self.index += 1;
                self.node(Expr::Constant(Value::Double(*d)), Shape::Value, &[], start)
            }
            TokenKind::String(s) => {
                self.index += 1;
                self.node(
                    Expr::Constant(Value::String(s.clone())),
                    Shape::Value,
                    &[],
                    start,
                )
            }
            TokenKind::Parameter(name) => {
                self.index += 1;
                let value = self
                    .parameter(name)
                    .ok_or_else(|| self.error(start, format!("parameter @{name} has no value")))?;
                let shape = match value {
                    Value::Bool(_) => Shape::Condition,
                    Value::Null => Shape::Either,
                    _ => Shape::Value,
                };
                self.node(Expr::Constant(value), shape, &[], start)
            }
            TokenKind::LeftParen => {
                self.index += 1;
                let inner = self.expression(0)?;
                if self.peek_kind() != &TokenKind::RightParen {
                    return Err(
                        self.unexpected(&format!("')' to close the '(' at position {}", start + 1))
                    );
                }
                self.index += 1;
                Ok(Node { start, ..inner })
            }
            TokenKind::Minus | TokenKind::Plus => {
                self.index += 1;
                let operand = self.expression(UNARY)?;
                let symbol = if token.kind == TokenKind::Minus {
                    "-"
                } else {
                    "+"
                };
                self.require_value(&operand, &format!("unary '{symbol}'"))?;
                let depth = operand.depth;
                let expr = match (&token.kind, operand.expr) {
                    // Folded so `-9223372036854775807 - 1` style constants stay plain.
                    (TokenKind::Minus, Expr::Constant(Value::Long(v))) if v != i64::MIN => {
                        Expr::Constant(Value::Long(-v))
                    }
                    (TokenKind::Minus, Expr::Constant(Value::Double(v))) => {
                        Expr::Constant(Value::Double(-v))
                    }
                    (TokenKind::Minus, other) => Expr::Negate(Box::new(other)),
                    (_, other) => Expr::UnaryPlus(Box::new(other)),
                };
                self.node(expr, Shape::Value, &[depth], start)
            }
            TokenKind::QuotedName(name) => {
                self.index += 1;
                self.node(
                    Expr::Property(PropertyRef::User(name.clone())),
                    Shape::Either,
                    &[],
                    start,
                )
            }
            TokenKind::Word(word) => self.word_prefix(word, start),
            _ => Err(self.expected_expression()),
        }
    }

    fn word_prefix(&mut self, word: &str, start: usize) -> Result<Node, SqlFilterError> {
        let upper = word.to_ascii_uppercase();
        let followed_by_paren = matches!(
            self.tokens.get(self.index + 1).map(|t| &t.kind),
            Some(TokenKind::LeftParen)
        );
        match upper.as_str() {
            "NOT" => {
                self.index += 1;
                let operand = self.expression(NOT + 1)?;
                self.require_condition(&operand, "NOT needs a condition")?;
                let depth = operand.depth;
                self.node(
                    Expr::Not(Box::new(operand.expr)),
                    Shape::Condition,
                    &[depth],
                    start,
                )
            }
            "TRUE" | "FALSE" => {
                self.index += 1;
                self.node(
                    Expr::Constant(Value::Bool(upper == "TRUE")),
                    Shape::Condition,
                    &[],
                    start,
                )
            }
            "NULL" => {
                self.index += 1;
                self.node(Expr::Constant(Value::Null), Shape::Either, &[], start)
            }
            "EXISTS" => {
                self.index += 1;
                if self.peek_kind() != &TokenKind::LeftParen {
                    return Err(self.unexpected("'(' after EXISTS"));
                }
                self.index += 1;
                let property = self.property("EXISTS")?;
                if self.peek_kind() != &TokenKind::RightParen {
                    return Err(self.unexpected("')' after the property in EXISTS"));
                }
                self.index += 1;
                self.node(Expr::Exists(property), Shape::Condition, &[], start)
            }
            "NEWID" if followed_by_paren => {
                self.index += 2;
                if self.peek_kind() != &TokenKind::RightParen {
                    return Err(self.unexpected("')' after newid("));
                }
                self.index += 1;
                self.node(Expr::NewId, Shape::Value, &[], start)
            }
            "PROPERTY" | "P" if followed_by_paren => {
                self.index += 2;
                let name = self.expression(0)?;
                self.require_value(&name, &format!("{word}()"))?;
                if self.peek_kind() != &TokenKind::RightParen {
                    return Err(self.unexpected(&format!("')' to close {word}(")));
                }
                self.index += 1;
                let expr = match name.expr {
                    Expr::Constant(Value::String(text)) => {
                        let property =
                            PropertyRef::from_qualified_name(&text).ok_or_else(|| {
                                self.error(name.start, format!("'{text}' is not a system property"))
                            })?;
                        Expr::Property(property)
                    }
                    other => Expr::PropertyByName(Box::new(other)),
                };
                self.node(expr, Shape::Either, &[name.depth], start)
            }
            _ if RESERVED.contains(&upper.as_str()) => Err(self.expected_expression()),
            _ => {
                let property = self.property("an expression")?;
                self.node(Expr::Property(property), Shape::Either, &[], start)
            }
        }
    }

    /// "expected an expression after 'AND', found …" at the current token.
    fn expected_expression(&self) -> SqlFilterError {
        let token = self.peek();
        let after = match self.index.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(previous) => format!(" after {}", previous.describe()),
            None => String::new(),
        };
        let mut message = format!("expected an expression{after}, found {}", token.describe());
        if let TokenKind::Word(w) = &token.kind {
            if RESERVED.contains(&w.to_ascii_uppercase().as_str()) {
                message.push_str(&format!(
                    " (a keyword; write [{w}] for a property of that name)"
                ));
            }
        }
        self.error(token.start, message)
    }

    /// `name`, `[name]`, `"name"`, `user.name` or `sys.Name`.
    fn property(&mut self, context: &str) -> Result<PropertyRef, SqlFilterError> {
        let token = self.peek().clone();
        let scope_dot = matches!(
            self.tokens.get(self.index + 1).map(|t| &t.kind),
            Some(TokenKind::Dot)
        );
        match &token.kind {
            TokenKind::Word(w)
                if scope_dot
                    && (w.eq_ignore_ascii_case("sys") || w.eq_ignore_ascii_case("user")) =>
            {
                self.index += 2;
                let name_token = self.peek().clone();
                let name = match &name_token.kind {
                    TokenKind::Word(n) | TokenKind::QuotedName(n) => n.clone(),
                    _ => return Err(self.unexpected(&format!("a property name after '{w}.'"))),
                };
                self.index += 1;
                if w.eq_ignore_ascii_case("user") {
                    return Ok(PropertyRef::User(name));
                }
                crate::message::SystemProperty::from_name(&name)
                    .map(PropertyRef::System)
                    .ok_or_else(|| {
                        self.error(
                            name_token.start,
                            format!("sys.{name} is not a system property"),
                        )
                    })
            }
            TokenKind::Word(w) if !RESERVED.contains(&w.to_ascii_uppercase().as_str()) => {
                self.index += 1;
                Ok(PropertyRef::User(w.clone()))
            }
            TokenKind::QuotedName(n) => {
                self.index += 1;
                Ok(PropertyRef::User(n.clone()))
            }
            _ if context == "an expression" => Err(self.expected_expression()),
            _ => Err(self.unexpected(&format!("a property name in {context}"))),
        }
    }

    /// The target of SET / REMOVE; broker-assigned system properties are refused here.
    fn settable_property(&mut self, statement: &str) -> Result<PropertyRef, SqlFilterError> {
        let start = self.peek().start;
        let property = self.property(statement)?;
        if let PropertyRef::System(p) = property {
            if !p.is_settable() {
                return Err(self.error(
                    start,
                    format!(
                        "sys.{} is assigned by the broker and cannot be changed by {statement}",
                        p.name()
                    ),
                ));
            }
        }
        Ok(property)
    }

    fn parameter(&self, name: &str) -> Option<Value> {
        self.options
            .parameters
            .iter()
            .find(|(key, _)| {
                let key = key.strip_prefix('@').unwrap_or(key);
                key.eq_ignore_ascii_case(name)
            })
            .map(|(_, value)| value.clone())
    }
}
