//! Keccak-256 (the pre-FIPS padding Ethereum uses).

use tiny_keccak::{Hasher, Keccak};

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// Keccak-256 of the concatenation of `parts`, without building it.
pub fn keccak256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut k = Keccak::v256();
    for p in parts {
        k.update(p);
    }
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::encode_0x;

    #[test]
    fn known_answers() {
        assert_eq!(
            encode_0x(&keccak256(b"")),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            encode_0x(&keccak256(b"Transfer(address,address,uint256)")),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
        assert_eq!(
            keccak256_parts(&[b"Trans", b"fer(address,address,uint256)"]),
            keccak256(b"Transfer(address,address,uint256)")
        );
    }
}
