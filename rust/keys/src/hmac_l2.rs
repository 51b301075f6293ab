//! Polymarket L2 request signatures: base64url(HMAC-SHA256(base64url_decode(secret), message)).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::error::KeyError;
use crate::secret::SecretBuf;

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// An HMAC secret (the API secret of a Polymarket key) in locked memory.
pub struct HmacKey {
    secret: SecretBuf,
}

impl HmacKey {
    /// From the base64 secret the CLOB returned (url-safe or standard alphabet, padded or not).
    pub fn from_base64(secret_b64: &str) -> Result<Self, KeyError> {
        let mut norm: Vec<u8> = secret_b64
            .bytes()
            .filter(|&c| c != b'=')
            .map(|c| match c {
                b'+' => b'-',
                b'/' => b'_',
                c => c,
            })
            .collect();
        let out_len = norm.len() * 3 / 4;
        let result = (|| {
            if out_len == 0 {
                return Err(KeyError::Key("the API secret is empty"));
            }
            let mut buf = SecretBuf::zeroed(out_len)?;
            match URL_SAFE_LENIENT.decode_slice(&norm, buf.expose_mut()) {
                Ok(n) if n == out_len => Ok(Self { secret: buf }),
                _ => Err(KeyError::Key("the API secret is not base64")),
            }
        })();
        norm.zeroize();
        result
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Key("the HMAC key is empty"));
        }
        Ok(Self {
            secret: SecretBuf::from_slice(raw)?,
        })
    }

    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        // new_from_slice accepts any key length for HMAC; the error arm is unreachable.
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(self.secret.expose()) else {
            return [0u8; 32];
        };
        m.update(message);
        m.finalize().into_bytes().into()
    }

    /// The `POLY_SIGNATURE` value for `timestamp + METHOD + path + body` (body only if non-empty).
    pub fn l2_signature(&self, timestamp: &str, method: &str, path: &str, body: &[u8]) -> String {
        let mut msg = Vec::with_capacity(timestamp.len() + method.len() + path.len() + body.len());
        msg.extend_from_slice(timestamp.as_bytes());
        msg.extend_from_slice(method.as_bytes());
        msg.extend_from_slice(path.as_bytes());
        msg.extend_from_slice(body);
        URL_SAFE.encode(self.mac(&msg))
    }
}

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacKey(hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_kat() {
        let k = HmacKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(
            k.l2_signature("1000000", "test-sign", "/orders", b"{\"hash\": \"0x123\"}"),
            "ZwAdJKvoYRlEKDkNMwd5BuwNNtg93kNaR_oU2HrfVvc="
        );
        assert!(HmacKey::from_base64("").is_err());
        assert!(HmacKey::from_base64("!!!!").is_err());
    }
}
