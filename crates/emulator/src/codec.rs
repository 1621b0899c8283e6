//! Bounds-checked walking of AMQP-encoded bytes.
//!
//! A message is a run of described sections. To keep the body bytes exactly as the producer
//! sent them, we find section boundaries ourselves and only decode the sections we read.
//! The walker also checks nesting depth before anything reaches `serde_amqp`, so a hostile
//! payload of deeply nested lists cannot exhaust the stack.

/// Deepest nesting of lists, maps, arrays and described values we accept.
pub const MAX_DEPTH: usize = 48;

/// Most elements of an array whose elements take no bytes (an array of nulls or `true`s).
const MAX_ZERO_WIDTH_ELEMENTS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated AMQP value at byte {0}")]
    Truncated(usize),
    #[error("unknown AMQP format code 0x{code:02x} at byte {at}")]
    UnknownFormatCode { code: u8, at: usize },
    #[error("AMQP value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("AMQP compound at byte {0} does not fill its declared size exactly")]
    SizeMismatch(usize),
    #[error("AMQP array at byte {0} declares too many zero-width elements")]
    TooManyElements(usize),
    #[error("AMQP map with an odd number of items at byte {0}")]
    OddMapCount(usize),
    #[error("a message section is not a described value at byte {0}")]
    NotASection(usize),
    #[error("unknown message section descriptor at byte {0}")]
    UnknownSection(usize),
}

/// Reads a big-endian unsigned size of `width` bytes at `at`.
fn read_size(bytes: &[u8], at: usize, width: usize) -> Result<usize, CodecError> {
    let field = bytes
        .get(at..at.checked_add(width).ok_or(CodecError::Truncated(at))?)
        .ok_or(CodecError::Truncated(at))?;
    Ok(field.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
}

/// Returns the index just past the value that starts at `at`.
pub fn skip_value(bytes: &[u8], at: usize) -> Result<usize, CodecError> {
    skip_value_at_depth(bytes, at, 0)
}

fn skip_value_at_depth(bytes: &[u8], at: usize, depth: usize) -> Result<usize, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let (code, body_at) = read_constructor(bytes, at, depth)?;
    skip_body(bytes, code, body_at, depth)
}

/// Reads a constructor (a format code, or `0x00 descriptor format-code`) and returns the
/// format code and where the body starts.
fn read_constructor(bytes: &[u8], at: usize, depth: usize) -> Result<(u8, usize), CodecError> {
    let code = *bytes.get(at).ok_or(CodecError::Truncated(at))?;
    if code != 0x00 {
        return Ok((code, at + 1));
    }
    if depth + 1 > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let after_descriptor = skip_value_at_depth(bytes, at + 1, depth + 1)?;
    read_constructor(bytes, after_descriptor, depth + 1)
}

/// Skips the body of a value whose format code is `code`, starting at `at`.
fn skip_body(bytes: &[u8], code: u8, at: usize, depth: usize) -> Result<usize, CodecError> {
    let fixed = |width: usize| {
        let end = at.checked_add(width).ok_or(CodecError::Truncated(at))?;
        if end > bytes.len() {
            return Err(CodecError::Truncated(at));
        }
        Ok(end)
    };
    let sized = |width: usize| {
        let size = read_size(bytes, at, width)?;
        fixed(width.checked_add(size).ok_or(CodecError::Truncated(at))?)
    };
    match code {
        0x40..=0x45 => fixed(0),
        0x50..=0x56 => fixed(1),
        0x60 | 0x61 => fixed(2),
        0x70..=0x74 => fixed(4),
        0x80..=0x84 => fixed(8),
        0x94 | 0x98 => fixed(16),
        0xa0 | 0xa1 | 0xa3 => sized(1),
        0xb0 | 0xb1 | 0xb3 => sized(4),
        0xc0 => skip_compound(bytes, at, 1, depth),
        0xd0 => skip_compound(bytes, at, 4, depth),
        0xc1 => skip_map(bytes, at, 1, depth),
        0xd1 => skip_map(bytes, at, 4, depth),
        0xe0 => skip_array(bytes, at, 1, depth),
        0xf0 => skip_array(bytes, at, 4, depth),
        _ => Err(CodecError::UnknownFormatCode { code, at: at - 1 }),
    }
}

/// A list or map: `size count items…`; every item must end inside `size`.
fn skip_compound(bytes: &[u8], at: usize, width: usize, depth: usize) -> Result<usize, CodecError> {
    let size = read_size(bytes, at, width)?;
    let items_at = at + width;
    let end = items_at
        .checked_add(size)
        .ok_or(CodecError::Truncated(at))?;
    if end > bytes.len() || size < width {
        return Err(CodecError::Truncated(at));
    }
    let count = read_size(bytes, items_at, width)?;
    let inner = &bytes[..end];
    let mut cursor = items_at + width;
    for _ in 0..count {
        cursor = skip_value_at_depth(inner, cursor, depth + 1)?;
    }
    // The items must fill the declared size exactly: serde_amqp reads some compounds by
    // size and others by count, and the two must agree.
    if cursor != end {
        return Err(CodecError::SizeMismatch(at));
    }
    Ok(end)
}

/// A map: a compound whose count (keys and values together) must be even; serde_amqp
/// underflows on an odd count.
fn skip_map(bytes: &[u8], at: usize, width: usize, depth: usize) -> Result<usize, CodecError> {
    let count = read_size(bytes, at + width, width)?;
    if count % 2 != 0 {
        return Err(CodecError::OddMapCount(at));
    }
    skip_compound(bytes, at, width, depth)
}

/// An array: `size count constructor bodies…`, all elements sharing one constructor.
fn skip_array(bytes: &[u8], at: usize, width: usize, depth: usize) -> Result<usize, CodecError> {
    let size = read_size(bytes, at, width)?;
    let items_at = at + width;
    let end = items_at
        .checked_add(size)
        .ok_or(CodecError::Truncated(at))?;
    if end > bytes.len() || size < width {
        return Err(CodecError::Truncated(at));
    }
    let count = read_size(bytes, items_at, width)?;
    let inner = &bytes[..end];
    let (code, mut cursor) = read_constructor(inner, items_at + width, depth + 1)?;
    for _ in 0..count {
        let next = skip_body(inner, code, cursor, depth + 1)?;
        if next == cursor {
            // Zero-width elements (null, true, uint0, …) take no bytes, so only the count
            // bounds them; the decoder allocates one value per element.
            if count > MAX_ZERO_WIDTH_ELEMENTS {
                return Err(CodecError::TooManyElements(at));
            }
            break;
        }
        cursor = next;
    }
    if cursor != end {
        return Err(CodecError::SizeMismatch(at));
    }
    Ok(end)
}

/// The sections of a message, by their descriptor code (0x70 header … 0x78 footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SectionKind {
    Header,
    DeliveryAnnotations,
    MessageAnnotations,
    Properties,
    ApplicationProperties,
    Data,
    AmqpSequence,
    AmqpValue,
    Footer,
}

impl SectionKind {
    fn from_code(code: u64) -> Option<SectionKind> {
        Some(match code {
            0x70 => SectionKind::Header,
            0x71 => SectionKind::DeliveryAnnotations,
            0x72 => SectionKind::MessageAnnotations,
            0x73 => SectionKind::Properties,
            0x74 => SectionKind::ApplicationProperties,
            0x75 => SectionKind::Data,
            0x76 => SectionKind::AmqpSequence,
            0x77 => SectionKind::AmqpValue,
            0x78 => SectionKind::Footer,
            _ => return None,
        })
    }

    fn from_symbol(name: &[u8]) -> Option<SectionKind> {
        Some(match name {
            b"amqp:header:list" => SectionKind::Header,
            b"amqp:delivery-annotations:map" => SectionKind::DeliveryAnnotations,
            b"amqp:message-annotations:map" => SectionKind::MessageAnnotations,
            b"amqp:properties:list" => SectionKind::Properties,
            b"amqp:application-properties:map" => SectionKind::ApplicationProperties,
            b"amqp:data:binary" => SectionKind::Data,
            b"amqp:amqp-sequence:list" => SectionKind::AmqpSequence,
            b"amqp:amqp-value:*" => SectionKind::AmqpValue,
            b"amqp:footer:map" => SectionKind::Footer,
            _ => return None,
        })
    }
}

/// One section: its kind, its whole encoding (descriptor included) and where its value starts.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    pub kind: SectionKind,
    /// The full encoding, `0x00 descriptor value`.
    pub encoded: &'a [u8],
    /// The encoding of the value alone (after the descriptor).
    pub value: &'a [u8],
}

/// Splits an encoded message into its sections.
pub fn split_sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, CodecError> {
    let mut sections = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != 0x00 {
            return Err(CodecError::NotASection(at));
        }
        let descriptor_at = at + 1;
        let value_at = skip_value(bytes, descriptor_at)?;
        let kind = section_kind(&bytes[descriptor_at..value_at])
            .ok_or(CodecError::UnknownSection(descriptor_at))?;
        let end = skip_value(bytes, value_at)?;
        sections.push(Section {
            kind,
            encoded: &bytes[at..end],
            value: &bytes[value_at..end],
        });
        at = end;
    }
    Ok(sections)
}

fn section_kind(descriptor: &[u8]) -> Option<SectionKind> {
    match descriptor.first()? {
        0x53 => SectionKind::from_code(u64::from(*descriptor.get(1)?)),
        0x80 => {
            let raw: [u8; 8] = descriptor.get(1..9)?.try_into().ok()?;
            SectionKind::from_code(u64::from_be_bytes(raw))
        }
        0xa3 => SectionKind::from_symbol(descriptor.get(2..)?),
        0xb3 => SectionKind::from_symbol(descriptor.get(5..)?),
        _ => None,
    }
}

/// The bytes inside a `binary` encoding (vbin8 / vbin32), if `value` is one.
pub fn binary_contents(value: &[u8]) -> Option<&[u8]> {
    match value.first()? {
        0xa0 => {
            let len = *value.get(1)? as usize;
            value.get(2..2 + len)
        }
        0xb0 => {
            let len = u32::from_be_bytes(value.get(1..5)?.try_into().ok()?) as usize;
            value.get(5..5usize.checked_add(len)?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_nested_values_and_refuses_truncation() {
        // list8 [uint 1, str8 "ab", map8 {sym "k": null}]
        let bytes = [
            0xc0, 0x0e, 0x03, 0x52, 0x01, 0xa1, 0x02, b'a', b'b', 0xc1, 0x05, 0x02, 0xa3, 0x01,
            b'k', 0x40,
        ];
        assert_eq!(skip_value(&bytes, 0), Ok(bytes.len()));
        for cut in 0..bytes.len() {
            assert!(skip_value(&bytes[..cut], 0).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_maps_with_an_odd_item_count() {
        // map8 with count 1: found by cargo-fuzz (serde_amqp subtracts 2 from the count).
        assert_eq!(
            skip_value(&[0xc1, 0x02, 0x01, 0x40], 0),
            Err(CodecError::OddMapCount(1))
        );
        assert_eq!(skip_value(&[0xc1, 0x03, 0x02, 0x40, 0x40], 0), Ok(5));
    }

    #[test]
    fn compounds_must_fill_their_size_and_bound_empty_elements() {
        // array8 of zero maps followed by junk: found by cargo-fuzz (serde_amqp then read
        // the junk as elements).
        assert_eq!(
            skip_value(&[0xe0, 0x05, 0x00, 0xc1, 0x73, 0x01, 0xc1], 0),
            Err(CodecError::SizeMismatch(1))
        );
        assert_eq!(
            skip_value(&[0xc0, 0x03, 0x01, 0x40, 0x40], 0),
            Err(CodecError::SizeMismatch(1))
        );
        // array32 of 2^31 nulls in five bytes: would allocate gigabytes.
        let huge = [0xf0, 0, 0, 0, 5, 0x80, 0, 0, 0, 0x40];
        assert_eq!(skip_value(&huge, 0), Err(CodecError::TooManyElements(1)));
        assert_eq!(skip_value(&[0xe0, 0x02, 0x03, 0x40], 0), Ok(4));
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut bytes = Vec::new();
        for _ in 0..200 {
            bytes.extend_from_slice(&[0x00, 0x53, 0x01]);
        }
        bytes.push(0x40);
        assert_eq!(skip_value(&bytes, 0), Err(CodecError::TooDeep));
    }

    #[test]
    fn arrays_of_fixed_and_variable_elements() {
        // array8 of 2 uuids
        let mut bytes = vec![0xe0, 34, 2, 0x98];
        bytes.extend_from_slice(&[7u8; 32]);
        assert_eq!(skip_value(&bytes, 0), Ok(bytes.len()));
        // array8 of 2 sym8 "a","bc"
        let bytes = [0xe0, 0x07, 0x02, 0xa3, 0x01, b'a', 0x02, b'b', b'c'];
        assert_eq!(skip_value(&bytes, 0), Ok(bytes.len()));
    }

    #[test]
    fn splits_sections() {
        // header [] , data "hi"
        let bytes = [
            0x00, 0x53, 0x70, 0x45, 0x00, 0x53, 0x75, 0xa0, 0x02, b'h', b'i',
        ];
        let sections = split_sections(&bytes).unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].kind, SectionKind::Header);
        assert_eq!(sections[1].kind, SectionKind::Data);
        assert_eq!(binary_contents(sections[1].value), Some(&b"hi"[..]));
        assert!(split_sections(&[0x40]).is_err());
        assert!(split_sections(&[0x00, 0x53, 0x99, 0x40]).is_err());
    }
}
