//! Randomized robustness: arbitrary and mutated expressions must be parsed or refused, and
//! accepted ones evaluated or applied, without a panic. Seeds are fixed so a failure
//! reproduces; set `FILTER_FUZZ_ITERATIONS` to run longer.

use busdrain_filter::{MessageProperties, ParseOptions, SqlFilter, SqlRuleAction, Value};

/// xorshift64*: tiny, deterministic, good enough to pick fragments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const FRAGMENTS: &[&str] = &[
    " ",
    "(",
    ")",
    ",",
    ";",
    ".",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ESCAPE",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "EXISTS",
    "SET",
    "REMOVE",
    "sys.",
    "user.",
    "sys.Label",
    "sys.MessageId",
    "sys.SequenceNumber",
    "sys.EnqueuedTimeUtc",
    "sys.TimeToLive",
    "sys.Nope",
    "color",
    "quantity",
    "price",
    "big",
    "nan",
    "when",
    "[a b]",
    "[x]]",
    "\"q\"",
    "'red'",
    "'%'",
    "'_'",
    "'!'",
    "'it''s'",
    "''",
    "'",
    "[",
    "\"",
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "2.5",
    "1e3",
    "1e",
    ".5",
    "newid()",
    "p(",
    "property(",
    "@p",
    "@",
    "!",
    "#",
    "é",
    "\u{1F600}",
    "\n",
    "\t",
    "\u{0}",
];

const VALID: &[&str] = &[
    "color = 'red' AND quantity > 5",
    "sys.Label LIKE '%bus%' OR user.tag IN ('queue', 'topic')",
    "NOT EXISTS(color) OR color IS NULL",
    "quantity * 2 + price / 3 >= 10 AND color NOT LIKE 'r!%' ESCAPE '!'",
    "p('sys.Label') = 'x' OR [a b] <> 1",
    "SET quantity = quantity / 2; REMOVE color; SET sys.CorrelationId = 'low'",
];

fn messages() -> Vec<MessageProperties> {
    let mut full = MessageProperties::default();
    full.system.label = Some("the bus".into());
    full.system.message_id = Some("m".into());
    full.system.sequence_number = Some(i64::MAX);
    full.system.enqueued_time_utc_ms = Some(i64::MIN);
    full.system.time_to_live_ms = Some(i64::MAX);
    for (k, v) in [
        ("color", Value::from("red")),
        ("quantity", Value::Long(i64::MIN)),
        ("price", Value::Double(f64::MAX)),
        ("big", Value::Long(i64::MAX)),
        ("nan", Value::Double(f64::NAN)),
        ("when", Value::Timestamp(i64::MAX)),
        ("a b", Value::Binary(vec![1, 2])),
        ("x]", Value::Uuid(uuid::Uuid::nil())),
    ] {
        full.user.insert(k.into(), v);
    }
    vec![MessageProperties::default(), full]
}

fn iterations() -> usize {
    std::env::var("FILTER_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn exercise(input: &str, options: &ParseOptions, messages: &[MessageProperties]) -> (bool, bool) {
    let filter = SqlFilter::parse_with(input, options);
    if let Ok(filter) = &filter {
        for m in messages {
            let _ = filter.evaluate(m);
        }
    }
    let action = SqlRuleAction::parse_with(input, options);
    if let Ok(action) = &action {
        for m in messages {
            let mut m = m.clone();
            let _ = action.apply(&mut m);
        }
    }
    for error in [filter.as_ref().err(), action.as_ref().err()]
        .into_iter()
        .flatten()
    {
        // A position inside the input or just past its end.
        assert!(
            error.position >= 1 && error.position <= input.chars().count() + 1,
            "{input:?}: {error}"
        );
        assert!(!error.message.is_empty());
    }
    (filter.is_ok(), action.is_ok())
}

#[test]
fn random_fragment_sequences_never_panic() {
    let mut rng = Rng(0x5EED_F17E_u64);
    let options = ParseOptions::default();
    let messages = messages();
    let mut accepted = 0;
    for _ in 0..iterations() {
        let mut input = String::new();
        for _ in 0..rng.below(24) {
            input.push_str(rng.pick(FRAGMENTS));
            if rng.below(3) == 0 {
                input.push(' ');
            }
        }
        let (filter_ok, action_ok) = exercise(&input, &options, &messages);
        accepted += usize::from(filter_ok) + usize::from(action_ok);
    }
    // The generator must also reach the evaluator, not only the error paths.
    assert!(accepted > 100, "only {accepted} inputs were accepted");
}

#[test]
fn mutated_valid_expressions_never_panic() {
    let mut rng = Rng(0xDEC0_DE00_1234_u64);
    let options = ParseOptions::default();
    let messages = messages();
    for _ in 0..iterations() {
        let mut chars: Vec<char> = rng.pick(VALID).chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let fragment = rng.pick(FRAGMENTS);
                    for (i, c) in fragment.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                _ => {
                    let c = char::from_u32(rng.next() as u32 % 0x3000).unwrap_or('?');
                    chars.insert(at, c);
                }
            }
        }
        let input: String = chars.into_iter().collect();
        exercise(&input, &options, &messages);
    }
}

#[test]
fn random_bytes_as_text_never_panic() {
    let mut rng = Rng(0x000B_17E5_u64);
    let options = ParseOptions::default();
    let messages = messages();
    for _ in 0..iterations() {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes), &options, &messages);
    }
}
