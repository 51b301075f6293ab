//! `EdgeWatch`: the edge trigger's first look (`crossbook_book::edge`) over a live `BookSet`, in one
//! call per book change of an armed pair.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbook_book::edge::{check, Check, Direction, EdgeRule, LegView, Outcome};
use crossbook_book::{fixed, Venue};
use crossbook_keys::abi::{parse_address, parse_uint256};
use crossbook_keys::hex::encode_0x;
use crossbook_keys::prepare::{order_hash, KeyChoice, KeyRef, PrepareRequest};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::prepare::frame_of;
use crate::{venue_of, BookSet};

const ZERO_BYTES32: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// Call ids of the frames made here: the high half of the id space (the signer client numbers its
/// own calls in the low half), unique in the process.
static NEXT_CALL: AtomicU32 = AtomicU32::new(0);

fn next_call_id() -> u32 {
    0x8000_0000 | (NEXT_CALL.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF)
}

/// A random (version 4) UUID in its canonical text form, as ``crossbook.execution.models.new_id``.
fn new_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex = encode_0x(&b);
    let h = &hex[2..];
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The first leg's order as a Polymarket BUY at the fired price, ready for the signer: what
/// ``PolymarketTrader._struct`` makes and ``SignerClient.begin_prepare_polymarket_order`` sends.
struct FirstLeg {
    venue: Venue,
    /// The token bought for each outcome (`Outcome::Yes`, `Outcome::No`).
    tokens: [String; 2],
    method: u8,
    key: KeyChoice,
    account: String,
    order_type: String,
    address: String,
}

impl FirstLeg {
    /// The signing request for ``shares`` of ``outcome`` at ``price``: its frame, call id, timestamp
    /// and the request. Its order hash is made after the frame is written
    /// (``FirstLegRequest.order_hash``): the tokens and the address were checked when set.
    fn frame(
        &self,
        outcome: Outcome,
        price: i64,
        shares: i64,
    ) -> (Vec<u8>, u32, i64, PrepareRequest) {
        let rid = new_id();
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let digest = Sha256::digest(rid.as_bytes());
        let salt = digest[..6]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let token = &self.tokens[match outcome {
            Outcome::Yes => 0,
            Outcome::No => 1,
        }];
        // BUY: pays shares × price USDC, gets shares tokens, both in units of 10^-6.
        let order = vec![
            ("salt".to_owned(), salt.to_string()),
            ("maker".to_owned(), self.address.clone()),
            ("signer".to_owned(), self.address.clone()),
            ("tokenId".to_owned(), token.clone()),
            ("makerAmount".to_owned(), (shares * price).to_string()),
            ("takerAmount".to_owned(), (shares * fixed::ONE).to_string()),
            ("side".to_owned(), "BUY".to_owned()),
            ("signatureType".to_owned(), "0".to_owned()),
            ("timestamp".to_owned(), ts_ms.to_string()),
            ("metadata".to_owned(), ZERO_BYTES32.to_owned()),
            ("builder".to_owned(), ZERO_BYTES32.to_owned()),
        ];
        let req = PrepareRequest {
            request_id: rid.clone(),
            key: Some(KeyRef {
                choice: self.key.clone(),
                unknown: Vec::new(),
            }),
            order,
            chain_id: 137,
            account: self.account.clone(),
            order_type: self.order_type.clone(),
            path: "/order".to_owned(),
            ..PrepareRequest::default()
        };
        let call_id = next_call_id();
        (frame_of(self.method, call_id, &req), call_id, ts_ms, req)
    }
}

/// A fire's first-leg signing request (``EdgeWatch.check``): its frame, ready to write, and what the
/// executor records and checks of the order, made on demand (after the frame is written).
#[pyclass(module = "crossbook._core", frozen)]
pub struct FirstLegRequest {
    frame: Py<PyBytes>,
    #[pyo3(get)]
    call_id: u32,
    #[pyo3(get)]
    timestamp_ms: i64,
    req: PrepareRequest,
}

#[pymethods]
impl FirstLegRequest {
    /// The fast-path frame: ``u32 length | u8 method | u32 call id | PreparePolymarketOrderRequest``.
    #[getter]
    fn frame(&self, py: Python<'_>) -> Py<PyBytes> {
        self.frame.clone_ref(py)
    }

    /// The request id: the order's client order id.
    #[getter]
    fn client_order_id(&self) -> &str {
        &self.req.request_id
    }

    /// The order map the request carries (every value a string).
    fn order<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let order = PyDict::new(py);
        for (k, v) in &self.req.order {
            order.set_item(k, v)?;
        }
        Ok(order)
    }

    /// The order's EIP-712 digest, 0x lowercase hex: its Polymarket id, as the signer signs it.
    fn order_hash(&self) -> PyResult<String> {
        order_hash(&self.req)
            .map(|d| encode_0x(&d))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn __repr__(&self) -> String {
        format!(
            "<FirstLegRequest call_id={:#x} client_order_id={}>",
            self.call_id, self.req.request_id
        )
    }
}

fn outcome_of(s: &str) -> PyResult<Outcome> {
    match s {
        "yes" => Ok(Outcome::Yes),
        "no" => Ok(Outcome::No),
        _ => Err(PyValueError::new_err(format!(
            "unknown outcome {s:?}: use 'yes' or 'no'"
        ))),
    }
}

fn amount(name: &str, s: &str) -> PyResult<i64> {
    fixed::parse_size(s).map_err(|e| PyValueError::new_err(format!("EdgeWatch {name} {s:?}: {e}")))
}

/// One standing pair intent's compiled first look. ``check`` answers ``None`` (no edge), ``False``
/// (an edge only the full path may judge: depth, a smaller size, stale or disabled) or
/// ``(direction, yes_ask, no_ask, shares, first)`` to fire at the top of book. ``first`` is
/// ``None``, or with a first leg set (:meth:`set_first_leg`) its signing request, made in the same
/// call: a ``FirstLegRequest``.
#[pyclass(module = "crossbook._core")]
pub struct EdgeWatch {
    legs: [(Venue, String); 2],
    links: [Option<Py<PyAny>>; 2],
    directions: Vec<Direction>,
    rule: EdgeRule,
    stale_ns: u64,
    first: Option<FirstLeg>,
    /// The caller's switch (the breaker's last word on the pair): down, every edge is ``False``.
    #[pyo3(get, set)]
    enabled: bool,
}

#[pymethods]
impl EdgeWatch {
    #[new]
    #[pyo3(signature = (legs, directions, *, edge, limit, size, min_size, poly_fee_bps, stale_ms, links = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        legs: [(String, String); 2],
        directions: Vec<(String, String, String, String)>,
        edge: &str,
        limit: Option<&str>,
        size: &str,
        min_size: &str,
        poly_fee_bps: i64,
        stale_ms: u64,
        links: Option<[Option<Py<PyAny>>; 2]>,
    ) -> PyResult<Self> {
        let [(v0, m0), (v1, m1)] = legs;
        let legs = [(venue_of(&v0)?, m0), (venue_of(&v1)?, m1)];
        if legs[0].0 == legs[1].0 {
            return Err(PyValueError::new_err(
                "EdgeWatch legs must be on two venues",
            ));
        }
        let mut dirs = Vec::with_capacity(directions.len());
        for (yv, yo, nv, no) in directions {
            dirs.push(Direction {
                yes_venue: venue_of(&yv)?,
                yes_outcome: outcome_of(&yo)?,
                no_venue: venue_of(&nv)?,
                no_outcome: outcome_of(&no)?,
            });
        }
        let rule = EdgeRule {
            edge: amount("edge", edge)?,
            limit: limit.map(|l| amount("limit", l)).transpose()?,
            size: amount("size", size)?,
            min_size: amount("min_size", min_size)?,
            poly_fee_bps,
        };
        Ok(Self {
            legs,
            links: links.unwrap_or([None, None]),
            directions: dirs,
            rule,
            stale_ns: stale_ms.saturating_mul(1_000_000),
            first: None,
            enabled: true,
        })
    }

    /// The decision on ``books`` now (``now_ns``: the breaker's clock, ``time.time_ns()``). A leg is
    /// fresh when its book or its link's heartbeat (``link.last_heartbeat_ns`` of a connected
    /// ``link``) is within ``stale_ms``, as the breaker reads it.
    fn check<'py>(
        &self,
        py: Python<'py>,
        books: PyRef<'py, BookSet>,
        now_ns: u64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut views = [LegView {
            venue: Venue::Polymarket,
            top: Default::default(),
            valid: false,
            fresh: true,
        }; 2];
        let mut stale = [false; 2];
        for (i, view) in views.iter_mut().enumerate() {
            let (venue, market) = &self.legs[i];
            view.venue = *venue;
            let Some(m) = books.inner.market(*venue, market) else {
                return Ok(None); // no book yet: no edge
            };
            view.top = m.top();
            view.valid = m.valid();
            stale[i] = m.last_update_ns().saturating_add(self.stale_ns) < now_ns;
        }
        // Freshness only tells a fire from the full path, so it is read only on a fire: a quiet
        // leg may still be fresh by its connection's heartbeat (a Python attribute: worth skipping).
        let mut got = check(&self.rule, &self.directions, &views, self.enabled);
        if matches!(got, Check::Fire { .. }) {
            for (i, is_stale) in stale.into_iter().enumerate() {
                if is_stale && !self.heartbeat_fresh(py, i, now_ns)? {
                    got = Check::Slow;
                }
            }
        }
        Ok(match got {
            Check::NoEdge => None,
            Check::Slow => Some(PyBool::new(py, false).to_owned().into_any()),
            Check::Fire {
                direction,
                yes_ask,
                no_ask,
                shares,
            } => {
                let first = self.first.as_ref().and_then(|f| {
                    let d = &self.directions[direction];
                    let (outcome, price) = if d.yes_venue == f.venue {
                        (d.yes_outcome, yes_ask)
                    } else if d.no_venue == f.venue {
                        (d.no_outcome, no_ask)
                    } else {
                        return None;
                    };
                    Some(f.frame(outcome, price, shares))
                });
                let first = first
                    .map(|(frame, call_id, timestamp_ms, req)| {
                        Py::new(
                            py,
                            FirstLegRequest {
                                frame: PyBytes::new(py, &frame).unbind(),
                                call_id,
                                timestamp_ms,
                                req,
                            },
                        )
                    })
                    .transpose()?;
                Some(
                    (
                        direction,
                        fixed::to_string(yes_ask, 0),
                        fixed::to_string(no_ask, 0),
                        shares,
                        first,
                    )
                        .into_pyobject(py)?
                        .into_any(),
                )
            }
        })
    }

    /// Make the first leg's signing request in :meth:`check`'s fire: a Polymarket BUY (``venue``)
    /// of ``tokens[0]`` for a YES leg or ``tokens[1]`` for a NO leg, by ``address``, signed under
    /// ``wallet`` or ``session_id`` (exactly one) for the API ``account`` as an ``order_type``
    /// order; the frame's ``method`` id is the fast path's PreparePolymarketOrder.
    #[pyo3(signature = (venue, tokens, *, method, address, account, order_type, wallet = None, session_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn set_first_leg(
        &mut self,
        venue: &str,
        tokens: (String, String),
        method: u8,
        address: String,
        account: String,
        order_type: String,
        wallet: Option<String>,
        session_id: Option<String>,
    ) -> PyResult<()> {
        let venue = venue_of(venue)?;
        if venue != Venue::Polymarket {
            return Err(PyValueError::new_err(
                "EdgeWatch first leg: only a Polymarket order is made here",
            ));
        }
        // What the signer would refuse as input is refused here, once: each fire's order hash then holds.
        for (name, token) in [("tokens[0]", &tokens.0), ("tokens[1]", &tokens.1)] {
            parse_uint256(name, token)
                .map_err(|e| PyValueError::new_err(format!("EdgeWatch first leg: {e}")))?;
        }
        parse_address("address", &address)
            .map_err(|e| PyValueError::new_err(format!("EdgeWatch first leg: {e}")))?;
        let key = match (wallet, session_id) {
            (Some(w), None) => KeyChoice::Wallet(w),
            (None, Some(s)) => KeyChoice::Session(s),
            _ => {
                return Err(PyValueError::new_err(
                    "EdgeWatch first leg: give exactly one of wallet or session_id",
                ))
            }
        };
        self.first = Some(FirstLeg {
            venue,
            tokens: [tokens.0, tokens.1],
            method,
            key,
            account,
            order_type,
            address,
        });
        Ok(())
    }

    /// Stop making the first leg's signing request (a fire answers ``first`` = ``None``).
    fn clear_first_leg(&mut self) {
        self.first = None;
    }

    /// Whether :meth:`check` makes the first leg's signing request.
    #[getter]
    fn first_leg(&self) -> bool {
        self.first.is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "<EdgeWatch {}:{} / {}:{} enabled={}>",
            self.legs[0].0.name(),
            self.legs[0].1,
            self.legs[1].0.name(),
            self.legs[1].1,
            self.enabled
        )
    }
}

impl EdgeWatch {
    fn heartbeat_fresh(&self, py: Python<'_>, i: usize, now_ns: u64) -> PyResult<bool> {
        let Some(Some(link)) = self.links.get(i) else {
            return Ok(false);
        };
        let link = link.bind(py);
        if !link.getattr(intern!(py, "connected"))?.is_truthy()? {
            return Ok(false);
        }
        let hb: u64 = link.getattr(intern!(py, "last_heartbeat_ns"))?.extract()?;
        Ok(hb > 0 && hb + self.stale_ns >= now_ns)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EdgeWatch>()?;
    m.add_class::<FirstLegRequest>()
}
