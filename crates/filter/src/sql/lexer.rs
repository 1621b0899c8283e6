//! Tokenizer for the Service Bus SQL filter/action language.
//!
//! Positions are 0-based character offsets (not bytes), so error positions make sense for
//! expressions with non-ASCII names or strings.

use crate::error::SqlFilterError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A regular identifier (`[[:IsLetter:]][_[:IsLetter:][:IsDigit:]]*`) or keyword, as written.
    Word(String),
    /// `[delimited]` or `"quoted"` identifier, unescaped; never a keyword.
    QuotedName(String),
    /// `@name`, without the `@`.
    Parameter(String),
    Integer(i64),
    Decimal(f64),
    String(String),
    LeftParen,
    RightParen,
    Comma,
    Dot,
    Semicolon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// 0-based character offset of the token's first character.
    pub start: usize,
}

impl Token {
    /// The token as quoted in error messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::QuotedName(n) => format!("property name [{n}]"),
            TokenKind::Parameter(p) => format!("parameter @{p}"),
            TokenKind::Integer(i) => format!("number {i}"),
            TokenKind::Decimal(d) => format!("number {d}"),
            TokenKind::String(s) => format!("string '{}'", s.replace('\'', "''")),
            TokenKind::End => "the end of the expression".to_owned(),
            other => format!("'{}'", symbol(other)),
        }
    }
}

fn symbol(kind: &TokenKind) -> &'static str {
    match kind {
        TokenKind::LeftParen => "(",
        TokenKind::RightParen => ")",
        TokenKind::Comma => ",",
        TokenKind::Dot => ".",
        TokenKind::Semicolon => ";",
        TokenKind::Plus => "+",
        TokenKind::Minus => "-",
        TokenKind::Star => "*",
        TokenKind::Slash => "/",
        TokenKind::Percent => "%",
        TokenKind::Equal => "=",
        TokenKind::NotEqual => "<>",
        TokenKind::Less => "<",
        TokenKind::LessOrEqual => "<=",
        TokenKind::Greater => ">",
        TokenKind::GreaterOrEqual => ">=",
        _ => "?",
    }
}

/// Splits `source` into tokens, ending with one `End` token.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, SqlFilterError> {
    let chars: Vec<char> = source.chars().collect();
    let mut lexer = Lexer {
        source,
        chars: &chars,
        pos: 0,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.kind == TokenKind::End;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    source: &'a str,
    chars: &'a [char],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> SqlFilterError {
        SqlFilterError::at(self.source, offset, message)
    }

    fn next_token(&mut self) -> Result<Token, SqlFilterError> {
        while self.peek(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.peek(0) else {
            return Ok(Token {
                kind: TokenKind::End,
                start,
            });
        };
        let kind = match c {
            '(' => self.single(TokenKind::LeftParen),
            ')' => self.single(TokenKind::RightParen),
            ',' => self.single(TokenKind::Comma),
            ';' => self.single(TokenKind::Semicolon),
            '+' => self.single(TokenKind::Plus),
            '-' => self.single(TokenKind::Minus),
            '*' => self.single(TokenKind::Star),
            '/' => self.single(TokenKind::Slash),
            '%' => self.single(TokenKind::Percent),
            '=' => self.single(TokenKind::Equal),
            '<' => match self.peek(1) {
                Some('=') => self.double(TokenKind::LessOrEqual),
                Some('>') => self.double(TokenKind::NotEqual),
                _ => self.single(TokenKind::Less),
            },
            '>' => match self.peek(1) {
                Some('=') => self.double(TokenKind::GreaterOrEqual),
                _ => self.single(TokenKind::Greater),
            },
            '!' => match self.peek(1) {
                Some('=') => self.double(TokenKind::NotEqual),
                _ => return Err(self.error(start, "unexpected character '!'; did you mean '!='?")),
            },
            '.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            '.' => self.single(TokenKind::Dot),
            '\'' => TokenKind::String(self.delimited('\'', '\'', "string constant")?),
            '"' => TokenKind::QuotedName(self.delimited('"', '"', "quoted identifier")?),
            '[' => TokenKind::QuotedName(self.delimited('[', ']', "delimited identifier")?),
            '@' => {
                self.pos += 1;
                let name = self.word_chars();
                if name.is_empty() {
                    return Err(self.error(start, "expected a parameter name after '@'"));
                }
                TokenKind::Parameter(name)
            }
            c if c.is_ascii_digit() => self.number()?,
            c if c.is_alphabetic() => TokenKind::Word(self.word_chars()),
            other => {
                return Err(self.error(start, format!("unexpected character '{other}'")));
            }
        };
        Ok(Token { kind, start })
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 1;
        kind
    }

    fn double(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 2;
        kind
    }

    /// Letters, digits and underscores; the caller checked the first character.
    fn word_chars(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        word
    }

    /// Text between `open` and `close`, where a doubled `close` stands for itself.
    fn delimited(&mut self, open: char, close: char, what: &str) -> Result<String, SqlFilterError> {
        let start = self.pos;
        debug_assert_eq!(self.peek(0), Some(open));
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(self.error(
                        start,
                        format!("unterminated {what}: missing the closing {close}"),
                    ))
                }
                Some(c) if c == close => {
                    if self.peek(1) == Some(close) {
                        text.push(close);
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        return Ok(text);
                    }
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `digits [. digits] [E [+|-] digits]` or `. digits [...]`. Without a decimal point or
    /// exponent it is an integer constant (`System.Int64`); otherwise a double.
    fn number(&mut self) -> Result<TokenKind, SqlFilterError> {
        let start = self.pos;
        let mut text = String::new();
        let mut is_integer = true;
        self.digits(&mut text);
        if self.peek(0) == Some('.') {
            is_integer = false;
            text.push('.');
            self.pos += 1;
            self.digits(&mut text);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = matches!(self.peek(1), Some('+' | '-'));
            let first_digit = if sign { self.peek(2) } else { self.peek(1) };
            if !first_digit.is_some_and(|d| d.is_ascii_digit()) {
                return Err(self.error(self.pos, "expected digits in the number's exponent"));
            }
            is_integer = false;
            text.push('e');
            self.pos += 1;
            if sign {
                text.extend(self.peek(0));
                self.pos += 1;
            }
            self.digits(&mut text);
        }
        if self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            return Err(self.error(self.pos, "unexpected character after a number"));
        }
        if is_integer {
            return text.parse::<i64>().map(TokenKind::Integer).map_err(|_| {
                self.error(
                    start,
                    format!("integer constant {text} is out of range (64-bit)"),
                )
            });
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(TokenKind::Decimal(v)),
            _ => Err(self.error(start, format!("number {text} is out of range"))),
        }
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
            text.push(c);
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            kinds("a<>1 != 2.5 <= >= 'it''s' [x]]y] \"q\"\"n\" @p .5 1e3"),
            vec![
                TokenKind::Word("a".into()),
                TokenKind::NotEqual,
                TokenKind::Integer(1),
                TokenKind::NotEqual,
                TokenKind::Decimal(2.5),
                TokenKind::LessOrEqual,
                TokenKind::GreaterOrEqual,
                TokenKind::String("it's".into()),
                TokenKind::QuotedName("x]y".into()),
                TokenKind::QuotedName("q\"n".into()),
                TokenKind::Parameter("p".into()),
                TokenKind::Decimal(0.5),
                TokenKind::Decimal(1000.0),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let tokens = tokenize("'ü' = x").unwrap();
        assert_eq!(tokens[1].start, 4);
        assert_eq!(tokens[2].start, 6);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = tokenize("a = 'open").unwrap_err();
        assert_eq!(e.position, 5);
        assert!(e.message.contains("unterminated string"));
        assert_eq!(tokenize("a = 9223372036854775808").unwrap_err().position, 5);
        assert_eq!(tokenize("a = 1e").unwrap_err().position, 6);
        assert_eq!(tokenize("a # b").unwrap_err().position, 3);
        assert_eq!(tokenize("12abc").unwrap_err().position, 3);
        assert_eq!(tokenize("1e999").unwrap_err().position, 1);
    }
}
