//! Kalshi WebSocket v2 codec: `{type, sid, seq?, msg}` envelopes (and `{id, cmd, params}` commands).
//!
//! Only `orderbook_snapshot` and `orderbook_delta` bodies are decoded; other known types are
//! validated as JSON and counted. Prices are `*_dollars` strings, counts `*_fp` strings.

use std::borrow::Cow;
use std::ops::Range;

use crate::book::Level;
use crate::error::FrameError;
use crate::fixed::{parse_price, parse_signed, parse_size};
use crate::json::{Scalar, Scanner, SyntaxError};
use crate::Venue;

const V: Venue = Venue::Kalshi;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Yes,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KalshiMsg<'a> {
    /// YES bids and NO bids (ranges into [`KalshiFrame::levels`], venue prices as sent).
    Snapshot {
        ticker: Cow<'a, str>,
        yes: Range<usize>,
        no: Range<usize>,
        ts_ms: u64,
    },
    Delta {
        ticker: Cow<'a, str>,
        leg: Leg,
        price: i64,
        delta: i64,
        ts_ms: u64,
    },
    /// A known message that carries no book change.
    Other,
    /// A message type we do not know.
    Unknown,
}

#[derive(Debug)]
pub struct KalshiFrame<'a> {
    pub msg: KalshiMsg<'a>,
    pub sid: Option<i64>,
    pub seq: Option<i64>,
    pub levels: Vec<Level>,
}

impl Default for KalshiFrame<'_> {
    fn default() -> Self {
        KalshiFrame {
            msg: KalshiMsg::Unknown,
            sid: None,
            seq: None,
            levels: Vec::new(),
        }
    }
}

impl KalshiFrame<'_> {
    pub fn clear(&mut self) {
        self.msg = KalshiMsg::Unknown;
        self.sid = None;
        self.seq = None;
        self.levels.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Delta,
    Other,
    Unknown,
}

fn kind_of(t: &str) -> Kind {
    match t {
        "orderbook_snapshot" => Kind::Snapshot,
        "orderbook_delta" => Kind::Delta,
        "ticker"
        | "ticker_v2"
        | "trade"
        | "fill"
        | "user_order"
        | "user_orders"
        | "order_group_updates"
        | "market_positions"
        | "market_position"
        | "market_lifecycle_v2"
        | "market_lifecycle"
        | "event_lifecycle"
        | "multivariate_market_lifecycle"
        | "multivariate_lookup"
        | "communications"
        | "rfq_created"
        | "rfq_deleted"
        | "quote_created"
        | "quote_accepted"
        | "quote_executed"
        | "cfbenchmarks_value"
        | "cfbenchmarks_value_5hz"
        | "pyth_value"
        | "subscribed"
        | "unsubscribed"
        | "ok"
        | "error"
        | "list_subscriptions" => Kind::Other,
        _ => Kind::Unknown,
    }
}

enum Fail {
    Syntax(SyntaxError),
    Field(FrameError),
}

impl From<SyntaxError> for Fail {
    fn from(e: SyntaxError) -> Self {
        Fail::Syntax(e)
    }
}

/// Runs a JSON walk whose callbacks may hit a field error; a field error stops the walk.
fn walk<T>(f: impl FnOnce(&mut Option<FrameError>) -> Result<T, SyntaxError>) -> Result<T, Fail> {
    let mut err = None;
    let r = f(&mut err);
    match (r, err) {
        (_, Some(e)) => Err(Fail::Field(e)),
        (Err(e), None) => Err(Fail::Syntax(e)),
        (Ok(v), None) => Ok(v),
    }
}

/// Decodes one frame into `out` (which must be cleared).
pub fn decode<'a>(frame: &'a str, out: &mut KalshiFrame<'a>) -> Result<(), FrameError> {
    match decode_json(frame, out) {
        Ok(()) => Ok(()),
        Err(Fail::Syntax(e)) => Err(FrameError::syntax(V, frame, &e)),
        Err(Fail::Field(e)) => Err(e),
    }
}

fn int_field(
    sc: &mut Scanner<'_>,
    field: &str,
    err: &mut Option<FrameError>,
) -> Result<Option<i64>, SyntaxError> {
    let pos = sc.pos();
    match sc.integer() {
        Ok(v) => Ok(v),
        Err(e) => {
            // A non-integer where an integer belongs is a field error, not a syntax error.
            let mut probe = Scanner::at(sc.source(), pos);
            if probe.skip_value().is_ok() {
                *err = Some(FrameError::new(V, field, "expected an integer"));
            }
            Err(e)
        }
    }
}

fn decode_json<'a>(frame: &'a str, out: &mut KalshiFrame<'a>) -> Result<(), Fail> {
    let mut sc = Scanner::new(frame);
    match sc.peek() {
        Some(b'{') => {}
        Some(_) => {
            return Err(Fail::Syntax(SyntaxError {
                pos: sc.pos(),
                what: "expected a JSON object",
            }))
        }
        None => {
            return Err(Fail::Syntax(SyntaxError {
                pos: 0,
                what: "empty frame",
            }))
        }
    }
    let mut typ: Scalar<'a> = Scalar::Absent;
    let mut kind: Option<Kind> = None;
    let mut msg_at: Option<usize> = None;
    let mut has_cmd = false;
    let mut done = false;
    walk(|err| {
        sc.object(|sc, key| {
            match &*key {
                "type" => {
                    typ = if sc.peek() == Some(b'"') {
                        sc.scalar()?
                    } else {
                        sc.skip_value()?;
                        Scalar::Other
                    };
                    kind = typ.text().map(kind_of);
                }
                "sid" => out.sid = int_field(sc, "sid", err)?,
                "seq" => out.seq = int_field(sc, "seq", err)?,
                "cmd" => {
                    has_cmd = true;
                    sc.skip_value()?;
                }
                "msg" => {
                    msg_at = Some(sc.pos());
                    match kind {
                        Some(k @ (Kind::Snapshot | Kind::Delta)) if sc.peek() == Some(b'{') => {
                            match body(sc, k, out) {
                                Ok(m) => {
                                    out.msg = m;
                                    done = true;
                                }
                                Err(Fail::Syntax(e)) => return Err(e),
                                Err(Fail::Field(e)) => {
                                    *err = Some(e);
                                    return Err(SyntaxError {
                                        pos: sc.pos(),
                                        what: "",
                                    });
                                }
                            }
                        }
                        _ => sc.skip_value()?,
                    }
                }
                _ => sc.skip_value()?,
            }
            Ok(())
        })?;
        sc.finish()
    })?;

    if matches!(typ, Scalar::Other | Scalar::Null) {
        return Err(Fail::Field(FrameError::new(V, "type", "expected a string")));
    }
    let kind = match kind {
        Some(k) => k,
        None if has_cmd => Kind::Other,
        None => Kind::Unknown,
    };
    match kind {
        Kind::Snapshot | Kind::Delta if !done => {
            let at = msg_at.ok_or_else(|| Fail::Field(FrameError::missing(V, "msg")))?;
            let mut sc = Scanner::at(frame, at);
            if sc.peek() != Some(b'{') {
                return Err(Fail::Field(FrameError::new(V, "msg", "expected an object")));
            }
            out.msg = body(&mut sc, kind, out)?;
        }
        Kind::Snapshot | Kind::Delta => {}
        Kind::Other => out.msg = KalshiMsg::Other,
        Kind::Unknown => out.msg = KalshiMsg::Unknown,
    }
    Ok(())
}

#[derive(Default)]
struct RawBody<'a> {
    ticker: Scalar<'a>,
    price: Scalar<'a>,
    delta: Scalar<'a>,
    side: Scalar<'a>,
    ts_ms: Scalar<'a>,
    yes_fp: Option<Range<usize>>,
    no_fp: Option<Range<usize>>,
    yes_old: Option<Range<usize>>,
    no_old: Option<Range<usize>>,
}

fn body<'a>(
    sc: &mut Scanner<'a>,
    kind: Kind,
    out: &mut KalshiFrame<'a>,
) -> Result<KalshiMsg<'a>, Fail> {
    let mut r = RawBody::default();
    let levels = &mut out.levels;
    walk(|err| {
        sc.object(|sc, key| {
            let slot = match &*key {
                "market_ticker" => {
                    r.ticker = sc.scalar()?;
                    return Ok(());
                }
                "price_dollars" => {
                    r.price = sc.scalar()?;
                    return Ok(());
                }
                "delta_fp" => {
                    r.delta = sc.scalar()?;
                    return Ok(());
                }
                "side" => {
                    r.side = sc.scalar()?;
                    return Ok(());
                }
                "ts_ms" => {
                    r.ts_ms = sc.scalar()?;
                    return Ok(());
                }
                "yes_dollars_fp" if kind == Kind::Snapshot => (&mut r.yes_fp, "yes_dollars_fp"),
                "no_dollars_fp" if kind == Kind::Snapshot => (&mut r.no_fp, "no_dollars_fp"),
                "yes_dollars" if kind == Kind::Snapshot => (&mut r.yes_old, "yes_dollars"),
                "no_dollars" if kind == Kind::Snapshot => (&mut r.no_old, "no_dollars"),
                _ => return sc.skip_value(),
            };
            match pairs(sc, levels, slot.1) {
                Ok(rg) => {
                    *slot.0 = Some(rg);
                    Ok(())
                }
                Err(Fail::Syntax(e)) => Err(e),
                Err(Fail::Field(e)) => {
                    *err = Some(e);
                    Err(SyntaxError {
                        pos: sc.pos(),
                        what: "",
                    })
                }
            }
        })
    })?;
    let ticker = match r.ticker {
        Scalar::Text(t) if !t.is_empty() => t,
        _ => return Err(Fail::Field(FrameError::missing(V, "msg.market_ticker"))),
    };
    let ts_ms = r
        .ts_ms
        .text()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    let empty = levels.len()..levels.len();
    match kind {
        Kind::Snapshot => Ok(KalshiMsg::Snapshot {
            ticker,
            yes: r.yes_fp.or(r.yes_old).unwrap_or(empty.clone()),
            no: r.no_fp.or(r.no_old).unwrap_or(empty),
            ts_ms,
        }),
        _ => {
            let price = match r.price.text() {
                Some(t) => {
                    parse_price(t).map_err(|e| FrameError::value(V, "msg.price_dollars", t, e))
                }
                None => Err(FrameError::missing(V, "msg.price_dollars")),
            }
            .map_err(Fail::Field)?;
            let delta = match r.delta.text() {
                Some(t) => parse_signed(t).map_err(|e| FrameError::value(V, "msg.delta_fp", t, e)),
                None => Err(FrameError::missing(V, "msg.delta_fp")),
            }
            .map_err(Fail::Field)?;
            let leg = match r.side.text() {
                Some(t) if t.eq_ignore_ascii_case("yes") => Leg::Yes,
                Some(t) if t.eq_ignore_ascii_case("no") => Leg::No,
                Some(t) => {
                    return Err(Fail::Field(FrameError::bad(
                        V,
                        "msg.side",
                        t,
                        "expected yes or no",
                    )))
                }
                None => return Err(Fail::Field(FrameError::missing(V, "msg.side"))),
            };
            Ok(KalshiMsg::Delta {
                ticker,
                leg,
                price,
                delta,
                ts_ms,
            })
        }
    }
}

/// `[[price_dollars, count_fp], ...]` (or `null`) into `levels`.
fn pairs(
    sc: &mut Scanner<'_>,
    levels: &mut Vec<Level>,
    field: &'static str,
) -> Result<Range<usize>, Fail> {
    let start = levels.len();
    if sc.peek() == Some(b'n') {
        sc.skip_value()?;
        return Ok(start..start);
    }
    walk(|err| {
        sc.array(|sc| {
            let mut vals: [Scalar<'_>; 2] = [Scalar::Absent, Scalar::Absent];
            let mut n = 0usize;
            sc.array(|sc| {
                let v = sc.scalar()?;
                if let Some(slot) = vals.get_mut(n) {
                    *slot = v;
                }
                n += 1;
                Ok(())
            })?;
            let lv = match (&vals, n) {
                ([Scalar::Text(p), Scalar::Text(q)], 2) => parse_price(p)
                    .map_err(|e| FrameError::value(V, &format!("msg.{field}.price"), p, e))
                    .and_then(|p| {
                        parse_size(q)
                            .map(|q| (p, q))
                            .map_err(|e| FrameError::value(V, &format!("msg.{field}.count"), q, e))
                    }),
                _ => Err(FrameError::new(
                    V,
                    format!("msg.{field}"),
                    "expected [price, count] pairs of strings",
                )),
            };
            match lv {
                Ok(l) => {
                    levels.push(l);
                    Ok(())
                }
                Err(e) => {
                    *err = Some(e);
                    Err(SyntaxError {
                        pos: sc.pos(),
                        what: "",
                    })
                }
            }
        })
    })?;
    Ok(start..levels.len())
}
