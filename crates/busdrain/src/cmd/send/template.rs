//! Message templates for `busdrain send`: text with `{{placeholder}}`s, parsed once and rendered
//! per message. The placeholder reference is in `PLACEHOLDER_HELP` (shown by `--help`).

use rand::Rng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The template used without `--template`: a telemetry reading per message.
pub const DEFAULT_TEMPLATE: &str = r#"{"device_id":"{{device 100}}","ts":"{{now}}","temperature":{{rand_float 15 30}},"seq":{{seq}}}"#;

pub const PLACEHOLDER_HELP: &str = "\
Placeholders (rendered per message):
  {{seq}}              message number in this run: 0, 1, 2, …
  {{uuid}}             a random UUID (v4)
  {{now}}              current UTC time, RFC 3339 with milliseconds (2026-11-28T04:00:00.123Z)
  {{now_ms}}           current time in Unix milliseconds
  {{rand_int A B}}     random integer in [A, B]
  {{rand_float A B}}   random number in [A, B) with two decimals
  {{device N}}         device id `dev-K`, K = seq mod N (round-robin over N devices)
  {{session}}          the message's session id (empty without --session-count)
  {{choice A B …}}     one of the listed words, at random";

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Seq,
    Uuid,
    Now,
    NowMillis,
    RandInt(i64, i64),
    RandFloat(f64, f64),
    Device(u64),
    Session,
    Choice(Vec<String>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("`{{{{` at byte {offset} is never closed with `}}}}`")]
    Unclosed { offset: usize },
    #[error("unknown placeholder `{{{{{name}}}}}` at byte {offset}; see `busdrain send --help`")]
    Unknown { name: String, offset: usize },
    #[error("placeholder `{{{{{text}}}}}` at byte {offset}: {problem}")]
    BadArguments {
        text: String,
        offset: usize,
        problem: String,
    },
}

/// What a rendering may refer to, besides randomness.
pub struct RenderContext<'a> {
    pub seq: u64,
    pub session_id: Option<&'a str>,
    pub now: OffsetDateTime,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let at = offset + open;
            let after_open = &rest[open + 2..];
            let close = after_open
                .find("}}")
                .ok_or(TemplateError::Unclosed { offset: at })?;
            parts.push(parse_placeholder(after_open[..close].trim(), at)?);
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    pub fn render(&self, context: &RenderContext<'_>, rng: &mut impl Rng, out: &mut String) {
        use std::fmt::Write as _;
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Literal(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::Seq => write!(out, "{}", context.seq),
                Part::Uuid => write!(out, "{}", uuid::Uuid::new_v4()),
                Part::Now => {
                    out.push_str(&rfc3339_millis(context.now));
                    Ok(())
                }
                Part::NowMillis => {
                    write!(out, "{}", context.now.unix_timestamp_nanos() / 1_000_000)
                }
                Part::RandInt(low, high) => write!(out, "{}", rng.gen_range(*low..=*high)),
                Part::RandFloat(low, high) => {
                    let value = if low < high {
                        rng.gen_range(*low..*high)
                    } else {
                        *low
                    };
                    write!(out, "{value:.2}")
                }
                Part::Device(count) => write!(out, "dev-{}", context.seq % count),
                Part::Session => {
                    out.push_str(context.session_id.unwrap_or_default());
                    Ok(())
                }
                Part::Choice(words) => {
                    let index = rng.gen_range(0..words.len());
                    out.push_str(&words[index]);
                    Ok(())
                }
            };
        }
    }
}

/// `2026-11-28T04:00:00.123Z`: millisecond precision, as JSON producers usually write it.
pub fn rfc3339_millis(at: OffsetDateTime) -> String {
    let truncated = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    let text = truncated.format(&Rfc3339).unwrap_or_default();
    // `time` drops a zero fraction; keep the width fixed for readers that expect it.
    if truncated.millisecond() == 0 {
        text.replacen('Z', ".000Z", 1)
    } else {
        text
    }
}

fn parse_placeholder(inner: &str, offset: usize) -> Result<Part, TemplateError> {
    let mut words = inner.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let bad = |problem: &str| TemplateError::BadArguments {
        text: inner.to_string(),
        offset,
        problem: problem.to_string(),
    };
    let no_args = |part: Part| {
        if args.is_empty() {
            Ok(part)
        } else {
            Err(bad("takes no arguments"))
        }
    };
    match name {
        "seq" => no_args(Part::Seq),
        "uuid" => no_args(Part::Uuid),
        "now" => no_args(Part::Now),
        "now_ms" => no_args(Part::NowMillis),
        "session" => no_args(Part::Session),
        "rand_int" => match args.as_slice() {
            [low, high] => {
                let low: i64 = low.parse().map_err(|_| bad("A and B must be integers"))?;
                let high: i64 = high.parse().map_err(|_| bad("A and B must be integers"))?;
                if low > high {
                    return Err(bad("A must not exceed B"));
                }
                Ok(Part::RandInt(low, high))
            }
            _ => Err(bad("expected `rand_int A B`")),
        },
        "rand_float" => match args.as_slice() {
            [low, high] => {
                let low: f64 = low.parse().map_err(|_| bad("A and B must be numbers"))?;
                let high: f64 = high.parse().map_err(|_| bad("A and B must be numbers"))?;
                if !low.is_finite() || !high.is_finite() || low > high {
                    return Err(bad("A and B must be finite and A must not exceed B"));
                }
                Ok(Part::RandFloat(low, high))
            }
            _ => Err(bad("expected `rand_float A B`")),
        },
        "device" => match args.as_slice() {
            [count] => match count.parse::<u64>() {
                Ok(count) if count > 0 => Ok(Part::Device(count)),
                _ => Err(bad("N must be a positive integer")),
            },
            _ => Err(bad("expected `device N`")),
        },
        "choice" => {
            if args.is_empty() {
                Err(bad("expected `choice A B …` with at least one word"))
            } else {
                Ok(Part::Choice(args.iter().map(|w| w.to_string()).collect()))
            }
        }
        _ => Err(TemplateError::Unknown {
            name: name.to_string(),
            offset,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn render(template: &Template, seq: u64, session: Option<&str>) -> String {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seq);
        let mut out = String::new();
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_000_000).unwrap();
        template.render(
            &RenderContext {
                seq,
                session_id: session,
                now,
            },
            &mut rng,
            &mut out,
        );
        out
    }

    #[test]
    fn the_default_template_renders_valid_telemetry() {
        let template = Template::parse(DEFAULT_TEMPLATE).unwrap();
        for seq in 0..200 {
            let text = render(&template, seq, None);
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["device_id"], format!("dev-{}", seq % 100));
            assert_eq!(json["ts"], "2026-11-18T11:06:40.123Z");
            assert_eq!(json["seq"], seq);
            let t = json["temperature"].as_f64().unwrap();
            assert!((15.0..30.0).contains(&t), "{t}");
        }
    }

    #[test]
    fn every_placeholder_renders() {
        let template = Template::parse(
            "{{seq}}|{{uuid}}|{{now_ms}}|{{rand_int 3 3}}|{{session}}|{{choice a}}|{{ device 2 }}",
        )
        .unwrap();
        let text = render(&template, 5, Some("s-1"));
        let fields: Vec<&str> = text.split('|').collect();
        assert_eq!(fields[0], "5");
        assert!(uuid::Uuid::parse_str(fields[1]).is_ok(), "{text}");
        assert_eq!(fields[2], "1795000000123");
        assert_eq!(fields[3], "3");
        assert_eq!(fields[4], "s-1");
        assert_eq!(fields[5], "a");
        assert_eq!(fields[6], "dev-1");
    }

    #[test]
    fn literals_pass_through() {
        let template = Template::parse("plain { text } with } braces").unwrap();
        assert_eq!(render(&template, 0, None), "plain { text } with } braces");
    }

    #[test]
    fn mistakes_are_reported_with_their_position() {
        assert_eq!(
            Template::parse("ab{{seq").unwrap_err(),
            TemplateError::Unclosed { offset: 2 }
        );
        assert_eq!(
            Template::parse("{{seq}} {{sequence}}").unwrap_err(),
            TemplateError::Unknown {
                name: "sequence".into(),
                offset: 8
            }
        );
        for bad in [
            "{{rand_int 5 1}}",
            "{{rand_int a 1}}",
            "{{rand_float 1}}",
            "{{device 0}}",
            "{{device}}",
            "{{seq 1}}",
            "{{choice}}",
        ] {
            assert!(
                matches!(
                    Template::parse(bad),
                    Err(TemplateError::BadArguments { .. })
                ),
                "{bad}"
            );
        }
        let message = Template::parse("{{nope}}").unwrap_err().to_string();
        assert!(message.contains("{{nope}}"), "{message}");
    }

    #[test]
    fn timestamps_keep_millisecond_width() {
        let whole = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        assert_eq!(rfc3339_millis(whole), "2026-11-18T11:06:40.000Z");
        let fine = OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).unwrap();
        assert_eq!(rfc3339_millis(fine), "2026-11-18T11:06:40.123Z");
    }
}
