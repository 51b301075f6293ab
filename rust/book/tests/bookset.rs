//! BookSet through its public API: both codecs, validity rules, queues and error reporting.

use crossbook_book::{BookSet, Venue};

const P: Venue = Venue::Polymarket;
const K: Venue = Venue::Kalshi;

type Side = Vec<(String, String)>;

fn levels(bs: &BookSet, v: Venue, m: &str) -> (Side, Side) {
    let mk = bs.market(v, m).expect("market exists");
    let f = |it: &mut dyn Iterator<Item = (i64, i64)>| {
        it.map(|(p, q)| (v.fmt_price(p), v.fmt_size(q))).collect()
    };
    (f(&mut mk.book().bids()), f(&mut mk.book().asks()))
}

fn l(p: &str, q: &str) -> (String, String) {
    (p.to_string(), q.to_string())
}

const BOOK: &str = r#"{"event_type":"book","asset_id":"A","market":"0x1","timestamp":"1700000000123",
  "asks":[{"price":"0.52","size":"25"},{"price":"0.51","size":"10.5"}],
  "bids":[{"price":"0.48","size":"5"},{"price":"0.50","size":"100"},{"price":"0.49","size":"0"}]}"#;

#[test]
fn poly_book_snapshot_and_batched_changes() {
    let mut bs = BookSet::new(false);
    assert_eq!(bs.apply(P, BOOK.as_bytes(), 0), Ok(1));
    let m = bs.market(P, "A").unwrap();
    assert!(m.valid());
    assert_eq!(m.ts_ms(), 1_700_000_000_123);
    assert_eq!(
        levels(&bs, P, "A"),
        (
            vec![l("0.5", "100"), l("0.48", "5")],
            vec![l("0.51", "10.5"), l("0.52", "25")]
        )
    );
    assert_eq!(bs.take_changed(), vec![(P, "A")]);

    let pc = r#"{"market":"0x1","price_changes":[
        {"asset_id":"A","price":"0.5","side":"BUY","size":"0","hash":"h","best_bid":"0.48","best_ask":"0.51"},
        {"asset_id":"A","price":"0.505","side":"SELL","size":"7","hash":"h","best_bid":"0.48","best_ask":"0.505"}],
        "event_type":"price_change","timestamp":"1700000000200"}"#;
    assert_eq!(bs.apply(P, pc.as_bytes(), 5_000_000_000), Ok(1));
    assert_eq!(
        levels(&bs, P, "A"),
        (
            vec![l("0.48", "5")],
            vec![l("0.505", "7"), l("0.51", "10.5"), l("0.52", "25")]
        )
    );
    let m = bs.market(P, "A").unwrap();
    assert_eq!((m.ts_ms(), m.last_update_ns()), (5_000, 5_000_000_000));
    assert_eq!(bs.stats().bba_mismatch, 0);
    assert_eq!(bs.take_changed(), vec![(P, "A")]);
    assert!(bs.take_changed().is_empty());

    // A change that leaves the top alone is not reported; a wrong best_bid is counted.
    let far = r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.9","side":"SELL","size":"1","best_bid":"0.47","best_ask":"0.505"}]}"#;
    assert_eq!(bs.apply(P, far.as_bytes(), 0), Ok(1));
    assert!(bs.take_changed().is_empty());
    assert_eq!(bs.stats().bba_mismatch, 1);
}

#[test]
fn poly_arrays_pong_legacy_and_unknown() {
    let mut bs = BookSet::new(false);
    let arr = format!("[{BOOK}, {}]", BOOK.replace("\"A\"", "\"B\""));
    assert_eq!(bs.apply(P, arr.as_bytes(), 0), Ok(2));
    assert_eq!(
        bs.market_list(P)
            .iter()
            .map(|m| m.key())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(bs.apply(P, b" PONG\n", 0), Ok(0));
    assert_eq!(bs.stats().pongs, 1);
    let legacy = r#"{"asset_id":"B","event_type":"price_change","price":"0.49","side":"BUY","size":"3","timestamp":"1"}"#;
    assert_eq!(bs.apply(P, legacy.as_bytes(), 0), Ok(1));
    assert_eq!(
        levels(&bs, P, "B").0,
        vec![l("0.5", "100"), l("0.49", "3"), l("0.48", "5")]
    );
    assert_eq!(
        bs.apply(P, br#"{"event_type":"brand_new","x":[1,{"y":null}]}"#, 0),
        Ok(0)
    );
    assert_eq!(bs.apply(P, b"[]", 0), Ok(0));
    let s = bs.stats();
    assert_eq!((s.unknown, s.events, s.frames), (1, 3, 5));
}

#[test]
fn poly_no_snapshot_tick_size_epoch_and_resolution() {
    let mut bs = BookSet::new(false);
    let pc = r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.5","side":"BUY","size":"1"}]}"#;
    assert_eq!(bs.apply(P, pc.as_bytes(), 0), Ok(1));
    let m = bs.market(P, "A").unwrap();
    assert!(!m.valid());
    assert_eq!(m.reason(), Some("no book snapshot yet"));
    assert_eq!(m.book().depth(crossbook_book::Side::Bid), 0);
    assert_eq!(bs.stats().ignored, 1);

    bs.apply(P, BOOK.as_bytes(), 0).unwrap();
    let tick = r#"{"event_type":"tick_size_change","asset_id":"A","old_tick_size":"0.01","new_tick_size":"0.001"}"#;
    assert_eq!(bs.apply(P, tick.as_bytes(), 0), Ok(1));
    let m = bs.market(P, "A").unwrap();
    assert!(!m.valid());
    assert_eq!(
        m.reason(),
        Some("tick size changed 0.01 -> 0.001; waiting for a new book snapshot")
    );
    assert_eq!((m.epoch(), m.tick_size()), (1, Some(1_000)));
    assert_eq!(m.top(), Default::default());
    assert_eq!(bs.apply(P, pc.as_bytes(), 0), Ok(1));
    assert_eq!(bs.market(P, "A").unwrap().top(), Default::default());
    bs.apply(P, BOOK.as_bytes(), 0).unwrap();
    assert!(bs.market(P, "A").unwrap().valid());

    let res = r#"{"event_type":"market_resolved","assets_ids":["A","Z"],"winning_outcome":"Yes"}"#;
    assert_eq!(bs.apply(P, res.as_bytes(), 0), Ok(1));
    let m = bs.market(P, "A").unwrap();
    assert_eq!(
        (m.valid(), m.reason()),
        (false, Some("market resolved (winning outcome: Yes)"))
    );
    assert!(bs.market(P, "Z").is_none());
}

#[test]
fn poly_errors_name_field_and_leave_books_alone() {
    let mut bs = BookSet::new(false);
    bs.apply(P, BOOK.as_bytes(), 0).unwrap();
    let before = levels(&bs, P, "A");
    let cases: &[(&str, &str)] = &[
        (
            r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"1.5","side":"BUY","size":"1"}]}"#,
            "price above 1",
        ),
        (
            r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"-0.5","side":"BUY","size":"1"}]}"#,
            "negative",
        ),
        (
            r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.1234567","side":"BUY","size":"1"}]}"#,
            "decimal",
        ),
        (
            r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"abc","side":"BUY","size":"1"}]}"#,
            "abc",
        ),
        (
            r#"{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.5","side":"HOLD","size":"1"}]}"#,
            "side",
        ),
        (
            r#"{"event_type":"book","asset_id":"A","bids":[{"price":"0.5","size":"x"}],"asks":[]}"#,
            "bids.size",
        ),
        (r#"{"event_type":"book","bids":[],"asks":[]}"#, "asset_id"),
        (
            r#"{"event_type":"book","asset_id":"A","bids":[{"price":"0.5","size":"1"}"#,
            "invalid JSON",
        ),
        ("", "empty"),
        ("PING", "invalid JSON"),
        ("42", "expected a JSON object"),
        ("[1]", "expected an event object"),
    ];
    for (frame, needle) in cases {
        let e = bs.apply(P, frame.as_bytes(), 0).expect_err(frame);
        let msg = e.to_string();
        assert!(msg.starts_with("polymarket"), "{msg}");
        assert!(msg.contains(needle), "{msg} should mention {needle}");
        assert!(msg.len() < 300, "{msg}");
    }
    // Atomic: a good event followed by a bad one applies nothing.
    let arr = r#"[{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.5","side":"BUY","size":"0"}]},
                  {"event_type":"price_change","price_changes":[{"asset_id":"A","price":"2","side":"BUY","size":"1"}]}]"#;
    let e = bs.apply(P, arr.as_bytes(), 0).unwrap_err();
    assert_eq!(e.field, "price_changes.price");
    assert_eq!(levels(&bs, P, "A"), before);
    assert_eq!(bs.apply(P, b"\xff\xfe", 0).unwrap_err().field, "frame");
    assert_eq!(bs.stats().malformed, cases.len() as u64 + 2);
}

const KSNAP: &str = r#"{"type":"orderbook_snapshot","sid":2,"seq":2,"msg":{"market_ticker":"FED","market_id":"x",
  "yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]],"no_dollars_fp":[["0.5400","20.00"],["0.5600","146.00"]]}}"#;

fn kdelta(sid: i64, seq: i64, ticker: &str, side: &str, price: &str, delta: &str) -> String {
    format!(
        r#"{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"{ticker}","price_dollars":"{price}","delta_fp":"{delta}","side":"{side}","ts_ms":1669149841000}}}}"#
    )
}

#[test]
fn kalshi_snapshot_is_the_yes_book() {
    let mut bs = BookSet::new(false);
    assert_eq!(bs.apply(K, KSNAP.as_bytes(), 0), Ok(1));
    assert_eq!(
        levels(&bs, K, "FED"),
        (
            vec![l("0.2200", "333.00"), l("0.0800", "300.00")],
            vec![l("0.4400", "146.00"), l("0.4600", "20.00")]
        )
    );
    assert_eq!(
        bs.apply(
            K,
            kdelta(2, 3, "FED", "no", "0.5600", "-46.00").as_bytes(),
            0
        ),
        Ok(1)
    );
    assert_eq!(
        bs.apply(K, kdelta(2, 4, "FED", "yes", "0.2250", "1.5").as_bytes(), 0),
        Ok(1)
    );
    assert_eq!(
        levels(&bs, K, "FED"),
        (
            vec![
                l("0.2250", "1.50"),
                l("0.2200", "333.00"),
                l("0.0800", "300.00")
            ],
            vec![l("0.4400", "100.00"), l("0.4600", "20.00")]
        )
    );
    assert_eq!(bs.market(K, "FED").unwrap().ts_ms(), 1_669_149_841_000);
    assert_eq!(
        bs.apply(
            K,
            kdelta(2, 5, "FED", "no", "0.5600", "-100.00").as_bytes(),
            0
        ),
        Ok(1)
    );
    assert_eq!(levels(&bs, K, "FED").1, vec![l("0.4600", "20.00")]);

    // use_yes_price: NO-side prices are already YES asks; old field names accepted; msg first.
    let mut ys = BookSet::new(true);
    let snap = r#"{"msg":{"market_ticker":"T","yes_dollars":[["0.40","1"]],"no_dollars":[["0.46","2"],["0.45","3"]]},"type":"orderbook_snapshot","sid":1,"seq":1}"#;
    assert_eq!(ys.apply(K, snap.as_bytes(), 0), Ok(1));
    assert_eq!(
        levels(&ys, K, "T"),
        (
            vec![l("0.4000", "1.00")],
            vec![l("0.4500", "3.00"), l("0.4600", "2.00")]
        )
    );
    assert_eq!(
        ys.apply(K, kdelta(1, 2, "T", "no", "0.4400", "4").as_bytes(), 0),
        Ok(1)
    );
    assert_eq!(levels(&ys, K, "T").1.first(), Some(&l("0.4400", "4.00")));
}

#[test]
fn kalshi_gaps_negative_sizes_and_resync() {
    let mut bs = BookSet::new(false);
    bs.apply(K, KSNAP.as_bytes(), 0).unwrap();
    bs.apply(
        K,
        KSNAP
            .replace("FED", "CPI")
            .replace("\"seq\":2", "\"seq\":3")
            .as_bytes(),
        0,
    )
    .unwrap();
    bs.take_changed();
    // seq 5 after 3: gap on sid 2 invalidates both markets and queues both for resync.
    assert_eq!(
        bs.apply(K, kdelta(2, 5, "FED", "yes", "0.2200", "1").as_bytes(), 7),
        Ok(1)
    );
    for t in ["FED", "CPI"] {
        let m = bs.market(K, t).unwrap();
        assert!(!m.valid());
        assert_eq!(
            m.reason(),
            Some("sequence gap on sid 2: expected 4, got 5; waiting for a snapshot")
        );
    }
    assert_eq!(
        levels(&bs, K, "FED").0.first(),
        Some(&l("0.2200", "333.00"))
    );
    assert_eq!(bs.stats().gaps, 1);
    assert_eq!(bs.take_resync(), vec![(2, "FED"), (2, "CPI")]);
    assert!(bs.take_resync().is_empty());
    assert_eq!(bs.take_changed().len(), 2);
    // Deltas while invalid are not applied; tracking continues from the new seq.
    bs.apply(K, kdelta(2, 6, "FED", "yes", "0.2200", "1").as_bytes(), 0)
        .unwrap();
    assert_eq!(bs.stats().ignored, 2);
    assert_eq!(bs.stats().gaps, 1);
    bs.apply(K, KSNAP.replace("\"seq\":2", "\"seq\":7").as_bytes(), 0)
        .unwrap();
    assert!(bs.market(K, "FED").unwrap().valid());
    assert!(!bs.market(K, "CPI").unwrap().valid());

    // A delta taking a level negative invalidates the book and asks for a snapshot.
    bs.apply(
        K,
        kdelta(2, 8, "FED", "yes", "0.9600", "-54.00").as_bytes(),
        0,
    )
    .unwrap();
    let m = bs.market(K, "FED").unwrap();
    assert!(!m.valid());
    assert!(
        m.reason()
            .unwrap()
            .contains("delta -54.00 at yes 0.9600 would leave size -54.00"),
        "{:?}",
        m.reason()
    );
    assert_eq!(bs.take_resync(), vec![(2, "FED")]);

    // A delta for an unknown market creates an invalid book and is not applied.
    bs.apply(K, kdelta(9, 1, "NEW", "yes", "0.1", "1").as_bytes(), 0)
        .unwrap();
    let m = bs.market(K, "NEW").unwrap();
    assert_eq!(
        (m.valid(), m.reason(), m.top().bid),
        (false, Some("no book snapshot yet"), None)
    );
}

#[test]
fn kalshi_non_book_messages_and_errors() {
    let mut bs = BookSet::new(false);
    for ok in [
        r#"{"type":"trade","sid":11,"seq":2,"msg":{"market_ticker":"X","yes_price_dollars":"0.36"}}"#,
        r#"{"type":"trade","sid":11,"seq":9,"msg":{}}"#,
        r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
        r#"{"id":123,"type":"error","msg":{"code":7,"msg":"Unknown subscription ID"}}"#,
        r#"{"id":2,"cmd":"subscribe","params":{"channels":["ticker"]}}"#,
    ] {
        assert_eq!(bs.apply(K, ok.as_bytes(), 0), Ok(1), "{ok}");
    }
    assert_eq!(bs.stats().gaps, 0);
    assert_eq!(bs.apply(K, br#"{"type":"mystery","msg":{}}"#, 0), Ok(0));
    assert_eq!(bs.apply(K, br#"{"orderbook_fp":{}}"#, 0), Ok(0));
    assert_eq!(bs.stats().unknown, 2);
    assert!(bs.is_empty());
    for (bad, field) in [
        (
            r#"{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"X","price_dollars":"1.01","delta_fp":"1","side":"yes"}}"#,
            "msg.price_dollars",
        ),
        (
            r#"{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"X","price_dollars":"0.1","delta_fp":"1","side":"maybe"}}"#,
            "msg.side",
        ),
        (
            r#"{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"price_dollars":"0.1","delta_fp":"1","side":"yes"}}"#,
            "msg.market_ticker",
        ),
        (
            r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"X","yes_dollars_fp":[["0.1"]]}}"#,
            "msg.yes_dollars_fp",
        ),
        (
            r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"X","no_dollars_fp":[["0.1","-1"]]}}"#,
            "msg.no_dollars_fp.count",
        ),
        (
            r#"{"type":"orderbook_snapshot","sid":"one","seq":1,"msg":{}}"#,
            "sid",
        ),
        (
            r#"{"type":"orderbook_snapshot","sid":1,"seq":1.5,"msg":{}}"#,
            "seq",
        ),
        (r#"{"type":7}"#, "type"),
        (r#"[1]"#, "frame"),
        (r#"{"type":"trade""#, "frame"),
    ] {
        let e = bs.apply(K, bad.as_bytes(), 0).expect_err(bad);
        assert_eq!(e.field, field, "{bad}: {e}");
        assert!(e.to_string().starts_with("kalshi"));
    }
    assert!(bs.is_empty());
}

#[test]
fn invalidate_clear_and_change_queue() {
    let mut bs = BookSet::new(false);
    bs.apply(P, BOOK.as_bytes(), 0).unwrap();
    bs.apply(K, KSNAP.as_bytes(), 0).unwrap();
    assert_eq!(bs.take_changed(), vec![(P, "A"), (K, "FED")]);
    assert!(bs.invalidate(K, Some("FED"), "feed down"));
    assert!(!bs.invalidate(K, Some("NOPE"), "feed down"));
    assert_eq!(bs.market(K, "FED").unwrap().reason(), Some("feed down"));
    assert!(bs.invalidate(P, None, "reconnecting"));
    assert_eq!(bs.take_changed(), vec![(K, "FED"), (P, "A")]);
    // Deltas are refused until the next snapshot.
    bs.apply(K, kdelta(2, 3, "FED", "yes", "0.5", "1").as_bytes(), 0)
        .unwrap();
    assert_eq!(
        bs.market(K, "FED").unwrap().top().bid,
        Some((220_000, 333_000_000))
    );
    assert_eq!(bs.len(), 2);
    bs.clear();
    assert!(bs.is_empty());
    assert!(bs.take_changed().is_empty());
    assert_eq!(bs.stats().frames, 3);
    // After clear the seq expectation is gone too: no gap.
    bs.apply(K, KSNAP.replace("\"seq\":2", "\"seq\":40").as_bytes(), 0)
        .unwrap();
    assert_eq!(bs.stats().gaps, 0);
}

fn ksnap(sid: i64, seq: i64, ticker: &str) -> String {
    KSNAP
        .replace("\"sid\":2", &format!("\"sid\":{sid}"))
        .replace("\"seq\":2", &format!("\"seq\":{seq}"))
        .replace("FED", ticker)
}

#[test]
fn kalshi_streams_with_the_same_sid_interleave_without_gaps() {
    // Two connections (streams 1 and 2), each with its own sid 1 numbered from seq 1.
    let mut bs = BookSet::new(false);
    bs.apply_on(K, ksnap(1, 1, "A").as_bytes(), 0, 1).unwrap();
    bs.apply_on(K, ksnap(1, 1, "B").as_bytes(), 0, 2).unwrap();
    for seq in 2..20 {
        bs.apply_on(
            K,
            kdelta(1, seq, "A", "yes", "0.0100", "1").as_bytes(),
            0,
            1,
        )
        .unwrap();
        bs.apply_on(
            K,
            kdelta(1, seq, "B", "yes", "0.0100", "1").as_bytes(),
            0,
            2,
        )
        .unwrap();
    }
    assert_eq!(bs.stats().gaps, 0);
    assert!(bs.take_resync_streams().is_empty());
    for t in ["A", "B"] {
        let m = bs.market(K, t).unwrap();
        assert!(m.valid(), "{t}: {:?}", m.reason());
        assert_eq!(levels(&bs, K, t).0.last(), Some(&l("0.0100", "18.00")));
    }
    assert_eq!(bs.market(K, "A").unwrap().stream(), Some(1));
    assert_eq!(bs.market(K, "B").unwrap().stream(), Some(2));
    assert_eq!(bs.market(K, "B").unwrap().sid(), Some(1));

    // The same interleaving on one stream (the old, sid-only keying) is a gap: stream matters.
    let mut one = BookSet::new(false);
    one.apply(K, ksnap(1, 1, "A").as_bytes(), 0).unwrap();
    one.apply(K, ksnap(1, 1, "B").as_bytes(), 0).unwrap();
    assert_eq!(one.stats().gaps, 1);
}

#[test]
fn kalshi_gap_on_one_stream_invalidates_only_its_markets() {
    let mut bs = BookSet::new(false);
    bs.apply_on(K, ksnap(1, 1, "A").as_bytes(), 0, 7).unwrap();
    bs.apply_on(K, ksnap(1, 2, "A2").as_bytes(), 0, 7).unwrap();
    bs.apply_on(K, ksnap(1, 1, "B").as_bytes(), 0, 8).unwrap();
    bs.take_changed();
    // Stream 7 skips seq 3.
    bs.apply_on(K, kdelta(1, 4, "A", "yes", "0.0100", "1").as_bytes(), 0, 7)
        .unwrap();
    assert_eq!(bs.stats().gaps, 1);
    for t in ["A", "A2"] {
        let m = bs.market(K, t).unwrap();
        assert!(!m.valid());
        assert_eq!(
            m.reason(),
            Some("sequence gap on sid 1 (stream 7): expected 3, got 4; waiting for a snapshot")
        );
    }
    assert!(bs.market(K, "B").unwrap().valid());
    let mut changed = bs.take_changed();
    changed.sort_unstable();
    assert_eq!(changed, vec![(K, "A"), (K, "A2")]);
    assert_eq!(bs.take_resync_streams(), vec![(7, 1, "A"), (7, 1, "A2")]);
    // Stream 8 carries on from its own seq.
    bs.apply_on(K, kdelta(1, 2, "B", "yes", "0.0100", "1").as_bytes(), 0, 8)
        .unwrap();
    assert_eq!(bs.stats().gaps, 1);
    assert!(bs.market(K, "B").unwrap().valid());
    // The snapshot on stream 7 heals A (and unqueues it), A2 waits for its own.
    bs.apply_on(K, ksnap(1, 5, "A").as_bytes(), 0, 7).unwrap();
    assert!(bs.market(K, "A").unwrap().valid());
    assert!(!bs.market(K, "A2").unwrap().valid());
    assert_eq!(bs.stats().gaps, 1);

    // A negative level queues the frame's (stream, sid); take_resync still reports (sid, ticker).
    bs.apply_on(K, kdelta(1, 3, "B", "yes", "0.9000", "-1").as_bytes(), 0, 8)
        .unwrap();
    assert!(!bs.market(K, "B").unwrap().valid());
    assert_eq!(bs.take_resync(), vec![(1, "B")]);
}

#[test]
fn kalshi_forget_stream_then_seq_restarts_clean() {
    let mut bs = BookSet::new(false);
    bs.apply_on(K, ksnap(1, 1, "A").as_bytes(), 0, 1).unwrap();
    bs.apply_on(K, kdelta(1, 2, "A", "yes", "0.0100", "1").as_bytes(), 0, 1)
        .unwrap();
    bs.apply_on(K, ksnap(1, 1, "B").as_bytes(), 0, 2).unwrap();
    bs.apply_on(K, ksnap(1, 2, "C").as_bytes(), 0, 2).unwrap();
    // A gap queued on stream 2 is dropped with the stream.
    bs.apply_on(K, kdelta(1, 9, "B", "yes", "0.0100", "1").as_bytes(), 0, 2)
        .unwrap();
    assert!(bs.invalidate(K, Some("C"), "unsubscribed"));
    assert_eq!(bs.stats().gaps, 1);
    bs.take_changed();
    assert_eq!(bs.forget_stream(P, 1, "x"), 0);
    assert_eq!(bs.forget_stream(K, 1, "feed disconnected"), 1);
    let a = bs.market(K, "A").unwrap();
    assert_eq!(
        (a.valid(), a.reason(), a.stream()),
        (false, Some("feed disconnected"), None)
    );
    assert!(!bs.market(K, "B").unwrap().valid());
    assert_eq!(bs.take_changed(), vec![(K, "A")]);
    assert_eq!(bs.forget_stream(K, 2, "feed disconnected"), 0);
    assert!(bs.take_resync_streams().is_empty());
    // Already invalid books keep their reason.
    assert_eq!(bs.market(K, "C").unwrap().reason(), Some("unsubscribed"));
    // The same stream id again (or a new one) numbers from seq 1: no gap, books rebuilt.
    bs.apply_on(K, ksnap(1, 1, "A").as_bytes(), 0, 1).unwrap();
    bs.apply_on(K, kdelta(1, 2, "A", "yes", "0.0100", "1").as_bytes(), 0, 1)
        .unwrap();
    bs.apply_on(K, ksnap(1, 1, "B").as_bytes(), 0, 3).unwrap();
    assert_eq!(bs.stats().gaps, 1);
    assert!(bs.market(K, "A").unwrap().valid());
    assert!(bs.market(K, "B").unwrap().valid());
    assert_eq!(bs.market(K, "B").unwrap().stream(), Some(3));
    // Other streams are untouched by forgetting one.
    bs.apply_on(K, kdelta(1, 2, "B", "yes", "0.0100", "1").as_bytes(), 0, 3)
        .unwrap();
    assert_eq!(bs.forget_stream(K, 1, "gone"), 1);
    bs.apply_on(K, kdelta(1, 3, "B", "yes", "0.0100", "1").as_bytes(), 0, 3)
        .unwrap();
    assert!(bs.market(K, "B").unwrap().valid());
    assert_eq!(bs.stats().gaps, 1);
}
