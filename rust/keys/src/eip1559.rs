//! EIP-1559 (type 2) transactions: RLP encoding, signing hash, signed raw bytes.
//!
//! raw = 0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gasLimit, to, value, data,
//! accessList, yParity, r, s]); the signing hash is keccak256(0x02 ‖ rlp(the first nine)).

use crate::abi::{Address, Word};
use crate::error::KeyError;
use crate::keccak::keccak256;
use crate::secp::EthKey;

/// One access-list entry: an address and its storage keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListItem {
    pub address: Address,
    pub storage_keys: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eip1559Tx {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_priority_fee_per_gas: Word,
    pub max_fee_per_gas: Word,
    pub gas_limit: u64,
    /// `None` for contract creation.
    pub to: Option<Address>,
    pub value: Word,
    pub data: Vec<u8>,
    pub access_list: Vec<AccessListItem>,
}

fn rlp_len_prefix(out: &mut Vec<u8>, len: usize, short: u8) {
    if len <= 55 {
        out.push(short + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        out.push(short + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

fn rlp_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() == 1 && b[0] < 0x80 {
        out.push(b[0]);
    } else {
        rlp_len_prefix(out, b.len(), 0x80);
        out.extend_from_slice(b);
    }
}

/// An unsigned integer: big-endian without leading zeros (zero is the empty string).
fn rlp_uint(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|&&b| b == 0).count();
    rlp_bytes(out, &be[skip..]);
}

fn rlp_list(out: &mut Vec<u8>, payload: &[u8]) {
    rlp_len_prefix(out, payload.len(), 0xc0);
    out.extend_from_slice(payload);
}

impl Eip1559Tx {
    fn fields(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(128 + self.data.len());
        rlp_uint(&mut p, &self.chain_id.to_be_bytes());
        rlp_uint(&mut p, &self.nonce.to_be_bytes());
        rlp_uint(&mut p, &self.max_priority_fee_per_gas);
        rlp_uint(&mut p, &self.max_fee_per_gas);
        rlp_uint(&mut p, &self.gas_limit.to_be_bytes());
        match &self.to {
            Some(a) => rlp_bytes(&mut p, a),
            None => rlp_bytes(&mut p, &[]),
        }
        rlp_uint(&mut p, &self.value);
        rlp_bytes(&mut p, &self.data);
        let mut al = Vec::new();
        for item in &self.access_list {
            let mut entry = Vec::new();
            rlp_bytes(&mut entry, &item.address);
            let mut keys = Vec::new();
            for k in &item.storage_keys {
                rlp_bytes(&mut keys, k);
            }
            rlp_list(&mut entry, &keys);
            rlp_list(&mut al, &entry);
        }
        rlp_list(&mut p, &al);
        p
    }

    /// The digest the sender signs.
    pub fn signing_hash(&self) -> Word {
        let mut enc = vec![0x02];
        rlp_list(&mut enc, &self.fields());
        keccak256(&enc)
    }

    fn check(&self) -> Result<(), KeyError> {
        if self.max_priority_fee_per_gas > self.max_fee_per_gas {
            return Err(KeyError::input(
                "maxPriorityFeePerGas",
                "is above maxFeePerGas",
            ));
        }
        if self.gas_limit == 0 {
            return Err(KeyError::input("gas", "must be positive"));
        }
        Ok(())
    }

    /// Sign: (raw signed transaction bytes, transaction hash).
    pub fn sign(&self, key: &EthKey) -> Result<(Vec<u8>, Word), KeyError> {
        self.check()?;
        let (rs, parity) = key.sign_digest_raw(&self.signing_hash())?;
        let mut p = self.fields();
        rlp_uint(&mut p, &[parity]);
        rlp_uint(&mut p, &rs[..32]);
        rlp_uint(&mut p, &rs[32..]);
        let mut raw = vec![0x02];
        rlp_list(&mut raw, &p);
        let h = keccak256(&raw);
        Ok((raw, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlp_basics() {
        let mut o = Vec::new();
        rlp_uint(&mut o, &0u64.to_be_bytes());
        assert_eq!(o, [0x80]);
        o.clear();
        rlp_uint(&mut o, &15u64.to_be_bytes());
        assert_eq!(o, [0x0f]);
        o.clear();
        rlp_uint(&mut o, &1024u64.to_be_bytes());
        assert_eq!(o, [0x82, 0x04, 0x00]);
        o.clear();
        rlp_bytes(&mut o, b"dog");
        assert_eq!(o, [0x83, b'd', b'o', b'g']);
        o.clear();
        rlp_bytes(&mut o, &[0xaa; 56]);
        assert_eq!(&o[..2], &[0xb8, 56]);
    }
}
