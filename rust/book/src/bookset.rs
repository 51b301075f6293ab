//! Every live book of both venues, the frame entry point, and the queues the daemon drains.

use std::borrow::Cow;

use crate::book::{Book, Level, NegativeLevel, Side, Top};
use crate::error::FrameError;
use crate::fixed::{to_string, ONE};
use crate::hash::FxHashMap;
use crate::kalshi::{self, KalshiFrame, KalshiMsg, Leg};
use crate::poly::{self, PolyFrame, PolyOp};
use crate::Venue;

/// Reason given to a book that has seen updates but no snapshot.
pub const NO_SNAPSHOT: &str = "no book snapshot yet";

/// Counters since construction (they survive [`BookSet::clear`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to `apply`, good or bad.
    pub frames: u64,
    /// Events of known types in accepted frames.
    pub events: u64,
    /// Frames rejected as malformed (not applied).
    pub malformed: u64,
    /// Events of unknown types (ignored).
    pub unknown: u64,
    /// Polymarket `PONG` frames.
    pub pongs: u64,
    /// Kalshi sequence gaps.
    pub gaps: u64,
    /// Level updates not applied because the book had no snapshot or was invalid.
    pub ignored: u64,
    /// Polymarket price changes whose best_bid/best_ask disagreed with our book after applying.
    pub bba_mismatch: u64,
}

impl Stats {
    pub fn pairs(&self) -> [(&'static str, u64); 8] {
        [
            ("frames", self.frames),
            ("events", self.events),
            ("malformed", self.malformed),
            ("unknown", self.unknown),
            ("pongs", self.pongs),
            ("gaps", self.gaps),
            ("ignored", self.ignored),
            ("bba_mismatch", self.bba_mismatch),
        ]
    }
}

/// One market's book and its bookkeeping.
#[derive(Debug, Clone)]
pub struct Market {
    key: Box<str>,
    book: Book,
    valid: bool,
    reason: Option<String>,
    last_ns: u64,
    ts_ms: u64,
    tick: Option<i64>,
    epoch: u32,
    /// Kalshi (stream, sid) the book's snapshot came on.
    sub: Option<(u64, i64)>,
    queued: bool,
}

impl Market {
    fn new(key: &str) -> Self {
        Market {
            key: key.into(),
            book: Book::new(),
            valid: false,
            reason: Some(NO_SNAPSHOT.to_string()),
            last_ns: 0,
            ts_ms: 0,
            tick: None,
            epoch: 0,
            sub: None,
            queued: false,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn book(&self) -> &Book {
        &self.book
    }
    pub fn top(&self) -> Top {
        self.book.top()
    }
    pub fn valid(&self) -> bool {
        self.valid
    }
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    /// Arrival time (ns) of the last frame that touched this market.
    pub fn last_update_ns(&self) -> u64 {
        self.last_ns
    }
    /// Last update time in ms (arrival time, or the venue's timestamp when no arrival time was given).
    pub fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    /// Polymarket tick size (units of 10^-6), when known.
    pub fn tick_size(&self) -> Option<i64> {
        self.tick
    }
    /// Polymarket tick-size epoch: bumped on every `tick_size_change`.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// Kalshi subscription id the book's snapshot came on.
    pub fn sid(&self) -> Option<i64> {
        self.sub.map(|(_, sid)| sid)
    }
    /// Stream (the caller's connection id) the book's snapshot came on, with its sid.
    pub fn stream(&self) -> Option<u64> {
        self.sub.map(|(stream, _)| stream)
    }

    fn state(&self) -> (Top, bool) {
        (self.book.top(), self.valid)
    }

    fn touch(&mut self, recv_ns: u64, venue_ts_ms: u64) {
        if recv_ns > 0 {
            self.last_ns = recv_ns;
            self.ts_ms = recv_ns / 1_000_000;
        } else {
            self.last_ns = venue_ts_ms.saturating_mul(1_000_000);
            self.ts_ms = venue_ts_ms;
        }
    }

    fn invalidate(&mut self, reason: String) {
        self.valid = false;
        self.reason = Some(reason);
    }
}

#[derive(Debug, Default, Clone)]
struct Markets {
    index: FxHashMap<Box<str>, u32>,
    list: Vec<Market>,
}

impl Markets {
    #[inline]
    fn find(&self, key: &str) -> Option<usize> {
        self.index.get(key).map(|&i| i as usize)
    }

    #[inline]
    fn get_or_create(&mut self, key: &str) -> usize {
        if let Some(i) = self.find(key) {
            return i;
        }
        let i = self.list.len();
        self.list.push(Market::new(key));
        self.index
            .insert(key.into(), u32::try_from(i).unwrap_or(u32::MAX));
        i
    }
}

/// Reuses a vector's allocation for a vector of another lifetime of the same type (the elements
/// are dropped; collecting in place keeps the buffer).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

#[derive(Debug, Default)]
pub struct BookSet {
    poly: Markets,
    kalshi: Markets,
    kalshi_use_yes_price: bool,
    /// Kalshi orderbook subscriptions: (stream, sid) -> last seq. Sids are numbered per WebSocket
    /// connection (each starts at 1), so the caller names the connection: the stream.
    book_seq: FxHashMap<(u64, i64), i64>,
    /// Other Kalshi subscriptions: (stream, sid) -> last seq (tracked, never acted on).
    other_seq: FxHashMap<(u64, i64), i64>,
    changed: Vec<(Venue, u32)>,
    /// Kalshi markets that need a snapshot: ((stream, sid), market index).
    resync: Vec<((u64, i64), u32)>,
    /// Polymarket: treat a venue best bid/ask that disagrees with our book as corruption.
    poly_verify_top: bool,
    /// Polymarket markets (indexes) whose book must be rebuilt from a fresh snapshot.
    poly_resync: Vec<u32>,
    /// Per frame: the venue's best bid/ask from the last change of each market, checked at the end.
    bba_pending: Vec<(u32, Option<i64>, Option<i64>)>,
    stats: Stats,
    // Reusable decode buffers (kept empty between calls).
    poly_ops: Vec<PolyOp<'static>>,
    poly_assets: Vec<Cow<'static, str>>,
    levels: Vec<Level>,
}

impl BookSet {
    /// `kalshi_use_yes_price`: the Kalshi subscription was made with `use_yes_price`, so NO-side
    /// levels already carry YES-ask prices.
    pub fn new(kalshi_use_yes_price: bool) -> Self {
        BookSet {
            kalshi_use_yes_price,
            ..Default::default()
        }
    }

    pub fn kalshi_use_yes_price(&self) -> bool {
        self.kalshi_use_yes_price
    }

    /// Live feeds turn this on: when a `price_change`'s `best_bid`/`best_ask` (the venue's own top
    /// after the frame) disagrees with our book, the book is invalid until a fresh snapshot, and the
    /// market is queued for [`BookSet::take_poly_resync`]. Polymarket has no sequence numbers, so this
    /// is the only in-band evidence of a lost message. Off by default: public fixtures are
    /// inconsistent on purpose-free hand-written values.
    pub fn set_poly_verify_top(&mut self, on: bool) {
        self.poly_verify_top = on;
    }

    /// Polymarket asset ids whose book was found corrupt and needs a fresh snapshot.
    pub fn take_poly_resync(&mut self) -> Vec<&str> {
        let idx = std::mem::take(&mut self.poly_resync);
        idx.into_iter()
            .filter_map(|i| self.poly.list.get(i as usize).map(|m| &*m.key))
            .collect()
    }

    fn markets(&self, venue: Venue) -> &Markets {
        match venue {
            Venue::Polymarket => &self.poly,
            Venue::Kalshi => &self.kalshi,
        }
    }

    /// Parses one frame and applies it atomically; returns the number of known events in it.
    /// The frame is read as coming on stream 0 (see [`BookSet::apply_on`]).
    pub fn apply(&mut self, venue: Venue, frame: &[u8], recv_ns: u64) -> Result<usize, FrameError> {
        self.apply_on(venue, frame, recv_ns, 0)
    }

    /// [`BookSet::apply`] for a frame that arrived on `stream`: the caller's id of the WebSocket
    /// connection, unique per connection (a reconnect is a new stream). Kalshi sequence numbers are
    /// tracked per (stream, sid), since every connection numbers its subscriptions from 1.
    pub fn apply_on(
        &mut self,
        venue: Venue,
        frame: &[u8],
        recv_ns: u64,
        stream: u64,
    ) -> Result<usize, FrameError> {
        // SIMD validation on the hot path; the std validator only runs to locate an error.
        match simdutf8::basic::from_utf8(frame) {
            Ok(s) => self.apply_str_on(venue, s, recv_ns, stream),
            Err(_) => {
                let at = std::str::from_utf8(frame)
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                self.stats.frames += 1;
                self.stats.malformed += 1;
                Err(FrameError::new(
                    venue,
                    "frame",
                    format!("not UTF-8 (at byte {at})"),
                ))
            }
        }
    }

    /// [`BookSet::apply`] for a frame that is already text.
    pub fn apply_str(
        &mut self,
        venue: Venue,
        frame: &str,
        recv_ns: u64,
    ) -> Result<usize, FrameError> {
        self.apply_str_on(venue, frame, recv_ns, 0)
    }

    /// [`BookSet::apply_on`] for a frame that is already text.
    pub fn apply_str_on(
        &mut self,
        venue: Venue,
        frame: &str,
        recv_ns: u64,
        stream: u64,
    ) -> Result<usize, FrameError> {
        self.stats.frames += 1;
        let r = match venue {
            Venue::Polymarket => self.apply_poly(frame, recv_ns),
            Venue::Kalshi => self.apply_kalshi(frame, recv_ns, stream),
        };
        if r.is_err() {
            self.stats.malformed += 1;
        }
        r
    }

    fn note_change(&mut self, venue: Venue, i: usize, before: (Top, bool)) {
        let changed = &mut self.changed;
        let m = match venue {
            Venue::Polymarket => self.poly.list.get_mut(i),
            Venue::Kalshi => self.kalshi.list.get_mut(i),
        };
        if let Some(m) = m {
            if !m.queued && m.state() != before {
                m.queued = true;
                changed.push((venue, u32::try_from(i).unwrap_or(u32::MAX)));
            }
        }
    }

    fn apply_poly(&mut self, frame: &str, recv_ns: u64) -> Result<usize, FrameError> {
        let mut out = PolyFrame {
            ops: recycle(std::mem::take(&mut self.poly_ops)),
            levels: std::mem::take(&mut self.levels),
            assets: recycle(std::mem::take(&mut self.poly_assets)),
            ..Default::default()
        };
        out.levels.clear();
        let r = poly::decode(frame, &mut out);
        let result = match r {
            Err(e) => Err(e),
            Ok(()) => {
                if out.pong {
                    self.stats.pongs += 1;
                }
                self.stats.events += out.known;
                self.stats.unknown += out.unknown;
                for op in &out.ops {
                    self.poly_op(op, &out, recv_ns);
                }
                self.check_poly_tops();
                Ok(usize::try_from(out.known).unwrap_or(usize::MAX))
            }
        };
        self.poly_ops = recycle(out.ops);
        self.poly_assets = recycle(out.assets);
        self.levels = out.levels;
        self.levels.clear();
        result
    }

    /// Compares each changed market's top with the venue's `best_bid`/`best_ask` of its last change
    /// in the frame (whether the venue means "after this change" or "after the frame", the last
    /// change of a market carries the state after the frame).
    fn check_poly_tops(&mut self) {
        let pending = std::mem::take(&mut self.bba_pending);
        for &(idx, best_bid, best_ask) in &pending {
            let i = idx as usize;
            let Some(m) = self.poly.list.get_mut(i) else {
                continue;
            };
            if !m.valid {
                continue;
            }
            let top = m.book.top();
            let ours_bid = top.bid.map_or(0, |l| l.0);
            let ours_ask = top.ask.map_or(ONE, |l| l.0);
            let bid_ok = best_bid.is_none_or(|b| b == ours_bid);
            let ask_ok = best_ask.is_none_or(|a| a == ours_ask || (a == 0 && top.ask.is_none()));
            if bid_ok && ask_ok {
                continue;
            }
            self.stats.bba_mismatch += 1;
            if !self.poly_verify_top {
                continue;
            }
            let before = m.state();
            let show = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |x| to_string(x, 0));
            m.invalidate(format!(
                "book disagrees with the venue's best bid/ask ({}/{} vs ours {}/{}); waiting for a snapshot",
                show(best_bid),
                show(best_ask),
                to_string(ours_bid, 0),
                to_string(ours_ask, 0)
            ));
            self.note_change(Venue::Polymarket, i, before);
            if !self.poly_resync.contains(&idx) {
                self.poly_resync.push(idx);
            }
        }
        self.bba_pending = recycle(pending);
    }

    fn poly_op(&mut self, op: &PolyOp<'_>, f: &PolyFrame<'_>, recv_ns: u64) {
        const VN: Venue = Venue::Polymarket;
        match op {
            PolyOp::Book {
                asset,
                bids,
                asks,
                tick,
                ts_ms,
            } => {
                let i = self.poly.get_or_create(asset);
                let Some(m) = self.poly.list.get_mut(i) else {
                    return;
                };
                let before = m.state();
                m.book
                    .replace_side(Side::Bid, f.levels.get(bids.clone()).unwrap_or(&[]));
                m.book
                    .replace_side(Side::Ask, f.levels.get(asks.clone()).unwrap_or(&[]));
                if tick.is_some() {
                    m.tick = *tick;
                }
                m.valid = true;
                m.reason = None;
                m.touch(recv_ns, *ts_ms);
                self.note_change(VN, i, before);
            }
            PolyOp::Level {
                asset,
                side,
                price,
                size,
                best_bid,
                best_ask,
                ts_ms,
            } => {
                let i = self.poly.get_or_create(asset);
                let Some(m) = self.poly.list.get_mut(i) else {
                    return;
                };
                let before = m.state();
                m.touch(recv_ns, *ts_ms);
                if !m.valid {
                    self.stats.ignored += 1;
                    return;
                }
                m.book.set(*side, *price, *size);
                if best_bid.is_some() || best_ask.is_some() {
                    let idx = u32::try_from(i).unwrap_or(u32::MAX);
                    match self.bba_pending.iter_mut().find(|p| p.0 == idx) {
                        Some(p) => *p = (idx, *best_bid, *best_ask),
                        None => self.bba_pending.push((idx, *best_bid, *best_ask)),
                    }
                }
                self.note_change(VN, i, before);
            }
            PolyOp::Tick {
                asset,
                old,
                new,
                ts_ms,
            } => {
                let i = self.poly.get_or_create(asset);
                let Some(m) = self.poly.list.get_mut(i) else {
                    return;
                };
                let before = m.state();
                let fmt = |t: Option<i64>| t.map_or_else(|| "?".to_string(), |v| to_string(v, 0));
                let reason = format!(
                    "tick size changed {} -> {}; waiting for a new book snapshot",
                    fmt(old.or(m.tick)),
                    fmt(*new)
                );
                m.epoch = m.epoch.wrapping_add(1);
                if new.is_some() {
                    m.tick = *new;
                }
                m.book.clear();
                m.invalidate(reason);
                m.touch(recv_ns, *ts_ms);
                self.note_change(VN, i, before);
            }
            PolyOp::Resolved {
                assets,
                outcome,
                ts_ms,
            } => {
                let reason = match outcome {
                    Some(o) => format!("market resolved (winning outcome: {o})"),
                    None => "market resolved".to_string(),
                };
                for a in f.assets.get(assets.clone()).unwrap_or(&[]) {
                    let Some(i) = self.poly.find(a) else { continue };
                    let Some(m) = self.poly.list.get_mut(i) else {
                        continue;
                    };
                    let before = m.state();
                    m.invalidate(reason.clone());
                    m.touch(recv_ns, *ts_ms);
                    self.note_change(VN, i, before);
                }
            }
        }
    }

    fn apply_kalshi(
        &mut self,
        frame: &str,
        recv_ns: u64,
        stream: u64,
    ) -> Result<usize, FrameError> {
        let mut out = KalshiFrame {
            levels: std::mem::take(&mut self.levels),
            ..Default::default()
        };
        out.levels.clear();
        let r = kalshi::decode(frame, &mut out);
        let result = match r {
            Err(e) => Err(e),
            Ok(()) => {
                let n = self.kalshi_msg(&out, recv_ns, stream);
                self.stats.events += n as u64;
                Ok(n)
            }
        };
        self.levels = out.levels;
        self.levels.clear();
        result
    }

    fn kalshi_msg(&mut self, f: &KalshiFrame<'_>, recv_ns: u64, stream: u64) -> usize {
        const VN: Venue = Venue::Kalshi;
        let sub = f.sid.map(|sid| (stream, sid));
        match &f.msg {
            KalshiMsg::Unknown => {
                self.stats.unknown += 1;
                return 0;
            }
            KalshiMsg::Other => {
                if let (Some(sub), Some(seq)) = (sub, f.seq) {
                    self.other_seq.insert(sub, seq);
                }
            }
            KalshiMsg::Snapshot {
                ticker,
                yes,
                no,
                ts_ms,
            } => {
                let i = self.kalshi.get_or_create(ticker);
                if let (Some(sub), Some(seq)) = (sub, f.seq) {
                    self.check_seq(sub, seq, Some(i));
                }
                self.resync.retain(|&(_, m)| m as usize != i);
                let use_yes = self.kalshi_use_yes_price;
                let Some(m) = self.kalshi.list.get_mut(i) else {
                    return 1;
                };
                let before = m.state();
                m.book
                    .replace_side(Side::Bid, f.levels.get(yes.clone()).unwrap_or(&[]));
                let no_levels = f.levels.get(no.clone()).unwrap_or(&[]);
                if use_yes {
                    m.book.replace_side(Side::Ask, no_levels);
                } else {
                    let asks: Vec<Level> = no_levels.iter().map(|&(p, q)| (ONE - p, q)).collect();
                    m.book.replace_side(Side::Ask, &asks);
                }
                m.valid = true;
                m.reason = None;
                if sub.is_some() {
                    m.sub = sub;
                }
                m.touch(recv_ns, *ts_ms);
                self.note_change(VN, i, before);
            }
            KalshiMsg::Delta {
                ticker,
                leg,
                price,
                delta,
                ts_ms,
            } => {
                let i = self.kalshi.get_or_create(ticker);
                if let (Some(sub), Some(seq)) = (sub, f.seq) {
                    self.check_seq(sub, seq, None);
                }
                let use_yes = self.kalshi_use_yes_price;
                let Some(m) = self.kalshi.list.get_mut(i) else {
                    return 1;
                };
                let before = m.state();
                m.touch(recv_ns, *ts_ms);
                if !m.valid {
                    self.stats.ignored += 1;
                    self.note_change(VN, i, before);
                    return 1;
                }
                let (side, p) = match leg {
                    Leg::Yes => (Side::Bid, *price),
                    Leg::No if use_yes => (Side::Ask, *price),
                    Leg::No => (Side::Ask, ONE - *price),
                };
                if let Err(NegativeLevel { size, .. }) = m.book.add(side, p, *delta) {
                    let leg_name = if *leg == Leg::Yes { "yes" } else { "no" };
                    let mut reason = format!(
                        "delta {} at {} {} would leave size {}",
                        to_string(*delta, 2),
                        leg_name,
                        to_string(*price, 4),
                        to_string(size, 2)
                    );
                    if let (Some(sid), Some(seq)) = (f.sid, f.seq) {
                        reason.push_str(&format!(" (sid {sid}, seq {seq})"));
                    }
                    reason.push_str("; waiting for a snapshot");
                    m.invalidate(reason);
                    if let Some(sub) = sub.or(m.sub) {
                        self.queue_resync(sub, i);
                    }
                }
                self.note_change(VN, i, before);
            }
        }
        1
    }

    /// Checks a Kalshi orderbook seq against the last one of its (stream, sid); on a gap invalidates
    /// every market attached to that (stream, sid) (except `fresh`, the market a snapshot is about to
    /// rebuild).
    fn check_seq(&mut self, sub: (u64, i64), seq: i64, fresh: Option<usize>) {
        let expected = self.book_seq.get(&sub).map(|s| s.saturating_add(1));
        self.book_seq.insert(sub, seq);
        let Some(expected) = expected else { return };
        if seq == expected {
            return;
        }
        self.stats.gaps += 1;
        let (stream, sid) = sub;
        let on = if stream == 0 {
            format!("sid {sid}")
        } else {
            format!("sid {sid} (stream {stream})")
        };
        let reason =
            format!("sequence gap on {on}: expected {expected}, got {seq}; waiting for a snapshot");
        for i in 0..self.kalshi.list.len() {
            if Some(i) == fresh {
                continue;
            }
            let Some(m) = self.kalshi.list.get_mut(i) else {
                continue;
            };
            if m.sub != Some(sub) {
                continue;
            }
            let before = m.state();
            m.invalidate(reason.clone());
            self.note_change(Venue::Kalshi, i, before);
            self.queue_resync(sub, i);
        }
    }

    fn queue_resync(&mut self, sub: (u64, i64), i: usize) {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        if !self.resync.contains(&(sub, i)) {
            self.resync.push((sub, i));
        }
    }

    /// Forgets a closed stream (connection) of a venue: its sequence state and queued resyncs, and
    /// the tie of its markets to it. Markets whose snapshot came on it and are still valid become
    /// invalid with `reason` (nobody keeps them current any more); markets already invalid keep their
    /// reason. A later stream with the same id starts clean (seq restarting at 1 is not a gap).
    /// Returns how many markets were invalidated. Polymarket keeps no per-stream state: a no-op.
    pub fn forget_stream(&mut self, venue: Venue, stream: u64, reason: &str) -> usize {
        if venue != Venue::Kalshi {
            return 0;
        }
        self.book_seq.retain(|&(s, _), _| s != stream);
        self.other_seq.retain(|&(s, _), _| s != stream);
        self.resync.retain(|&((s, _), _)| s != stream);
        let mut n = 0;
        for i in 0..self.kalshi.list.len() {
            let Some(m) = self.kalshi.list.get_mut(i) else {
                continue;
            };
            if m.stream() != Some(stream) {
                continue;
            }
            m.sub = None;
            if !m.valid {
                continue;
            }
            let before = m.state();
            m.invalidate(reason.to_string());
            n += 1;
            self.note_change(Venue::Kalshi, i, before);
        }
        n
    }

    /// The market, if it was ever seen.
    pub fn market(&self, venue: Venue, key: &str) -> Option<&Market> {
        let ms = self.markets(venue);
        ms.find(key).and_then(|i| ms.list.get(i))
    }

    /// Markets of a venue in first-seen order.
    pub fn market_list(&self, venue: Venue) -> &[Market] {
        &self.markets(venue).list
    }

    /// (venue, market) whose top of book or validity changed since the last call.
    pub fn take_changed(&mut self) -> Vec<(Venue, &str)> {
        let changed = std::mem::take(&mut self.changed);
        for &(v, i) in &changed {
            let list = match v {
                Venue::Polymarket => &mut self.poly.list,
                Venue::Kalshi => &mut self.kalshi.list,
            };
            if let Some(m) = list.get_mut(i as usize) {
                m.queued = false;
            }
        }
        changed
            .iter()
            .filter_map(|&(v, i)| self.markets(v).list.get(i as usize).map(|m| (v, m.key())))
            .collect()
    }

    /// Kalshi (sid, ticker) pairs that need a fresh snapshot (the stream dropped: see
    /// [`BookSet::take_resync_streams`]).
    pub fn take_resync(&mut self) -> Vec<(i64, &str)> {
        self.take_resync_streams()
            .into_iter()
            .map(|(_, sid, k)| (sid, k))
            .collect()
    }

    /// Kalshi (stream, sid, ticker) triples that need a fresh snapshot: ask on that stream's
    /// connection, on that sid.
    pub fn take_resync_streams(&mut self) -> Vec<(u64, i64, &str)> {
        let q = std::mem::take(&mut self.resync);
        q.iter()
            .filter_map(|&((stream, sid), i)| {
                self.kalshi
                    .list
                    .get(i as usize)
                    .map(|m| (stream, sid, m.key()))
            })
            .collect()
    }

    /// Marks one market (or every market of the venue) invalid until its next snapshot.
    /// Returns false when the named market was never seen.
    pub fn invalidate(&mut self, venue: Venue, key: Option<&str>, reason: &str) -> bool {
        let idx: Vec<usize> = match key {
            Some(k) => match self.markets(venue).find(k) {
                Some(i) => vec![i],
                None => return false,
            },
            None => (0..self.markets(venue).list.len()).collect(),
        };
        for i in idx {
            let list = match venue {
                Venue::Polymarket => &mut self.poly.list,
                Venue::Kalshi => &mut self.kalshi.list,
            };
            let Some(m) = list.get_mut(i) else { continue };
            let before = m.state();
            m.invalidate(reason.to_string());
            self.note_change(venue, i, before);
        }
        true
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Forgets every book, sequence and queue; keeps the counters and the settings.
    pub fn clear(&mut self) {
        self.poly = Markets::default();
        self.kalshi = Markets::default();
        self.book_seq.clear();
        self.other_seq.clear();
        self.changed.clear();
        self.resync.clear();
    }

    /// Number of markets across both venues.
    pub fn len(&self) -> usize {
        self.poly.list.len() + self.kalshi.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
