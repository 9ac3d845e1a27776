//! The contract's default model (`social_v1`) and its selection, written the
//! plain way: nested loops over the raw rows of a [`World`], no graph, no
//! accumulator, no parallelism. It is slow on purpose and easy to check line
//! by line against `docs/contract.md` §2–§3; the property tests hold the
//! pipeline to it.

use crate::world::{DAY, World};

/// The `[model]` and `[selection]` settings, with the contract's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub lookback_days: i64,
    pub half_life_days: f64,
    pub mutual_bonus: f64,
    pub w_proof: f64,
    pub w_buyers: f64,
    pub w_popularity: f64,
    pub w_price: f64,
    pub fatigue_max_impressions: i64,
    pub fatigue_days: i64,
    pub sensitive_categories: Vec<String>,
    pub positions: Vec<i32>,
    pub min_buyers: i64,
    pub min_score: f64,
    pub max_per_merchant: i64,
    pub max_per_category: i64,
    pub max_buyers_shown: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            lookback_days: 30,
            half_life_days: 7.0,
            mutual_bonus: 0.5,
            w_proof: 1.0,
            w_buyers: 0.5,
            w_popularity: -0.1,
            w_price: 0.2,
            fatigue_max_impressions: 3,
            fatigue_days: 14,
            sensitive_categories: Vec::new(),
            positions: vec![4, 14, 30],
            min_buyers: 1,
            min_score: 0.2,
            max_per_merchant: 1,
            max_per_category: 2,
            max_buyers_shown: 3,
        }
    }
}

/// One expected output row (the columns that depend on the inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub user_id: i64,
    pub slot: i8,
    pub position: i32,
    pub product_id: i64,
    pub merchant_id: i64,
    pub score: f64,
    pub buyer_count: i32,
    pub top_buyer_ids: Vec<i64>,
}

/// Rounds to 9 decimal places, halves away from zero.
pub fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// A scored candidate before selection.
struct Candidate {
    product_id: i64,
    merchant_id: i64,
    category: Option<String>,
    score: f64,
    /// (buyer_id, rounded tie·recency) of every supporting buyer.
    buyers: Vec<(i64, f64)>,
}

/// The slots the contract asks for, sorted by user_id then slot.
pub fn reference(world: &World, params: &Params, as_of: i64) -> Vec<Expected> {
    let no_users = Vec::new();
    let no_blocks = Vec::new();
    let no_impressions = Vec::new();
    let users = world.users.as_ref().unwrap_or(&no_users);
    let blocks = world.blocks.as_ref().unwrap_or(&no_blocks);
    let impressions = world.impressions.as_ref().unwrap_or(&no_impressions);

    let window_start = as_of - params.lookback_days * DAY;
    let in_window = |t: i64| window_start <= t && t < as_of;
    let fatigue_start = as_of - params.fatigue_days * DAY;
    let in_fatigue_window = |t: i64| fatigue_start <= t && t < as_of;

    let opted_out = |id: i64| {
        users
            .iter()
            .any(|r| r.user_id == id && r.promotions_opt_out == Some(true))
    };
    let suspended = |id: i64| {
        users
            .iter()
            .any(|r| r.user_id == id && r.suspended == Some(true))
    };
    let hides = |id: i64| {
        users
            .iter()
            .any(|r| r.user_id == id && r.hide_purchases == Some(true))
    };
    let blocked = |a: i64, b: i64| {
        blocks
            .iter()
            .any(|r| (r.user_id == a && r.blocked_id == b) || (r.user_id == b && r.blocked_id == a))
    };
    let in_catalog = |product_id: i64| world.products.iter().any(|p| p.product_id == product_id);
    let list_price = |product_id: i64| {
        world
            .products
            .iter()
            .find(|p| p.product_id == product_id)
            .unwrap()
            .price_cents
    };

    // Users scored: distinct followers with a follow that is not a
    // self-follow, less the opted-out and suspended.
    let mut scored: Vec<i64> = Vec::new();
    for f in &world.follows {
        if f.follower_id != f.followee_id && !scored.contains(&f.follower_id) {
            scored.push(f.follower_id);
        }
    }
    scored.retain(|&u| !opted_out(u) && !suspended(u));
    scored.sort();

    let mut out = Vec::new();
    for &u in &scored {
        // Accounts u follows (self-follows ignored), ascending, distinct.
        let mut followees: Vec<i64> = Vec::new();
        for f in &world.follows {
            if f.follower_id == u && f.followee_id != u && !followees.contains(&f.followee_id) {
                followees.push(f.followee_id);
            }
        }
        followees.sort();

        // m_u: median of ln(price paid) over u's non-refunded purchases in
        // the window of catalog products, one value per row.
        let mut logs: Vec<f64> = Vec::new();
        for pu in &world.purchases {
            if pu.buyer_id == u
                && in_window(pu.purchased_at)
                && pu.refunded != Some(true)
                && in_catalog(pu.product_id)
            {
                let paid = match pu.price_cents {
                    Some(c) if c != 0 => c,
                    _ => list_price(pu.product_id),
                };
                logs.push((paid as f64).ln());
            }
        }
        logs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = if logs.is_empty() {
            None
        } else if logs.len() % 2 == 1 {
            Some(logs[logs.len() / 2])
        } else {
            let a = logs[logs.len() / 2 - 1];
            let b = logs[logs.len() / 2];
            Some((a + b) / 2.0)
        };

        let mut candidates: Vec<Candidate> = Vec::new();
        for product in &world.products {
            let p = product.product_id;
            if product.available == Some(false) {
                continue;
            }
            // A sensitive category is never promoted.
            if product
                .category
                .as_ref()
                .is_some_and(|c| params.sensitive_categories.contains(c))
            {
                continue;
            }
            // u already bought p: any non-refunded purchase before as_of.
            let owned = world.purchases.iter().any(|pu| {
                pu.buyer_id == u
                    && pu.product_id == p
                    && pu.purchased_at < as_of
                    && pu.refunded != Some(true)
            });
            if owned {
                continue;
            }
            // Fatigue.
            let mut shown = 0i64;
            let mut clicked = false;
            for im in impressions {
                if im.user_id == u && im.product_id == p && in_fatigue_window(im.shown_at) {
                    shown += 1;
                    if im.clicked == Some(true) {
                        clicked = true;
                    }
                }
            }
            if shown >= params.fatigue_max_impressions && !clicked {
                continue;
            }

            // Supporting buyers, ascending buyer_id, with unrounded tie·recency.
            let mut support: Vec<(i64, f64)> = Vec::new();
            for &f in &followees {
                let muted = world
                    .follows
                    .iter()
                    .any(|r| r.follower_id == u && r.followee_id == f && r.muted == Some(true));
                if muted || suspended(f) || hides(f) || blocked(u, f) {
                    continue;
                }
                let mut latest: Option<i64> = None;
                for pu in &world.purchases {
                    if pu.buyer_id == f
                        && pu.product_id == p
                        && in_window(pu.purchased_at)
                        && pu.refunded != Some(true)
                        && (pu.visibility == "public" || pu.visibility == "followers")
                    {
                        latest = Some(match latest {
                            Some(t) => t.max(pu.purchased_at),
                            None => pu.purchased_at,
                        });
                    }
                }
                let Some(t) = latest else { continue };
                let age_days = (as_of - t) as f64 / 86_400_000_000.0;
                let recency = 0.5f64.powf(age_days / params.half_life_days);
                // f also follows u: the `followed_back` column of u's
                // rows for f when the table has it, else f's row for u.
                let mutual = if world.followed_back_column {
                    world.follows.iter().any(|r| {
                        r.follower_id == u && r.followee_id == f && r.followed_back == Some(true)
                    })
                } else {
                    world
                        .follows
                        .iter()
                        .any(|r| r.follower_id == f && r.followee_id == u)
                };
                let tie = if mutual {
                    1.0 + params.mutual_bonus
                } else {
                    1.0
                };
                support.push((f, tie * recency));
            }
            let n = support.len();
            if (n as i64) < params.min_buyers {
                continue;
            }

            let mut proof = 0.0f64;
            for &(_, x) in &support {
                proof += x;
            }

            // G_p: distinct buyers of p in the window, non-refunded, any
            // visibility.
            let mut g_buyers: Vec<i64> = Vec::new();
            for pu in &world.purchases {
                if pu.product_id == p
                    && in_window(pu.purchased_at)
                    && pu.refunded != Some(true)
                    && !g_buyers.contains(&pu.buyer_id)
                {
                    g_buyers.push(pu.buyer_id);
                }
            }
            let g = g_buyers.len();
            let popularity = (1.0 + g as f64).ln();

            let price_fit = match median {
                None => 0.0,
                Some(m_u) => -((product.price_cents as f64).ln() - m_u).abs(),
            };

            let score = params.w_proof * proof
                + params.w_buyers * (1.0 + n as f64).ln()
                + params.w_popularity * popularity
                + params.w_price * price_fit;
            let score = round9(score);
            if score < params.min_score {
                continue;
            }
            candidates.push(Candidate {
                product_id: p,
                merchant_id: product.merchant_id,
                category: product.category.clone(),
                score,
                buyers: support.iter().map(|&(f, x)| (f, round9(x))).collect(),
            });
        }

        // Score descending, then product_id ascending.
        candidates.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap()
                .then(a.product_id.cmp(&b.product_id))
        });

        let mut taken: Vec<&Candidate> = Vec::new();
        for c in &candidates {
            if taken.len() == params.positions.len() {
                break;
            }
            let same_merchant = taken
                .iter()
                .filter(|t| t.merchant_id == c.merchant_id)
                .count() as i64;
            if same_merchant + 1 > params.max_per_merchant {
                continue;
            }
            if let Some(cat) = &c.category {
                let same_category = taken
                    .iter()
                    .filter(|t| t.category.as_ref() == Some(cat))
                    .count() as i64;
                if same_category + 1 > params.max_per_category {
                    continue;
                }
            }
            taken.push(c);
        }

        for (k, c) in taken.iter().enumerate() {
            let mut shown = c.buyers.clone();
            shown.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
            shown.truncate(params.max_buyers_shown as usize);
            out.push(Expected {
                user_id: u,
                slot: (k + 1) as i8,
                position: params.positions[k],
                product_id: c.product_id,
                merchant_id: c.merchant_id,
                score: c.score,
                buyer_count: c.buyers.len() as i32,
                top_buyer_ids: shown.iter().map(|b| b.0).collect(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The reference checked by hand on tiny worlds.

use crate::world::{Block, Follow, Impression, Product, Purchase, User};

/// 2026-11-24T00:00:00Z in epoch µs.
const AS_OF: i64 = 1_795_478_400_000_000;
const U: i64 = 9_000_000_000_000_000_001;
const F: i64 = 1_000_000_007;
const G: i64 = 2_000_000_014;
const H: i64 = 3_000_000_021;
const P: i64 = 7_000_000_049_000;
const Q: i64 = 7_000_000_049_001;
const R: i64 = 7_000_000_049_002;

fn follow(a: i64, b: i64) -> Follow {
    Follow {
        follower_id: a,
        followee_id: b,
        muted: None,
        followed_back: None,
    }
}

fn buy(buyer: i64, product: i64, days_ago: f64, visibility: &str) -> Purchase {
    Purchase {
        buyer_id: buyer,
        product_id: product,
        purchased_at: AS_OF - (days_ago * DAY as f64) as i64,
        visibility: visibility.into(),
        price_cents: None,
        refunded: None,
    }
}

fn product(id: i64, merchant: i64, price: i64) -> Product {
    Product {
        product_id: id,
        merchant_id: merchant,
        price_cents: price,
        category: None,
        available: None,
    }
}

/// u follows f; f bought p 7 days ago (one half-life), publicly.
fn one_buyer() -> World {
    World {
        follows: vec![follow(U, F)],
        purchases: vec![buy(F, P, 7.0, "public")],
        products: vec![product(P, 1, 1000)],
        ..World::default()
    }
}

fn run(world: &World) -> Vec<Expected> {
    reference(world, &Params::default(), AS_OF)
}

fn only(rows: &[Expected]) -> &Expected {
    assert_eq!(rows.len(), 1, "{rows:#?}");
    &rows[0]
}

#[test]
fn as_of_constant_is_the_contract_example() {
    assert_eq!(crate::world::as_of_text(AS_OF), "2026-11-24T00:00:00Z");
}

#[test]
fn one_buyer_one_half_life() {
    // proof 0.5, 0.5·ln 2 for one buyer, -0.1·ln 2 popularity, no price fit.
    // 0.5 + 0.4·ln 2 = 0.777258872223978...
    let rows = run(&one_buyer());
    assert_eq!(
        rows,
        vec![Expected {
            user_id: U,
            slot: 1,
            position: 4,
            product_id: P,
            merchant_id: 1,
            score: 0.777258872,
            buyer_count: 1,
            top_buyer_ids: vec![F],
        }]
    );
}

#[test]
fn mutual_follow_multiplies_the_tie() {
    let mut w = one_buyer();
    // The back-follow is muted: it still makes the follow mutual.
    w.follows.push(Follow {
        muted: Some(true),
        ..follow(F, U)
    });
    // u: 0.75 + 0.4·ln 2 = 1.027258872...; f is scored too (follows u) but
    // u bought nothing.
    let rows = run(&w);
    assert_eq!(only(&rows).score, 1.027258872);
    let p = Params {
        mutual_bonus: 1.0,
        ..Params::default()
    };
    // 1.0 + 0.4·ln 2
    assert_eq!(reference(&w, &p, AS_OF)[0].score, 1.277258872);
}

#[test]
fn followed_back_column_alone_says_who_follows_back() {
    // The column says true and f has no row for u: mutual.
    let mut w = one_buyer();
    w.followed_back_column = true;
    w.follows[0].followed_back = Some(true);
    assert_eq!(only(&run(&w)).score, 1.027258872);
    // f follows u, but the column says false, or is null: not mutual.
    for cell in [Some(false), None] {
        let mut w = one_buyer();
        w.follows.push(follow(F, U));
        w.followed_back_column = true;
        w.follows[0].followed_back = cell;
        let rows = run(&w);
        assert_eq!(only(&rows).score, 0.777258872, "{cell:?}");
    }
    // A duplicate row saying true is enough.
    let mut w = one_buyer();
    w.followed_back_column = true;
    w.follows.push(Follow {
        followed_back: Some(true),
        ..follow(U, F)
    });
    w.follows.push(Follow {
        followed_back: Some(false),
        ..follow(U, F)
    });
    assert_eq!(only(&run(&w)).score, 1.027258872);
}

#[test]
fn window_edges_are_half_open() {
    let mut w = one_buyer();
    w.purchases = vec![Purchase {
        purchased_at: AS_OF,
        ..w.purchases[0].clone()
    }];
    assert!(run(&w).is_empty(), "a purchase at as_of is outside");

    w.purchases[0].purchased_at = AS_OF - 30 * DAY - 1;
    assert!(run(&w).is_empty(), "before the window's start is outside");

    w.purchases[0].purchased_at = AS_OF - 30 * DAY;
    // 0.5^(30/7) + 0.4·ln 2 = 0.051270960... + 0.277258872... = 0.328529832
    assert_eq!(only(&run(&w)).score, 0.328529832);

    w.purchases[0].purchased_at = AS_OF - 1;
    // Age 1 µs: recency just under 1, 1 + 0.4·ln 2 once rounded.
    assert_eq!(only(&run(&w)).score, 1.277258872);
}

#[test]
fn min_score_and_min_buyers_threshold() {
    let mut w = one_buyer();
    // 29 days old with a half-life of 1 day: proof 2^-29.
    w.purchases[0].purchased_at = AS_OF - 29 * DAY;
    let p = Params {
        half_life_days: 1.0,
        ..Params::default()
    };
    // 2^-29 + 0.4·ln 2 = 0.277258874 >= 0.2: kept.
    assert_eq!(reference(&w, &p, AS_OF)[0].score, 0.277258874);
    let p = Params {
        half_life_days: 1.0,
        min_score: 0.28,
        ..Params::default()
    };
    assert!(reference(&w, &p, AS_OF).is_empty());
    let p = Params {
        min_buyers: 2,
        ..Params::default()
    };
    assert!(reference(&w, &p, AS_OF).is_empty());
}

#[test]
fn latest_supporting_purchase_only() {
    let mut w = one_buyer();
    // A later private purchase and a later refunded one change nothing.
    w.purchases.push(buy(F, P, 1.0, "private"));
    w.purchases.push(Purchase {
        refunded: Some(true),
        ..buy(F, P, 2.0, "followers")
    });
    // An earlier supporting purchase changes nothing either.
    w.purchases.push(buy(F, P, 20.0, "followers"));
    // G_p is still 1 (one distinct buyer).
    assert_eq!(only(&run(&w)).score, 0.777258872);

    // A later supporting purchase (followers) makes it fresher: age 0.
    w.purchases.push(Purchase {
        purchased_at: AS_OF - 1,
        ..buy(F, P, 0.0, "followers")
    });
    assert_eq!(only(&run(&w)).score, 1.277258872);
}

#[test]
fn private_purchases_are_never_proof_but_count_in_popularity() {
    let mut w = one_buyer();
    w.purchases[0].visibility = "private".into();
    assert!(run(&w).is_empty());

    // Another buyer, whom u does not follow, privately: G_p = 2.
    // 0.5 + 0.5·ln 2 - 0.1·ln 3 = 0.736712361...
    let mut w = one_buyer();
    w.purchases.push(buy(G, P, 3.0, "private"));
    assert_eq!(only(&run(&w)).score, 0.736712361);
    // G_p counts distinct buyers: a second row of G changes nothing.
    w.purchases.push(buy(G, P, 4.0, "public"));
    assert_eq!(only(&run(&w)).score, 0.736712361);
    // ...and a refunded or out-of-window purchase is not counted.
    let mut w = one_buyer();
    w.purchases.push(Purchase {
        refunded: Some(true),
        ..buy(G, P, 3.0, "public")
    });
    w.purchases.push(buy(H, P, 31.0, "public"));
    assert_eq!(only(&run(&w)).score, 0.777258872);
}

#[test]
fn buyers_shown_by_contribution_then_id() {
    // F, G, H all bought p 7 days ago; H also follows u (tie 1.5).
    let w = World {
        follows: vec![follow(U, H), follow(U, G), follow(U, F), follow(H, U)],
        purchases: vec![
            buy(H, P, 7.0, "followers"),
            buy(G, P, 7.0, "public"),
            buy(F, P, 7.0, "followers"),
        ],
        products: vec![product(P, 1, 1000)],
        ..World::default()
    };
    // proof 0.5 + 0.5 + 0.75 = 1.75; n = G_p = 3: 1.75 + 0.4·ln 4.
    let row = only(&run(&w)).clone();
    assert_eq!(row.score, 2.304517744);
    assert_eq!(row.buyer_count, 3);
    assert_eq!(row.top_buyer_ids, vec![H, F, G]);
    let p = Params {
        max_buyers_shown: 2,
        ..Params::default()
    };
    assert_eq!(reference(&w, &p, AS_OF)[0].top_buyer_ids, vec![H, F]);
    let p = Params {
        max_buyers_shown: 0,
        ..Params::default()
    };
    let row = reference(&w, &p, AS_OF)[0].clone();
    assert_eq!(row.top_buyer_ids, Vec::<i64>::new());
    assert_eq!(row.buyer_count, 3);
}

/// u follows f; f bought P 1 day ago, Q 7 days ago, R 14 days ago.
fn three_products() -> World {
    World {
        follows: vec![follow(U, F)],
        purchases: vec![
            buy(F, R, 14.0, "public"),
            buy(F, Q, 7.0, "public"),
            buy(F, P, 1.0, "public"),
        ],
        products: vec![
            product(R, 2, 1000),
            product(Q, 1, 1000),
            product(P, 1, 1000),
        ],
        ..World::default()
    }
}

#[test]
fn merchant_cap_skips_and_walks_on() {
    // Scores: P 0.5^(1/7) + 0.4·ln 2, Q 0.5 + ..., R 0.25 + ...
    let rows = run(&three_products());
    let got: Vec<(i8, i32, i64, f64)> = rows
        .iter()
        .map(|r| (r.slot, r.position, r.product_id, r.score))
        .collect();
    // Q is skipped: merchant 1 already has P.
    assert_eq!(got, vec![(1, 4, P, 1.182982536), (2, 14, R, 0.527258872)]);

    let p = Params {
        max_per_merchant: 2,
        ..Params::default()
    };
    let ids: Vec<i64> = reference(&three_products(), &p, AS_OF)
        .iter()
        .map(|r| r.product_id)
        .collect();
    assert_eq!(ids, vec![P, Q, R]);

    // Fewer positions than candidates: no more slots than positions.
    let p = Params {
        max_per_merchant: 2,
        positions: vec![10, 20],
        ..Params::default()
    };
    let got: Vec<(i8, i32, i64)> = reference(&three_products(), &p, AS_OF)
        .iter()
        .map(|r| (r.slot, r.position, r.product_id))
        .collect();
    assert_eq!(got, vec![(1, 10, P), (2, 20, Q)]);
}

#[test]
fn category_cap_exempts_null() {
    let mut w = three_products();
    for (i, p) in w.products.iter_mut().enumerate() {
        p.merchant_id = i as i64;
        p.category = Some("tea, coffee".into());
    }
    let ids = |w: &World| -> Vec<i64> { run(w).iter().map(|r| r.product_id).collect() };
    // The third of one category is skipped.
    assert_eq!(ids(&w), vec![P, Q]);
    // A null category is not capped.
    w.products[0].category = None; // R
    assert_eq!(ids(&w), vec![P, Q, R]);
}

#[test]
fn score_ties_go_to_the_lower_product_id() {
    let w = World {
        follows: vec![follow(U, F)],
        purchases: vec![buy(F, Q, 5.0, "public"), buy(F, P, 5.0, "public")],
        products: vec![product(Q, 1, 1000), product(P, 1, 1000)],
        ..World::default()
    };
    let rows = run(&w);
    assert_eq!(rows.len(), 1, "same merchant: one slot");
    assert_eq!(rows[0].product_id, P);
}

#[test]
fn price_fit_uses_the_median_of_prices_paid() {
    let mut w = one_buyer();
    w.products[0].price_cents = 4000;
    w.products.push(product(Q, 5, 9999));
    w.products.push(product(R, 6, 1000));
    // u paid 4000 for Q and 0 for R (list price 1000): median ln 2000.
    w.purchases.push(Purchase {
        price_cents: Some(4000),
        ..buy(U, Q, 3.0, "private")
    });
    w.purchases.push(Purchase {
        price_cents: Some(0),
        ..buy(U, R, 2.0, "public")
    });
    // Not counted: refunded, outside the window, a product missing from the
    // catalog.
    w.purchases.push(Purchase {
        price_cents: Some(1),
        refunded: Some(true),
        ..buy(U, Q, 3.0, "public")
    });
    w.purchases.push(Purchase {
        price_cents: Some(1),
        ..buy(U, R, 40.0, "public")
    });
    w.purchases.push(Purchase {
        price_cents: Some(1),
        ..buy(U, 424242, 1.0, "public")
    });
    // price_fit = -(ln 4000 - ln 2000) = -ln 2: 0.5 + 0.4·ln 2 - 0.2·ln 2.
    assert_eq!(only(&run(&w)).score, 0.638629436);

    // A third value (null price: list price 1000): median ln 1000, so
    // price_fit = -ln 4: 0.5 + 0.4·ln 2 - 0.2·ln 4 = 0.5.
    w.purchases.push(buy(U, R, 1.0, "followers"));
    assert_eq!(only(&run(&w)).score, 0.5);
}

#[test]
fn owned_products_are_excluded() {
    let mut w = one_buyer();
    // Bought long ago, privately: still owned.
    w.purchases.push(buy(U, P, 400.0, "private"));
    assert!(run(&w).is_empty());

    let mut w = one_buyer();
    // Refunded: not owned. At as_of or later: not before as_of.
    w.purchases.push(Purchase {
        refunded: Some(true),
        ..buy(U, P, 3.0, "public")
    });
    w.purchases.push(buy(U, P, 0.0, "public"));
    w.purchases.push(buy(U, P, -1.0, "public"));
    // u's refunded and future purchases are not in G_p either.
    assert_eq!(only(&run(&w)).score, 0.777258872);
}

fn shown(days_ago: f64, clicked: Option<bool>) -> Impression {
    Impression {
        user_id: U,
        product_id: P,
        shown_at: AS_OF - (days_ago * DAY as f64) as i64,
        clicked,
    }
}

#[test]
fn fatigue_needs_three_unclicked_impressions_in_the_window() {
    let mut w = one_buyer();
    // The window's start counts; as_of and just before the start do not.
    w.impressions = Some(vec![
        shown(14.0, None),
        shown(1.0, Some(false)),
        shown(0.0, None),
        Impression {
            shown_at: AS_OF - 14 * DAY - 1,
            ..shown(0.0, None)
        },
    ]);
    assert_eq!(run(&w).len(), 1, "two impressions in the window");
    w.impressions.as_mut().unwrap().push(shown(2.0, None));
    assert!(run(&w).is_empty(), "three impressions, no click");
    // A click outside the window does not help.
    w.impressions
        .as_mut()
        .unwrap()
        .push(shown(20.0, Some(true)));
    assert!(run(&w).is_empty());
    // One inside does.
    w.impressions.as_mut().unwrap().push(shown(5.0, Some(true)));
    assert_eq!(run(&w).len(), 1);
    // Impressions of another user or product do not count.
    let mut w = one_buyer();
    w.impressions = Some(vec![
        shown(1.0, None),
        shown(1.0, None),
        Impression {
            user_id: F,
            ..shown(1.0, None)
        },
        Impression {
            product_id: Q,
            ..shown(1.0, None)
        },
    ]);
    assert_eq!(run(&w).len(), 1);
    let p = Params {
        fatigue_max_impressions: 2,
        ..Params::default()
    };
    assert!(reference(&w, &p, AS_OF).is_empty());
    let p = Params {
        fatigue_max_impressions: 2,
        fatigue_days: 0,
        ..Params::default()
    };
    assert_eq!(reference(&w, &p, AS_OF).len(), 1, "an empty fatigue window");
}

#[test]
fn blocks_suspension_and_mutes_remove_proof() {
    for block in [
        Block {
            user_id: U,
            blocked_id: F,
        },
        Block {
            user_id: F,
            blocked_id: U,
        },
    ] {
        let mut w = one_buyer();
        w.blocks = Some(vec![block]);
        assert!(run(&w).is_empty());
    }
    // A block between others changes nothing.
    let mut w = one_buyer();
    w.blocks = Some(vec![Block {
        user_id: F,
        blocked_id: G,
    }]);
    assert_eq!(run(&w).len(), 1);

    let mut w = one_buyer();
    w.users = Some(vec![
        User {
            user_id: F,
            promotions_opt_out: None,
            suspended: Some(false),
            hide_purchases: None,
        },
        User {
            user_id: F,
            promotions_opt_out: None,
            suspended: Some(true),
            hide_purchases: None,
        },
    ]);
    assert!(run(&w).is_empty(), "a suspended buyer is never proof");

    // A duplicate follow row that is muted mutes the edge.
    let mut w = one_buyer();
    w.follows.push(Follow {
        muted: Some(true),
        ..follow(U, F)
    });
    w.follows.push(follow(U, F));
    assert!(run(&w).is_empty());
}

#[test]
fn opt_out_is_about_receiving() {
    // f opted out: still proof for u.
    let mut w = one_buyer();
    w.users = Some(vec![User {
        user_id: F,
        promotions_opt_out: Some(true),
        suspended: None,
        hide_purchases: None,
    }]);
    assert_eq!(run(&w).len(), 1);

    // u opted out (in one of two rows), or suspended: no rows for u.
    for (opt_out, suspended) in [(Some(true), None), (None, Some(true))] {
        let mut w = one_buyer();
        w.users = Some(vec![
            User {
                user_id: U,
                promotions_opt_out: Some(false),
                suspended: None,
                hide_purchases: None,
            },
            User {
                user_id: U,
                promotions_opt_out: opt_out,
                suspended,
                hide_purchases: None,
            },
        ]);
        assert!(run(&w).is_empty());
    }
}

#[test]
fn duplicate_and_self_follows_collapse() {
    let mut w = one_buyer();
    w.follows.push(follow(U, F));
    w.follows.push(follow(U, U));
    w.follows.push(follow(F, F));
    // u following u never makes u a supporting buyer of its own purchase.
    w.purchases.push(buy(U, Q, 1.0, "public"));
    w.products.push(product(Q, 2, 1000));
    let rows = run(&w);
    let row = only(&rows);
    assert_eq!((row.product_id, row.buyer_count), (P, 1));
    // Now u's own purchase of Q puts u's price median at ln 1000: P's list
    // price is 1000 too, so the score is unchanged.
    assert_eq!(row.score, 0.777258872);
}

#[test]
fn unavailable_and_missing_products_are_never_promoted() {
    let mut w = one_buyer();
    w.products[0].available = Some(false);
    assert!(run(&w).is_empty());
    w.products[0].available = Some(true);
    assert_eq!(run(&w).len(), 1);
    // f also bought a product missing from the catalog.
    w.purchases.push(buy(F, 5, 1.0, "public"));
    assert_eq!(only(&run(&w)).product_id, P);
}

#[test]
fn users_are_scored_in_ascending_id() {
    let mut w = one_buyer();
    w.follows.push(follow(G, F));
    w.follows.push(follow(H, F));
    let ids: Vec<i64> = run(&w).iter().map(|r| r.user_id).collect();
    assert_eq!(ids, vec![G, H, U]);
}
