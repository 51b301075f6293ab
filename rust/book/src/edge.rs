//! The edge trigger's first look, compiled: does a standing pair intent fire on the books as they are?
//!
//! The same decision as the Python trigger (`crossbook.execution.trigger`), in exact integers:
//!
//! 1. top of book of both legs: for each direction, best YES ask + best NO ask (a NO ask is 1 − the
//!    YES bid) + both venues' fee *rates* below `1 − edge`, neither above `limit`; the cheapest
//!    direction first (ties: the order the directions were given in). A missing or invalid book is
//!    no edge.
//! 2. when both best levels of that direction hold the whole size, the plan at the top of book:
//!    `floor(size)` shares at each best ask, fees per fill as the venues charge them (Kalshi rounds
//!    each fill up to the cent), total below `floor(size) × (1 − edge)`.
//!
//! [`Check::Fire`] only when both hold and both books are fresh (an update or a heartbeat within
//! the staleness limit) and the caller's `enabled` flag is up; an edge that needs more (depth,
//! a smaller size, the breaker's full reading) is [`Check::Slow`]: the full path judges it. The
//! fee-rate sums are compared scaled by 10 000 × 10^6, the fills by 10 000: nothing is rounded.

use crate::book::Top;
use crate::fixed::ONE;
use crate::Venue;

/// An outcome in one venue's own terms (Kalshi's YES may be Polymarket's NO on an inverted pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Yes,
    No,
}

/// One direction of the pair trade: YES bought on one leg, NO on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    pub yes_venue: Venue,
    /// The outcome the YES leg buys, in its venue's terms.
    pub yes_outcome: Outcome,
    pub no_venue: Venue,
    pub no_outcome: Outcome,
}

/// A standing intent's numbers, in units of 10^-6 (sizes: shares × 10^6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRule {
    pub edge: i64,
    pub limit: Option<i64>,
    pub size: i64,
    /// The smallest size a plan may have: max(1 share, Polymarket's minimum order size).
    pub min_size: i64,
    pub poly_fee_bps: i64,
}

/// What the books say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    NoEdge,
    /// An edge the top of book cannot size or vouch for alone: the full path decides.
    Slow,
    /// Fire `direction` (an index into the directions given) for `shares` whole shares at these
    /// asks (units of 10^-6).
    Fire {
        direction: usize,
        yes_ask: i64,
        no_ask: i64,
        shares: i64,
    },
}

/// One leg's book as the check reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegView {
    pub venue: Venue,
    pub top: Top,
    pub valid: bool,
    /// Within the staleness limit (a frame or a heartbeat); read only on an edge.
    pub fresh: bool,
}

const BPS: i128 = 10_000;

fn ask(top: &Top, outcome: Outcome) -> Option<(i64, i64)> {
    match outcome {
        Outcome::Yes => top.ask,
        Outcome::No => top.bid.map(|(p, q)| (ONE - p, q)),
    }
}

/// A venue's marginal taker fee rate at `p`, × 10 000 × 10^6 (in units of 10^-6 × 10^-10): Kalshi
/// 0.07·P·(1−P), Polymarket bps·min(P, 1−P).
fn rate_x(venue: Venue, p: i64, bps: i64) -> i128 {
    let p = i128::from(p);
    let one = i128::from(ONE);
    match venue {
        Venue::Kalshi => 700 * p * (one - p),
        Venue::Polymarket => i128::from(bps) * one * p.min(one - p),
    }
}

/// A venue's fee on one fill of `n` whole shares at `p`, × 10 000 (in units of 10^-6 × 10^-4).
fn fill_fee_x(venue: Venue, n: i64, p: i64, bps: i64) -> i128 {
    let (n, p, one) = (i128::from(n), i128::from(p), i128::from(ONE));
    match venue {
        // ceil(0.07 × n × P × (1 − P) / 0.01) cents; a cent is 10^4 units
        Venue::Kalshi => {
            let num = 7 * n * p * (one - p);
            let den = one * one;
            let cents = (num + den - 1) / den;
            cents * 10_000 * BPS
        }
        // bps / 10 000 × min(P, 1 − P) × n
        Venue::Polymarket => i128::from(bps) * p.min(one - p) * n,
    }
}

fn leg(legs: &[LegView; 2], venue: Venue) -> &LegView {
    if legs[0].venue == venue {
        &legs[0]
    } else {
        &legs[1]
    }
}

/// The decision for one standing intent over both legs' books (see the module docs).
pub fn check(
    rule: &EdgeRule,
    directions: &[Direction],
    legs: &[LegView; 2],
    enabled: bool,
) -> Check {
    if !legs[0].valid || !legs[1].valid {
        return Check::NoEdge;
    }
    let cap_x = BPS * i128::from(ONE) * i128::from(ONE - rule.edge);
    // (index, cost × 10^10, yes ask, no ask, shares both best levels hold)
    let mut best: Option<(usize, i128, i64, i64, i64)> = None;
    for (i, d) in directions.iter().enumerate() {
        let (Some((ya, ys)), Some((na, ns))) = (
            ask(&leg(legs, d.yes_venue).top, d.yes_outcome),
            ask(&leg(legs, d.no_venue).top, d.no_outcome),
        ) else {
            continue;
        };
        if let Some(limit) = rule.limit {
            if ya > limit || na > limit {
                continue;
            }
        }
        let cost = BPS * i128::from(ONE) * (i128::from(ya) + i128::from(na))
            + rate_x(d.yes_venue, ya, rule.poly_fee_bps)
            + rate_x(d.no_venue, na, rule.poly_fee_bps);
        if cost < cap_x && best.is_none_or(|b| cost < b.1) {
            best = Some((i, cost, ya, na, ys.min(ns)));
        }
    }
    let Some((i, _, ya, na, depth)) = best else {
        return Check::NoEdge;
    };
    if !enabled || !legs[0].fresh || !legs[1].fresh || depth < rule.size {
        return Check::Slow;
    }
    let Some(d) = directions.get(i) else {
        return Check::Slow;
    };
    let shares = rule.size / ONE; // floor(size): whole shares
    if shares * ONE < rule.min_size {
        return Check::Slow;
    }
    let n = i128::from(shares);
    let total_x = BPS * n * (i128::from(ya) + i128::from(na))
        + fill_fee_x(d.yes_venue, shares, ya, rule.poly_fee_bps)
        + fill_fee_x(d.no_venue, shares, na, rule.poly_fee_bps);
    if total_x < BPS * n * i128::from(ONE - rule.edge) {
        Check::Fire {
            direction: i,
            yes_ask: ya,
            no_ask: na,
            shares,
        }
    } else {
        Check::Slow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: i64 = ONE / 100; // a cent

    fn view(venue: Venue, bid: (i64, i64), ask: (i64, i64)) -> LegView {
        LegView {
            venue,
            top: Top {
                bid: Some((bid.0 * C, bid.1 * ONE)),
                ask: Some((ask.0 * C, ask.1 * ONE)),
            },
            valid: true,
            fresh: true,
        }
    }

    fn rule(size: i64) -> EdgeRule {
        EdgeRule {
            edge: 2 * C,
            limit: Some(60 * C),
            size: size * ONE,
            min_size: 5 * ONE,
            poly_fee_bps: 0,
        }
    }

    fn dirs() -> Vec<Direction> {
        vec![
            Direction {
                yes_venue: Venue::Polymarket,
                yes_outcome: Outcome::Yes,
                no_venue: Venue::Kalshi,
                no_outcome: Outcome::No,
            },
            Direction {
                yes_venue: Venue::Kalshi,
                yes_outcome: Outcome::Yes,
                no_venue: Venue::Polymarket,
                no_outcome: Outcome::No,
            },
        ]
    }

    #[test]
    fn fires_at_the_top_when_both_levels_hold_the_size() {
        // YES 0.40 on Polymarket + NO 1 − 0.48 = 0.52 on Kalshi + its fee rate 0.07·0.52·0.48 = 0.017472
        let legs = [
            view(Venue::Polymarket, (38, 10), (40, 50)),
            view(Venue::Kalshi, (48, 30), (52, 30)),
        ];
        assert_eq!(
            check(&rule(20), &dirs(), &legs, true),
            Check::Fire {
                direction: 0,
                yes_ask: 40 * C,
                no_ask: 52 * C,
                shares: 20
            }
        );
        // not enough at the top: the full walk decides; disabled or stale: the breaker decides
        assert_eq!(check(&rule(40), &dirs(), &legs, true), Check::Slow);
        assert_eq!(check(&rule(20), &dirs(), &legs, false), Check::Slow);
        let mut stale = legs;
        stale[1].fresh = false;
        assert_eq!(check(&rule(20), &dirs(), &stale, true), Check::Slow);
        // below the minimum order size
        assert_eq!(check(&rule(3), &dirs(), &legs, true), Check::Slow);
    }

    #[test]
    fn no_edge_when_the_fee_rate_eats_it_or_a_book_is_invalid() {
        // 0.45 + 0.52 + 0.0175 = 0.9875 ≥ 0.98
        let legs = [
            view(Venue::Polymarket, (38, 10), (45, 50)),
            view(Venue::Kalshi, (48, 30), (52, 30)),
        ];
        assert_eq!(check(&rule(20), &dirs(), &legs, true), Check::NoEdge);
        let mut legs = [
            view(Venue::Polymarket, (38, 10), (40, 50)),
            view(Venue::Kalshi, (48, 30), (52, 30)),
        ];
        legs[0].valid = false;
        assert_eq!(check(&rule(20), &dirs(), &legs, true), Check::NoEdge);
    }

    #[test]
    fn per_fill_rounding_can_send_it_to_the_full_path() {
        // Size 5, YES 0.46 + NO 0.52: the rates pass (0.46 + 0.52 + 0.017472 = 0.997472 < 0.998, edge
        // 0.002), the fills do not: 5 × 0.98 = 4.90 + Kalshi's ceil(8.736) = 9 cents = 4.99, not below
        // 5 × 0.998 = 4.99. The full path may find a size that keeps the edge (here none does).
        let legs = [
            view(Venue::Polymarket, (38, 10), (46, 50)),
            view(Venue::Kalshi, (48, 30), (52, 30)),
        ];
        let mut r = rule(5);
        r.edge = 2_000; // 0.002
        assert_eq!(check(&r, &dirs(), &legs, true), Check::Slow);
    }

    #[test]
    fn cheapest_direction_first_and_the_limit_applies() {
        // Direction 1: YES on Kalshi 0.30 + NO on Polymarket 1 − 0.62 = 0.38 → 0.68 + 0.0147 (direction 0 costs 1.36)
        let legs = [
            view(Venue::Polymarket, (62, 50), (64, 50)),
            view(Venue::Kalshi, (28, 30), (30, 30)),
        ];
        assert_eq!(
            check(&rule(20), &dirs(), &legs, true),
            Check::Fire {
                direction: 1,
                yes_ask: 30 * C,
                no_ask: 38 * C,
                shares: 20
            }
        );
        let mut r = rule(20);
        r.limit = Some(35 * C);
        assert_eq!(check(&r, &dirs(), &legs, true), Check::NoEdge);
    }

    #[test]
    fn fees_match_the_venues_formulas() {
        // Kalshi: 20 contracts at 0.52 → ceil(0.07·20·0.52·0.48·100) = ceil(34.944) = 35 cents
        assert_eq!(fill_fee_x(Venue::Kalshi, 20, 52 * C, 0), 35 * 10_000 * BPS);
        // Polymarket at 100 bps: 0.01 × min(0.4, 0.6) × 20 = 0.08
        assert_eq!(
            fill_fee_x(Venue::Polymarket, 20, 40 * C, 100),
            8 * C as i128 * BPS
        );
    }
}
