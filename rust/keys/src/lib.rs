//! crossbook-keys: the signing primitives of crossbook, with secrets kept in locked memory.
//!
//! - [`secret::SecretBuf`]: mlock'd, MADV_DONTDUMP, zeroed on drop.
//! - [`secp::EthKey`]: secp256k1 recoverable ECDSA (libsecp256k1, RFC 6979, low-s), addresses.
//! - [`eip712`]: Polymarket CTF Exchange orders (V1, V2, V3) and ClobAuth digests.
//! - [`hmac_l2::HmacKey`]: Polymarket L2 HMAC headers.
//! - [`rsa_pss::RsaKey`]: Kalshi RSA-PSS request signatures.
//! - [`eip1559::Eip1559Tx`]: Polygon type-2 transactions.
//! - [`prepare`]: the signer's `PreparePolymarketOrder` step compiled (request decode, order
//!   signature, POST body, L2 headers, reply encode), over the protobuf [`wire`] format.
//!
//! Nothing here panics on caller input: every fallible step returns [`KeyError`], whose messages
//! never include secret bytes.

pub mod abi;
pub mod eip1559;
pub mod eip712;
pub mod error;
pub mod hex;
pub mod hmac_l2;
pub mod keccak;
pub mod prepare;
pub mod rsa_pss;
pub mod secp;
pub mod secret;
pub mod wire;

pub use error::KeyError;
