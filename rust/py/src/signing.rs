//! Signing wrappers over `crossbook-keys`. Keys cross into Rust once and stay in locked memory;
//! Python holds only opaque handles whose reprs never show key material. Errors map onto
//! `crossbook.signing.errors.SigningInputError` (bad input or key) and `crossbook.errors.SignerError`.

use std::sync::Arc;

use crossbook_keys::abi::{parse_address, parse_bytes32, parse_uint256, uint_word, Address, Word};
use crossbook_keys::eip1559::{AccessListItem, Eip1559Tx};
use crossbook_keys::eip712::{
    clob_auth_digest, exchange_address, order_digest, Order, OrderV1, OrderV2, OrderVersion,
};
use crossbook_keys::hex::{decode_vec, encode_0x};
use crossbook_keys::hmac_l2::HmacKey as InnerHmac;
use crossbook_keys::keccak::keccak256 as keccak;
use crossbook_keys::rsa_pss::{parse_public, verify_pss, RsaKey as InnerRsa};
use crossbook_keys::secp::{recover_address as recover, EthKey};
use crossbook_keys::KeyError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyInt, PyString, PyType};

static INPUT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SIGNER_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[cold]
pub(crate) fn key_err(py: Python<'_>, e: &KeyError) -> PyErr {
    let msg = e.to_string();
    match e {
        KeyError::Input { .. } | KeyError::Key(_) => {
            match INPUT_ERROR.import(py, "crossbook.signing.errors", "SigningInputError") {
                Ok(t) => PyErr::from_type(t.clone(), msg),
                Err(_) => PyValueError::new_err(msg),
            }
        }
        KeyError::Memory(_) | KeyError::Sign(_) => {
            match SIGNER_ERROR.import(py, "crossbook.errors", "SignerError") {
                Ok(t) => PyErr::from_type(t.clone(), msg),
                Err(_) => PyRuntimeError::new_err(msg),
            }
        }
    }
}

fn input_err(py: Python<'_>, field: &str, reason: &str) -> PyErr {
    key_err(py, &KeyError::input(field, reason))
}

trait OrPy<T> {
    fn or_py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrPy<T> for Result<T, KeyError> {
    fn or_py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| key_err(py, &e))
    }
}

/// A secp256k1 private key held in locked memory (mlock, MADV_DONTDUMP, zeroed on drop).
#[pyclass(module = "crossbook._core", frozen)]
pub struct PrivateKey {
    pub(crate) inner: Arc<EthKey>,
}

#[pymethods]
impl PrivateKey {
    /// From hex (`0x` optional) or 32 raw bytes. A ``bytearray`` argument is wiped after the copy.
    #[new]
    fn new(py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let inner = if let Ok(s) = key.cast::<PyString>() {
            EthKey::from_hex(s.to_str()?).or_py(py)?
        } else if let Ok(b) = key.cast::<PyBytes>() {
            EthKey::from_bytes(b.as_bytes()).or_py(py)?
        } else if let Ok(ba) = key.cast::<PyByteArray>() {
            // SAFETY: no Python code runs while we hold the slice (GIL held, no callbacks).
            let r = unsafe {
                let raw = ba.as_bytes_mut();
                let k = EthKey::from_bytes(raw);
                for b in raw.iter_mut() {
                    core::ptr::write_volatile(b, 0);
                }
                k
            };
            r.or_py(py)?
        } else {
            return Err(input_err(
                py,
                "private_key",
                "expected a hex str, bytes or bytearray",
            ));
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The EIP-55 checksummed address.
    #[getter]
    fn address(&self) -> String {
        self.inner.address_checksummed()
    }

    /// Whether the key's page is mlock'd (False if RLIMIT_MEMLOCK ran out).
    #[getter]
    fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// r ‖ s ‖ v (65 bytes, v 27/28, low-s) over a 32-byte digest.
    fn sign_digest<'py>(&self, py: Python<'py>, digest: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let d: [u8; 32] = digest
            .try_into()
            .map_err(|_| input_err(py, "digest", "must be 32 bytes"))?;
        let k = &self.inner;
        let sig = py.detach(|| k.sign_digest(&d)).or_py(py)?;
        Ok(PyBytes::new(py, &sig))
    }

    fn __repr__(&self) -> String {
        format!("PrivateKey(address={})", self.inner.address_checksummed())
    }
}

fn get_field<'py>(
    order: &Bound<'py, PyAny>,
    dict: Option<&Bound<'py, PyDict>>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match dict {
        Some(d) => d.get_item(name),
        None => match order.get_item(name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(order.py()) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

fn require<'py>(
    order: &Bound<'py, PyAny>,
    dict: Option<&Bound<'py, PyDict>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    get_field(order, dict, name)?
        .ok_or_else(|| input_err(order.py(), name, "missing from the order"))
}

/// uint256 from a non-negative int or a decimal / 0x-hex string (never a float or bool).
fn uint_of(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>) -> PyResult<Word> {
    if let Ok(s) = v.cast::<PyString>() {
        return parse_uint256(field, s.to_str()?).or_py(py);
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(input_err(py, field, "a bool is not an amount"));
    }
    if let Ok(i) = v.cast::<PyInt>() {
        if let Ok(x) = i.extract::<u64>() {
            return Ok(uint_word(u128::from(x)));
        }
        let bytes = i
            .call_method1(intern!(py, "to_bytes"), (32, intern!(py, "big")))
            .map_err(|_| input_err(py, field, "must be a non-negative integer below 2**256"))?;
        let b = bytes.cast::<PyBytes>()?.as_bytes();
        let mut w = [0u8; 32];
        w.copy_from_slice(b);
        return Ok(w);
    }
    Err(input_err(
        py,
        field,
        "expected an int or a decimal string (floats are refused)",
    ))
}

fn str_of<'a>(py: Python<'_>, field: &str, v: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match v.cast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => Err(input_err(py, field, "expected a str")),
    }
}

fn address_of(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>) -> PyResult<Address> {
    parse_address(field, str_of(py, field, v)?).or_py(py)
}

fn bytes32_of(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>) -> PyResult<Word> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return b
            .as_bytes()
            .try_into()
            .map_err(|_| input_err(py, field, "bytes32 must be 32 bytes"));
    }
    parse_bytes32(field, str_of(py, field, v)?).or_py(py)
}

fn small_of(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<u8> {
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str()?;
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u8);
        }
        if let Ok(x) = s.parse::<u8>() {
            return Ok(x);
        }
        return Err(input_err(
            py,
            field,
            &format!("unknown value {s:?}: use one of {names:?} or its number"),
        ));
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(input_err(py, field, "a bool is not allowed here"));
    }
    v.extract::<u8>()
        .map_err(|_| input_err(py, field, "expected a small non-negative int"))
}

const SIDES: &[&str] = &["BUY", "SELL"];
const SIG_TYPES: &[&str] = &["EOA", "POLY_PROXY", "POLY_GNOSIS_SAFE", "POLY_1271"];

fn uint_or_zero(
    py: Python<'_>,
    order: &Bound<'_, PyAny>,
    dict: Option<&Bound<'_, PyDict>>,
    name: &str,
) -> PyResult<Word> {
    match get_field(order, dict, name)? {
        Some(v) => uint_of(py, name, &v),
        None => Ok([0u8; 32]),
    }
}

fn order_from_py(
    py: Python<'_>,
    order: &Bound<'_, PyAny>,
    version: OrderVersion,
) -> PyResult<Order> {
    let dict = order.cast::<PyDict>().ok();
    let u = |n: &str| -> PyResult<Word> { uint_of(py, n, &require(order, dict, n)?) };
    let a = |n: &str| -> PyResult<Address> { address_of(py, n, &require(order, dict, n)?) };
    let salt = u("salt")?;
    let maker = a("maker")?;
    let signer = a("signer")?;
    let token_id = u("tokenId")?;
    let maker_amount = u("makerAmount")?;
    let taker_amount = u("takerAmount")?;
    let side = small_of(py, "side", &require(order, dict, "side")?, SIDES)?;
    let signature_type = small_of(
        py,
        "signatureType",
        &require(order, dict, "signatureType")?,
        SIG_TYPES,
    )?;
    if version.legacy_struct() {
        let taker = match get_field(order, dict, "taker")? {
            Some(v) => address_of(py, "taker", &v)?,
            None => [0u8; 20],
        };
        Ok(Order::V1(OrderV1 {
            salt,
            maker,
            signer,
            taker,
            token_id,
            maker_amount,
            taker_amount,
            expiration: uint_or_zero(py, order, dict, "expiration")?,
            nonce: uint_or_zero(py, order, dict, "nonce")?,
            fee_rate_bps: uint_or_zero(py, order, dict, "feeRateBps")?,
            side,
            signature_type,
        }))
    } else {
        let b32 = |n: &str| -> PyResult<Word> {
            match get_field(order, dict, n)? {
                Some(v) => bytes32_of(py, n, &v),
                None => Ok([0u8; 32]),
            }
        };
        Ok(Order::V2(OrderV2 {
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
        }))
    }
}

fn resolve_exchange(
    py: Python<'_>,
    version: OrderVersion,
    chain_id: u64,
    neg_risk: bool,
    exchange: Option<&str>,
) -> PyResult<Address> {
    if let Some(e) = exchange {
        return parse_address("exchange", e).or_py(py);
    }
    exchange_address(chain_id, neg_risk, version).ok_or_else(|| {
        input_err(
            py,
            "exchange",
            &format!(
                "no known {}exchange for version {} on chain {chain_id}: pass exchange=",
                if neg_risk { "neg-risk " } else { "" },
                version.domain_version()
            ),
        )
    })
}

fn order_digest_py(
    py: Python<'_>,
    order: &Bound<'_, PyAny>,
    version: &str,
    chain_id: u64,
    neg_risk: bool,
    exchange: Option<&str>,
) -> PyResult<(Order, Word)> {
    let v = OrderVersion::parse(version).or_py(py)?;
    let ex = resolve_exchange(py, v, chain_id, neg_risk, exchange)?;
    let o = order_from_py(py, order, v)?;
    let d = order_digest(&o, v, chain_id, &ex).or_py(py)?;
    Ok((o, d))
}

/// EIP-712 digest (the order hash) of a Polymarket order, as 32 bytes.
#[pyfunction]
#[pyo3(signature = (order, *, version = "2", chain_id = 137, neg_risk = false, exchange = None))]
fn polymarket_order_digest<'py>(
    py: Python<'py>,
    order: &Bound<'py, PyAny>,
    version: &str,
    chain_id: u64,
    neg_risk: bool,
    exchange: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (_, d) = order_digest_py(py, order, version, chain_id, neg_risk, exchange)?;
    Ok(PyBytes::new(py, &d))
}

/// (order hash, signature), both 0x-prefixed lowercase hex.
#[pyfunction]
#[pyo3(signature = (order, key, *, version = "2", chain_id = 137, neg_risk = false, exchange = None))]
fn sign_polymarket_order(
    py: Python<'_>,
    order: &Bound<'_, PyAny>,
    key: &PrivateKey,
    version: &str,
    chain_id: u64,
    neg_risk: bool,
    exchange: Option<&str>,
) -> PyResult<(String, String)> {
    let (o, d) = order_digest_py(py, order, version, chain_id, neg_risk, exchange)?;
    let (signer, sig_type) = match &o {
        Order::V1(x) => (x.signer, x.signature_type),
        Order::V2(x) => (x.signer, x.signature_type),
    };
    if sig_type < 3 && signer != key.inner.address() {
        return Err(input_err(
            py,
            "signer",
            &format!(
                "is not the signing key's address {} (for EOA, POLY_PROXY and POLY_GNOSIS_SAFE the signer is the key's EOA)",
                key.inner.address_checksummed()
            ),
        ));
    }
    let k = &key.inner;
    let sig = py.detach(|| k.sign_digest(&d)).or_py(py)?;
    Ok((encode_0x(&d), encode_0x(&sig)))
}

/// EIP-712 domain separator of `{name, version, chainId[, verifyingContract]}`, 32 bytes.
#[pyfunction]
#[pyo3(signature = (name, version, chain_id, verifying_contract = None))]
fn eip712_domain_separator<'py>(
    py: Python<'py>,
    name: &str,
    version: &str,
    chain_id: u64,
    verifying_contract: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let vc = match verifying_contract {
        Some(a) => Some(parse_address("verifying_contract", a).or_py(py)?),
        None => None,
    };
    let d = crossbook_keys::eip712::domain_separator(name, version, chain_id, vc.as_ref());
    Ok(PyBytes::new(py, &d))
}

/// The verifying contract for (chain, neg_risk, version), or None if none is known.
#[pyfunction]
#[pyo3(signature = (chain_id = 137, neg_risk = false, version = "2"))]
fn polymarket_exchange(
    py: Python<'_>,
    chain_id: u64,
    neg_risk: bool,
    version: &str,
) -> PyResult<Option<String>> {
    let v = OrderVersion::parse(version).or_py(py)?;
    Ok(exchange_address(chain_id, neg_risk, v).map(|a| crossbook_keys::abi::checksum_address(&a)))
}

/// POLY_SIGNATURE for L1 headers: the ClobAuth EIP-712 signature of the key's own address.
#[pyfunction]
#[pyo3(signature = (key, timestamp, nonce = None, chain_id = 137))]
fn clob_auth_signature(
    py: Python<'_>,
    key: &PrivateKey,
    timestamp: &str,
    nonce: Option<&Bound<'_, PyAny>>,
    chain_id: u64,
) -> PyResult<String> {
    let n = match nonce {
        Some(v) => uint_of(py, "nonce", v)?,
        None => [0u8; 32],
    };
    let d = clob_auth_digest(&key.inner.address(), timestamp, &n, chain_id);
    let k = &key.inner;
    let sig = py.detach(|| k.sign_digest(&d)).or_py(py)?;
    Ok(encode_0x(&sig))
}

/// A Polymarket API secret (L2 HMAC key) in locked memory.
#[pyclass(module = "crossbook._core", frozen)]
pub struct HmacKey {
    pub(crate) inner: InnerHmac,
}

#[pymethods]
impl HmacKey {
    #[new]
    fn new(py: Python<'_>, secret: &str) -> PyResult<Self> {
        Ok(Self {
            inner: InnerHmac::from_base64(secret).or_py(py)?,
        })
    }

    /// base64url(HMAC-SHA256(secret, timestamp + method + path + body)).
    #[pyo3(signature = (timestamp, method, path, body = None))]
    fn l2_signature(
        &self,
        timestamp: &str,
        method: &str,
        path: &str,
        body: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let body_bytes: Vec<u8> = match body {
            None => Vec::new(),
            Some(b) => match b.cast::<PyString>() {
                Ok(s) => s.to_str()?.as_bytes().to_vec(),
                Err(_) => b.extract::<Vec<u8>>()?,
            },
        };
        Ok(self
            .inner
            .l2_signature(timestamp, method, path, &body_bytes))
    }

    fn __repr__(&self) -> &'static str {
        "HmacKey(<hidden>)"
    }
}

/// An RSA private key (Kalshi API key) in locked memory; signs RSA-PSS SHA-256, salt 32.
#[pyclass(module = "crossbook._core", frozen)]
pub struct RsaKey {
    inner: InnerRsa,
}

#[pymethods]
impl RsaKey {
    /// From PEM (PKCS#8 or PKCS#1), DER, or base64 of DER. A ``bytearray`` is wiped after the copy.
    #[new]
    fn new(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let inner = if let Ok(s) = data.cast::<PyString>() {
            InnerRsa::from_bytes(s.to_str()?.as_bytes())
        } else if let Ok(b) = data.cast::<PyBytes>() {
            InnerRsa::from_bytes(b.as_bytes())
        } else if let Ok(ba) = data.cast::<PyByteArray>() {
            // SAFETY: GIL held, no Python code runs during the borrow.
            unsafe {
                let raw = ba.as_bytes_mut();
                let k = InnerRsa::from_bytes(raw);
                for b in raw.iter_mut() {
                    core::ptr::write_volatile(b, 0);
                }
                k
            }
        } else {
            return Err(input_err(py, "rsa_key", "expected str, bytes or bytearray"));
        };
        Ok(Self {
            inner: inner.or_py(py)?,
        })
    }

    #[getter]
    fn bits(&self) -> usize {
        self.inner.bits()
    }

    /// Base64 (standard, padded) RSA-PSS signature of ``message``; random salt, so never repeats.
    fn sign_pss_b64(&self, py: Python<'_>, message: &[u8]) -> PyResult<String> {
        let k = &self.inner;
        py.detach(|| k.sign_pss_b64(message)).or_py(py)
    }

    fn public_pem(&self, py: Python<'_>) -> PyResult<String> {
        self.inner.public_pem().or_py(py)
    }

    fn __repr__(&self) -> String {
        format!("RsaKey(bits={}, <hidden>)", self.inner.bits())
    }
}

/// Kalshi signature bytes for ``timestamp_ms + METHOD + path-without-query``, base64.
#[pyfunction]
fn kalshi_sign(
    py: Python<'_>,
    key: &RsaKey,
    timestamp_ms: &str,
    method: &str,
    path: &str,
) -> PyResult<String> {
    let msg = crossbook_keys::rsa_pss::kalshi_message(timestamp_ms, method, path);
    let k = &key.inner;
    py.detach(|| k.sign_pss_b64(msg.as_bytes())).or_py(py)
}

/// Whether ``signature`` is a valid RSA-PSS (SHA-256, MGF1, salt 32) signature by ``public_key``.
#[pyfunction]
fn rsa_pss_verify(
    py: Python<'_>,
    public_key: &Bound<'_, PyAny>,
    message: &[u8],
    signature: &[u8],
) -> PyResult<bool> {
    let data: Vec<u8> = match public_key.cast::<PyString>() {
        Ok(s) => s.to_str()?.as_bytes().to_vec(),
        Err(_) => public_key.extract::<Vec<u8>>()?,
    };
    let pk = parse_public(&data).or_py(py)?;
    Ok(py.detach(|| verify_pss(&pk, message, signature)))
}

#[pyfunction]
fn keccak256<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &keccak(data))
}

/// The checksummed address that produced ``signature`` (65 bytes) over ``digest`` (32 bytes).
#[pyfunction]
fn recover_address(py: Python<'_>, digest: &[u8], signature: &[u8]) -> PyResult<String> {
    let d: [u8; 32] = digest
        .try_into()
        .map_err(|_| input_err(py, "digest", "must be 32 bytes"))?;
    let a = recover(&d, signature).or_py(py)?;
    Ok(crossbook_keys::abi::checksum_address(&a))
}

fn u64_field(
    py: Python<'_>,
    tx: &Bound<'_, PyAny>,
    name: &str,
    default: Option<u64>,
) -> PyResult<u64> {
    match get_field(tx, tx.cast::<PyDict>().ok(), name)? {
        Some(v) => {
            if v.is_instance_of::<pyo3::types::PyBool>() {
                return Err(input_err(py, name, "a bool is not allowed here"));
            }
            v.extract::<u64>()
                .map_err(|_| input_err(py, name, "expected a non-negative int below 2**64"))
        }
        None => default.ok_or_else(|| input_err(py, name, "missing from the transaction")),
    }
}

/// Sign an EIP-1559 transaction: (raw signed bytes, 0x tx hash). Keys: chainId, nonce,
/// maxPriorityFeePerGas, maxFeePerGas, gas, to (None/absent = create), value, data, accessList.
#[pyfunction]
fn sign_eip1559<'py>(
    py: Python<'py>,
    key: &PrivateKey,
    tx: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyBytes>, String)> {
    let dict = tx.cast::<PyDict>().ok();
    let fee = |n: &str| -> PyResult<Word> { uint_of(py, n, &require(tx, dict, n)?) };
    let to = match get_field(tx, dict, "to")? {
        Some(v) if !v.is_none() => Some(address_of(py, "to", &v)?),
        _ => None,
    };
    let data = match get_field(tx, dict, "data")? {
        None => Vec::new(),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => decode_vec("data", s.to_str()?).or_py(py)?,
            Err(_) => v
                .extract::<Vec<u8>>()
                .map_err(|_| input_err(py, "data", "expected hex str or bytes"))?,
        },
    };
    let mut access_list = Vec::new();
    if let Some(al) = get_field(tx, dict, "accessList")? {
        for item in al.try_iter()? {
            let item = item?;
            let idict = item.cast::<PyDict>().ok();
            let address = address_of(py, "accessList.address", &require(&item, idict, "address")?)?;
            let mut storage_keys = Vec::new();
            for k in require(&item, idict, "storageKeys")?.try_iter()? {
                storage_keys.push(bytes32_of(py, "accessList.storageKeys", &k?)?);
            }
            access_list.push(AccessListItem {
                address,
                storage_keys,
            });
        }
    }
    let t = Eip1559Tx {
        chain_id: u64_field(py, tx, "chainId", None)?,
        nonce: u64_field(py, tx, "nonce", None)?,
        max_priority_fee_per_gas: fee("maxPriorityFeePerGas")?,
        max_fee_per_gas: fee("maxFeePerGas")?,
        gas_limit: u64_field(py, tx, "gas", None)?,
        to,
        value: uint_or_zero(py, tx, dict, "value")?,
        data,
        access_list,
    };
    let k = &key.inner;
    let (raw, h) = py.detach(|| t.sign(k)).or_py(py)?;
    Ok((PyBytes::new(py, &raw), encode_0x(&h)))
}

/// Mark the process non-dumpable (no core dumps, no ptrace by non-root).
#[pyfunction]
fn make_non_dumpable(py: Python<'_>) -> PyResult<()> {
    crossbook_keys::secret::make_non_dumpable().or_py(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PrivateKey>()?;
    m.add_class::<HmacKey>()?;
    m.add_class::<RsaKey>()?;
    m.add_function(wrap_pyfunction!(polymarket_order_digest, m)?)?;
    m.add_function(wrap_pyfunction!(sign_polymarket_order, m)?)?;
    m.add_function(wrap_pyfunction!(polymarket_exchange, m)?)?;
    m.add_function(wrap_pyfunction!(eip712_domain_separator, m)?)?;
    m.add_function(wrap_pyfunction!(clob_auth_signature, m)?)?;
    m.add_function(wrap_pyfunction!(kalshi_sign, m)?)?;
    m.add_function(wrap_pyfunction!(rsa_pss_verify, m)?)?;
    m.add_function(wrap_pyfunction!(keccak256, m)?)?;
    m.add_function(wrap_pyfunction!(recover_address, m)?)?;
    m.add_function(wrap_pyfunction!(sign_eip1559, m)?)?;
    m.add_function(wrap_pyfunction!(make_non_dumpable, m)?)?;
    Ok(())
}
