//! One L2 book: price levels per side as sorted vectors with the best level LAST, so the updates
//! that dominate real feeds (near the top) move few elements.

/// (price, size), both in units of 10^-6.
pub type Level = (i64, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

/// The best price and size per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Top {
    pub bid: Option<Level>,
    pub ask: Option<Level>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Ascending by price: best (highest) bid last.
    bids: Vec<Level>,
    /// Descending by price: best (lowest) ask last.
    asks: Vec<Level>,
}

/// A delta would take a level below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeLevel {
    pub price: i64,
    pub size: i64,
}

impl Book {
    pub fn new() -> Self {
        Book::default()
    }

    fn side_mut(&mut self, side: Side) -> &mut Vec<Level> {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    #[inline]
    fn find(levels: &[Level], side: Side, price: i64) -> Result<usize, usize> {
        match side {
            Side::Bid => levels.binary_search_by(|l| l.0.cmp(&price)),
            Side::Ask => levels.binary_search_by(|l| price.cmp(&l.0)),
        }
    }

    /// Sets the aggregate size at a price; 0 (or less) removes the level.
    pub fn set(&mut self, side: Side, price: i64, size: i64) {
        let levels = self.side_mut(side);
        match Self::find(levels, side, price) {
            Ok(i) => {
                if size > 0 {
                    if let Some(l) = levels.get_mut(i) {
                        l.1 = size;
                    }
                } else {
                    levels.remove(i);
                }
            }
            Err(i) => {
                if size > 0 {
                    levels.insert(i, (price, size));
                }
            }
        }
    }

    /// Adds a signed delta to a level. A result of 0 removes the level; a negative result leaves
    /// the book untouched and is returned as an error (the book can no longer be trusted).
    pub fn add(&mut self, side: Side, price: i64, delta: i64) -> Result<(), NegativeLevel> {
        let levels = self.side_mut(side);
        match Self::find(levels, side, price) {
            Ok(i) => {
                let old = levels.get(i).map_or(0, |l| l.1);
                let new = old.saturating_add(delta);
                if new < 0 {
                    return Err(NegativeLevel { price, size: new });
                }
                if new == 0 {
                    levels.remove(i);
                } else if let Some(l) = levels.get_mut(i) {
                    l.1 = new;
                }
            }
            Err(i) => {
                if delta < 0 {
                    return Err(NegativeLevel { price, size: delta });
                }
                if delta > 0 {
                    levels.insert(i, (price, delta));
                }
            }
        }
        Ok(())
    }

    /// Replaces a side with the given levels (any order; for a repeated price the last one wins;
    /// zero sizes are dropped).
    pub fn replace_side(&mut self, side: Side, levels: &[Level]) {
        let v = self.side_mut(side);
        v.clear();
        v.extend_from_slice(levels);
        // Stable sort keeps arrival order within a price, so dedup can keep the last one.
        match side {
            Side::Bid => v.sort_by_key(|l| l.0),
            Side::Ask => v.sort_by_key(|l| std::cmp::Reverse(l.0)),
        }
        let mut w = 0usize;
        for r in 0..v.len() {
            let cur = match v.get(r) {
                Some(&c) => c,
                None => break,
            };
            let next_same = v.get(r + 1).is_some_and(|n| n.0 == cur.0);
            if !next_same && cur.1 > 0 {
                if let Some(slot) = v.get_mut(w) {
                    *slot = cur;
                }
                w += 1;
            }
        }
        v.truncate(w);
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    #[inline]
    pub fn top(&self) -> Top {
        Top {
            bid: self.bids.last().copied(),
            ask: self.asks.last().copied(),
        }
    }

    /// Levels best first.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = Level> + '_ {
        self.bids.iter().rev().copied()
    }

    /// Levels best first.
    pub fn asks(&self) -> impl ExactSizeIterator<Item = Level> + '_ {
        self.asks.iter().rev().copied()
    }

    pub fn depth(&self, side: Side) -> usize {
        match side {
            Side::Bid => self.bids.len(),
            Side::Ask => self.asks.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn set_and_order() {
        let mut b = Book::new();
        b.set(Side::Bid, 400_000, 5);
        b.set(Side::Bid, 500_000, 7);
        b.set(Side::Bid, 450_000, 1);
        b.set(Side::Ask, 600_000, 2);
        b.set(Side::Ask, 550_000, 3);
        assert_eq!(
            b.bids().collect::<Vec<_>>(),
            vec![(500_000, 7), (450_000, 1), (400_000, 5)]
        );
        assert_eq!(
            b.asks().collect::<Vec<_>>(),
            vec![(550_000, 3), (600_000, 2)]
        );
        assert_eq!(
            b.top(),
            Top {
                bid: Some((500_000, 7)),
                ask: Some((550_000, 3))
            }
        );
        b.set(Side::Bid, 500_000, 0);
        assert_eq!(b.top().bid, Some((450_000, 1)));
        assert_eq!(
            b.add(Side::Ask, 550_000, -4),
            Err(NegativeLevel {
                price: 550_000,
                size: -1
            })
        );
        assert_eq!(b.add(Side::Ask, 550_000, -3), Ok(()));
        assert_eq!(b.top().ask, Some((600_000, 2)));
    }

    #[test]
    fn replace_dedups_last_wins() {
        let mut b = Book::new();
        b.replace_side(
            Side::Ask,
            &[(3, 1), (1, 1), (3, 9), (2, 0), (2, 4), (5, 1), (5, 0)],
        );
        assert_eq!(b.asks().collect::<Vec<_>>(), vec![(1, 1), (2, 4), (3, 9)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Snapshot(Vec<(i64, i64)>, Vec<(i64, i64)>),
        Set(bool, i64, i64),
        Add(bool, i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let lvl = (0i64..20, 0i64..50);
        prop_oneof![
            1 => (prop::collection::vec(lvl.clone(), 0..12), prop::collection::vec(lvl, 0..12))
                .prop_map(|(b, a)| Op::Snapshot(b, a)),
            4 => (any::<bool>(), 0i64..20, 0i64..50).prop_map(|(s, p, q)| Op::Set(s, p, q)),
            4 => (any::<bool>(), 0i64..20, -30i64..50).prop_map(|(s, p, q)| Op::Add(s, p, q)),
        ]
    }

    proptest! {
        #[test]
        fn matches_btreemap_model(ops in prop::collection::vec(op(), 0..80)) {
            let mut book = Book::new();
            let mut model: [BTreeMap<i64, i64>; 2] = [BTreeMap::new(), BTreeMap::new()];
            for op in ops {
                match op {
                    Op::Snapshot(b, a) => {
                        book.replace_side(Side::Bid, &b);
                        book.replace_side(Side::Ask, &a);
                        for (m, lv) in model.iter_mut().zip([b, a]) {
                            m.clear();
                            for (p, q) in lv { if q > 0 { m.insert(p, q); } else { m.remove(&p); } }
                        }
                    }
                    Op::Set(s, p, q) => {
                        book.set(if s { Side::Bid } else { Side::Ask }, p, q);
                        let m = &mut model[usize::from(!s)];
                        if q > 0 { m.insert(p, q); } else { m.remove(&p); }
                    }
                    Op::Add(s, p, d) => {
                        let r = book.add(if s { Side::Bid } else { Side::Ask }, p, d);
                        let m = &mut model[usize::from(!s)];
                        let new = m.get(&p).copied().unwrap_or(0) + d;
                        if new < 0 {
                            prop_assert!(r.is_err());
                        } else {
                            prop_assert!(r.is_ok());
                            if new == 0 { m.remove(&p); } else { m.insert(p, new); }
                        }
                    }
                }
                let bids: Vec<_> = model[0].iter().rev().map(|(&p, &q)| (p, q)).collect();
                let asks: Vec<_> = model[1].iter().map(|(&p, &q)| (p, q)).collect();
                prop_assert_eq!(book.bids().collect::<Vec<_>>(), bids);
                prop_assert_eq!(book.asks().collect::<Vec<_>>(), asks);
            }
        }
    }
}
