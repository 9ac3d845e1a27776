//! A seeded synthetic world on the contract: sparse snowflake-like ids, a
//! heavy-tailed follow graph with some reciprocity and muting, a catalog,
//! purchases with a share copied from followees (social contagion), flags,
//! blocks and impressions. The same spec gives the same files, whatever the
//! number of threads.
//!
//! It streams. Each account draws from its own random streams (seeded by
//! the world's seed, the stream's name and the account), so any block of
//! accounts is generated on its own: blocks are made in parallel and the
//! tables written in account order, a row group at a time. Memory is the
//! accounts' ids and popularity order (12 bytes an account) and a few blocks
//! in flight, whatever the number of follows.
//!
//! The follows are written sorted by follower. A follow-back (b follows a
//! back) belongs to b's rows, which may be written already; so a first pass
//! draws every account's follows and spills the follow-backs (8 bytes each,
//! about a sixth of the rows) to disk by ranges of followers, and the second
//! pass draws the follows again and merges each block's follow-backs in.
//!
//! With `--shards N` the follows are written partitioned by shard
//! (`docs/contract.md` §1): `follows/_shards` and `follows/shard=I/`, each
//! row with `followed_back`. Whether b follows a back is known from a's own
//! draws (a follow-back it planted) or b's (b drew a): the first pass also
//! spills every drawn follow by followee, and the second finds the reverse
//! of each of a block's rows there.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ids::mix;
use crate::load::partitions::SHARDS_FILE;
use crate::output::schema::timestamp;
use crate::progress::Progress;
use crate::random::Rng;
use crate::shard::Shard;
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

/// The presets `generate --preset` knows. Follow rows come to about 1.2
/// times users × avg_follows (the follow-backs, less self-draws).
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
    // The 2010 Twitter graph of Kwak et al.: 41.7M accounts, 1.47B follows.
    Preset {
        name: "twitter2010",
        users: 41_700_000,
        avg_follows: 29.6,
        products: 1_000_000,
    },
];

impl Preset {
    pub fn find(name: &str) -> Option<Preset> {
        PRESETS.iter().copied().find(|p| p.name == name)
    }
}

/// How the accounts are cut into work. The files do not depend on it.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Accounts per generated block: the unit of parallel work.
    block: usize,
    /// Followers per spill file of follow-backs.
    span: usize,
}

const LAYOUT: Layout = Layout {
    block: 1 << 16,
    span: 1 << 20,
};
/// Rows per Parquet row group.
const ROW_GROUP: usize = 1 << 20;
/// Purchases fall in the 60 days before as_of.
const PURCHASE_WINDOW: i64 = 60 * DAY_US;

/// The independent random streams of an account.
#[derive(Clone, Copy)]
enum Stream {
    /// Its follows: degree, then (followee, muted, followed back) per draw.
    Follows = 1,
    /// Whether it buys, how much, and its own (not copied) purchases.
    Buys = 2,
    /// Its copied purchases and every purchase's visibility, price, refund.
    Purchases = 3,
    /// Its flags, block and impressions.
    Person = 4,
}

fn stream(seed: u64, which: Stream, account: usize) -> Rng {
    Rng(mix(
        mix(seed ^ ((which as u64) << 56)) ^ mix(account as u64 + 1)
    ))
}

/// Sparse, ascending, snowflake-like ids: a millisecond clock in the high
/// bits and random low bits. The clock steps up to 50 s between ids, less
/// when `n` ids would not fit 63 bits.
fn snowflakes(rng: &mut Rng, n: usize, epoch_ms: i64) -> Vec<i64> {
    let room = (1u64 << 41) - 1 - epoch_ms as u64;
    let step = (room / n.max(1) as u64).min(50_000);
    let mut t = epoch_ms;
    (0..n)
        .map(|_| {
            t += 1 + rng.below(step) as i64;
            (t << 22) | rng.below(1 << 22) as i64
        })
        .collect()
}

/// One product of the catalog.
struct Product {
    id: i64,
    merchant: i64,
    price: i64,
    category: Option<String>,
    available: bool,
}

/// What every block reads: the accounts, their popularity and the catalog.
struct World<'a> {
    spec: &'a WorldSpec,
    /// Account ids, ascending: account `a` is `users[a]`.
    users: Vec<i64>,
    /// A random popularity order: rank r is account `order[r]`.
    order: Vec<u32>,
    catalog: Vec<Product>,
}

impl World<'_> {
    fn new(spec: &WorldSpec) -> World<'_> {
        let mut rng = Rng(spec.seed);
        let n = spec.users.max(2) as usize;
        let users = snowflakes(&mut rng, n, 1_288_834_974_657);
        let mut order: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let products = snowflakes(&mut rng, spec.products.max(1) as usize, 1_400_000_000_000);
        let merchants = snowflakes(&mut rng, 60, 1_300_000_000_000);
        let catalog = products
            .into_iter()
            .map(|id| Product {
                id,
                merchant: merchants[rng.skewed(merchants.len(), 1.5)],
                price: (2500f64.ln() + 0.8 * rng.normal()).exp().max(100.0) as i64,
                category: (!rng.chance(0.05)).then(|| format!("cat-{:02}", rng.below(40))),
                available: !rng.chance(0.05),
            })
            .collect();
        World {
            spec,
            users,
            order,
            catalog,
        }
    }

    fn accounts(&self) -> usize {
        self.users.len()
    }

    /// Account `a`'s drawn follows, in draw order: (followee, muted,
    /// followed back). Lognormal out-degree (sigma 1, so the mean is
    /// exp(mu + 1/2)); followees by a heavy-tailed popularity.
    fn follows_of(&self, a: usize, mut each: impl FnMut(usize, bool, bool)) {
        let n = self.accounts();
        let mut rng = stream(self.spec.seed, Stream::Follows, a);
        let mu = self.spec.avg_follows.max(1.0).ln() - 0.5;
        let degree = (mu + rng.normal()).exp().clamp(1.0, (n / 2) as f64) as usize;
        for _ in 0..degree {
            let b = self.order[rng.skewed(n, 2.5)] as usize;
            let muted = rng.chance(0.05);
            let back = rng.chance(0.2);
            if b != a {
                each(b, muted, back);
            }
        }
    }

    /// Account `a`'s own purchases (product index, instant) into `out`;
    /// returns how many more it makes by copying a followee.
    fn own_purchases(&self, a: usize, out: &mut Vec<(usize, i64)>) -> u64 {
        out.clear();
        let spec = self.spec;
        let mut rng = stream(spec.seed, Stream::Buys, a);
        if !rng.chance(spec.buyer_frac) {
            return 0;
        }
        let count = 1 + rng.below(4);
        let influenced = (0..count).filter(|_| rng.chance(spec.influence)).count() as u64;
        for _ in influenced..count {
            let k = rng.skewed(self.catalog.len(), 2.0);
            out.push((k, spec.as_of - 1 - rng.below(PURCHASE_WINDOW as u64) as i64));
        }
        influenced
    }

    /// The follows of followers `block`, sorted, with their follow-backs
    /// from `backs` (follower << 32 | followee, ascending): one batch, or
    /// with `drawn` (every drawn follow as followee << 32 | follower,
    /// ascending) one batch per shard of `shards`, with `followed_back`.
    fn follows_block(
        &self,
        block: Range<usize>,
        backs: &[u64],
        drawn: Option<(&[u64], u32)>,
    ) -> Result<Vec<RecordBatch>> {
        let lo = backs.partition_point(|&x| x >> 32 < block.start as u64);
        let hi = backs.partition_point(|&x| x >> 32 < block.end as u64);
        // (follower, followee, muted, the reverse row is known to exist).
        let mut edges: Vec<(u32, u32, bool, bool)> = Vec::with_capacity(block.len() * 40);
        for a in block.clone() {
            self.follows_of(a, |b, muted, back| {
                edges.push((a as u32, b as u32, muted, back));
            });
        }
        edges.extend(
            backs[lo..hi]
                .iter()
                .map(|&x| ((x >> 32) as u32, x as u32, false, true)),
        );
        // A few rows the loader must collapse: self-follows and repeats.
        for a in block.start..block.end.min(3) {
            if let Some(&first) = edges.iter().find(|e| e.0 == a as u32) {
                edges.push(first);
            }
            edges.push((a as u32, a as u32, false, true));
        }
        edges.sort_unstable();
        let ids = |rows: &[(u32, u32, bool, bool)]| {
            vec![
                ints(rows.iter().map(|e| self.users[e.0 as usize]).collect()),
                ints(rows.iter().map(|e| self.users[e.1 as usize]).collect()),
                bools(rows.iter().map(|e| e.2).collect()),
            ]
        };
        let Some((drawn, shards)) = drawn else {
            return Ok(vec![batch(follows_schema(), ids(&edges))?]);
        };
        // b follows a back when a planted the follow-back, or b drew a: the
        // same for every row of one pair, as a self-join says.
        let mut start = 0;
        while start < edges.len() {
            let (a, b) = (edges[start].0, edges[start].1);
            let end = start + edges[start..].partition_point(|e| (e.0, e.1) == (a, b));
            let back = edges[start..end].iter().any(|e| e.3)
                || drawn
                    .binary_search(&(u64::from(a) << 32 | u64::from(b)))
                    .is_ok();
            for e in &mut edges[start..end] {
                e.3 = back;
            }
            start = end;
        }
        let mut parts: Vec<Vec<(u32, u32, bool, bool)>> = vec![Vec::new(); shards as usize];
        for e in edges {
            let shard = Shard::index_of(self.users[e.0 as usize], shards);
            if let Some(part) = parts.get_mut(shard as usize) {
                part.push(e);
            }
        }
        parts
            .iter()
            .map(|rows| {
                let mut columns = ids(rows);
                columns.push(bools(rows.iter().map(|e| e.3).collect()));
                batch(partitioned_follows_schema(), columns)
            })
            .collect()
    }

    /// The purchases of buyers `block`, in buyer order: own ones first.
    fn purchases_block(&self, block: Range<usize>) -> Result<RecordBatch> {
        let as_of = self.spec.as_of;
        let (mut bought, mut theirs, mut sources) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = PurchaseRows::default();
        for a in block {
            let influenced = self.own_purchases(a, &mut bought);
            let mut rng = stream(self.spec.seed, Stream::Purchases, a);
            // Social contagion: a copy is one of the followees' own
            // purchases, made again later.
            sources.clear();
            if influenced > 0 {
                self.follows_of(a, |f, _, _| {
                    self.own_purchases(f, &mut theirs);
                    sources.extend_from_slice(&theirs);
                });
            }
            for _ in 0..influenced {
                let (k, at) = match sources.len() {
                    0 => (
                        rng.skewed(self.catalog.len(), 2.0),
                        as_of - 1 - rng.below(PURCHASE_WINDOW as u64) as i64,
                    ),
                    len => {
                        let (k, t) = sources[rng.below(len as u64) as usize];
                        (k, t + 1 + rng.below((as_of - 1 - t).max(1) as u64) as i64)
                    }
                };
                bought.push((k, at.min(as_of - 1)));
            }
            for &(k, at) in &bought {
                let visibility = match rng.unit() {
                    x if x < 0.7 => "public",
                    x if x < 0.9 => "followers",
                    _ => "private",
                };
                let list_price = self.catalog[k].price;
                let price = match rng.unit() {
                    x if x < 0.8 => Some(list_price),
                    x if x < 0.9 => Some(list_price * 9 / 10),
                    _ => None,
                };
                rows.buyer.push(self.users[a]);
                rows.product.push(self.catalog[k].id);
                rows.at.push(at);
                rows.visibility.push(visibility);
                rows.price.push(price);
                rows.refunded.push(rng.chance(0.03));
            }
        }
        batch(
            purchases_schema(),
            vec![
                ints(rows.buyer),
                ints(rows.product),
                stamps(rows.at),
                Arc::new(StringArray::from(rows.visibility)),
                Arc::new(Int64Array::from(rows.price)),
                bools(rows.refunded),
            ],
        )
    }

    /// The users, blocks and impressions rows of accounts `block`.
    fn people_block(&self, block: Range<usize>) -> Result<[RecordBatch; 3]> {
        let n = self.accounts();
        let (mut users, mut blocks, mut shown) = (
            (Vec::new(), Vec::new(), Vec::new()),
            (Vec::new(), Vec::new()),
            (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        );
        for a in block {
            let mut rng = stream(self.spec.seed, Stream::Person, a);
            let u = self.users[a];
            users.0.push(u);
            users.1.push(rng.chance(0.02));
            users.2.push(rng.chance(0.003));
            if rng.chance(0.005) {
                blocks.0.push(u);
                blocks
                    .1
                    .push(self.users[self.order[rng.skewed(n, 2.0)] as usize]);
            }
            if rng.chance(0.1) {
                let k = rng.skewed(self.catalog.len(), 2.0);
                for _ in 0..1 + rng.below(5) {
                    shown.0.push(u);
                    shown.1.push(self.catalog[k].id);
                    shown
                        .2
                        .push(self.spec.as_of - 1 - rng.below(20 * DAY_US as u64) as i64);
                    shown.3.push(rng.chance(0.1));
                }
            }
        }
        Ok([
            batch(
                users_schema(),
                vec![ints(users.0), bools(users.1), bools(users.2)],
            )?,
            batch(blocks_schema(), vec![ints(blocks.0), ints(blocks.1)])?,
            batch(
                impressions_schema(),
                vec![
                    ints(shown.0),
                    ints(shown.1),
                    stamps(shown.2),
                    bools(shown.3),
                ],
            )?,
        ])
    }

    fn products_batch(&self) -> Result<RecordBatch> {
        let c = &self.catalog;
        batch(
            products_schema(),
            vec![
                ints(c.iter().map(|p| p.id).collect()),
                ints(c.iter().map(|p| p.merchant).collect()),
                ints(c.iter().map(|p| p.price).collect()),
                Arc::new(StringArray::from(
                    c.iter().map(|p| p.category.clone()).collect::<Vec<_>>(),
                )),
                bools(c.iter().map(|p| p.available).collect()),
            ],
        )
    }
}

#[derive(Default)]
struct PurchaseRows {
    buyer: Vec<i64>,
    product: Vec<i64>,
    at: Vec<i64>,
    visibility: Vec<&'static str>,
    price: Vec<Option<i64>>,
    refunded: Vec<bool>,
}

/// Writes the six tables as `<dir>/<table>.parquet`; returns rows per table.
pub fn write_world(
    spec: &WorldSpec,
    dir: &Path,
    progress: &Progress,
) -> Result<Vec<(&'static str, u64)>> {
    write_world_with(spec, dir, None, progress)
}

/// [`write_world`], with `shards` the follows partitioned by shard into
/// `<dir>/follows/` (with `followed_back`); the other tables the same.
pub fn write_world_with(
    spec: &WorldSpec,
    dir: &Path,
    shards: Option<u32>,
    progress: &Progress,
) -> Result<Vec<(&'static str, u64)>> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let world = World::new(spec);
    let spill = dir.join(".follow-backs");
    let follows = write_follows(&world, LAYOUT, dir, shards, &spill, progress);
    // The spill is scratch, whether or not the follows were written.
    let _ = fs::remove_dir_all(&spill);
    let follows = follows?;

    let n = world.accounts();
    let mut purchases = Sink::open(&table_file(dir, "purchases"), purchases_schema())?;
    let bar = progress.bar(n as u64, "purchases");
    in_blocks(
        0..n,
        LAYOUT,
        |block| world.purchases_block(block),
        |block, made| {
            bar.inc(block.len() as u64);
            purchases.send(made?)
        },
    )?;
    bar.finish_and_clear();
    let purchases = purchases.finish()?;

    let mut products = Sink::open(&table_file(dir, "products"), products_schema())?;
    products.send(world.products_batch()?)?;
    let products = products.finish()?;

    let [mut users, mut blocks, mut shown] = [
        Sink::open(&table_file(dir, "users"), users_schema())?,
        Sink::open(&table_file(dir, "blocks"), blocks_schema())?,
        Sink::open(&table_file(dir, "impressions"), impressions_schema())?,
    ];
    let bar = progress.bar(n as u64, "people");
    in_blocks(
        0..n,
        LAYOUT,
        |block| world.people_block(block),
        |block, made| {
            bar.inc(block.len() as u64);
            let [u, b, i] = made?;
            users.send(u)?;
            blocks.send(b)?;
            shown.send(i)
        },
    )?;
    bar.finish_and_clear();
    Ok(vec![
        ("follows", follows),
        ("purchases", purchases),
        ("products", products),
        ("users", users.finish()?),
        ("blocks", blocks.finish()?),
        ("impressions", shown.finish()?),
    ])
}

/// The two passes over the follows (see the module's doc); returns the rows
/// written.
fn write_follows(
    world: &World,
    layout: Layout,
    dir: &Path,
    shards: Option<u32>,
    spill: &Path,
    progress: &Progress,
) -> Result<u64> {
    let n = world.accounts();
    fs::create_dir_all(spill).map_err(|e| Error::io(spill, e))?;
    // Follow-backs, and with shards every drawn follow, by span.
    let span_path = |kind: &str, s: usize| spill.join(format!("{kind}-{s:05}.bin"));
    let spans = n.div_ceil(layout.span);
    let open = |kind: &str| {
        (0..spans)
            .map(|s| {
                let path = span_path(kind, s);
                File::create(&path)
                    .map(BufWriter::new)
                    .map_err(|e| Error::io(&path, e))
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut files = open("backs")?;
    let mut drawn_files = match shards {
        Some(_) => open("drawn")?,
        None => Vec::new(),
    };
    let mut rows = 0u64;
    let bar = progress.bar(n as u64, "follows (draw)");
    in_blocks(
        0..n,
        layout,
        |block| {
            let mut count = 0u64;
            let (mut backs, mut drawn) = (Vec::new(), Vec::new());
            for a in block {
                world.follows_of(a, |b, _, back| {
                    count += 1;
                    let key = (b as u64) << 32 | a as u64;
                    if back {
                        backs.push(key);
                    }
                    if shards.is_some() {
                        drawn.push(key);
                    }
                });
            }
            backs.sort_unstable();
            (count, backs, drawn)
        },
        |block, (count, backs, drawn)| {
            bar.inc(block.len() as u64);
            rows += count + backs.len() as u64;
            for (kind, keys, files) in [
                ("backs", backs, &mut files),
                ("drawn", drawn, &mut drawn_files),
            ] {
                for key in keys {
                    let s = (key >> 32) as usize / layout.span;
                    let file = files.get_mut(s).ok_or_else(|| {
                        Error::Internal(format!("span {s} of {kind} out of range"))
                    })?;
                    file.write_all(&key.to_le_bytes())
                        .map_err(|e| Error::io(span_path(kind, s), e))?;
                }
            }
            Ok(())
        },
    )?;
    for (kind, files) in [("backs", files), ("drawn", drawn_files)] {
        for (s, file) in files.into_iter().enumerate() {
            file.into_inner()
                .map_err(|e| Error::io(span_path(kind, s), e.into_error()))?;
        }
    }
    bar.finish_and_clear();

    let mut sinks = match shards {
        None => vec![Sink::open(&table_file(dir, "follows"), follows_schema())?],
        Some(count) => {
            let root = partitioned_root(dir, count)?;
            (0..count)
                .map(|i| {
                    let folder = root.join(format!("shard={i}"));
                    fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
                    Sink::open(
                        &folder.join("part-00000.parquet"),
                        partitioned_follows_schema(),
                    )
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    let read_span = |kind: &str, s: usize| -> Result<Vec<u64>> {
        let path = span_path(kind, s);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let mut keys: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                u64::from_le_bytes(word)
            })
            .collect();
        drop(bytes);
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        keys.par_sort_unstable();
        Ok(keys)
    };
    let bar = progress.bar(rows, "follows");
    for s in 0..spans {
        let backs = read_span("backs", s)?;
        let drawn = match shards {
            Some(count) => Some((read_span("drawn", s)?, count)),
            None => None,
        };
        let drawn = drawn
            .as_ref()
            .map(|(keys, count)| (keys.as_slice(), *count));
        in_blocks(
            s * layout.span..((s + 1) * layout.span).min(n),
            layout,
            |block| world.follows_block(block, &backs, drawn),
            |_, made| {
                for (sink, batch) in sinks.iter_mut().zip(made?) {
                    bar.inc(batch.num_rows() as u64);
                    sink.send(batch)?;
                }
                Ok(())
            },
        )?;
    }
    bar.finish_and_clear();
    let mut written = 0;
    for sink in &mut sinks {
        written += sink.finish()?;
    }
    if let Some(count) = shards {
        let path = dir.join("follows").join(SHARDS_FILE);
        fs::write(&path, format!("{count}\n")).map_err(|e| Error::io(&path, e))?;
    }
    Ok(written)
}

/// `<dir>/<table>.parquet`.
fn table_file(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.parquet"))
}

/// `<dir>/follows/`, emptied of an earlier partitioned table (a folder
/// that is not one is refused, never removed); `_shards` is written last.
fn partitioned_root(dir: &Path, count: u32) -> Result<PathBuf> {
    if count == 0 {
        return Err(Error::Usage("--shards must be at least 1".into()));
    }
    let root = dir.join("follows");
    if root.exists() {
        if !root.join(SHARDS_FILE).is_file() {
            return Err(Error::Usage(format!(
                "{} exists and is not a follows folder partitioned by shard (no {SHARDS_FILE}): \
                 remove it or write elsewhere",
                root.display()
            )));
        }
        fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    }
    fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    Ok(root)
}

/// Makes the blocks of `accounts` a few at a time in parallel and hands
/// them to `take` in account order.
fn in_blocks<T: Send>(
    accounts: Range<usize>,
    layout: Layout,
    make: impl Fn(Range<usize>) -> T + Sync,
    mut take: impl FnMut(Range<usize>, T) -> Result<()>,
) -> Result<()> {
    let blocks: Vec<Range<usize>> = accounts
        .clone()
        .step_by(layout.block)
        .map(|lo| lo..(lo + layout.block).min(accounts.end))
        .collect();
    for group in blocks.chunks(2 * rayon::current_num_threads()) {
        let made: Vec<T> = group.par_iter().map(|block| make(block.clone())).collect();
        for (block, t) in group.iter().zip(made) {
            take(block.clone(), t)?;
        }
    }
    Ok(())
}

/// A Parquet file written on its own thread, batch by batch.
struct Sink {
    tx: Option<SyncSender<RecordBatch>>,
    writer: Option<JoinHandle<Result<u64>>>,
}

impl Sink {
    fn open(path: &Path, schema: SchemaRef) -> Result<Sink> {
        let path = path.to_path_buf();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|source| Error::parquet(&path, source))?;
        let (tx, rx) = sync_channel::<RecordBatch>(2);
        let writer = thread::spawn(move || {
            let mut rows = 0;
            for batch in rx {
                rows += batch.num_rows() as u64;
                writer
                    .write(&batch)
                    .map_err(|source| Error::parquet(&path, source))?;
            }
            writer
                .close()
                .map_err(|source| Error::parquet(&path, source))?;
            Ok(rows)
        });
        Ok(Sink {
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    fn send(&mut self, batch: RecordBatch) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(batch).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish()
            .and(Err(Error::Internal("a table writer stopped early".into())))
    }

    /// Closes the file; returns its rows.
    fn finish(&mut self) -> Result<u64> {
        drop(self.tx.take());
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(Error::Internal("a table writer panicked".into())),
            None => Err(Error::Internal("a table writer was closed twice".into())),
        }
    }
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::Internal(format!("a generated batch does not fit its schema: {e}")))
}

fn ints(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn bools(v: Vec<bool>) -> ArrayRef {
    Arc::new(BooleanArray::from(v))
}

fn stamps(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

fn id(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, false)
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

fn follows_schema() -> SchemaRef {
    schema(vec![id("follower_id"), id("followee_id"), flag("muted")])
}

fn partitioned_follows_schema() -> SchemaRef {
    schema(vec![
        id("follower_id"),
        id("followee_id"),
        flag("muted"),
        flag("followed_back"),
    ])
}

fn purchases_schema() -> SchemaRef {
    schema(vec![
        id("buyer_id"),
        id("product_id"),
        Field::new("purchased_at", timestamp(), false),
        Field::new("visibility", DataType::Utf8, false),
        Field::new("price_cents", DataType::Int64, true),
        flag("refunded"),
    ])
}

fn products_schema() -> SchemaRef {
    schema(vec![
        id("product_id"),
        id("merchant_id"),
        id("price_cents"),
        Field::new("category", DataType::Utf8, true),
        flag("available"),
    ])
}

fn users_schema() -> SchemaRef {
    schema(vec![
        id("user_id"),
        flag("promotions_opt_out"),
        flag("suspended"),
    ])
}

fn blocks_schema() -> SchemaRef {
    schema(vec![id("user_id"), id("blocked_id")])
}

fn impressions_schema() -> SchemaRef {
    schema(vec![
        id("user_id"),
        id("product_id"),
        Field::new("shown_at", timestamp(), false),
        flag("clicked"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn spec(users: u32) -> WorldSpec {
        WorldSpec {
            seed: 9,
            users,
            avg_follows: 12.0,
            products: 50,
            buyer_frac: 0.2,
            influence: 0.3,
            as_of: 1_700_000_000_000_000,
        }
    }

    fn read_follows(path: &Path) -> Vec<(i64, i64, bool)> {
        let file = File::open(path).unwrap();
        let mut rows = Vec::new();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let col = |i: usize| batch.column(i).as_any();
            let a = col(0).downcast_ref::<Int64Array>().unwrap();
            let b = col(1).downcast_ref::<Int64Array>().unwrap();
            let m = col(2).downcast_ref::<BooleanArray>().unwrap();
            rows.extend((0..batch.num_rows()).map(|i| (a.value(i), b.value(i), m.value(i))));
        }
        rows
    }

    /// Ids stay positive and ascending however many must fit in the clock.
    #[test]
    fn snowflakes_fit_63_bits() {
        let epoch = (1i64 << 41) - 1 - 5_000;
        for n in [1, 100, 5_000] {
            let ids = snowflakes(&mut Rng(1), n, epoch);
            assert!(ids.iter().all(|&id| id > 0), "{n} ids overflow");
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{n} ids not ascending");
        }
    }

    /// The spilled, blocked, streamed follows equal the plain build: every
    /// draw, every follow-back, the planted repeats and self-follows, all
    /// held in memory and sorted once.
    #[test]
    fn streamed_follows_equal_a_plain_sort() {
        let spec = spec(3_000);
        let world = World::new(&spec);
        let mut plain = Vec::new();
        for a in 0..world.accounts() {
            let mut first = None;
            world.follows_of(a, |b, muted, back| {
                first.get_or_insert((a, b, muted));
                plain.push((a, b, muted));
                if back {
                    plain.push((b, a, false));
                }
            });
            if a < 3 {
                plain.extend(first);
                plain.push((a, a, false));
            }
        }
        plain.sort_unstable();
        let plain: Vec<_> = plain
            .into_iter()
            .map(|(a, b, m)| (world.users[a], world.users[b], m))
            .collect();
        assert!(plain.len() > 30_000);

        // Blocks that straddle spans, spans of unequal length.
        for layout in [
            Layout {
                block: 37,
                span: 500,
            },
            Layout {
                block: 1 << 16,
                span: 1 << 20,
            },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let spill = dir.path().join("spill");
            let rows = write_follows(
                &world,
                layout,
                dir.path(),
                None,
                &spill,
                &Progress::hidden(),
            )
            .unwrap();
            let written = read_follows(&dir.path().join("follows.parquet"));
            assert_eq!(rows, written.len() as u64);
            assert_eq!(written, plain, "{layout:?}");
        }
    }
}
