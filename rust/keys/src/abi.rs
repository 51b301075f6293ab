//! ABI words: uint256 from decimal or hex text, addresses (EIP-55 aware), bytes32.

use crate::error::KeyError;
use crate::hex::{decode_into, strip_0x};
use crate::keccak::keccak256;

pub type Word = [u8; 32];
pub type Address = [u8; 20];

/// A uint256 from a decimal string, or hex with a `0x` prefix. No sign, no spaces, no empty string.
pub fn parse_uint256(field: &str, s: &str) -> Result<Word, KeyError> {
    if s.starts_with("0x") || s.starts_with("0X") {
        let h = strip_0x(s);
        if h.is_empty() || h.len() > 64 {
            return Err(KeyError::input(
                field,
                "hex uint256 must have 1..=64 digits",
            ));
        }
        let padded = format!("{h:0>64}");
        let mut out = [0u8; 32];
        decode_into(field, &padded, &mut out)?;
        return Ok(out);
    }
    if s.is_empty() || s.len() > 78 {
        return Err(KeyError::input(
            field,
            "expected a decimal uint256 (1..=78 digits)",
        ));
    }
    // Little-endian u64 limbs; out = out * 10 + d, checking for overflow past 256 bits.
    let mut limbs = [0u64; 4];
    for c in s.bytes() {
        if !c.is_ascii_digit() {
            return Err(KeyError::input(
                field,
                format!("expected a decimal integer, found {:?}", c as char),
            ));
        }
        let mut carry = u128::from(c - b'0');
        for l in limbs.iter_mut() {
            let v = u128::from(*l) * 10 + carry;
            *l = v as u64;
            carry = v >> 64;
        }
        if carry != 0 {
            return Err(KeyError::input(field, "does not fit in uint256"));
        }
    }
    Ok(limbs_to_word(&limbs))
}

fn limbs_to_word(limbs: &[u64; 4]) -> Word {
    let mut out = [0u8; 32];
    for (i, l) in limbs.iter().enumerate() {
        out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&l.to_be_bytes());
    }
    out
}

pub fn uint_word(v: u128) -> Word {
    let mut out = [0u8; 32];
    out[16..].copy_from_slice(&v.to_be_bytes());
    out
}

pub fn address_word(a: &Address) -> Word {
    let mut out = [0u8; 32];
    out[12..].copy_from_slice(a);
    out
}

/// An address from `0x` + 40 hex digits. All-lowercase and all-uppercase are taken as they are;
/// mixed case must be a valid EIP-55 checksum (it catches typos).
pub fn parse_address(field: &str, s: &str) -> Result<Address, KeyError> {
    let mut out = [0u8; 20];
    decode_into(field, s, &mut out)?;
    let h = strip_0x(s);
    let has_lower = h.bytes().any(|c| c.is_ascii_lowercase());
    let has_upper = h.bytes().any(|c| c.is_ascii_uppercase());
    if has_lower && has_upper && strip_0x(&checksum_address(&out)) != h {
        return Err(KeyError::input(
            field,
            "mixed-case address with a wrong EIP-55 checksum",
        ));
    }
    Ok(out)
}

/// EIP-55 mixed-case checksum form.
pub fn checksum_address(a: &Address) -> String {
    let lower = crate::hex::encode_0x(a);
    let hash = keccak256(&lower.as_bytes()[2..]);
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower[2..].chars().enumerate() {
        let nib = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 15;
        if c.is_ascii_alphabetic() && nib >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn parse_bytes32(field: &str, s: &str) -> Result<Word, KeyError> {
    let mut out = [0u8; 32];
    decode_into(field, s, &mut out)?;
    Ok(out)
}

/// A uint that must fit in `bits` (8 for uint8 fields).
pub fn check_width(field: &str, w: &Word, bits: u32) -> Result<(), KeyError> {
    let free_bytes = 32 - (bits / 8) as usize;
    if w[..free_bytes].iter().any(|&b| b != 0) {
        return Err(KeyError::input(
            field,
            format!("does not fit in uint{bits}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_parsing() {
        assert_eq!(parse_uint256("x", "0").unwrap(), [0u8; 32]);
        assert_eq!(parse_uint256("x", "258").unwrap(), uint_word(258));
        assert_eq!(parse_uint256("x", "0x102").unwrap(), uint_word(258));
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(parse_uint256("x", max).unwrap(), [0xffu8; 32]);
        assert!(parse_uint256(
            "x",
            "115792089237316195423570985008687907853269984665640564039457584007913129639936"
        )
        .is_err());
        for bad in ["", "-1", "1.5", " 1", "1e3", "0x", "0xg"] {
            assert!(parse_uint256("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        let a = parse_address("a", "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266").unwrap();
        assert_eq!(
            checksum_address(&a),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert!(parse_address("a", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266").is_ok());
        assert!(parse_address("a", "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266").is_err());
        assert!(parse_address("a", "0xf39fd6").is_err());
    }
}
