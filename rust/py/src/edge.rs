//! `EdgeWatch`: the edge trigger's first look (`crossbook_book::edge`) over a live `BookSet`, in one
//! call per book change of an armed pair.

use crossbook_book::edge::{check, Check, Direction, EdgeRule, LegView, Outcome};
use crossbook_book::{fixed, Venue};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::{venue_of, BookSet};

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
/// ``(direction, yes_ask, no_ask, shares)`` to fire at the top of book.
#[pyclass(module = "crossbook._core")]
pub struct EdgeWatch {
    legs: [(Venue, String); 2],
    links: [Option<Py<PyAny>>; 2],
    directions: Vec<Direction>,
    rule: EdgeRule,
    stale_ns: u64,
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
            } => Some(
                (
                    direction,
                    fixed::to_string(yes_ask, 0),
                    fixed::to_string(no_ask, 0),
                    shares,
                )
                    .into_pyobject(py)?
                    .into_any(),
            ),
        })
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
    m.add_class::<EdgeWatch>()
}
