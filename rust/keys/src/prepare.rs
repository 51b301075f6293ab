//! `PreparePolymarketOrder` compiled: the request message decoded by hand, the V2 order signed, its
//! `POST /order` body and L2 headers built, the reply message encoded: the signer's order step in
//! one pass, with no protobuf runtime.
//!
//! Every rule is the one of the Python path (`crossbook.signing.prepare_polymarket_order` behind
//! `crossbook_signer.service`), check for check and in the same order, so the hash, signature, body
//! and headers are byte for byte the same and the same inputs are refused. The few inputs whose
//! meaning there rests on Python's Unicode-aware `str.isdigit`/`int`/`str.upper`, or on `orjson`
//! refusing an integer past 64 bits, are flagged by [`PrepareRequest::needs_python_rules`]: the
//! caller sends those down the Python path instead of guessing.
//!
//! [`PrepareRequest::canonical`] is upb's deterministic serialization of the request (fields in
//! number order, map entries sorted by key as upb sorts them, defaults left out, unknown fields
//! last, in arrival order), so [`PrepareRequest::fingerprint`] is the fingerprint the service computes from
//! `SerializeToString(deterministic=True)` for any other method.

use sha2::{Digest, Sha256};

use crate::abi::{parse_address, parse_bytes32, parse_uint256, Address, Word};
use crate::eip712::{exchange_address, order_digest, Order, OrderV2, OrderVersion};
use crate::error::KeyError;
use crate::hex::encode_0x;
use crate::hmac_l2::HmacKey;
use crate::secp::EthKey;
use crate::wire::{
    put_bytes, put_bytes_nonempty, put_tag, put_uint_nonzero, put_varint, DecodeError, Reader,
    DEPTH_LIMIT, LEN, VARINT,
};

/// The gRPC method name: the first part of the fingerprint.
pub const METHOD: &str = "PreparePolymarketOrder";
const ORDER_TYPES: [&str; 4] = ["FAK", "FOK", "GTC", "GTD"]; // sorted, as the Python message lists them
const SIDES: &[&str] = &["BUY", "SELL"];
const SIG_TYPES: &[&str] = &["EOA", "POLY_PROXY", "POLY_GNOSIS_SAFE", "POLY_1271"];
const ZERO_BYTES32: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";
/// Significant digits of Python's default `decimal` context (the notional is a Decimal quotient).
const DECIMAL_PREC: usize = 28;

/// Which key signs (`KeyRef.key`, a oneof).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyChoice {
    #[default]
    Unset,
    Wallet(String),
    Session(String),
}

/// `KeyRef`: the oneof and the unknown fields that came with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRef {
    pub choice: KeyChoice,
    pub unknown: Vec<u8>,
}

/// `PreparePolymarketOrderRequest` (proto/signer.proto). Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareRequest {
    pub request_id: String,
    /// `None`: the `key` field is absent (not the same as present and empty).
    pub key: Option<KeyRef>,
    /// The order map: unique keys (a repeated key replaces the value), in first-seen order.
    pub order: Vec<(String, String)>,
    pub chain_id: u64,
    pub neg_risk: bool,
    pub exchange: String,
    pub account: String,
    pub order_type: String,
    pub defer_exec: bool,
    pub post_only: bool,
    pub path: String,
    pub timestamp: i64,
    /// Unknown fields, raw, in arrival order (map entries carrying unknown fields land here too,
    /// re-encoded, as upb does).
    pub unknown: Vec<u8>,
}

impl KeyRef {
    fn merge(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        while !r.at_end() {
            let at = r.offset();
            match r.tag()? {
                (1, LEN) => self.choice = KeyChoice::Wallet(r.string("key.wallet")?.to_owned()),
                (2, LEN) => {
                    self.choice = KeyChoice::Session(r.string("key.session_id")?.to_owned())
                }
                (f, wt) => {
                    r.skip(at, f, wt, DEPTH_LIMIT - 1)?;
                    self.unknown.extend_from_slice(r.since(at));
                }
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut inner = Vec::with_capacity(64);
        match &self.choice {
            KeyChoice::Unset => {}
            KeyChoice::Wallet(s) => put_bytes(&mut inner, 1, s.as_bytes()),
            KeyChoice::Session(s) => put_bytes(&mut inner, 2, s.as_bytes()),
        }
        inner.extend_from_slice(&self.unknown);
        put_bytes(out, 2, &inner);
    }
}

fn put_entry(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    put_tag(out, field, LEN);
    put_varint(
        out,
        (2 + varint_len(key.len()) + key.len() + varint_len(value.len()) + value.len()) as u64,
    );
    put_bytes(out, 1, key.as_bytes());
    put_bytes(out, 2, value.as_bytes());
}

/// One `map<string, string>` entry: its key, value (the last of each; "" when absent; named
/// ``names`` in errors) and unknown fields, raw.
fn map_entry<'a>(
    r: &mut Reader<'a>,
    names: [&str; 2],
) -> Result<(&'a str, &'a str, Vec<u8>), DecodeError> {
    let (mut key, mut value) = ("", "");
    let mut unknown: Vec<u8> = Vec::new();
    while !r.at_end() {
        let at = r.offset();
        match r.tag()? {
            (1, LEN) => key = r.string(names[0])?,
            (2, LEN) => value = r.string(names[1])?,
            (f, wt) => {
                r.skip(at, f, wt, DEPTH_LIMIT - 1)?;
                unknown.extend_from_slice(r.since(at));
            }
        }
    }
    Ok((key, value, unknown))
}

/// The order upb's deterministic serialization gives string map keys: bytewise over the common
/// prefix, then the LONGER key first ("ab" before "a", "" last) — upb's comparator, quirk included.
fn upb_key_order(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then(b.len().cmp(&a.len()))
}

fn varint_len(n: usize) -> usize {
    crate::wire::varint_len(n as u64)
}

impl PrepareRequest {
    /// Decode a serialized request; accepts exactly what upb's `FromString` accepts.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut m = Self::default();
        let mut r = Reader::new(buf);
        while !r.at_end() {
            let at = r.offset();
            match r.tag()? {
                (1, LEN) => m.request_id = r.string("request_id")?.to_owned(),
                (2, LEN) => {
                    let mut sub = r.sub()?;
                    m.key.get_or_insert_with(KeyRef::default).merge(&mut sub)?;
                }
                (3, LEN) => {
                    let mut sub = r.sub()?;
                    m.order_entry(&mut sub)?;
                }
                (4, VARINT) => m.chain_id = r.varint()?,
                (5, VARINT) => m.neg_risk = r.varint()? != 0,
                (6, LEN) => m.exchange = r.string("exchange")?.to_owned(),
                (7, LEN) => m.account = r.string("account")?.to_owned(),
                (8, LEN) => m.order_type = r.string("order_type")?.to_owned(),
                (9, VARINT) => m.defer_exec = r.varint()? != 0,
                (10, VARINT) => m.post_only = r.varint()? != 0,
                (11, LEN) => m.path = r.string("path")?.to_owned(),
                (12, VARINT) => m.timestamp = r.varint()? as i64,
                (f, wt) => {
                    // Unknown, or a known number with another wire type (upb keeps both as
                    // unknown); an end-group tag here has no start and is refused by skip().
                    r.skip(at, f, wt, DEPTH_LIMIT)?;
                    m.unknown.extend_from_slice(r.since(at));
                }
            }
        }
        Ok(m)
    }

    fn order_entry(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let (key, value, unknown) = map_entry(r, ["order (a key)", "order (a value)"])?;
        if unknown.is_empty() {
            match self.order.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => value.clone_into(&mut slot.1),
                None => self.order.push((key.to_owned(), value.to_owned())),
            }
        } else {
            // upb keeps an entry with unknown fields out of the map: re-encoded (key and value
            // only when not empty, then its unknown fields) among the message's unknown fields.
            let mut entry = Vec::with_capacity(key.len() + value.len() + unknown.len() + 4);
            put_bytes_nonempty(&mut entry, 1, key.as_bytes());
            put_bytes_nonempty(&mut entry, 2, value.as_bytes());
            entry.extend_from_slice(&unknown);
            put_bytes(&mut self.unknown, 3, &entry);
        }
        Ok(())
    }

    /// upb's deterministic serialization (`SerializeToString(deterministic=True)`).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.unknown.len());
        put_bytes_nonempty(&mut out, 1, self.request_id.as_bytes());
        if let Some(k) = &self.key {
            k.encode(&mut out);
        }
        let mut entries: Vec<&(String, String)> = self.order.iter().collect();
        entries.sort_unstable_by(|a, b| upb_key_order(a.0.as_bytes(), b.0.as_bytes()));
        for (k, v) in entries {
            put_entry(&mut out, 3, k, v);
        }
        put_uint_nonzero(&mut out, 4, self.chain_id);
        put_uint_nonzero(&mut out, 5, u64::from(self.neg_risk));
        put_bytes_nonempty(&mut out, 6, self.exchange.as_bytes());
        put_bytes_nonempty(&mut out, 7, self.account.as_bytes());
        put_bytes_nonempty(&mut out, 8, self.order_type.as_bytes());
        put_uint_nonzero(&mut out, 9, u64::from(self.defer_exec));
        put_uint_nonzero(&mut out, 10, u64::from(self.post_only));
        put_bytes_nonempty(&mut out, 11, self.path.as_bytes());
        put_uint_nonzero(&mut out, 12, self.timestamp as u64);
        out.extend_from_slice(&self.unknown);
        out
    }

    /// `sha256(METHOD + "\0" + canonical())`: the service's idempotency fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(METHOD.as_bytes());
        h.update([0u8]);
        h.update(self.canonical());
        h.finalize().into()
    }

    /// The order's value for `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.order
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether some order value means something here only under Python's rules: non-ASCII text
    /// in `side`, `signatureType`, `makerAmount` or `takerAmount` (`str.isdigit` and `int` take
    /// any Unicode digit, `str.upper` folds more than ASCII), an amount with more significant
    /// digits than Decimal's default precision (its notional is rounded), or a decimal `salt`
    /// past 64 bits (`orjson` refuses it in the body). Such a request goes down the Python path.
    pub fn needs_python_rules(&self) -> bool {
        for name in ["side", "signatureType", "makerAmount", "takerAmount"] {
            if self.get(name).is_some_and(|v| !v.is_ascii()) {
                return true;
            }
        }
        for name in ["makerAmount", "takerAmount"] {
            if let Some(v) = self.get(name).filter(|v| is_digits(v)) {
                if v.trim_start_matches('0').len() > DECIMAL_PREC {
                    return true;
                }
            }
        }
        self.get("salt")
            .is_some_and(|v| is_digits(v) && json_uint(v).is_none())
    }
}

/// `str.isdigit()` for ASCII text: non-empty, digits only.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// `int(s)` as JSON (no leading zeros), if it fits orjson's unsigned 64-bit range.
fn json_uint(s: &str) -> Option<u64> {
    s.parse::<u64>().ok()
}

/// Python's `repr()` of a str, exact for ASCII (non-ASCII characters are kept as they are).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

// --- the order step --------------------------------------------------------------------------

/// A Polymarket API key's L2 credentials and the address they belong to.
pub struct L2Creds<'a> {
    pub secret: &'a HmacKey,
    pub api_key: &'a str,
    pub passphrase: &'a str,
    pub address: &'a str,
}

/// A signed order ready to send: what the reply carries besides the audit record.
pub struct Prepared {
    pub hash: Word,
    pub signature: [u8; 65],
    pub body: Vec<u8>,
    /// `POLY_*` header values, in key order: ADDRESS, API_KEY, PASSPHRASE, SIGNATURE, TIMESTAMP.
    headers: [String; 5],
}

const HEADER_NAMES: [&str; 5] = [
    "POLY_ADDRESS",
    "POLY_API_KEY",
    "POLY_PASSPHRASE",
    "POLY_SIGNATURE",
    "POLY_TIMESTAMP",
];

impl Prepared {
    /// The L2 headers as (name, value), names sorted.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        HEADER_NAMES
            .iter()
            .copied()
            .zip(self.headers.iter().map(String::as_str))
    }
}

impl core::fmt::Debug for Prepared {
    // The headers hold the API passphrase: never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prepared")
            .field("hash", &encode_0x(&self.hash))
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

fn require<'a>(req: &'a PrepareRequest, name: &str) -> Result<&'a str, KeyError> {
    req.get(name)
        .ok_or_else(|| KeyError::input(name, "missing from the order"))
}

/// `side` / `signatureType` as the Python path reads them: an all-digit string is an int first
/// (`_order_dict`), then a name (any case) or a number (`small_of`).
fn small(field: &str, v: &str, names: &[&str]) -> Result<u8, KeyError> {
    if is_digits(v) {
        let n = v.trim_start_matches('0');
        return match n.parse::<u8>() {
            Ok(x) => Ok(x),
            Err(_) if n.is_empty() => Ok(0),
            Err(_) => Err(KeyError::input(field, "expected a small non-negative int")),
        };
    }
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
        return Ok(i as u8);
    }
    v.parse::<u8>().map_err(|_| {
        KeyError::input(
            field,
            format!("unknown value {v:?}: use one of {names:?} or its number"),
        )
    })
}

fn order_from_map(req: &PrepareRequest) -> Result<OrderV2, KeyError> {
    let u = |n: &str| parse_uint256(n, require(req, n)?);
    let a = |n: &str| -> Result<Address, KeyError> { parse_address(n, require(req, n)?) };
    let b32 = |n: &str| -> Result<Word, KeyError> {
        match req.get(n) {
            Some(v) => parse_bytes32(n, v),
            None => Ok([0u8; 32]),
        }
    };
    // The order of the checks is order_from_py's: the first bad field is the one named.
    let salt = u("salt")?;
    let maker = a("maker")?;
    let signer = a("signer")?;
    let token_id = u("tokenId")?;
    let maker_amount = u("makerAmount")?;
    let taker_amount = u("takerAmount")?;
    let side = small("side", require(req, "side")?, SIDES)?;
    let signature_type = small("signatureType", require(req, "signatureType")?, SIG_TYPES)?;
    Ok(OrderV2 {
        salt,
        maker,
        signer,
        token_id,
        maker_amount,
        taker_amount,
        side,
        signature_type,
        timestamp: u("timestamp")?,
        metadata: b32("metadata")?,
        builder: b32("builder")?,
    })
}

fn exchange_of(req: &PrepareRequest, chain_id: u64) -> Result<Address, KeyError> {
    if !req.exchange.is_empty() {
        return parse_address("exchange", &req.exchange);
    }
    exchange_address(chain_id, req.neg_risk, OrderVersion::V2).ok_or_else(|| {
        KeyError::input(
            "exchange",
            format!(
                "no known {}exchange for version 2 on chain {chain_id}: pass exchange=",
                if req.neg_risk { "neg-risk " } else { "" },
            ),
        )
    })
}

/// A JSON string as orjson writes it: `"`, `\` and control characters escaped, the rest as is.
fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => &[],
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// `int(s)` of an all-digit string, written as a JSON number.
fn json_int(out: &mut Vec<u8>, s: &str) {
    let n = s.trim_start_matches('0');
    out.extend_from_slice(if n.is_empty() { b"0" } else { n.as_bytes() });
}

/// `polymarket_order_body` for an order map of strings: the same bytes, the same refusals.
pub fn order_body(req: &PrepareRequest, signature: &str, owner: &str) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(640 + owner.len());
    out.extend_from_slice(b"{\"order\":{");
    for (i, name) in [
        "salt",
        "maker",
        "signer",
        "tokenId",
        "makerAmount",
        "takerAmount",
        "side",
        "signatureType",
        "timestamp",
        "metadata",
        "builder",
    ]
    .into_iter()
    .enumerate()
    {
        let value = match req.get(name) {
            Some(v) => v,
            None if name == "metadata" || name == "builder" => ZERO_BYTES32,
            None => return Err(KeyError::input(name, "missing from the order")),
        };
        if i > 0 {
            out.push(b',');
        }
        json_str(&mut out, name);
        out.push(b':');
        match name {
            "salt" => {
                if !is_digits(value) {
                    return Err(KeyError::input(
                        name,
                        "expected a non-negative integer (int or decimal string)",
                    ));
                }
                if json_uint(value).is_none() {
                    // needs_python_rules() sends these to the Python path (orjson refuses them).
                    return Err(KeyError::input(name, "does not fit in 64 bits"));
                }
                json_int(&mut out, value);
            }
            "side" => {
                // An all-digit side is an int by now: str(int) is "0" or "1" once signed.
                let side = if is_digits(value) {
                    match value.trim_start_matches('0') {
                        "" => Some("BUY"),
                        "1" => Some("SELL"),
                        _ => None,
                    }
                } else if value.eq_ignore_ascii_case("BUY") {
                    Some("BUY")
                } else if value.eq_ignore_ascii_case("SELL") {
                    Some("SELL")
                } else {
                    None
                };
                let side = side.ok_or_else(|| KeyError::input(name, "expected BUY/SELL or 0/1"))?;
                json_str(&mut out, side);
            }
            "signatureType" => {
                if let Some(i) = SIG_TYPES.iter().position(|t| *t == value) {
                    out.push(b'0' + i as u8);
                } else if is_digits(value) {
                    json_int(&mut out, value);
                } else {
                    return Err(KeyError::input(
                        name,
                        "expected a non-negative integer (int or decimal string)",
                    ));
                }
            }
            _ => json_str(&mut out, value),
        }
    }
    out.extend_from_slice(b",\"expiration\":");
    json_str(
        &mut out,
        req.get("expiration")
            .filter(|v| !v.is_empty())
            .unwrap_or("0"),
    );
    out.extend_from_slice(b",\"signature\":");
    json_str(&mut out, signature);
    out.extend_from_slice(b"},\"owner\":");
    json_str(&mut out, owner);
    out.extend_from_slice(b",\"orderType\":");
    json_str(&mut out, &req.order_type);
    out.extend_from_slice(if req.defer_exec {
        b",\"deferExec\":true"
    } else {
        b",\"deferExec\":false"
    });
    out.extend_from_slice(if req.post_only {
        b",\"postOnly\":true}"
    } else {
        b",\"postOnly\":false}"
    });
    Ok(out)
}

/// Sign the order with `key`, build its body (owner: the API key) and the L2 headers over it.
/// `now` gives the L2 timestamp (unix seconds) when the request has none.
pub fn prepare(
    req: &PrepareRequest,
    key: &EthKey,
    creds: &L2Creds<'_>,
    now: impl FnOnce() -> i64,
) -> Result<Prepared, KeyError> {
    if !ORDER_TYPES.contains(&req.order_type.as_str()) {
        // Before signing: nothing is signed for a body that cannot be built.
        return Err(KeyError::input(
            "order_type",
            format!(
                "{} is not one of ['FAK', 'FOK', 'GTC', 'GTD']",
                py_repr(&req.order_type)
            ),
        ));
    }
    let chain_id = if req.chain_id == 0 { 137 } else { req.chain_id };
    let exchange = exchange_of(req, chain_id)?;
    let order = order_from_map(req)?;
    let (signer, signature_type) = (order.signer, order.signature_type);
    let digest = order_digest(&Order::V2(order), OrderVersion::V2, chain_id, &exchange)?;
    if signature_type < 3 && signer != key.address() {
        return Err(KeyError::input(
            "signer",
            format!(
                "is not the signing key's address {} (for EOA, POLY_PROXY and POLY_GNOSIS_SAFE the signer is the key's EOA)",
                key.address_checksummed()
            ),
        ));
    }
    let signature = key.sign_digest(&digest)?;
    let sig_hex = encode_0x(&signature);
    let body = order_body(req, &sig_hex, creds.api_key)?;
    let ts = if req.timestamp == 0 {
        now()
    } else {
        req.timestamp
    }
    .to_string();
    let path = if req.path.is_empty() {
        "/order"
    } else {
        &req.path
    };
    let l2 = creds.secret.l2_signature(&ts, "POST", path, &body);
    Ok(Prepared {
        hash: digest,
        signature,
        body,
        headers: [
            creds.address.to_owned(),
            creds.api_key.to_owned(),
            creds.passphrase.to_owned(),
            l2,
            ts,
        ],
    })
}

/// The order's EIP-712 digest (its Polymarket order id) as [`prepare`] signs it, without a key:
/// the same checks of the order map, chain and exchange, in the same order.
pub fn order_hash(req: &PrepareRequest) -> Result<Word, KeyError> {
    let chain_id = if req.chain_id == 0 { 137 } else { req.chain_id };
    let exchange = exchange_of(req, chain_id)?;
    let order = order_from_map(req)?;
    order_digest(&Order::V2(order), OrderVersion::V2, chain_id, &exchange)
}

/// The order's notional as the audit of a wallet signature shows it: `str(order_notional(order))`
/// (USDC, a Decimal of the 6-decimal amount), "" for an order without a side.
pub fn wallet_notional(req: &PrepareRequest) -> Result<String, KeyError> {
    let side = match req.get("side") {
        None | Some("") => return Ok(String::new()),
        Some(s) => s,
    };
    let amount = if side == "0" || side.eq_ignore_ascii_case("BUY") {
        "makerAmount"
    } else if side == "1" || side.eq_ignore_ascii_case("SELL") {
        "takerAmount"
    } else {
        return Err(KeyError::input("side", "expected 0/1 or BUY/SELL"));
    };
    let raw = req.get(amount).unwrap_or("");
    if !is_digits(raw) {
        return Err(KeyError::input(
            "makerAmount/takerAmount",
            "expected a non-negative integer in 6-decimal units",
        ));
    }
    usdc_decimal(raw).ok_or_else(|| KeyError::input(amount, "too many significant digits"))
}

/// `str(Decimal(int(raw)) / 10**6)` for up to 28 significant digits (the quotient is exact, its
/// exponent as close to 0 as trailing zeros allow). `None` past that (Python would round).
fn usdc_decimal(raw: &str) -> Option<String> {
    let digits = raw.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned());
    }
    if digits.len() > DECIMAL_PREC {
        return None;
    }
    let mut coeff = digits;
    let mut exp = -6i32;
    while exp < 0 && coeff.ends_with('0') {
        coeff = &coeff[..coeff.len() - 1];
        exp += 1;
    }
    let frac = (-exp) as usize;
    Some(if frac == 0 {
        coeff.to_owned()
    } else if coeff.len() > frac {
        format!(
            "{}.{}",
            &coeff[..coeff.len() - frac],
            &coeff[coeff.len() - frac..]
        )
    } else {
        format!("0.{}{coeff}", "0".repeat(frac - coeff.len()))
    })
}

// --- the reply -------------------------------------------------------------------------------

/// `Audit` of the reply (`decision` is always "signed", `replayed` false: a replay is the stored
/// reply, re-marked by the service).
pub struct Audit<'a> {
    pub request_id: &'a str,
    pub key: &'a str,
    pub notional: &'a str,
    pub cumulative: &'a str,
    pub signed_at_ms: i64,
}

/// `Audit` as a reply carries it (proto/signer.proto).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFields {
    pub request_id: String,
    pub decision: String,
    pub key: String,
    pub notional: String,
    pub cumulative: String,
    pub signed_at_ms: i64,
    pub replayed: bool,
}

/// A decoded `PreparePolymarketOrderReply`: what upb's `FromString` reads from the same bytes
/// (last value wins, map entries by key with the last value, the audit merged, unknown fields and
/// known numbers with another wire type skipped; a map entry carrying unknown fields is not in
/// the map, as upb keeps it among the unknown fields). Headers in first-seen key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareReply {
    pub hash: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub audit: AuditFields,
    pub session_blob: Vec<u8>,
}

impl PrepareReply {
    /// Decode a serialized reply; an error where upb's `FromString` raises (and, to be safe, for a
    /// few inputs it may accept: the caller then parses with protobuf).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut m = Self::default();
        let mut r = Reader::new(buf);
        while !r.at_end() {
            let at = r.offset();
            match r.tag()? {
                (1, LEN) => m.hash = r.string("hash")?.to_owned(),
                (2, LEN) => m.signature = r.string("signature")?.to_owned(),
                (3, LEN) => m.body = r.len_delimited()?.to_vec(),
                (4, LEN) => {
                    let names = ["headers (a key)", "headers (a value)"];
                    let (key, value, unknown) = map_entry(&mut r.sub()?, names)?;
                    if unknown.is_empty() {
                        match m.headers.iter_mut().find(|(k, _)| k == key) {
                            Some(slot) => value.clone_into(&mut slot.1),
                            None => m.headers.push((key.to_owned(), value.to_owned())),
                        }
                    }
                }
                (5, LEN) => {
                    let mut sub = r.sub()?;
                    let a = &mut m.audit;
                    while !sub.at_end() {
                        let at = sub.offset();
                        match sub.tag()? {
                            (1, LEN) => a.request_id = sub.string("audit.request_id")?.to_owned(),
                            (2, LEN) => a.decision = sub.string("audit.decision")?.to_owned(),
                            (3, LEN) => a.key = sub.string("audit.key")?.to_owned(),
                            (4, LEN) => a.notional = sub.string("audit.notional")?.to_owned(),
                            (5, LEN) => a.cumulative = sub.string("audit.cumulative")?.to_owned(),
                            (6, VARINT) => a.signed_at_ms = sub.varint()? as i64,
                            (7, VARINT) => a.replayed = sub.varint()? != 0,
                            (f, wt) => sub.skip(at, f, wt, DEPTH_LIMIT - 1)?,
                        }
                    }
                }
                (6, LEN) => m.session_blob = r.len_delimited()?.to_vec(),
                (f, wt) => r.skip(at, f, wt, DEPTH_LIMIT)?,
            }
        }
        Ok(m)
    }
}

/// `PreparePolymarketOrderReply`, serialized as upb serializes it deterministically.
pub fn encode_reply(p: &Prepared, audit: &Audit<'_>, session_blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.body.len() + 640 + session_blob.len());
    put_bytes(&mut out, 1, encode_0x(&p.hash).as_bytes());
    put_bytes(&mut out, 2, encode_0x(&p.signature).as_bytes());
    put_bytes_nonempty(&mut out, 3, &p.body);
    for (k, v) in p.headers() {
        put_entry(&mut out, 4, k, v);
    }
    let mut a = Vec::with_capacity(128);
    put_bytes_nonempty(&mut a, 1, audit.request_id.as_bytes());
    put_bytes(&mut a, 2, b"signed");
    put_bytes_nonempty(&mut a, 3, audit.key.as_bytes());
    put_bytes_nonempty(&mut a, 4, audit.notional.as_bytes());
    put_bytes_nonempty(&mut a, 5, audit.cumulative.as_bytes());
    put_uint_nonzero(&mut a, 6, audit.signed_at_ms as u64);
    put_bytes(&mut out, 5, &a);
    put_bytes_nonempty(&mut out, 6, session_blob);
    out
}

#[cfg(test)]
#[path = "prepare_tests.rs"]
mod tests;
