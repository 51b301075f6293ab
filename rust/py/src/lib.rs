//! `crossbook._core`: thin PyO3 wrappers over the domain crates. Logic lives in the crates; this
//! file only converts arguments and results and maps errors onto `crossbook.errors`.

mod edge;
mod prepare;
mod signing;

use crossbook_book::{BookSet as Inner, FrameError, Market, Venue};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};

/// `crossbook.errors.FrameError`, imported on first use and cached.
static FRAME_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[cold]
fn frame_error(py: Python<'_>, e: &FrameError) -> PyErr {
    match FRAME_ERROR.import(py, "crossbook.errors", "FrameError") {
        Ok(t) => PyErr::from_type(t.clone(), e.to_string()),
        // Running without the Python package around (should not happen): still a ValueError.
        Err(_) => PyValueError::new_err(e.to_string()),
    }
}

fn venue_of(s: &str) -> PyResult<Venue> {
    Venue::parse(s).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown venue {s:?}: use 'polymarket' (or 'poly') or 'kalshi'"
        ))
    })
}

fn no_market(venue: Venue, market: &str) -> PyErr {
    PyKeyError::new_err(format!("no {} book for market {market:?}", venue.name()))
}

fn book_dict<'py>(
    py: Python<'py>,
    venue: Venue,
    m: &Market,
    depth: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let depth = depth.unwrap_or(usize::MAX);
    let side = |levels: &mut dyn Iterator<Item = (i64, i64)>| -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (p, q) in levels.take(depth) {
            out.append(PyList::new(py, [venue.fmt_price(p), venue.fmt_size(q)])?)?;
        }
        Ok(out)
    };
    d.set_item(intern!(py, "venue"), venue.name())?;
    d.set_item(intern!(py, "market"), m.key())?;
    d.set_item(intern!(py, "bids"), side(&mut m.book().bids())?)?;
    d.set_item(intern!(py, "asks"), side(&mut m.book().asks())?)?;
    d.set_item(intern!(py, "valid"), m.valid())?;
    d.set_item(intern!(py, "reason"), m.reason())?;
    Ok(d)
}

/// Live L2 books for both venues, keyed by (venue, market).
#[pyclass(module = "crossbook._core")]
pub struct BookSet {
    inner: Inner,
}

#[pymethods]
impl BookSet {
    #[new]
    #[pyo3(signature = (*, kalshi_use_yes_price = false, polymarket_verify_top = false))]
    fn new(kalshi_use_yes_price: bool, polymarket_verify_top: bool) -> Self {
        let mut inner = Inner::new(kalshi_use_yes_price);
        inner.set_poly_verify_top(polymarket_verify_top);
        BookSet { inner }
    }

    /// Parse one WebSocket frame and apply every event in it, atomically. ``stream`` names the
    /// connection it came on (Kalshi sequence numbers are tracked per (stream, sid)).
    #[pyo3(signature = (venue, frame, recv_ns = 0, stream = 0))]
    fn apply(
        &mut self,
        py: Python<'_>,
        venue: &str,
        frame: &Bound<'_, PyAny>,
        recv_ns: u64,
        stream: u64,
    ) -> PyResult<usize> {
        let v = venue_of(venue)?;
        let r = if let Ok(b) = frame.cast::<PyBytes>() {
            self.inner.apply_on(v, b.as_bytes(), recv_ns, stream)
        } else if let Ok(s) = frame.cast::<PyString>() {
            self.inner.apply_str_on(v, s.to_str()?, recv_ns, stream)
        } else {
            return Err(PyTypeError::new_err(format!(
                "frame must be bytes or str, not {}",
                frame.get_type().name()?
            )));
        };
        r.map_err(|e| frame_error(py, &e))
    }

    /// The book, best levels first. Raises ``KeyError`` for a market never seen.
    #[pyo3(signature = (venue, market, depth = None))]
    fn book<'py>(
        &self,
        py: Python<'py>,
        venue: &str,
        market: &str,
        depth: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let v = venue_of(venue)?;
        let depth = match depth {
            None => None,
            Some(d) if d < 0 => {
                return Err(PyValueError::new_err(format!(
                    "depth must be >= 0, got {d}"
                )))
            }
            Some(d) => Some(usize::try_from(d).unwrap_or(usize::MAX)),
        };
        let m = self
            .inner
            .market(v, market)
            .ok_or_else(|| no_market(v, market))?;
        book_dict(py, v, m, depth)
    }

    /// Best bid and ask with sizes, the last update time in ms, and validity.
    fn top<'py>(&self, py: Python<'py>, venue: &str, market: &str) -> PyResult<Bound<'py, PyDict>> {
        let v = venue_of(venue)?;
        let m = self
            .inner
            .market(v, market)
            .ok_or_else(|| no_market(v, market))?;
        let t = m.top();
        let d = PyDict::new(py);
        d.set_item(intern!(py, "bid"), t.bid.map(|l| v.fmt_price(l.0)))?;
        d.set_item(intern!(py, "bid_size"), t.bid.map(|l| v.fmt_size(l.1)))?;
        d.set_item(intern!(py, "ask"), t.ask.map(|l| v.fmt_price(l.0)))?;
        d.set_item(intern!(py, "ask_size"), t.ask.map(|l| v.fmt_size(l.1)))?;
        d.set_item(intern!(py, "ts"), m.ts_ms())?;
        d.set_item(intern!(py, "valid"), m.valid())?;
        Ok(d)
    }

    /// Every book, Polymarket first, each venue's markets in first-seen order.
    fn books<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for v in [Venue::Polymarket, Venue::Kalshi] {
            for m in self.inner.market_list(v) {
                out.append(book_dict(py, v, m, None)?)?;
            }
        }
        Ok(out)
    }

    fn markets(&self, venue: &str) -> PyResult<Vec<String>> {
        let v = venue_of(venue)?;
        Ok(self
            .inner
            .market_list(v)
            .iter()
            .map(|m| m.key().to_string())
            .collect())
    }

    /// (venue, market) of books whose top of book or validity changed since the last call.
    fn take_changed(&mut self) -> Vec<(&'static str, String)> {
        self.inner
            .take_changed()
            .into_iter()
            .map(|(v, k)| (v.name(), k.to_string()))
            .collect()
    }

    /// Kalshi (sid, market_ticker) pairs that lost sequence and need a fresh snapshot.
    fn take_resync(&mut self) -> Vec<(i64, String)> {
        self.inner
            .take_resync()
            .into_iter()
            .map(|(s, k)| (s, k.to_string()))
            .collect()
    }

    /// Kalshi (stream, sid, market_ticker) triples that need a fresh snapshot: ask on the
    /// connection of that stream. Drains the same queue as ``take_resync``.
    fn take_resync_streams(&mut self) -> Vec<(u64, i64, String)> {
        self.inner
            .take_resync_streams()
            .into_iter()
            .map(|(st, s, k)| (st, s, k.to_string()))
            .collect()
    }

    /// Forget a closed connection's stream: its Kalshi sequence state and queued resyncs. Books
    /// whose snapshot came on it and are still valid become invalid with ``reason``. Returns how
    /// many books were invalidated.
    #[pyo3(signature = (venue, stream, reason = "feed disconnected; waiting for a fresh snapshot"))]
    fn forget_stream(&mut self, venue: &str, stream: u64, reason: &str) -> PyResult<usize> {
        let v = venue_of(venue)?;
        Ok(self.inner.forget_stream(v, stream, reason))
    }

    /// Polymarket asset ids whose book disagreed with the venue's best bid/ask (only with
    /// ``polymarket_verify_top``) and needs a fresh snapshot.
    fn take_poly_resync(&mut self) -> Vec<String> {
        self.inner
            .take_poly_resync()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Arrival time of the last frame that touched this market (0 if never).
    fn last_update_ns(&self, venue: &str, market: &str) -> PyResult<u64> {
        let v = venue_of(venue)?;
        Ok(self
            .inner
            .market(v, market)
            .map_or(0, Market::last_update_ns))
    }

    /// ``(valid, last_update_ns)`` of one market in one call, without formatting its top of book (the
    /// breaker's freshness check on the order path). ``KeyError`` for a market never seen.
    fn health(&self, venue: &str, market: &str) -> PyResult<(bool, u64)> {
        let v = venue_of(venue)?;
        let m = self
            .inner
            .market(v, market)
            .ok_or_else(|| no_market(v, market))?;
        Ok((m.valid(), m.last_update_ns()))
    }

    /// Mark one market (or with ``None`` every market of the venue) invalid until its next snapshot.
    fn invalidate(&mut self, venue: &str, market: Option<&str>, reason: &str) -> PyResult<()> {
        let v = venue_of(venue)?;
        self.inner.invalidate(v, market, reason);
        Ok(())
    }

    /// Counters: frames, events, malformed, unknown, pongs, gaps, ignored, bba_mismatch.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, n) in self.inner.stats().pairs() {
            d.set_item(k, n)?;
        }
        Ok(d)
    }

    /// Forget every book, sequence and queue (the counters in ``stats()`` are kept).
    fn clear(&mut self) {
        self.inner.clear();
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        let n = |v| self.inner.market_list(v).len();
        format!(
            "<BookSet polymarket={} kalshi={}>",
            n(Venue::Polymarket),
            n(Venue::Kalshi)
        )
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<BookSet>()?;
    signing::register(m)?;
    prepare::register(m)?;
    edge::register(m)?;
    Ok(())
}
