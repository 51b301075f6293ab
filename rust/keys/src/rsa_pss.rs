//! Kalshi request signatures: RSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt, base64 (standard).
//!
//! The key is kept as PKCS#8 DER in locked memory and parsed for each signature (the parsed
//! `RsaPrivateKey` zeroizes itself on drop), so no long-lived big-integer copy sits on the heap.
//! Parsing costs far less than the RSA operation itself.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand_core::OsRng;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::pss::{BlindedSigningKey, Signature, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use crate::error::KeyError;
use crate::secret::SecretBuf;

pub struct RsaKey {
    pkcs8_der: SecretBuf,
    bits: usize,
}

fn parse_private(data: &[u8]) -> Result<RsaPrivateKey, KeyError> {
    let bad = || KeyError::Key("not an RSA private key (PKCS#8 or PKCS#1, PEM or DER)");
    let trimmed = data.trim_ascii();
    if trimmed.starts_with(b"-----BEGIN") {
        let pem = core::str::from_utf8(trimmed).map_err(|_| bad())?;
        return RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| bad());
    }
    if let Ok(k) =
        RsaPrivateKey::from_pkcs8_der(data).or_else(|_| RsaPrivateKey::from_pkcs1_der(data))
    {
        return Ok(k);
    }
    // base64 of DER (how some key files and the vectors carry it)
    let mut der = STANDARD.decode(trimmed).map_err(|_| bad())?;
    let k = RsaPrivateKey::from_pkcs8_der(&der).or_else(|_| RsaPrivateKey::from_pkcs1_der(&der));
    zeroize::Zeroize::zeroize(&mut der);
    k.map_err(|_| bad())
}

impl RsaKey {
    /// From PEM (PKCS#8 or PKCS#1), DER, or base64 of DER.
    pub fn from_bytes(data: &[u8]) -> Result<Self, KeyError> {
        let key = parse_private(data)?;
        let bits = key.size() * 8;
        if bits < 2048 {
            return Err(KeyError::Key("RSA keys under 2048 bits are refused"));
        }
        let doc = key
            .to_pkcs8_der()
            .map_err(|_| KeyError::Key("cannot re-encode the RSA key"))?;
        Ok(Self {
            pkcs8_der: SecretBuf::from_slice(doc.as_bytes())?,
            bits,
        })
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    fn key(&self) -> Result<RsaPrivateKey, KeyError> {
        RsaPrivateKey::from_pkcs8_der(self.pkcs8_der.expose())
            .map_err(|_| KeyError::Key("stored RSA key no longer parses"))
    }

    /// Raw PSS signature bytes (randomized salt: differs every call).
    pub fn sign_pss(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sk = BlindedSigningKey::<Sha256>::new(self.key()?);
        let sig = sk
            .try_sign_with_rng(&mut OsRng, message)
            .map_err(|_| KeyError::Sign("RSA-PSS"))?;
        Ok(sig.to_vec())
    }

    pub fn sign_pss_b64(&self, message: &[u8]) -> Result<String, KeyError> {
        Ok(STANDARD.encode(self.sign_pss(message)?))
    }

    /// SubjectPublicKeyInfo PEM of the public half.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        RsaPublicKey::from(&self.key()?)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| KeyError::Key("cannot encode the RSA public key"))
    }
}

impl core::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaKey({} bits, hidden)", self.bits)
    }
}

/// An RSA public key from SPKI PEM/DER or PKCS#1 PEM/DER.
pub fn parse_public(data: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let bad = || KeyError::Key("not an RSA public key (SPKI or PKCS#1, PEM or DER)");
    let trimmed = data.trim_ascii();
    if trimmed.starts_with(b"-----BEGIN") {
        let pem = core::str::from_utf8(trimmed).map_err(|_| bad())?;
        return RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|_| bad());
    }
    RsaPublicKey::from_public_key_der(data)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(data))
        .map_err(|_| bad())
}

/// Whether `signature` is a valid PSS (SHA-256, salt 32) signature of `message` by `public`.
pub fn verify_pss(public: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = Signature::try_from(signature) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(public.clone())
        .verify(message, &sig)
        .is_ok()
}

/// The Kalshi signed message: timestamp + METHOD + path without its query string.
pub fn kalshi_message(timestamp_ms: &str, method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{timestamp_ms}{}{path}", method.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Option<serde_json::Value> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors/kalshi/kat_rsa_pss_verify.json"
        );
        let text = std::fs::read_to_string(p).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[test]
    fn kalshi_kat_both_ways() {
        let Some(v) = vector() else {
            eprintln!("shared vectors not found: skipped");
            return;
        };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let key = RsaKey::from_bytes(s("private_key_pkcs8_der_b64").as_bytes()).unwrap();
        assert_eq!(key.bits(), 2048);
        let public = parse_public(s("public_key_pem").as_bytes()).unwrap();
        let msg = kalshi_message(&s("timestamp_ms"), &s("method"), &s("path_signed"));
        assert_eq!(msg, s("message"));
        let theirs = STANDARD.decode(s("example_signature_b64")).unwrap();
        assert!(verify_pss(&public, msg.as_bytes(), &theirs));
        let ours = key.sign_pss(msg.as_bytes()).unwrap();
        assert!(verify_pss(&public, msg.as_bytes(), &ours));
        assert_ne!(
            ours,
            key.sign_pss(msg.as_bytes()).unwrap(),
            "PSS salt must be random"
        );
        assert!(!verify_pss(&public, b"other", &ours));
        assert_eq!(key.public_pem().unwrap(), s("public_key_pem"));
        assert_eq!(
            kalshi_message("1703123456789", "get", "/trade-api/v2/markets?limit=5"),
            "1703123456789GET/trade-api/v2/markets"
        );
        assert!(!format!("{key:?}").contains("MII"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(RsaKey::from_bytes(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .is_err());
        assert!(RsaKey::from_bytes(b"\x00\x01").is_err());
        assert!(parse_public(b"nope").is_err());
    }
}
