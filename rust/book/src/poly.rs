//! Polymarket CLOB market (and user) channel codec.
//!
//! A frame is one event object, an array of them, or the bare text `PONG`. Events are decoded in
//! full (all decimals validated) into [`PolyOp`]s before anything is applied, so a bad frame
//! changes nothing. Keys may come in any order (`event_type` is last in some captures): arrays met
//! before the event type is known are skipped and re-read from their recorded offset afterwards.

use std::borrow::Cow;
use std::ops::Range;

use crate::book::{Level, Side};
use crate::error::FrameError;
use crate::fixed::{parse_price, parse_size};
use crate::json::{Scalar, Scanner, SyntaxError};
use crate::Venue;

const V: Venue = Venue::Polymarket;

/// One book-relevant instruction decoded from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolyOp<'a> {
    /// Replace both sides (levels are ranges into [`PolyFrame::levels`]).
    Book {
        asset: Cow<'a, str>,
        bids: Range<usize>,
        asks: Range<usize>,
        tick: Option<i64>,
        ts_ms: u64,
    },
    /// New aggregate size at one level (0 removes it), with the venue's view of the top after it.
    Level {
        asset: Cow<'a, str>,
        side: Side,
        price: i64,
        size: i64,
        best_bid: Option<i64>,
        best_ask: Option<i64>,
        ts_ms: u64,
    },
    /// A tick size change: new epoch, the book waits for a new snapshot.
    Tick {
        asset: Cow<'a, str>,
        old: Option<i64>,
        new: Option<i64>,
        ts_ms: u64,
    },
    /// Market resolved: assets are a range into [`PolyFrame::assets`].
    Resolved {
        assets: Range<usize>,
        outcome: Option<Cow<'a, str>>,
        ts_ms: u64,
    },
}

/// A decoded frame. The vectors are reusable buffers (see [`PolyFrame::clear`]).
#[derive(Debug, Default)]
pub struct PolyFrame<'a> {
    pub ops: Vec<PolyOp<'a>>,
    pub levels: Vec<Level>,
    pub assets: Vec<Cow<'a, str>>,
    /// Events of known types (book or not).
    pub known: u64,
    /// Events of unknown types (ignored).
    pub unknown: u64,
    pub pong: bool,
}

impl PolyFrame<'_> {
    pub fn clear(&mut self) {
        self.ops.clear();
        self.levels.clear();
        self.assets.clear();
        self.known = 0;
        self.unknown = 0;
        self.pong = false;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Book,
    PriceChange,
    TickSize,
    Resolved,
    Info,
    Unknown,
}

fn kind_of(event_type: &str) -> Kind {
    match event_type {
        "book" => Kind::Book,
        "price_change" => Kind::PriceChange,
        "tick_size_change" => Kind::TickSize,
        "market_resolved" => Kind::Resolved,
        "last_trade_price" | "best_bid_ask" | "new_market" | "order" | "trade" => Kind::Info,
        _ => Kind::Unknown,
    }
}

/// Decoding failure: JSON syntax (needs the frame for context) or a field error.
enum Fail {
    Syntax(SyntaxError),
    Field(FrameError),
}

impl From<SyntaxError> for Fail {
    fn from(e: SyntaxError) -> Self {
        Fail::Syntax(e)
    }
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Field(e)
    }
}

type FResult<T> = Result<T, Fail>;

/// Decodes a whole frame into `out` (which must be cleared).
pub fn decode<'a>(frame: &'a str, out: &mut PolyFrame<'a>) -> Result<(), FrameError> {
    let t = frame.trim_matches(|c: char| c.is_ascii_whitespace());
    if t == "PONG" {
        out.pong = true;
        return Ok(());
    }
    match decode_json(frame, out) {
        Ok(()) => Ok(()),
        Err(Fail::Syntax(e)) => Err(FrameError::syntax(V, frame, &e)),
        Err(Fail::Field(e)) => Err(e),
    }
}

fn decode_json<'a>(frame: &'a str, out: &mut PolyFrame<'a>) -> FResult<()> {
    let mut sc = Scanner::new(frame);
    match sc.peek() {
        Some(b'{') => event(frame, &mut sc, out)?,
        Some(b'[') => {
            let mut res: FResult<()> = Ok(());
            sc.array(|sc| {
                if sc.peek() != Some(b'{') {
                    return Err(SyntaxError {
                        pos: sc.pos(),
                        what: "expected an event object in the array",
                    });
                }
                // Field errors are carried out of the JSON walk and stop it.
                match event(frame, sc, out) {
                    Ok(()) => Ok(()),
                    Err(Fail::Syntax(e)) => Err(e),
                    Err(Fail::Field(e)) => {
                        res = Err(Fail::Field(e));
                        Err(SyntaxError {
                            pos: sc.pos(),
                            what: "",
                        })
                    }
                }
            })
            .map_err(|e| match std::mem::replace(&mut res, Ok(())) {
                Err(f) => f,
                Ok(()) => Fail::Syntax(e),
            })?;
        }
        Some(_) => {
            return Err(Fail::Syntax(SyntaxError {
                pos: sc.pos(),
                what: "expected a JSON object or array of events",
            }))
        }
        None => {
            return Err(Fail::Syntax(SyntaxError {
                pos: 0,
                what: "empty frame",
            }))
        }
    }
    sc.finish()?;
    Ok(())
}

#[derive(Default)]
struct Raw<'a> {
    event_type: Scalar<'a>,
    typ: Scalar<'a>,
    asset_id: Scalar<'a>,
    price: Scalar<'a>,
    size: Scalar<'a>,
    side: Scalar<'a>,
    best_bid: Scalar<'a>,
    best_ask: Scalar<'a>,
    timestamp: Scalar<'a>,
    tick_size: Scalar<'a>,
    old_tick_size: Scalar<'a>,
    new_tick_size: Scalar<'a>,
    winning_outcome: Scalar<'a>,
    bids_at: Option<usize>,
    asks_at: Option<usize>,
    changes_at: Option<usize>,
    assets_at: Option<usize>,
    bids: Option<Range<usize>>,
    asks: Option<Range<usize>>,
    changes: Option<Range<usize>>,
}

fn event<'a>(frame: &'a str, sc: &mut Scanner<'a>, out: &mut PolyFrame<'a>) -> FResult<()> {
    let mut r = Raw::default();
    let mut kind: Option<Kind> = None;
    let mut field_err: Option<Fail> = None;
    sc.object(|sc, key| {
        let res: FResult<()> = match &*key {
            "event_type" => {
                r.event_type = sc.scalar()?;
                kind = r.event_type.text().map(kind_of);
                Ok(())
            }
            "type" => {
                r.typ = sc.scalar()?;
                Ok(())
            }
            "asset_id" => {
                r.asset_id = sc.scalar()?;
                Ok(())
            }
            "price" => {
                r.price = sc.scalar()?;
                Ok(())
            }
            "size" => {
                r.size = sc.scalar()?;
                Ok(())
            }
            "side" => {
                r.side = sc.scalar()?;
                Ok(())
            }
            "best_bid" => {
                r.best_bid = sc.scalar()?;
                Ok(())
            }
            "best_ask" => {
                r.best_ask = sc.scalar()?;
                Ok(())
            }
            "timestamp" => {
                r.timestamp = sc.scalar()?;
                Ok(())
            }
            "tick_size" => {
                r.tick_size = sc.scalar()?;
                Ok(())
            }
            "old_tick_size" => {
                r.old_tick_size = sc.scalar()?;
                Ok(())
            }
            "new_tick_size" => {
                r.new_tick_size = sc.scalar()?;
                Ok(())
            }
            "winning_outcome" => {
                r.winning_outcome = sc.scalar()?;
                Ok(())
            }
            "bids" | "buys" => {
                r.bids_at = Some(sc.pos());
                if kind == Some(Kind::Book) {
                    levels(sc, out, "bids").map(|rg| {
                        r.bids = Some(rg);
                    })
                } else {
                    Ok(sc.skip_value()?)
                }
            }
            "asks" | "sells" => {
                r.asks_at = Some(sc.pos());
                if kind == Some(Kind::Book) {
                    levels(sc, out, "asks").map(|rg| {
                        r.asks = Some(rg);
                    })
                } else {
                    Ok(sc.skip_value()?)
                }
            }
            "price_changes" => {
                r.changes_at = Some(sc.pos());
                if kind == Some(Kind::PriceChange) {
                    changes(sc, out).map(|rg| {
                        r.changes = Some(rg);
                    })
                } else {
                    Ok(sc.skip_value()?)
                }
            }
            "assets_ids" => {
                r.assets_at = Some(sc.pos());
                Ok(sc.skip_value()?)
            }
            _ => Ok(sc.skip_value()?),
        };
        match res {
            Ok(()) => Ok(()),
            Err(Fail::Syntax(e)) => Err(e),
            Err(f) => {
                let pos = sc.pos();
                field_err = Some(f);
                Err(SyntaxError { pos, what: "" })
            }
        }
    })
    .map_err(|e| match field_err.take() {
        Some(f) => f,
        None => Fail::Syntax(e),
    })?;

    let kind = match kind {
        Some(k) => k,
        None if r.changes_at.is_some() => Kind::PriceChange,
        None => match r.typ.text() {
            Some("PLACEMENT" | "UPDATE" | "CANCELLATION" | "TRADE") => Kind::Info,
            _ => Kind::Unknown,
        },
    };
    let ts_ms = r
        .timestamp
        .text()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    match kind {
        Kind::Unknown => {
            out.unknown += 1;
            return Ok(());
        }
        Kind::Info => {}
        Kind::Book => {
            let asset = need(&r.asset_id, "asset_id")?;
            let bids = match (r.bids.clone(), r.bids_at) {
                (Some(rg), _) => rg,
                (None, Some(at)) => levels(&mut Scanner::at(frame, at), out, "bids")?,
                (None, None) => out.levels.len()..out.levels.len(),
            };
            let asks = match (r.asks.clone(), r.asks_at) {
                (Some(rg), _) => rg,
                (None, Some(at)) => levels(&mut Scanner::at(frame, at), out, "asks")?,
                (None, None) => out.levels.len()..out.levels.len(),
            };
            let tick = opt_price(&r.tick_size, "tick_size")?;
            out.ops.push(PolyOp::Book {
                asset,
                bids,
                asks,
                tick,
                ts_ms,
            });
        }
        Kind::PriceChange => {
            let rg = match (r.changes.clone(), r.changes_at) {
                (Some(rg), _) => rg,
                (None, Some(at)) => changes(&mut Scanner::at(frame, at), out)?,
                (None, None) => {
                    // Legacy single-level shape: the level is at the top of the event.
                    let start = out.ops.len();
                    out.ops.push(change_op(&r, "")?);
                    start..out.ops.len()
                }
            };
            for op in out.ops.get_mut(rg).into_iter().flatten() {
                if let PolyOp::Level { ts_ms: t, .. } = op {
                    *t = ts_ms;
                }
            }
        }
        Kind::TickSize => {
            let asset = need(&r.asset_id, "asset_id")?;
            let old = opt_price(&r.old_tick_size, "old_tick_size")?;
            let new = opt_price(&r.new_tick_size, "new_tick_size")?;
            out.ops.push(PolyOp::Tick {
                asset,
                old,
                new,
                ts_ms,
            });
        }
        Kind::Resolved => {
            let start = out.assets.len();
            if let Some(at) = r.assets_at {
                let mut sc = Scanner::at(frame, at);
                if sc.peek() == Some(b'[') {
                    sc.array(|sc| {
                        if let Scalar::Text(t) = sc.scalar()? {
                            out.assets.push(t);
                        }
                        Ok(())
                    })?;
                }
            }
            let outcome = match std::mem::take(&mut r.winning_outcome) {
                Scalar::Text(t) => Some(t),
                _ => None,
            };
            out.ops.push(PolyOp::Resolved {
                assets: start..out.assets.len(),
                outcome,
                ts_ms,
            });
        }
    }
    out.known += 1;
    Ok(())
}

fn need<'a>(s: &Scalar<'a>, field: &str) -> Result<Cow<'a, str>, FrameError> {
    match s {
        Scalar::Text(t) if !t.is_empty() => Ok(t.clone()),
        _ => Err(FrameError::missing(V, field)),
    }
}

fn price_of(s: &Scalar<'_>, field: &str) -> Result<i64, FrameError> {
    match s {
        Scalar::Text(t) => parse_price(t).map_err(|e| FrameError::value(V, field, t, e)),
        _ => Err(FrameError::missing(V, field)),
    }
}

fn size_of(s: &Scalar<'_>, field: &str) -> Result<i64, FrameError> {
    match s {
        Scalar::Text(t) => parse_size(t).map_err(|e| FrameError::value(V, field, t, e)),
        _ => Err(FrameError::missing(V, field)),
    }
}

/// An optional price: absent, null or "" mean none.
fn opt_price(s: &Scalar<'_>, field: &str) -> Result<Option<i64>, FrameError> {
    match s {
        Scalar::Text(t) if !t.is_empty() => parse_price(t)
            .map(Some)
            .map_err(|e| FrameError::value(V, field, t, e)),
        _ => Ok(None),
    }
}

fn side_of(s: &Scalar<'_>, field: &str) -> Result<Side, FrameError> {
    match s.text() {
        Some(t) if t.eq_ignore_ascii_case("BUY") => Ok(Side::Bid),
        Some(t) if t.eq_ignore_ascii_case("SELL") => Ok(Side::Ask),
        Some(t) => Err(FrameError::bad(V, field, t, "expected BUY or SELL")),
        None => Err(FrameError::missing(V, field)),
    }
}

fn change_op<'a>(r: &Raw<'a>, prefix: &str) -> Result<PolyOp<'a>, FrameError> {
    let f = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    // Field names are only built on the error path.
    let asset =
        need(&r.asset_id, "asset_id").map_err(|_| FrameError::missing(V, &f("asset_id")))?;
    let side = side_of(&r.side, "side").map_err(|e| FrameError {
        field: f("side"),
        ..e
    })?;
    let price = price_of(&r.price, "price").map_err(|e| FrameError {
        field: f("price"),
        ..e
    })?;
    let size = size_of(&r.size, "size").map_err(|e| FrameError {
        field: f("size"),
        ..e
    })?;
    let best_bid = opt_price(&r.best_bid, "best_bid").map_err(|e| FrameError {
        field: f("best_bid"),
        ..e
    })?;
    let best_ask = opt_price(&r.best_ask, "best_ask").map_err(|e| FrameError {
        field: f("best_ask"),
        ..e
    })?;
    Ok(PolyOp::Level {
        asset,
        side,
        price,
        size,
        best_bid,
        best_ask,
        ts_ms: 0,
    })
}

/// `[{price, size}, ...]` into `out.levels`.
fn levels<'a>(
    sc: &mut Scanner<'a>,
    out: &mut PolyFrame<'a>,
    field: &'static str,
) -> FResult<Range<usize>> {
    let start = out.levels.len();
    if sc.peek() == Some(b'n') {
        sc.skip_value()?;
        return Ok(start..start);
    }
    let mut err: Option<FrameError> = None;
    let walk = sc.array(|sc| {
        let mut price = Scalar::Absent;
        let mut size = Scalar::Absent;
        sc.object(|sc, key| {
            match &*key {
                "price" => price = sc.scalar()?,
                "size" => size = sc.scalar()?,
                _ => sc.skip_value()?,
            }
            Ok(())
        })?;
        let lv = price_of(&price, field)
            .map_err(|e| FrameError {
                field: format!("{field}.price"),
                ..e
            })
            .and_then(|p| {
                size_of(&size, field)
                    .map(|q| (p, q))
                    .map_err(|e| FrameError {
                        field: format!("{field}.size"),
                        ..e
                    })
            });
        match lv {
            Ok(l) => {
                out.levels.push(l);
                Ok(())
            }
            Err(e) => {
                err = Some(e);
                Err(SyntaxError {
                    pos: sc.pos(),
                    what: "",
                })
            }
        }
    });
    match (walk, err) {
        (_, Some(e)) => Err(Fail::Field(e)),
        (Err(e), None) => Err(Fail::Syntax(e)),
        (Ok(()), None) => Ok(start..out.levels.len()),
    }
}

/// `price_changes: [{asset_id, price, size, side, hash, best_bid, best_ask}, ...]` into ops.
fn changes<'a>(sc: &mut Scanner<'a>, out: &mut PolyFrame<'a>) -> FResult<Range<usize>> {
    let start = out.ops.len();
    let mut err: Option<FrameError> = None;
    let walk = sc.array(|sc| {
        let mut r = Raw::default();
        sc.object(|sc, key| {
            match &*key {
                "asset_id" => r.asset_id = sc.scalar()?,
                "price" => r.price = sc.scalar()?,
                "size" => r.size = sc.scalar()?,
                "side" => r.side = sc.scalar()?,
                "best_bid" => r.best_bid = sc.scalar()?,
                "best_ask" => r.best_ask = sc.scalar()?,
                _ => sc.skip_value()?,
            }
            Ok(())
        })?;
        match change_op(&r, "price_changes") {
            Ok(op) => {
                out.ops.push(op);
                Ok(())
            }
            Err(e) => {
                err = Some(e);
                Err(SyntaxError {
                    pos: sc.pos(),
                    what: "",
                })
            }
        }
    });
    match (walk, err) {
        (_, Some(e)) => Err(Fail::Field(e)),
        (Err(e), None) => Err(Fail::Syntax(e)),
        (Ok(()), None) => Ok(start..out.ops.len()),
    }
}
