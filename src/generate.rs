//! A seeded synthetic world on the contract: sparse snowflake-like ids, a
//! heavy-tailed follow graph with some reciprocity and muting, a catalog,
//! purchases with a share copied from followees (social contagion), flags,
//! blocks and impressions. The same spec gives the same files.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::output::schema::timestamp;
use crate::random::Rng;
use crate::time::DAY_US;

/// What to generate.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    pub seed: u64,
    pub users: u32,
    /// Mean out-degree of the lognormal follow distribution.
    pub avg_follows: f64,
    pub products: u32,
    /// Share of users who buy (1 to 4 purchases each).
    pub buyer_frac: f64,
    /// Share of purchases that copy a followee's earlier purchase: the
    /// strength of the social signal a backtest can find.
    pub influence: f64,
    /// The world's "now", epoch µs: purchases fall in the 60 days before.
    pub as_of: i64,
}

/// A named size of world.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub users: u32,
    pub avg_follows: f64,
    pub products: u32,
}

/// The presets `generate --preset` knows. Worlds are built in memory, so
/// the largest here needs several GiB; a streaming generator for the
/// 41.7M-account `twitter2010` size is still to come.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "sample",
        users: 3_000,
        avg_follows: 30.0,
        products: 600,
    },
    Preset {
        name: "tiny",
        users: 10_000,
        avg_follows: 30.0,
        products: 2_000,
    },
    Preset {
        name: "small",
        users: 100_000,
        avg_follows: 40.0,
        products: 20_000,
    },
    Preset {
        name: "medium",
        users: 1_000_000,
        avg_follows: 50.0,
        products: 100_000,
    },
    Preset {
        name: "large",
        users: 3_000_000,
        avg_follows: 80.0,
        products: 200_000,
    },
];

impl Preset {
    pub fn find(name: &str) -> Option<Preset> {
        PRESETS.iter().copied().find(|p| p.name == name)
    }
}

/// Sparse, ascending, snowflake-like ids: a millisecond clock in the high
/// bits and random low bits.
fn snowflakes(rng: &mut Rng, n: usize, epoch_ms: i64) -> Vec<i64> {
    let mut t = epoch_ms;
    (0..n)
        .map(|_| {
            t += 1 + rng.below(50_000) as i64;
            (t << 22) | rng.below(1 << 22) as i64
        })
        .collect()
}

/// Writes the six tables as `<dir>/<table>.parquet`; returns rows per table.
pub fn write_world(spec: &WorldSpec, dir: &Path) -> Result<Vec<(&'static str, u64)>> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = Rng(spec.seed);
    let n = spec.users.max(2) as usize;
    let users = snowflakes(&mut rng, n, 1_288_834_974_657);
    // A random popularity order: rank r is account `order[r]`.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }

    let mut follows: Vec<(usize, usize, bool)> = Vec::new();
    for a in 0..n {
        // Lognormal with sigma 1: the mean is exp(mu + 1/2).
        let mu = spec.avg_follows.max(1.0).ln() - 0.5;
        let degree = (mu + rng.normal()).exp().clamp(1.0, (n / 2) as f64) as usize;
        for _ in 0..degree {
            let b = order[rng.skewed(n, 2.5)];
            if b != a {
                follows.push((a, b, rng.chance(0.05)));
                if rng.chance(0.2) {
                    follows.push((b, a, false));
                }
            }
        }
    }
    // A few rows the loader must collapse: self-follows and repeats.
    for i in 0..3 {
        follows.push((i, i, false));
        let dup = follows[rng.below(follows.len() as u64) as usize];
        follows.push(dup);
    }
    follows.sort_unstable();

    let products = snowflakes(&mut rng, spec.products.max(1) as usize, 1_400_000_000_000);
    let merchants = snowflakes(&mut rng, 60, 1_300_000_000_000);
    let mut catalog = Vec::with_capacity(products.len());
    for &p in &products {
        let merchant = merchants[rng.skewed(merchants.len(), 1.5)];
        let price = (2500f64.ln() + 0.8 * rng.normal()).exp().max(100.0) as i64;
        let category = (!rng.chance(0.05)).then(|| format!("cat-{:02}", rng.below(40)));
        catalog.push((p, merchant, price, category, !rng.chance(0.05)));
    }

    let window = 60 * DAY_US;
    let mut bought: Vec<Vec<(usize, i64)>> = vec![Vec::new(); n];
    let mut purchases = Vec::new();
    let by_follower: Vec<Vec<usize>> = {
        let mut v = vec![Vec::new(); n];
        for &(a, b, _) in &follows {
            v[a].push(b);
        }
        v
    };
    // Who buys how much, and which purchases copy a followee's.
    let mut copies: Vec<(usize, u64)> = Vec::new();
    for (a, own) in bought.iter_mut().enumerate() {
        if !rng.chance(spec.buyer_frac) {
            continue;
        }
        let count = 1 + rng.below(4);
        let influenced = (0..count).filter(|_| rng.chance(spec.influence)).count() as u64;
        for _ in influenced..count {
            let k = rng.skewed(products.len(), 2.0);
            let at = spec.as_of - 1 - rng.below(window as u64) as i64;
            own.push((k, at));
        }
        if influenced > 0 {
            copies.push((a, influenced));
        }
    }
    // Social contagion: a copy comes after the purchase it copies.
    for (a, influenced) in copies {
        for _ in 0..influenced {
            let followees = &by_follower[a];
            let source = (0..3).find_map(|_| {
                let f = *followees.get(rng.below(followees.len() as u64) as usize)?;
                let list = &bought[f];
                (!list.is_empty()).then(|| list[rng.below(list.len() as u64) as usize])
            });
            let (k, at) = match source {
                Some((k, t)) => (
                    k,
                    t + 1 + rng.below((spec.as_of - 1 - t).max(1) as u64) as i64,
                ),
                None => (
                    rng.skewed(products.len(), 2.0),
                    spec.as_of - 1 - rng.below(window as u64) as i64,
                ),
            };
            bought[a].push((k, at.min(spec.as_of - 1)));
        }
    }
    for (a, list) in bought.iter().enumerate() {
        for &(k, at) in list {
            let visibility = match rng.unit() {
                x if x < 0.7 => "public",
                x if x < 0.9 => "followers",
                _ => "private",
            };
            let list_price = catalog[k].2;
            let price = match rng.unit() {
                x if x < 0.8 => Some(list_price),
                x if x < 0.9 => Some(list_price * 9 / 10),
                _ => None,
            };
            purchases.push((
                users[a],
                products[k],
                at,
                visibility,
                price,
                rng.chance(0.03),
            ));
        }
    }

    let mut flags = Vec::with_capacity(n);
    for &u in &users {
        flags.push((u, rng.chance(0.02), rng.chance(0.003)));
    }
    let mut blocks = Vec::new();
    for &u in &users {
        if rng.chance(0.005) {
            blocks.push((u, users[order[rng.skewed(n, 2.0)]]));
        }
    }
    let mut impressions = Vec::new();
    for &u in &users {
        if !rng.chance(0.1) {
            continue;
        }
        let k = rng.skewed(products.len(), 2.0);
        let shows = 1 + rng.below(5);
        for _ in 0..shows {
            let at = spec.as_of - 1 - rng.below(20 * DAY_US as u64) as i64;
            impressions.push((u, products[k], at, rng.chance(0.1)));
        }
    }

    let id = |name: &str| Field::new(name, DataType::Int64, false);
    let flag = |name: &str| Field::new(name, DataType::Boolean, false);
    let ints = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let bools = |v: Vec<bool>| Arc::new(BooleanArray::from(v)) as ArrayRef;
    let stamps =
        |v: Vec<i64>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef;
    let follow_rows = follows.len() as u64;
    write(
        dir,
        "follows",
        vec![id("follower_id"), id("followee_id"), flag("muted")],
        vec![
            ints(follows.iter().map(|f| users[f.0]).collect()),
            ints(follows.iter().map(|f| users[f.1]).collect()),
            bools(follows.iter().map(|f| f.2).collect()),
        ],
    )?;
    write(
        dir,
        "purchases",
        vec![
            id("buyer_id"),
            id("product_id"),
            Field::new("purchased_at", timestamp(), false),
            Field::new("visibility", DataType::Utf8, false),
            Field::new("price_cents", DataType::Int64, true),
            flag("refunded"),
        ],
        vec![
            ints(purchases.iter().map(|p| p.0).collect()),
            ints(purchases.iter().map(|p| p.1).collect()),
            stamps(purchases.iter().map(|p| p.2).collect()),
            Arc::new(StringArray::from(
                purchases.iter().map(|p| p.3).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                purchases.iter().map(|p| p.4).collect::<Vec<_>>(),
            )),
            bools(purchases.iter().map(|p| p.5).collect()),
        ],
    )?;
    write(
        dir,
        "products",
        vec![
            id("product_id"),
            id("merchant_id"),
            id("price_cents"),
            Field::new("category", DataType::Utf8, true),
            flag("available"),
        ],
        vec![
            ints(catalog.iter().map(|c| c.0).collect()),
            ints(catalog.iter().map(|c| c.1).collect()),
            ints(catalog.iter().map(|c| c.2).collect()),
            Arc::new(StringArray::from(
                catalog.iter().map(|c| c.3.clone()).collect::<Vec<_>>(),
            )),
            bools(catalog.iter().map(|c| c.4).collect()),
        ],
    )?;
    write(
        dir,
        "users",
        vec![id("user_id"), flag("promotions_opt_out"), flag("suspended")],
        vec![
            ints(flags.iter().map(|f| f.0).collect()),
            bools(flags.iter().map(|f| f.1).collect()),
            bools(flags.iter().map(|f| f.2).collect()),
        ],
    )?;
    write(
        dir,
        "blocks",
        vec![id("user_id"), id("blocked_id")],
        vec![
            ints(blocks.iter().map(|b| b.0).collect()),
            ints(blocks.iter().map(|b| b.1).collect()),
        ],
    )?;
    write(
        dir,
        "impressions",
        vec![
            id("user_id"),
            id("product_id"),
            Field::new("shown_at", timestamp(), false),
            flag("clicked"),
        ],
        vec![
            ints(impressions.iter().map(|i| i.0).collect()),
            ints(impressions.iter().map(|i| i.1).collect()),
            stamps(impressions.iter().map(|i| i.2).collect()),
            bools(impressions.iter().map(|i| i.3).collect()),
        ],
    )?;
    Ok(vec![
        ("follows", follow_rows),
        ("purchases", purchases.len() as u64),
        ("products", catalog.len() as u64),
        ("users", flags.len() as u64),
        ("blocks", blocks.len() as u64),
        ("impressions", impressions.len() as u64),
    ])
}

fn write(dir: &Path, table: &str, fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<()> {
    let path = dir.join(format!("{table}.parquet"));
    let parquet_err = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("generated {table} does not fit its schema: {e}")))?;
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err)?;
    writer.write(&batch).map_err(parquet_err)?;
    writer.close().map_err(parquet_err)?;
    Ok(())
}
