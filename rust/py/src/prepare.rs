//! The signer's compiled `PreparePolymarketOrder` (`crossbook_keys::prepare`): the request comes in
//! as the bytes of its protobuf message, the reply goes out as bytes; Python in between only looks
//! up keys and applies session policy.

use std::time::{SystemTime, UNIX_EPOCH};

use crossbook_keys::prepare::{
    encode_reply, prepare, wallet_notional, Audit, KeyChoice, KeyRef, L2Creds, PrepareReply,
    PrepareRequest, Prepared,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString, PyTuple};

use crate::signing::{key_err, HmacKey, PrivateKey};

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A decoded ``PreparePolymarketOrderRequest``; after :meth:`sign`, also its order ready to send.
#[pyclass(module = "crossbook._core")]
pub struct PolymarketOrderRequest {
    req: PrepareRequest,
    prepared: Option<Prepared>,
}

#[pymethods]
impl PolymarketOrderRequest {
    /// Decode the serialized message; ``ValueError`` (naming the problem and its byte offset) if it
    /// is not one. Accepts exactly what protobuf's ``FromString`` accepts.
    #[new]
    fn new(data: &[u8]) -> PyResult<Self> {
        let req = PrepareRequest::decode(data).map_err(|e| {
            PyValueError::new_err(format!("not a valid PreparePolymarketOrderRequest: {e}"))
        })?;
        Ok(Self {
            req,
            prepared: None,
        })
    }

    #[getter]
    fn request_id(&self) -> &str {
        &self.req.request_id
    }

    /// ``KeyRef.WhichOneof("key")``: "wallet", "session_id" or None.
    #[getter]
    fn key_kind(&self) -> Option<&'static str> {
        match self.req.key.as_ref().map(|k| &k.choice) {
            Some(KeyChoice::Wallet(_)) => Some("wallet"),
            Some(KeyChoice::Session(_)) => Some("session_id"),
            _ => None,
        }
    }

    /// The wallet name or session id the key names ("" when none is set).
    #[getter]
    fn key_name(&self) -> &str {
        match self.req.key.as_ref().map(|k| &k.choice) {
            Some(KeyChoice::Wallet(s) | KeyChoice::Session(s)) => s,
            _ => "",
        }
    }

    #[getter]
    fn account(&self) -> &str {
        &self.req.account
    }

    #[getter]
    fn order_type(&self) -> &str {
        &self.req.order_type
    }

    #[getter]
    fn exchange(&self) -> &str {
        &self.req.exchange
    }

    #[getter]
    fn path(&self) -> &str {
        &self.req.path
    }

    #[getter]
    fn chain_id(&self) -> u64 {
        self.req.chain_id
    }

    #[getter]
    fn neg_risk(&self) -> bool {
        self.req.neg_risk
    }

    #[getter]
    fn defer_exec(&self) -> bool {
        self.req.defer_exec
    }

    #[getter]
    fn post_only(&self) -> bool {
        self.req.post_only
    }

    #[getter]
    fn timestamp(&self) -> i64 {
        self.req.timestamp
    }

    /// Some order value is read here only under Python's rules (Unicode digits, a notional past
    /// Decimal's precision, a salt past 64 bits): hand the request to the Python path.
    #[getter]
    fn needs_python_rules(&self) -> bool {
        self.req.needs_python_rules()
    }

    /// ``sha256(b"PreparePolymarketOrder\0" + canonical())``.
    #[getter]
    fn fingerprint<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.req.fingerprint())
    }

    /// The deterministic serialization (``SerializeToString(deterministic=True)``).
    fn canonical<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.req.canonical())
    }

    /// The order map as a dict.
    fn order<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.req.order {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Sign the V2 order with ``key``, build its POST body (owner ``api_key``) and the L2 headers
    /// over it for ``address``: ``prepare_polymarket_order``, the same bytes and the same refusals
    /// (``SigningInputError`` naming the field). Keeps the result for :meth:`reply`.
    fn sign(
        &mut self,
        py: Python<'_>,
        key: &PrivateKey,
        secret: &HmacKey,
        api_key: &str,
        passphrase: &str,
        address: &str,
    ) -> PyResult<()> {
        let creds = L2Creds {
            secret: &secret.inner,
            api_key,
            passphrase,
            address,
        };
        let (req, k) = (&self.req, &key.inner);
        let prepared = py.detach(|| prepare(req, k, &creds, unix_s));
        self.prepared = Some(prepared.map_err(|e| key_err(py, &e))?);
        Ok(())
    }

    /// The serialized ``PreparePolymarketOrderReply`` of the signed order, with the audit record
    /// (``signed_at_ms`` now). ``notional=None``: the order's own, as a wallet signature reports it.
    #[pyo3(
        signature = (audit_key, notional = None, cumulative = "", session_blob = b"".as_slice()),
        text_signature = "(self, /, audit_key, notional=None, cumulative='', session_blob=b'')"
    )]
    fn reply<'py>(
        &self,
        py: Python<'py>,
        audit_key: &str,
        notional: Option<&str>,
        cumulative: &str,
        session_blob: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let reply = self.reply_bytes(py, audit_key, notional, cumulative, session_blob)?;
        Ok(PyBytes::new(py, &reply))
    }

    /// :meth:`reply` for a wallet signature (the order's own notional, no session), as a whole
    /// fast-path frame (``u32 length | u8 kind | u32 call id | reply``) for ``call_id``.
    fn wallet_reply_frame<'py>(
        &self,
        py: Python<'py>,
        kind: u8,
        call_id: u32,
        audit_key: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let reply = self.reply_bytes(py, audit_key, None, "", b"")?;
        Ok(PyBytes::new(py, &framed(kind, call_id, &reply)))
    }

    fn __repr__(&self) -> String {
        format!(
            "PolymarketOrderRequest(request_id={:?}, account={:?}, signed={})",
            self.req.request_id,
            self.req.account,
            if self.prepared.is_some() {
                "True"
            } else {
                "False"
            }
        )
    }
}

impl PolymarketOrderRequest {
    fn reply_bytes(
        &self,
        py: Python<'_>,
        audit_key: &str,
        notional: Option<&str>,
        cumulative: &str,
        session_blob: &[u8],
    ) -> PyResult<Vec<u8>> {
        let Some(p) = &self.prepared else {
            return Err(PyRuntimeError::new_err(
                "reply() before a successful sign()",
            ));
        };
        let own;
        let notional = match notional {
            Some(n) => n,
            None => {
                own = wallet_notional(&self.req).map_err(|e| key_err(py, &e))?;
                &own
            }
        };
        let audit = Audit {
            request_id: &self.req.request_id,
            key: audit_key,
            notional,
            cumulative,
            signed_at_ms: unix_ms(),
        };
        Ok(encode_reply(p, &audit, session_blob))
    }
}

/// One fast-path frame (``u32 length | u8 method | u32 call id | message``) carrying the
/// ``PreparePolymarketOrderRequest`` these arguments make: the message the signer client builds
/// with protobuf, in one call on the order path. ``order`` values are ``str`` or ``int`` (never
/// ``bool``); ``None`` back when the arguments need the client's own rules (another value type,
/// an int past 128 bits, not exactly one of ``wallet`` / ``session_id``): the caller then builds
/// the message with protobuf, which refuses what it must.
#[pyfunction]
#[pyo3(signature = (method, call_id, request_id, order, *, account, order_type, wallet=None, session_id=None, chain_id=137, path="/order"))]
#[allow(clippy::too_many_arguments)]
fn prepare_order_frame<'py>(
    py: Python<'py>,
    method: u8,
    call_id: u32,
    request_id: &str,
    order: &Bound<'py, PyDict>,
    account: &str,
    order_type: &str,
    wallet: Option<&str>,
    session_id: Option<&str>,
    chain_id: u64,
    path: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let choice = match (wallet, session_id) {
        (Some(w), None) => KeyChoice::Wallet(w.to_owned()),
        (None, Some(s)) => KeyChoice::Session(s.to_owned()),
        _ => return Ok(None),
    };
    let mut entries = Vec::with_capacity(order.len());
    for (k, v) in order.iter() {
        let Ok(k) = k.cast::<PyString>() else {
            return Ok(None);
        };
        let value = if let Ok(s) = v.cast_exact::<PyString>() {
            s.to_str()?.to_owned()
        } else if v.is_exact_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
            match v.extract::<i128>() {
                Ok(i) => i.to_string(),
                Err(_) => return Ok(None),
            }
        } else if v.is_none() {
            continue; // as the client's map: a None value is left out
        } else {
            return Ok(None);
        };
        entries.push((k.to_str()?.to_owned(), value));
    }
    let req = PrepareRequest {
        request_id: request_id.to_owned(),
        key: Some(KeyRef {
            choice,
            unknown: Vec::new(),
        }),
        order: entries,
        chain_id,
        account: account.to_owned(),
        order_type: order_type.to_owned(),
        path: path.to_owned(),
        ..PrepareRequest::default()
    };
    Ok(Some(PyBytes::new(py, &frame_of(method, call_id, &req))))
}

/// The fast-path frame carrying ``req``: ``u32 length | u8 method | u32 call id | message``, the
/// message in its canonical form (what the client's protobuf message serializes to).
pub(crate) fn frame_of(method: u8, call_id: u32, req: &PrepareRequest) -> Vec<u8> {
    framed(method, call_id, &req.canonical())
}

/// ``u32 length | u8 kind | u32 call id | msg``: one fast-path frame.
fn framed(kind: u8, call_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + msg.len());
    frame.extend_from_slice(&((msg.len() + 5) as u32).to_be_bytes());
    frame.push(kind);
    frame.extend_from_slice(&call_id.to_be_bytes());
    frame.extend_from_slice(msg);
    frame
}

/// A serialized ``PreparePolymarketOrderReply`` as ``(hash, signature, body, headers, audit,
/// session_blob)``: what the signer client makes of the protobuf message (``audit`` a dict of its
/// seven fields), read in one call. ``ValueError`` where protobuf would refuse the bytes (and for a
/// few odd inputs it may accept): the caller then parses them with protobuf.
#[pyfunction]
fn decode_prepare_reply<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let r = PrepareReply::decode(data).map_err(|e| {
        PyValueError::new_err(format!("not a valid PreparePolymarketOrderReply: {e}"))
    })?;
    let headers = PyDict::new(py);
    for (k, v) in &r.headers {
        headers.set_item(k, v)?;
    }
    let a = &r.audit;
    let audit = PyDict::new(py);
    audit.set_item("request_id", &a.request_id)?;
    audit.set_item("decision", &a.decision)?;
    audit.set_item("key", &a.key)?;
    audit.set_item("notional", &a.notional)?;
    audit.set_item("cumulative", &a.cumulative)?;
    audit.set_item("signed_at_ms", a.signed_at_ms)?;
    audit.set_item("replayed", a.replayed)?;
    (
        r.hash,
        r.signature,
        PyBytes::new(py, &r.body),
        headers,
        audit,
        PyBytes::new(py, &r.session_blob),
    )
        .into_pyobject(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PolymarketOrderRequest>()?;
    m.add_function(wrap_pyfunction!(decode_prepare_reply, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_order_frame, m)?)
}
