//! secp256k1 recoverable ECDSA over libsecp256k1 (RFC 6979 nonces, low-s by construction).
//!
//! We call the C library through `secp256k1-sys` directly so that (a) the secret key is read in
//! place from its locked buffer, never copied into a Rust value, and (b) the shared context is
//! randomized once at start instead of after every signature (the `secp256k1` crate's global
//! context re-randomizes per sign, which doubles the cost).

use core::ptr::NonNull;
use std::sync::OnceLock;

use rand_core::{OsRng, RngCore};
use secp256k1_sys as ffi;
use secp256k1_sys::recovery as rec;
use zeroize::Zeroize;

use crate::abi::{checksum_address, Address};
use crate::error::KeyError;
use crate::hex::decode_into;
use crate::keccak::keccak256;
use crate::secret::SecretBuf;

struct Ctx(NonNull<ffi::Context>);
// SAFETY: after creation and the one randomization the context is only read, which libsecp256k1
// allows from many threads at once.
unsafe impl Send for Ctx {}
unsafe impl Sync for Ctx {}

static CTX: OnceLock<Ctx> = OnceLock::new();

fn ctx() -> *const ffi::Context {
    CTX.get_or_init(|| {
        // SAFETY: flags are valid; the context lives for the rest of the process.
        let c = unsafe {
            ffi::secp256k1_context_create(ffi::SECP256K1_START_SIGN | ffi::SECP256K1_START_VERIFY)
        };
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        // SAFETY: fresh context, 32-byte seed. Randomization is side-channel blinding; on failure
        // the context still signs correctly.
        unsafe {
            ffi::secp256k1_context_randomize(c, seed.as_ptr());
        }
        seed.zeroize();
        Ctx(c)
    })
    .0
    .as_ptr()
}

/// A 65-byte Ethereum signature: r ‖ s ‖ v with v ∈ {27, 28}.
pub type Signature65 = [u8; 65];

/// A secp256k1 private key in locked memory, with its address.
pub struct EthKey {
    secret: SecretBuf,
    address: Address,
}

impl EthKey {
    /// From 32 raw bytes. The caller wipes its own copy.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.len() != 32 {
            return Err(KeyError::Key("a secp256k1 private key is 32 bytes"));
        }
        let secret = SecretBuf::from_slice(raw)?;
        Self::from_secret(secret)
    }

    /// From hex (`0x` optional). The decoded bytes go straight into the locked buffer.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let mut secret = SecretBuf::zeroed(32)?;
        decode_into("private_key", hex, secret.expose_mut())
            .map_err(|_| KeyError::Key("a secp256k1 private key is 64 hex digits"))?;
        Self::from_secret(secret)
    }

    /// Take ownership of a locked buffer that holds the 32 key bytes.
    pub fn from_secret(secret: SecretBuf) -> Result<Self, KeyError> {
        if secret.len() != 32 {
            return Err(KeyError::Key("a secp256k1 private key is 32 bytes"));
        }
        let c = ctx();
        // SAFETY: 32 readable bytes at secret.as_ptr().
        if unsafe { ffi::secp256k1_ec_seckey_verify(c, secret.as_ptr()) } != 1 {
            return Err(KeyError::Key(
                "not a valid secp256k1 private key (zero or ≥ the group order)",
            ));
        }
        // SAFETY: out-pointer pubkey, valid secret checked above.
        let mut pk = unsafe { ffi::PublicKey::new() };
        if unsafe { ffi::secp256k1_ec_pubkey_create(c, &mut pk, secret.as_ptr()) } != 1 {
            return Err(KeyError::Key("cannot derive the public key"));
        }
        let address = address_of(&pk)?;
        Ok(Self { secret, address })
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn address_checksummed(&self) -> String {
        checksum_address(&self.address)
    }

    pub fn locked(&self) -> bool {
        self.secret.locked()
    }

    /// Sign a 32-byte digest: r ‖ s ‖ v, low-s, v = 27 + recovery id.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature65, KeyError> {
        let (rs, recid) = self.sign_digest_raw(digest)?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = 27 + recid;
        Ok(out)
    }

    /// Sign a 32-byte digest: (r ‖ s, recovery id 0/1), for transactions that carry yParity.
    pub fn sign_digest_raw(&self, digest: &[u8; 32]) -> Result<([u8; 64], u8), KeyError> {
        let c = ctx();
        let mut sig = rec::RecoverableSignature::new();
        // SAFETY: all pointers valid for the sizes libsecp256k1 reads (32-byte msg and key).
        let ok = unsafe {
            rec::secp256k1_ecdsa_sign_recoverable(
                c,
                &mut sig,
                digest.as_ptr(),
                self.secret.as_ptr(),
                ffi::secp256k1_nonce_function_rfc6979,
                core::ptr::null(),
            )
        };
        if ok != 1 {
            return Err(KeyError::Sign("secp256k1_ecdsa_sign_recoverable"));
        }
        let mut rs = [0u8; 64];
        let mut recid: i32 = 0;
        // SAFETY: 64-byte output buffer; sig initialised by the call above.
        let ok = unsafe {
            rec::secp256k1_ecdsa_recoverable_signature_serialize_compact(
                c,
                rs.as_mut_ptr(),
                &mut recid,
                &sig,
            )
        };
        if ok != 1 || !(0..=1).contains(&recid) {
            return Err(KeyError::Sign("serialize recoverable signature"));
        }
        Ok((rs, recid as u8))
    }
}

impl core::fmt::Debug for EthKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "EthKey(address={})", self.address_checksummed())
    }
}

fn address_of(pk: &ffi::PublicKey) -> Result<Address, KeyError> {
    let mut ser = [0u8; 65];
    let mut len: usize = 65;
    // SAFETY: 65-byte output, valid public key.
    let ok = unsafe {
        ffi::secp256k1_ec_pubkey_serialize(
            ffi::secp256k1_context_static,
            ser.as_mut_ptr(),
            &mut len,
            pk,
            ffi::SECP256K1_SER_UNCOMPRESSED,
        )
    };
    if ok != 1 || len != 65 {
        return Err(KeyError::Key("cannot serialize the public key"));
    }
    let h = keccak256(&ser[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    Ok(a)
}

/// The address that signed `digest` with a 65-byte r ‖ s ‖ v signature (v 27/28 or 0/1).
pub fn recover_address(digest: &[u8; 32], sig: &[u8]) -> Result<Address, KeyError> {
    if sig.len() != 65 {
        return Err(KeyError::input("signature", "expected 65 bytes"));
    }
    let v = match sig[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(KeyError::input("signature", "v must be 27/28 or 0/1")),
    };
    let c = ctx();
    let mut rsig = rec::RecoverableSignature::new();
    // SAFETY: 64 bytes of r ‖ s; recid checked above.
    let ok = unsafe {
        rec::secp256k1_ecdsa_recoverable_signature_parse_compact(c, &mut rsig, sig.as_ptr(), v)
    };
    if ok != 1 {
        return Err(KeyError::input("signature", "r or s out of range"));
    }
    // SAFETY: out-pointer only.
    let mut pk = unsafe { ffi::PublicKey::new() };
    if unsafe { rec::secp256k1_ecdsa_recover(c, &mut pk, &rsig, digest.as_ptr()) } != 1 {
        return Err(KeyError::input(
            "signature",
            "no public key recovers from it",
        ));
    }
    address_of(&pk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::encode_0x;

    const HARDHAT0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn address_and_roundtrip() {
        let k = EthKey::from_hex(HARDHAT0).unwrap();
        assert_eq!(
            k.address_checksummed(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let d = keccak256(b"hello");
        let s = k.sign_digest(&d).unwrap();
        assert!(s[64] == 27 || s[64] == 28);
        // low-s: s ≤ n/2, whose top byte is 0x7f
        assert!(s[32] <= 0x7f);
        assert_eq!(recover_address(&d, &s).unwrap(), k.address());
        assert!(!format!("{k:?}").contains("ac0974"));
        assert_eq!(encode_0x(&k.address()).len(), 42);
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(EthKey::from_hex("0x00").is_err());
        assert!(EthKey::from_hex(&format!("0x{}", "00".repeat(32))).is_err());
        assert!(EthKey::from_hex(&format!("0x{}", "ff".repeat(32))).is_err());
        assert!(EthKey::from_hex(&format!("0x{}", "zz".repeat(32))).is_err());
        assert!(EthKey::from_bytes(&[1u8; 31]).is_err());
    }
}
