//! `LIKE` patterns: `%` is any run of characters, `_` is exactly one, and the optional
//! `ESCAPE` character makes the next character literal. Matching is case-sensitive.

use crate::error::EvaluationError;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(char),
    AnyChar,
    AnyRun,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikePattern {
    parts: Vec<Part>,
}

impl LikePattern {
    pub(crate) fn compile(pattern: &str, escape: Option<char>) -> Result<Self, EvaluationError> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let part = if Some(c) == escape {
                match chars.next() {
                    Some(escaped) => Part::Literal(escaped),
                    None => return Err(EvaluationError::DanglingEscape(pattern.to_owned())),
                }
            } else {
                match c {
                    '%' => Part::AnyRun,
                    '_' => Part::AnyChar,
                    other => Part::Literal(other),
                }
            };
            // Consecutive `%` are one `%`; collapsing keeps matching linear in the pattern.
            if !(part == Part::AnyRun && parts.last() == Some(&Part::AnyRun)) {
                parts.push(part);
            }
        }
        Ok(LikePattern { parts })
    }

    /// Wildcard matching with a single backtrack point (the last `%` seen): O(text × pattern)
    /// in the worst case, no recursion, no allocation beyond the text's characters.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let parts = &self.parts;
        let (mut t, mut p) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match parts.get(p) {
                Some(Part::AnyRun) => {
                    p += 1;
                    backtrack = Some((p, t));
                    continue;
                }
                Some(Part::AnyChar) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                Some(Part::Literal(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((after_run, run_start)) => {
                    // Let the last `%` swallow one more character and retry from there.
                    p = after_run;
                    t = run_start + 1;
                    backtrack = Some((after_run, run_start + 1));
                }
                None => return false,
            }
        }
        parts[p..].iter().all(|part| *part == Part::AnyRun)
    }
}

/// The escape character from an `ESCAPE` operand: exactly one character.
pub(crate) fn escape_char(escape: &str) -> Result<char, EvaluationError> {
    let mut chars = escape.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(EvaluationError::InvalidEscape(escape.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern, None).unwrap().matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("", ""));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("abc", "abc"));
        assert!(!like("abc", "ab"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "%b%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("abc", "___"));
        assert!(like("my bus here", "%bus%"));
        assert!(like("aaab", "%a%ab"));
        assert!(!like("aaac", "%a%ab"));
        assert!(like("mississippi", "m%iss%pi"));
        assert!(like("xyz", "%%%"));
        assert!(like("ünïcödé", "_n%d_"));
    }

    #[test]
    fn case_sensitive() {
        assert!(!like("ABC", "abc"));
        assert!(!like("Bus", "%bus%"));
    }

    #[test]
    fn escape_makes_wildcards_literal() {
        let p = LikePattern::compile("ABC\\%", Some('\\')).unwrap();
        assert!(p.matches("ABC%"));
        assert!(!p.matches("ABCD"));
        let p = LikePattern::compile("a!_b!!", Some('!')).unwrap();
        assert!(p.matches("a_b!"));
        assert!(!p.matches("axb!"));
        assert_eq!(
            LikePattern::compile("abc!", Some('!')),
            Err(EvaluationError::DanglingEscape("abc!".into()))
        );
        assert!(escape_char("ab").is_err());
        assert!(escape_char("").is_err());
        assert_eq!(escape_char("é"), Ok('é'));
    }

    #[test]
    fn pathological_pattern_stays_fast() {
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "%a".repeat(200));
        assert!(!like(&text, &pattern));
    }
}
