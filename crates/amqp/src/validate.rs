//! Structural check of AMQP-encoded bytes before they reach `serde_amqp`.
//!
//! `serde_amqp` 0.18 trusts length prefixes: it allocates `vec![0; len]` for a binary or
//! string before checking that `len` bytes follow (a 33-byte frame asked for 3 GB in the
//! `connection` fuzz target), and recurses without a depth limit. This walker checks that
//! every size, count and length fits inside its enclosing value and bounds nesting, in one
//! pass without allocating.

/// Deepest nesting of lists, maps, arrays and described values accepted.
pub(crate) const MAX_DEPTH: usize = 48;

/// Check that `bytes` is a sequence of well-formed AMQP values (a performative, or the
/// sections of a message).
pub(crate) fn validate_values(bytes: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    while pos < bytes.len() {
        pos = value(bytes, pos, 0)?;
    }
    Ok(())
}

fn short(what: &str) -> String {
    format!("truncated {what}")
}

fn take(bytes: &[u8], pos: usize, n: usize, what: &str) -> Result<usize, String> {
    let end = pos.checked_add(n).ok_or_else(|| short(what))?;
    if end > bytes.len() {
        return Err(short(what));
    }
    Ok(end)
}

fn u32_at(bytes: &[u8], pos: usize) -> Result<usize, String> {
    let raw = bytes.get(pos..pos + 4).ok_or_else(|| short("length"))?;
    Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
}

/// Validate one value (constructor included) at `pos`; returns the position after it.
fn value(bytes: &[u8], pos: usize, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err("values nested too deeply".into());
    }
    let code = *bytes.get(pos).ok_or_else(|| short("value"))?;
    if code == 0x00 {
        let after_descriptor = value(bytes, pos + 1, depth + 1)?;
        return value(bytes, after_descriptor, depth + 1);
    }
    body(bytes, pos + 1, code, depth)
}

/// Validate the bytes of a value whose constructor `code` has already been read.
fn body(bytes: &[u8], pos: usize, code: u8, depth: usize) -> Result<usize, String> {
    match code {
        0x40..=0x45 => Ok(pos),
        0x50..=0x56 => take(bytes, pos, 1, "fixed-width value"),
        0x60 | 0x61 => take(bytes, pos, 2, "fixed-width value"),
        0x70..=0x74 => take(bytes, pos, 4, "fixed-width value"),
        0x80..=0x84 => take(bytes, pos, 8, "fixed-width value"),
        0x94 | 0x98 => take(bytes, pos, 16, "fixed-width value"),
        0xa0 | 0xa1 | 0xa3 => {
            let len = *bytes.get(pos).ok_or_else(|| short("length"))? as usize;
            take(bytes, pos + 1, len, "binary/string")
        }
        0xb0 | 0xb1 | 0xb3 => {
            let len = u32_at(bytes, pos)?;
            take(bytes, pos + 4, len, "binary/string")
        }
        0xc0 | 0xc1 => {
            let size = *bytes.get(pos).ok_or_else(|| short("size"))? as usize;
            let end = take(bytes, pos + 1, size, "list/map")?;
            let count = *bytes.get(pos + 1).ok_or_else(|| short("count"))? as usize;
            compound(bytes, pos + 2, end, count, depth)
        }
        0xd0 | 0xd1 => {
            let size = u32_at(bytes, pos)?;
            let end = take(bytes, pos + 4, size, "list/map")?;
            let count = u32_at(bytes, pos + 4)?;
            compound(bytes, pos + 8, end, count, depth)
        }
        0xe0 => {
            let size = *bytes.get(pos).ok_or_else(|| short("size"))? as usize;
            let end = take(bytes, pos + 1, size, "array")?;
            let count = *bytes.get(pos + 1).ok_or_else(|| short("count"))? as usize;
            array(bytes, pos + 2, end, count, depth)
        }
        0xf0 => {
            let size = u32_at(bytes, pos)?;
            let end = take(bytes, pos + 4, size, "array")?;
            let count = u32_at(bytes, pos + 4)?;
            array(bytes, pos + 8, end, count, depth)
        }
        other => Err(format!("invalid constructor {other:#04x}")),
    }
}

fn compound(
    bytes: &[u8],
    mut pos: usize,
    end: usize,
    count: usize,
    depth: usize,
) -> Result<usize, String> {
    if pos > end || count > end - pos {
        return Err("element count exceeds the declared size".into());
    }
    let inner = &bytes[..end];
    for _ in 0..count {
        pos = value(inner, pos, depth + 1)?;
    }
    if pos != end {
        return Err("list/map size does not match its elements".into());
    }
    Ok(end)
}

fn array(
    bytes: &[u8],
    pos: usize,
    end: usize,
    count: usize,
    depth: usize,
) -> Result<usize, String> {
    if pos > end || count > end - pos + 1 {
        return Err("array count exceeds the declared size".into());
    }
    let inner = &bytes[..end];
    // The element constructor, possibly described, comes once for all elements.
    let mut code_pos = pos;
    let mut descriptor_depth = depth;
    while *inner
        .get(code_pos)
        .ok_or_else(|| short("array constructor"))?
        == 0x00
    {
        descriptor_depth += 1;
        if descriptor_depth > MAX_DEPTH {
            return Err("values nested too deeply".into());
        }
        code_pos = value(inner, code_pos + 1, descriptor_depth)?;
    }
    let code = inner[code_pos];
    let mut pos = code_pos + 1;
    for _ in 0..count {
        pos = body(inner, pos, code, descriptor_depth + 1)?;
    }
    if pos != end {
        return Err("array size does not match its elements".into());
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_values() {
        let list = [0x00, 0x53, 0x10, 0xc0, 0x05, 0x02, 0xa1, 0x01, b'x', 0x40];
        assert!(validate_values(&list).is_ok());
        let symbols = [0xe0, 0x06, 0x02, 0xa3, 0x01, b'a', 0x01, b'b'];
        assert!(validate_values(&symbols).is_ok());
        let encoded = serde_amqp::to_vec(&serde_amqp::Value::Map(Default::default())).unwrap();
        assert!(validate_values(&encoded).is_ok());
    }

    #[test]
    fn rejects_lengths_beyond_the_buffer() {
        // str32 claiming 0xb1b1b1b1 bytes: serde_amqp would allocate ~3 GB for it.
        assert!(validate_values(&[0xb1, 0xb1, 0xb1, 0xb1, 0xb1, b'x']).is_err());
        // list8 whose size runs past the end.
        assert!(validate_values(&[0xc0, 0x10, 0x01, 0x40]).is_err());
        // list32 claiming 2^32-1 elements in 4 bytes.
        assert!(validate_values(&[0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Elements that do not fill the declared size exactly.
        assert!(validate_values(&[0xc0, 0x03, 0x01, 0x40, 0x40]).is_err());
    }

    #[test]
    fn rejects_deep_nesting() {
        let mut nested = Vec::new();
        for _ in 0..10_000 {
            nested.extend_from_slice(&[0x00, 0x53, 0x01]);
        }
        nested.push(0x40);
        assert!(validate_values(&nested).is_err());
    }
}
