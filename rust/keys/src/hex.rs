//! Hex in and out: `0x`-prefixed lowercase out; in, an optional `0x` and either case.

use crate::error::KeyError;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `0x` + lowercase hex.
pub fn encode_0x(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

/// Decode exactly `N` bytes of hex (optional `0x`) into `out`.
pub fn decode_into(field: &str, s: &str, out: &mut [u8]) -> Result<(), KeyError> {
    let h = strip_0x(s).as_bytes();
    if h.len() != out.len() * 2 {
        return Err(KeyError::input(
            field,
            format!("expected {} hex digits, got {}", out.len() * 2, h.len()),
        ));
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(h[2 * i]), nibble(h[2 * i + 1])) {
            (Some(a), Some(b)) => *o = (a << 4) | b,
            _ => return Err(KeyError::input(field, "not a hex string")),
        }
    }
    Ok(())
}

/// Decode hex of any even length (optional `0x`).
pub fn decode_vec(field: &str, s: &str) -> Result<Vec<u8>, KeyError> {
    let h = strip_0x(s);
    if h.len() % 2 != 0 {
        return Err(KeyError::input(field, "odd number of hex digits"));
    }
    let mut out = vec![0u8; h.len() / 2];
    decode_into(field, h, &mut out)?;
    Ok(out)
}
