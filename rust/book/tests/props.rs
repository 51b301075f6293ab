//! Property tests: no input panics, and random snapshot/delta streams match a simple model.

use std::collections::BTreeMap;

use crossbook_book::{BookSet, Venue};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    r#"{"event_type":"book","asset_id":"A","bids":[{"price":"0.48","size":"5"}],"asks":[{"price":"0.52","size":"1"}],"tick_size":"0.01","timestamp":"1"}"#,
    r#"[{"event_type":"price_change","price_changes":[{"asset_id":"A","price":"0.5","side":"BUY","size":"1","best_bid":"0.5","best_ask":"0.52"}]}]"#,
    r#"{"asset_id":"A","event_type":"price_change","price":"0.514","side":"SELL","size":"21574.08"}"#,
    r#"{"event_type":"tick_size_change","asset_id":"A","old_tick_size":"0.01","new_tick_size":"0.001"}"#,
    r#"{"event_type":"market_resolved","assets_ids":["A"],"winning_outcome":"Yes"}"#,
    r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"K","yes_dollars_fp":[["0.35","200.00"]],"no_dollars_fp":[["0.54","4"]]}}"#,
    r#"{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"K","price_dollars":"0.35","delta_fp":"-50.00","side":"yes","ts_ms":5}}"#,
    r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
    "PONG",
];

fn hammer(frame: &[u8]) {
    for v in [Venue::Polymarket, Venue::Kalshi] {
        for yes in [false, true] {
            let mut bs = BookSet::new(yes);
            for seed in SEEDS {
                let _ = bs.apply(v, seed.as_bytes(), 1);
            }
            let before = bs.stats();
            let r = bs.apply(v, frame, 2);
            let after = bs.stats();
            assert_eq!(after.frames, before.frames + 1);
            assert_eq!(after.malformed - before.malformed, u64::from(r.is_err()));
            if let Err(e) = r {
                assert!(e.to_string().len() < 400);
            }
            let _ = bs.take_changed();
            let _ = bs.take_resync();
        }
    }
}

/// A seed frame with a few bytes overwritten, inserted or cut: near-valid JSON reaches deep.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    )
        .prop_map(|(i, edits)| {
            let mut v = SEEDS[i].as_bytes().to_vec();
            for (at, b, kind) in edits {
                if v.is_empty() {
                    break;
                }
                let at = at.index(v.len());
                match kind {
                    0 => v[at] = b,
                    1 => v.insert(at, b),
                    _ => v.truncate(at),
                }
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..200)) {
        hammer(&frame);
    }

    #[test]
    fn json_shaped_text_never_panics(frame in r#"[\[\]{}":,0-9a-z_. \-\\]{0,120}"#) {
        hammer(frame.as_bytes());
    }

    #[test]
    fn mutated_frames_never_panic(frame in mutated()) {
        hammer(&frame);
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Snapshot(Vec<(u8, u16)>, Vec<(u8, u16)>),
    Delta(bool, u8, i32),
}

fn msg() -> impl Strategy<Value = Msg> {
    let lv = (1u8..100, 0u16..500);
    prop_oneof![
        1 => (prop::collection::vec(lv.clone(), 0..8), prop::collection::vec(lv, 0..8)).prop_map(|(y, n)| Msg::Snapshot(y, n)),
        6 => (any::<bool>(), 1u8..100, -300i32..300).prop_map(|(y, p, d)| Msg::Delta(y, p, d)),
    ]
}

fn cents(p: u8) -> String {
    format!("0.{p:02}00")
}

proptest! {
    #[test]
    fn kalshi_stream_matches_model(msgs in prop::collection::vec(msg(), 1..60), yes_price in any::<bool>()) {
        let mut bs = BookSet::new(yes_price);
        // model: YES bids, NO bids by cents; valid flag.
        let mut yes: BTreeMap<u8, i64> = BTreeMap::new();
        let mut no: BTreeMap<u8, i64> = BTreeMap::new();
        let mut valid = false;
        let mut seen = false;
        for (i, m) in msgs.iter().enumerate() {
            let seq = i as i64 + 1;
            let frame = match m {
                Msg::Snapshot(y, n) => {
                    yes.clear();
                    no.clear();
                    for &(p, q) in y { yes.insert(p, i64::from(q)); }
                    for &(p, q) in n { no.insert(p, i64::from(q)); }
                    yes.retain(|_, q| *q > 0);
                    no.retain(|_, q| *q > 0);
                    valid = true;
                    seen = true;
                    let arr = |v: &Vec<(u8, u16)>| v.iter().map(|&(p, q)| format!(r#"["{}","{}.00"]"#, cents(p), q)).collect::<Vec<_>>().join(",");
                    format!(r#"{{"type":"orderbook_snapshot","sid":3,"seq":{seq},"msg":{{"market_ticker":"M","yes_dollars_fp":[{}],"no_dollars_fp":[{}]}}}}"#, arr(y), arr(n))
                }
                Msg::Delta(is_yes, p, d) => {
                    if valid {
                        let side = if *is_yes { &mut yes } else { &mut no };
                        let new = side.get(p).copied().unwrap_or(0) + i64::from(*d);
                        if new < 0 { valid = false; } else if new == 0 { side.remove(p); } else { side.insert(*p, new); }
                    }
                    format!(r#"{{"type":"orderbook_delta","sid":3,"seq":{seq},"msg":{{"market_ticker":"M","price_dollars":"{}","delta_fp":"{}.00","side":"{}"}}}}"#,
                        cents(*p), d, if *is_yes { "yes" } else { "no" })
                }
            };
            prop_assert_eq!(bs.apply(Venue::Kalshi, frame.as_bytes(), 0), Ok(1));
            if !seen { continue; }
            let mk = bs.market(Venue::Kalshi, "M").unwrap();
            prop_assert_eq!(mk.valid(), valid);
            if valid {
                let bids: Vec<(i64, i64)> = yes.iter().rev().map(|(&p, &q)| (i64::from(p) * 10_000, q * 1_000_000)).collect();
                let mut asks: Vec<(i64, i64)> = no.iter().map(|(&p, &q)| {
                    let p = i64::from(p) * 10_000;
                    (if yes_price { p } else { 1_000_000 - p }, q * 1_000_000)
                }).collect();
                asks.sort();
                prop_assert_eq!(mk.book().bids().collect::<Vec<_>>(), bids);
                prop_assert_eq!(mk.book().asks().collect::<Vec<_>>(), asks);
            }
        }
    }
}
