//! Random small worlds for the property tests: the raw rows of every input
//! table, proptest strategies that make them, and the code that writes a
//! world as files plus a job TOML.
//!
//! Tables are mostly CSV (the contract's CSV rules: exact header names,
//! RFC 4180 quoting, empty field for null, `true`/`false`, RFC 3339 with `Z`
//! or an offset, sometimes finer than µs), sometimes Parquet (ids as Int64 or
//! UInt64, timestamps in ms, µs or ns, marked UTC or not); a table is one
//! file or a folder of two parts (flat or Hive-style, with `_SUCCESS` and a
//! `.crc` file to skip); optional columns that are all null may be left out,
//! columns may come in another order, with an unknown one added. `as_of` is
//! given as RFC 3339, with a fraction of a second to cut, or as a plain date.
//!
//! The strategies aim at the edges of the contract rather than at realism:
//! few users with sparse, huge ids; purchases exactly at `as_of`, exactly at
//! the window's start and one µs either side; duplicate, self and muted
//! follows; blocks both ways; every visibility; refunds; null, zero and
//! positive prices paid; unavailable products and products missing from the
//! catalog; opted-out and suspended users; impressions around the fatigue
//! window; and products built to tie (same buyers at the same instants, same
//! price).

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::reference::Params;
use crate::util::write_job;

/// One day in microseconds.
pub const DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    pub follower_id: i64,
    pub followee_id: i64,
    /// `None` is a null (or absent) cell: the default, false.
    pub muted: Option<bool>,
    /// Written only when the world's `followed_back_column` is set; `None`
    /// is a null cell: false.
    pub followed_back: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    pub buyer_id: i64,
    pub product_id: i64,
    /// Epoch microseconds, UTC.
    pub purchased_at: i64,
    /// `public`, `followers` or `private`.
    pub visibility: String,
    pub price_cents: Option<i64>,
    /// `None`: default, false.
    pub refunded: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub product_id: i64,
    pub merchant_id: i64,
    pub price_cents: i64,
    pub category: Option<String>,
    /// `None`: default, true.
    pub available: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub user_id: i64,
    /// `None`: default, false.
    pub promotions_opt_out: Option<bool>,
    /// `None`: default, false.
    pub suspended: Option<bool>,
    /// `None`: default, false.
    pub hide_purchases: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub user_id: i64,
    pub blocked_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    pub user_id: i64,
    pub product_id: i64,
    /// Epoch microseconds, UTC.
    pub shown_at: i64,
    /// `None`: default, false.
    pub clicked: Option<bool>,
}

/// The raw rows of every input table. An optional table that is `None` is
/// left out of the job altogether.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    pub follows: Vec<Follow>,
    /// The follows table has the `followed_back` column (which then alone
    /// says who follows back).
    pub followed_back_column: bool,
    pub purchases: Vec<Purchase>,
    pub products: Vec<Product>,
    pub users: Option<Vec<User>>,
    pub blocks: Option<Vec<Block>>,
    pub impressions: Option<Vec<Impression>>,
}

// ---------------------------------------------------------------------------
// How a world is written to disk.

/// How one table's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// One `<table>.csv` (or `.parquet`) file.
    Single,
    /// A `<table>/` folder with two parts, plus `_SUCCESS` and a `.crc` file
    /// that must be skipped.
    Two,
    /// A `<table>/` folder with two Hive-style `k=v/` sub-folders, one part
    /// in each.
    Hive,
}

/// How timestamps are spelled in CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStyle {
    /// `2026-11-23T12:34:56.000001Z`
    ZMicros,
    /// `2026-11-23T12:34:56Z` or with 3 or 6 digits, as needed.
    ZAuto,
    /// Nine digits, the last three not zero (finer than µs: rounded down).
    ZNanos,
    /// The same instant at a fixed offset from UTC, in seconds east.
    Offset(i32),
}

/// How timestamps are stored in Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetTime {
    /// Timestamp(µs, "UTC").
    MicrosUtc,
    /// Timestamp(ns, "UTC"), with 789 ns past each µs (rounded down).
    NanosUtc,
    /// Timestamp(ms, none) when every value is whole ms, else (µs, none):
    /// not marked UTC, read as UTC.
    Naive,
}

/// The format of one table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV, timestamps as `TimeStyle` says, lines ending in CRLF or not.
    Csv { time: TimeStyle, crlf: bool },
    /// Parquet, ids as UInt64 or Int64.
    Parquet {
        time: ParquetTime,
        unsigned_ids: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    pub format: Format,
    pub parts: Parts,
    /// Leave out an optional column whose cells are all null.
    pub omit_null_columns: bool,
    /// Write the columns in reverse order.
    pub reverse_columns: bool,
    /// Add a column the contract does not know (must be ignored).
    pub extra_column: bool,
}

impl TableLayout {
    pub const PLAIN: TableLayout = TableLayout {
        format: Format::Csv {
            time: TimeStyle::ZMicros,
            crlf: false,
        },
        parts: Parts::Single,
        omit_null_columns: false,
        reverse_columns: false,
        extra_column: false,
    };
}

/// How the `[model]` and `[selection]` settings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigStyle {
    /// Not at all (the case's params are the defaults).
    Omit,
    /// Only the keys that differ from the defaults (and the model's name).
    Partial,
    /// Every key; floats that are whole numbers written as integers.
    FullIntegers,
    /// Every key, floats as floats.
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub follows: TableLayout,
    pub purchases: TableLayout,
    pub products: TableLayout,
    pub users: TableLayout,
    pub blocks: TableLayout,
    pub impressions: TableLayout,
    pub config_style: ConfigStyle,
    /// Give `as_of` as a plain date (it is midnight UTC then).
    pub plain_date: bool,
    /// Microseconds added to `as_of` in the text given to the run (it is
    /// cut to whole seconds, so this must change nothing).
    pub as_of_fraction: i64,
    /// Write the follows sorted by follower (the loader's one-pass path)
    /// rather than in the world's order (its gather-and-sort path).
    pub sorted_follows: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            follows: TableLayout::PLAIN,
            purchases: TableLayout::PLAIN,
            products: TableLayout::PLAIN,
            users: TableLayout::PLAIN,
            blocks: TableLayout::PLAIN,
            impressions: TableLayout::PLAIN,
            config_style: ConfigStyle::Full,
            plain_date: false,
            as_of_fraction: 0,
            sorted_follows: false,
        }
    }
}

/// Everything one property-test case needs: the world, the settings, the
/// run's instant and how it all goes to disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub world: World,
    pub params: Params,
    /// Epoch microseconds, whole seconds.
    pub as_of: i64,
    pub layout: Layout,
}

impl Case {
    /// The `as_of` text given to the run (TOML and command line).
    pub fn as_of_arg(&self) -> String {
        if self.layout.plain_date {
            assert_eq!(self.as_of % DAY, 0, "a plain date is midnight");
            DateTime::from_timestamp_micros(self.as_of)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string()
        } else if self.layout.as_of_fraction != 0 {
            DateTime::from_timestamp_micros(self.as_of + self.layout.as_of_fraction)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        } else {
            as_of_text(self.as_of)
        }
    }
}

/// `as_of` (epoch µs, whole seconds) as RFC 3339 text with `Z`.
pub fn as_of_text(as_of: i64) -> String {
    DateTime::from_timestamp_micros(as_of)
        .expect("as_of out of range")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The prefix of a run id for `as_of`: `YYYYMMDDTHHMMSSZ-`.
pub fn run_id_prefix(as_of: i64) -> String {
    DateTime::from_timestamp_micros(as_of)
        .expect("as_of out of range")
        .format("%Y%m%dT%H%M%SZ-")
        .to_string()
}

fn csv_timestamp(t: i64, style: TimeStyle) -> String {
    let utc = DateTime::from_timestamp_micros(t).expect("timestamp out of range");
    match style {
        TimeStyle::ZMicros => utc.to_rfc3339_opts(SecondsFormat::Micros, true),
        TimeStyle::ZAuto => utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        TimeStyle::ZNanos => {
            (utc + chrono::Duration::nanoseconds(789)).to_rfc3339_opts(SecondsFormat::Nanos, true)
        }
        TimeStyle::Offset(east) => utc
            .with_timezone(&FixedOffset::east_opt(east).expect("bad offset"))
            .to_rfc3339_opts(SecondsFormat::Micros, false),
    }
}

/// One CSV field, quoted per RFC 4180 when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The cells of one column, typed as the contract types them.
enum Cells {
    Id(Vec<i64>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    /// Epoch µs.
    Time(Vec<i64>),
}

impl Cells {
    fn len(&self) -> usize {
        match self {
            Cells::Id(v) | Cells::Time(v) => v.len(),
            Cells::Int(v) => v.len(),
            Cells::Bool(v) => v.len(),
            Cells::Text(v) => v.len(),
        }
    }

    fn all_null(&self) -> bool {
        match self {
            Cells::Id(_) | Cells::Time(_) => false,
            Cells::Int(v) => v.iter().all(Option::is_none),
            Cells::Bool(v) => v.iter().all(Option::is_none),
            Cells::Text(v) => v.iter().all(Option::is_none),
        }
    }

    /// Row `r` as CSV text (empty for a null).
    fn csv(&self, r: usize, time: TimeStyle) -> String {
        match self {
            Cells::Id(v) => v[r].to_string(),
            Cells::Time(v) => csv_timestamp(v[r], time),
            Cells::Int(v) => v[r].map(|x| x.to_string()).unwrap_or_default(),
            Cells::Bool(v) => v[r].map(|b| b.to_string()).unwrap_or_default(),
            Cells::Text(v) => field(v[r].as_deref().unwrap_or("")),
        }
    }

    /// Rows `rows` as an Arrow array.
    fn arrow(&self, rows: Range<usize>, time: ParquetTime, unsigned_ids: bool) -> ArrayRef {
        match self {
            Cells::Id(v) if unsigned_ids => Arc::new(UInt64Array::from(
                v[rows].iter().map(|&x| x as u64).collect::<Vec<u64>>(),
            )),
            Cells::Id(v) => Arc::new(Int64Array::from(v[rows].to_vec())),
            Cells::Int(v) => Arc::new(Int64Array::from(v[rows].to_vec())),
            Cells::Bool(v) => Arc::new(BooleanArray::from(v[rows].to_vec())),
            Cells::Text(v) => Arc::new(StringArray::from(v[rows].to_vec())),
            Cells::Time(v) => {
                let v = &v[rows];
                match time {
                    ParquetTime::MicrosUtc => {
                        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
                    }
                    ParquetTime::NanosUtc => Arc::new(
                        TimestampNanosecondArray::from(
                            v.iter().map(|&t| t * 1000 + 789).collect::<Vec<i64>>(),
                        )
                        .with_timezone("UTC"),
                    ),
                    ParquetTime::Naive if v.iter().all(|t| t % 1000 == 0) => {
                        Arc::new(TimestampMillisecondArray::from(
                            v.iter().map(|&t| t / 1000).collect::<Vec<i64>>(),
                        ))
                    }
                    ParquetTime::Naive => Arc::new(TimestampMicrosecondArray::from(v.to_vec())),
                }
            }
        }
    }
}

/// One column to write: its name, whether the contract lets it be left out,
/// and its cells.
struct Column {
    name: &'static str,
    optional: bool,
    cells: Cells,
}

fn col(name: &'static str, optional: bool, cells: Cells) -> Column {
    Column {
        name,
        optional,
        cells,
    }
}

/// The text of the extra, unknown column.
fn note(r: usize) -> String {
    format!("row {r}, \"x\"")
}

/// Renders a CSV file's text (header and the given rows).
fn csv_text(columns: &[&Column], rows: Range<usize>, layout: TableLayout) -> String {
    let Format::Csv { time, crlf } = layout.format else {
        unreachable!()
    };
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    let mut header: Vec<String> = columns.iter().map(|c| field(c.name)).collect();
    if layout.extra_column {
        header.push("note".into());
    }
    text.push_str(&header.join(","));
    text.push_str(eol);
    for r in rows {
        let mut cells: Vec<String> = columns.iter().map(|c| c.cells.csv(r, time)).collect();
        if layout.extra_column {
            cells.push(field(&note(r)));
        }
        text.push_str(&cells.join(","));
        text.push_str(eol);
    }
    text
}

/// Rows per row group of the Parquet files written.
const PARQUET_GROUP_ROWS: usize = 5;

/// Writes the given rows as one Parquet file.
fn write_parquet(path: &Path, columns: &[&Column], rows: Range<usize>, layout: TableLayout) {
    let Format::Parquet { time, unsigned_ids } = layout.format else {
        unreachable!()
    };
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for c in columns {
        let array = c.cells.arrow(rows.clone(), time, unsigned_ids);
        fields.push(Field::new(c.name, array.data_type().clone(), c.optional));
        arrays.push(array);
    }
    if layout.extra_column {
        let notes: Vec<String> = rows.clone().map(note).collect();
        fields.push(Field::new("note", DataType::Utf8, false));
        arrays.push(Arc::new(StringArray::from(notes)));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let file = fs::File::create(path).unwrap();
    // Small row groups: the follows are streamed a row group at a time.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(PARQUET_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    if batch.num_rows() > 0 {
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

/// Writes one part file (CSV or Parquet) named `stem.<ext>` in `dir`.
fn write_part(
    dir: &Path,
    stem: &str,
    columns: &[&Column],
    rows: Range<usize>,
    layout: TableLayout,
) {
    match layout.format {
        Format::Csv { .. } => fs::write(
            dir.join(format!("{stem}.csv")),
            csv_text(columns, rows, layout),
        )
        .unwrap(),
        Format::Parquet { .. } => {
            write_parquet(&dir.join(format!("{stem}.parquet")), columns, rows, layout)
        }
    }
}

/// Writes one table under `dir` as `layout` says and returns the path to
/// name in the job (relative to `dir`).
fn write_table(dir: &Path, table: &str, columns: Vec<Column>, layout: TableLayout) -> String {
    let n_rows = columns[0].cells.len();
    let mut kept: Vec<&Column> = columns
        .iter()
        .filter(|c| {
            let keep = !c.optional || c.name == "followed_back";
            keep || !(layout.omit_null_columns && c.cells.all_null())
        })
        .collect();
    if layout.reverse_columns {
        kept.reverse();
    }
    match layout.parts {
        Parts::Single => {
            write_part(dir, table, &kept, 0..n_rows, layout);
            match layout.format {
                Format::Csv { .. } => format!("{table}.csv"),
                Format::Parquet { .. } => format!("{table}.parquet"),
            }
        }
        Parts::Two | Parts::Hive => {
            let root = dir.join(table);
            let half = n_rows / 2;
            let (first, second) = if layout.parts == Parts::Two {
                (root.clone(), root.clone())
            } else {
                (root.join("day=1"), root.join("day=2"))
            };
            fs::create_dir_all(&first).unwrap();
            fs::create_dir_all(&second).unwrap();
            write_part(&first, "part-0", &kept, 0..half, layout);
            write_part(&second, "part-1", &kept, half..n_rows, layout);
            fs::write(root.join("_SUCCESS"), "").unwrap();
            fs::write(root.join(".part-0.crc"), "not a part").unwrap();
            table.to_string()
        }
    }
}

/// Writes every table of `world` under `dir` and returns the job's
/// `[inputs]` entries.
pub fn write_world(dir: &Path, world: &World, layout: &Layout) -> Vec<(&'static str, String)> {
    let mut inputs = Vec::new();

    let mut f: Vec<&Follow> = world.follows.iter().collect();
    if layout.sorted_follows {
        // By follower only: each follower's rows keep their order.
        f.sort_by_key(|r| r.follower_id);
    }
    let mut columns = vec![
        col(
            "follower_id",
            false,
            Cells::Id(f.iter().map(|r| r.follower_id).collect()),
        ),
        col(
            "followee_id",
            false,
            Cells::Id(f.iter().map(|r| r.followee_id).collect()),
        ),
        col(
            "muted",
            true,
            Cells::Bool(f.iter().map(|r| r.muted).collect()),
        ),
    ];
    if world.followed_back_column {
        // Never left out as all-null (see `write_table`): its presence is
        // the rule.
        columns.push(col(
            "followed_back",
            true,
            Cells::Bool(f.iter().map(|r| r.followed_back).collect()),
        ));
    }
    inputs.push((
        "follows",
        write_table(dir, "follows", columns, layout.follows),
    ));

    let p = &world.purchases;
    let columns = vec![
        col(
            "buyer_id",
            false,
            Cells::Id(p.iter().map(|r| r.buyer_id).collect()),
        ),
        col(
            "product_id",
            false,
            Cells::Id(p.iter().map(|r| r.product_id).collect()),
        ),
        col(
            "purchased_at",
            false,
            Cells::Time(p.iter().map(|r| r.purchased_at).collect()),
        ),
        col(
            "visibility",
            false,
            Cells::Text(p.iter().map(|r| Some(r.visibility.clone())).collect()),
        ),
        col(
            "price_cents",
            true,
            Cells::Int(p.iter().map(|r| r.price_cents).collect()),
        ),
        col(
            "refunded",
            true,
            Cells::Bool(p.iter().map(|r| r.refunded).collect()),
        ),
    ];
    inputs.push((
        "purchases",
        write_table(dir, "purchases", columns, layout.purchases),
    ));

    let p = &world.products;
    let columns = vec![
        col(
            "product_id",
            false,
            Cells::Id(p.iter().map(|r| r.product_id).collect()),
        ),
        col(
            "merchant_id",
            false,
            Cells::Id(p.iter().map(|r| r.merchant_id).collect()),
        ),
        col(
            "price_cents",
            false,
            Cells::Int(p.iter().map(|r| Some(r.price_cents)).collect()),
        ),
        col(
            "category",
            true,
            Cells::Text(p.iter().map(|r| r.category.clone()).collect()),
        ),
        col(
            "available",
            true,
            Cells::Bool(p.iter().map(|r| r.available).collect()),
        ),
    ];
    inputs.push((
        "products",
        write_table(dir, "products", columns, layout.products),
    ));

    if let Some(u) = &world.users {
        let columns = vec![
            col(
                "user_id",
                false,
                Cells::Id(u.iter().map(|r| r.user_id).collect()),
            ),
            col(
                "promotions_opt_out",
                true,
                Cells::Bool(u.iter().map(|r| r.promotions_opt_out).collect()),
            ),
            col(
                "suspended",
                true,
                Cells::Bool(u.iter().map(|r| r.suspended).collect()),
            ),
            col(
                "hide_purchases",
                true,
                Cells::Bool(u.iter().map(|r| r.hide_purchases).collect()),
            ),
        ];
        inputs.push(("users", write_table(dir, "users", columns, layout.users)));
    }

    if let Some(b) = &world.blocks {
        let columns = vec![
            col(
                "user_id",
                false,
                Cells::Id(b.iter().map(|r| r.user_id).collect()),
            ),
            col(
                "blocked_id",
                false,
                Cells::Id(b.iter().map(|r| r.blocked_id).collect()),
            ),
        ];
        inputs.push(("blocks", write_table(dir, "blocks", columns, layout.blocks)));
    }

    if let Some(i) = &world.impressions {
        let columns = vec![
            col(
                "user_id",
                false,
                Cells::Id(i.iter().map(|r| r.user_id).collect()),
            ),
            col(
                "product_id",
                false,
                Cells::Id(i.iter().map(|r| r.product_id).collect()),
            ),
            col(
                "shown_at",
                false,
                Cells::Time(i.iter().map(|r| r.shown_at).collect()),
            ),
            col(
                "clicked",
                true,
                Cells::Bool(i.iter().map(|r| r.clicked).collect()),
            ),
        ];
        inputs.push((
            "impressions",
            write_table(dir, "impressions", columns, layout.impressions),
        ));
    }
    inputs
}

/// A float as TOML text; a whole number as an integer when `integers`.
fn toml_float(x: f64, integers: bool) -> String {
    if integers && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        // `{:?}` is the shortest text that reads back as the same f64, and
        // always has a `.` or an exponent, as TOML floats need.
        format!("{x:?}")
    }
}

/// The `[model]` and `[selection]` sections for `params`, as `style` says.
pub fn config_sections(params: &Params, style: ConfigStyle) -> String {
    if style == ConfigStyle::Omit {
        assert_eq!(*params, Params::default(), "omitted config needs defaults");
        return String::new();
    }
    let d = Params::default();
    let all = matches!(style, ConfigStyle::Full | ConfigStyle::FullIntegers);
    let ints = style == ConfigStyle::FullIntegers;
    let mut model = String::from("[model]\nname = \"social_v1\"\n");
    let mut selection = String::from("[selection]\n");
    let float = |out: &mut String, key: &str, v: f64, dv: f64| {
        if all || v != dv {
            out.push_str(&format!("{key} = {}\n", toml_float(v, ints)));
        }
    };
    float(
        &mut model,
        "half_life_days",
        params.half_life_days,
        d.half_life_days,
    );
    float(
        &mut model,
        "mutual_bonus",
        params.mutual_bonus,
        d.mutual_bonus,
    );
    float(&mut model, "w_proof", params.w_proof, d.w_proof);
    float(&mut model, "w_buyers", params.w_buyers, d.w_buyers);
    float(
        &mut model,
        "w_popularity",
        params.w_popularity,
        d.w_popularity,
    );
    float(&mut model, "w_price", params.w_price, d.w_price);
    float(&mut selection, "min_score", params.min_score, d.min_score);
    let int = |out: &mut String, key: &str, v: i64, dv: i64| {
        if all || v != dv {
            out.push_str(&format!("{key} = {v}\n"));
        }
    };
    int(
        &mut model,
        "lookback_days",
        params.lookback_days,
        d.lookback_days,
    );
    int(
        &mut model,
        "fatigue_max_impressions",
        params.fatigue_max_impressions,
        d.fatigue_max_impressions,
    );
    int(
        &mut model,
        "fatigue_days",
        params.fatigue_days,
        d.fatigue_days,
    );
    int(
        &mut selection,
        "min_buyers",
        params.min_buyers,
        d.min_buyers,
    );
    int(
        &mut selection,
        "max_per_merchant",
        params.max_per_merchant,
        d.max_per_merchant,
    );
    int(
        &mut selection,
        "max_per_category",
        params.max_per_category,
        d.max_per_category,
    );
    int(
        &mut selection,
        "max_buyers_shown",
        params.max_buyers_shown,
        d.max_buyers_shown,
    );
    if all || !params.sensitive_categories.is_empty() {
        let list: Vec<String> = params
            .sensitive_categories
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        model.push_str(&format!("sensitive_categories = [{}]\n", list.join(", ")));
    }
    if all || params.positions != d.positions {
        let list: Vec<String> = params.positions.iter().map(|p| p.to_string()).collect();
        selection.push_str(&format!("positions = [{}]\n", list.join(", ")));
    }
    format!("{model}\n{selection}")
}

/// Writes the case's tables and its job TOML under `dir`; returns the job's
/// path. The job's output folder is `dir/out`.
pub fn write_case(dir: &Path, case: &Case) -> PathBuf {
    let inputs = write_world(dir, &case.world, &case.layout);
    let inputs: Vec<(&str, &str)> = inputs.iter().map(|(t, p)| (*t, p.as_str())).collect();
    let extra = config_sections(&case.params, case.layout.config_style);
    write_job(dir, &inputs, &case.as_of_arg(), &extra)
}

// ---------------------------------------------------------------------------
// Strategies.

/// How big the generated worlds are.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub users: (usize, usize),
    pub products: (usize, usize),
    pub follows: usize,
    pub purchases: usize,
    pub impression_groups: usize,
}

/// 2–12 users, up to 8 products: the property tests' size.
pub const SMALL: Size = Size {
    users: (2, 12),
    products: (1, 8),
    follows: 30,
    purchases: 40,
    impression_groups: 12,
};

/// A few hundred users: enough for several threads to share the work.
pub const MEDIUM: Size = Size {
    users: (60, 200),
    products: (4, 20),
    follows: 1200,
    purchases: 900,
    impression_groups: 60,
};

/// Where in time an event goes, resolved against `as_of` and the windows.
#[derive(Debug, Clone, Copy)]
struct TimePick(u8, u64);

fn time_pick() -> impl Strategy<Value = TimePick> {
    (0u8..20, any::<u64>()).prop_map(|(k, r)| TimePick(k, r))
}

/// A purchase time: the edges of the lookback window, a shared instant (for
/// ties), anywhere inside, long before (owned but outside) or after.
fn purchase_time(pick: TimePick, as_of: i64, lookback_days: i64, pool: &[i64]) -> i64 {
    let start = as_of - lookback_days * DAY;
    let TimePick(k, r) = pick;
    match k {
        0 => as_of,
        1 => start,
        2 => start - 1,
        3 => as_of - 1,
        4..=8 => pool[(r % pool.len() as u64) as usize],
        9..=15 => start + (r % (lookback_days * DAY) as u64) as i64,
        16 | 17 => start - 1 - (r % (200 * DAY) as u64) as i64,
        18 => as_of + 1 + (r % (5 * DAY) as u64) as i64,
        // Within the second after as_of (the run's as_of text may carry a
        // fraction of it, which is cut).
        _ => as_of + (r % 1_000_000) as i64,
    }
}

/// An impression time: the edges of the fatigue window or near it.
fn impression_time(pick: TimePick, as_of: i64, fatigue_days: i64) -> i64 {
    let start = as_of - fatigue_days * DAY;
    let TimePick(k, r) = pick;
    match k {
        0 => as_of,
        1 => as_of + (r % 1_000_000) as i64,
        2 | 3 => start,
        4 | 5 => start - 1,
        6 => as_of - 1,
        // From two days before the window to one day after as_of.
        _ => start - 2 * DAY + (r % ((fatigue_days + 3) * DAY) as u64) as i64,
    }
}

/// An optional flag: null (its default) or the default spelled out about
/// evenly, and the other value with probability `p_rare` (0 < p_rare < 1).
fn flag(p_rare: f64, default: bool) -> impl Strategy<Value = Option<bool>> + Clone {
    let rare = ((p_rare * 100.0) as u32).clamp(1, 98);
    let rest = 100 - rare;
    prop_oneof![
        rest / 2 => Just(None),
        rest - rest / 2 => Just(Some(default)),
        rare => Just(Some(!default)),
    ]
}

fn format() -> impl Strategy<Value = Format> + Clone {
    let time = prop_oneof![
        4 => Just(TimeStyle::ZMicros),
        2 => Just(TimeStyle::ZAuto),
        1 => Just(TimeStyle::ZNanos),
        1 => Just(TimeStyle::Offset(5 * 3600 + 1800)),
        1 => Just(TimeStyle::Offset(-8 * 3600)),
    ];
    let parquet_time = prop_oneof![
        Just(ParquetTime::MicrosUtc),
        Just(ParquetTime::NanosUtc),
        Just(ParquetTime::Naive),
    ];
    prop_oneof![
        3 => (time, prop::bool::weighted(0.15)).prop_map(|(time, crlf)| Format::Csv { time, crlf }),
        1 => (parquet_time, any::<bool>())
            .prop_map(|(time, unsigned_ids)| Format::Parquet { time, unsigned_ids }),
    ]
}

fn table_layout() -> impl Strategy<Value = TableLayout> + Clone {
    (
        format(),
        prop_oneof![6 => Just(Parts::Single), 2 => Just(Parts::Two), 1 => Just(Parts::Hive)],
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(format, parts, omit_null_columns, reverse_columns, extra_column)| TableLayout {
                format,
                parts,
                omit_null_columns,
                reverse_columns,
                extra_column,
            },
        )
}

fn arb_layout() -> impl Strategy<Value = Layout> {
    let config_style = prop_oneof![
        Just(ConfigStyle::Partial),
        Just(ConfigStyle::Full),
        Just(ConfigStyle::FullIntegers),
    ];
    (
        table_layout(),
        table_layout(),
        table_layout(),
        table_layout(),
        table_layout(),
        table_layout(),
        config_style,
        any::<bool>(),
    )
        .prop_map(
            |(follows, purchases, products, users, blocks, impressions, config_style, sorted)| {
                Layout {
                    follows,
                    purchases,
                    products,
                    users,
                    blocks,
                    impressions,
                    config_style,
                    plain_date: false,
                    as_of_fraction: 0,
                    sorted_follows: sorted,
                }
            },
        )
}

/// Settings: the defaults a third of the time, else a mix of values that
/// move the thresholds, caps and windows around.
pub fn arb_params() -> impl Strategy<Value = Option<Params>> {
    let model = (
        select(vec![30i64, 30, 7, 1, 45]),
        select(vec![7.0f64, 7.0, 3.5, 1.0, 10.0, 0.25]),
        select(vec![0.5f64, 0.5, 0.0, 1.0, 2.5]),
        select(vec![1.0f64, 1.0, 2.0, 0.3]),
        select(vec![0.5f64, 0.5, 0.0, 1.0]),
        select(vec![-0.1f64, -0.1, 0.0, 0.3]),
        select(vec![0.2f64, 0.2, 0.0, 1.5]),
        select(vec![3i64, 3, 1, 2]),
        select(vec![14i64, 14, 0, 3]),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => proptest::sample::subsequence(CATEGORIES.to_vec(), 1..=2)
                .prop_map(|c| c.iter().map(|s| s.to_string()).collect()),
        ],
    );
    let selection = (
        select(vec![
            vec![4i32, 14, 30],
            vec![4, 14, 30],
            vec![1],
            vec![2, 3, 5, 8, 13],
            vec![10, 20],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ]),
        select(vec![1i64, 1, 1, 1, 1, 2]),
        select(vec![0.2f64, 0.2, 0.0, -1.0, 0.5, 1.0]),
        select(vec![1i64, 1, 2, 5]),
        select(vec![2i64, 2, 1, 3]),
        select(vec![3i64, 3, 0, 1, 5]),
    );
    prop_oneof![
        1 => Just(None),
        2 => (model, selection).prop_map(|(m, s)| Some(Params {
            lookback_days: m.0,
            half_life_days: m.1,
            mutual_bonus: m.2,
            w_proof: m.3,
            w_buyers: m.4,
            w_popularity: m.5,
            w_price: m.6,
            fatigue_max_impressions: m.7,
            fatigue_days: m.8,
            sensitive_categories: m.9,
            positions: s.0,
            min_buyers: s.1,
            min_score: s.2,
            max_per_merchant: s.3,
            max_per_category: s.4,
            max_buyers_shown: s.5,
        })),
    ]
}

/// A sparse, huge id: `1_000_000_007 * k + s` (below 2^62), a small one,
/// or one just below 2^63.
fn sparse_id() -> impl Strategy<Value = i64> + Clone {
    prop_oneof![
        8 => (0i64..4_000_000_000, 0i64..7).prop_map(|(k, s)| 1_000_000_007 * k + s),
        1 => 0i64..20,
        1 => (0i64..20).prop_map(|s| i64::MAX - s),
    ]
}

#[derive(Debug, Clone)]
struct ProductSpec {
    id: i64,
    merchant: Index,
    price: i64,
    /// Into the world's categories; past their end is null.
    category: Index,
    available: Option<bool>,
}

#[derive(Debug, Clone)]
struct PurchaseSpec {
    /// Among the first third of the users (who do most of the buying and
    /// are most followed), or among all.
    buyer: (bool, Index),
    /// Into the catalog; one past its end is a product missing from it.
    product: Index,
    time: TimePick,
    visibility: &'static str,
    price: Option<i64>,
    refunded: Option<bool>,
}

/// A users row: who (0: among the busy first third, 1: the follower of a
/// follow row, else anyone), promotions_opt_out, suspended, hide_purchases.
type UserSpec = (u8, Index, Option<bool>, Option<bool>, Option<bool>);

/// Impressions of one product to one user: (shown_at, clicked) each. When
/// the flag is set, the user is the follower of a follow row and the
/// product one that the followee bought (a likely candidate).
type ImpressionGroup = ((bool, Index), Index, Vec<(TimePick, Option<bool>)>);

#[derive(Debug, Clone)]
struct WorldSpec {
    users: Vec<i64>,
    merchants: Vec<i64>,
    categories: Vec<&'static str>,
    tie_times: Vec<u64>,
    products: Vec<ProductSpec>,
    ghost_product: i64,
    /// Follower, followee (among the first third when the flag is set),
    /// muted.
    follows: Vec<(Index, (bool, Index), Option<bool>)>,
    /// Follow rows repeated, muted or not.
    repeats: Vec<(Index, Option<bool>)>,
    /// Follow rows answered by a follow back, muted or not.
    follow_backs: Vec<(Index, Option<bool>)>,
    /// The follows carry `followed_back`: per row, `None` is the truth
    /// (the reverse row exists), else the cell as given (a lie, or a null).
    followed_back: Option<Vec<Option<Option<bool>>>>,
    purchases: Vec<PurchaseSpec>,
    /// Copy product A's purchases onto product B, at A's price: a tie.
    mirror: Option<(Index, Index)>,
    users_table: Option<Vec<UserSpec>>,
    blocks: Option<Vec<(Index, Index)>>,
    impressions: Option<Vec<ImpressionGroup>>,
}

const PRICES: [i64; 6] = [500, 1000, 1999, 2000, 4000, 12345];
const CATEGORIES: [&str; 5] = ["books", "tea, coffee", "say \"hi\"", "café", "toys"];

fn price() -> impl Strategy<Value = i64> + Clone {
    prop_oneof![4 => select(PRICES.to_vec()), 1 => 1i64..100_000]
}

fn world_spec(size: Size) -> impl Strategy<Value = WorldSpec> {
    let product = (
        sparse_id(),
        any::<Index>(),
        price(),
        any::<Index>(),
        flag(0.15, true),
    )
        .prop_map(|(id, merchant, price, category, available)| ProductSpec {
            id,
            merchant,
            price,
            category,
            available,
        });
    let purchase = (
        (prop::bool::weighted(0.75), any::<Index>()),
        any::<Index>(),
        time_pick(),
        select(vec![
            "public",
            "public",
            "followers",
            "followers",
            "private",
        ]),
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(0i64)),
            4 => price().prop_map(Some),
        ],
        flag(0.15, false),
    )
        .prop_map(
            |(buyer, product, time, visibility, price, refunded)| PurchaseSpec {
                buyer,
                product,
                time,
                visibility,
                price,
                refunded,
            },
        );
    let catalog = (
        vec(sparse_id(), size.users.0..=size.users.1),
        vec(sparse_id(), 1..=4),
        proptest::sample::subsequence(CATEGORIES.to_vec(), 0..=3),
        vec(any::<u64>(), 1..=3),
        vec(product, size.products.0..=size.products.1),
        sparse_id(),
    );
    let social = (
        vec(
            (
                any::<Index>(),
                (prop::bool::weighted(0.6), any::<Index>()),
                flag(0.15, false),
            ),
            0..=size.follows,
        ),
        (
            vec((any::<Index>(), flag(0.3, false)), 0..=3),
            vec((any::<Index>(), flag(0.4, false)), 0..=size.follows / 6),
        ),
        vec(purchase, 0..=size.purchases),
        option::weighted(0.4, (any::<Index>(), any::<Index>())),
        option::weighted(
            0.75,
            vec(
                (
                    0u8..3,
                    any::<Index>(),
                    flag(0.15, false),
                    flag(0.1, false),
                    flag(0.1, false),
                ),
                0..=size.users.1 / 2 + 2,
            ),
        ),
        option::weighted(0.75, vec((any::<Index>(), any::<Index>()), 0..=3)),
        option::weighted(
            0.75,
            vec(
                (
                    (prop::bool::weighted(0.8), any::<Index>()),
                    any::<Index>(),
                    vec((time_pick(), flag(0.1, false)), 1..=6),
                ),
                0..=size.impression_groups,
            ),
        ),
    );
    let back_cells = option::weighted(
        0.35,
        vec(
            prop_oneof![
                6 => Just(None),
                1 => Just(Some(None)),
                1 => Just(Some(Some(true))),
                1 => Just(Some(Some(false))),
            ],
            1..=8,
        ),
    );
    (catalog, social, back_cells).prop_map(|(c, s, back)| WorldSpec {
        users: c.0,
        merchants: c.1,
        categories: c.2,
        tie_times: c.3,
        products: c.4,
        ghost_product: c.5,
        follows: s.0,
        repeats: s.1.0,
        follow_backs: s.1.1,
        followed_back: back,
        purchases: s.2,
        mirror: s.3,
        users_table: s.4,
        blocks: s.5,
        impressions: s.6,
    })
}

fn build_world(spec: WorldSpec, params: &Params, as_of: i64) -> World {
    let users = &spec.users;
    let user = |i: &Index| users[i.index(users.len())];
    let busy = users.len().div_ceil(3);
    let maybe_busy = |(busy_only, i): &(bool, Index)| {
        if *busy_only {
            users[i.index(busy)]
        } else {
            user(i)
        }
    };

    // Products with distinct ids (a repeated product_id is an input error).
    let mut products: Vec<Product> = Vec::new();
    for p in &spec.products {
        if products.iter().any(|q| q.product_id == p.id) {
            continue;
        }
        let c = p.category.index(spec.categories.len() + 1);
        products.push(Product {
            product_id: p.id,
            merchant_id: spec.merchants[p.merchant.index(spec.merchants.len())],
            price_cents: p.price,
            category: spec.categories.get(c).map(|s| s.to_string()),
            available: p.available,
        });
    }
    // An id for purchases of a product missing from the catalog.
    let mut ghost = spec.ghost_product;
    while products.iter().any(|p| p.product_id == ghost) {
        ghost = if ghost == i64::MAX { 0 } else { ghost + 1 };
    }
    let product_id = |i: &Index| {
        let k = i.index(products.len() + 1);
        if k < products.len() {
            products[k].product_id
        } else {
            ghost
        }
    };

    let mut follows: Vec<Follow> = spec
        .follows
        .iter()
        .map(|(a, b, muted)| Follow {
            follower_id: user(a),
            followee_id: maybe_busy(b),
            muted: *muted,
            followed_back: None,
        })
        .collect();
    if !follows.is_empty() {
        for (i, muted) in &spec.repeats {
            let mut row = follows[i.index(follows.len())].clone();
            row.muted = *muted;
            follows.push(row);
        }
        for (i, muted) in &spec.follow_backs {
            let row = &follows[i.index(follows.len())];
            follows.push(Follow {
                follower_id: row.followee_id,
                followee_id: row.follower_id,
                muted: *muted,
                followed_back: None,
            });
        }
    }
    // `followed_back` as an export computes it (the reverse row exists),
    // but where the spec gives the cell: a null, or a value that the
    // reverse rows contradict (the column wins).
    if let Some(cells) = &spec.followed_back {
        let pairs: std::collections::HashSet<(i64, i64)> = follows
            .iter()
            .map(|r| (r.follower_id, r.followee_id))
            .collect();
        for (i, row) in follows.iter_mut().enumerate() {
            let truth = pairs.contains(&(row.followee_id, row.follower_id));
            row.followed_back = cells[i % cells.len()].unwrap_or(Some(truth));
        }
    }

    let window = params.lookback_days * DAY;
    let pool: Vec<i64> = spec
        .tie_times
        .iter()
        .map(|r| {
            // Half the time a whole number of days back, else anywhere.
            if r % 2 == 0 {
                as_of - (1 + (r / 2) as i64 % params.lookback_days) * DAY
            } else {
                as_of - window + (r % window as u64) as i64
            }
        })
        .collect();
    let mut purchases: Vec<Purchase> = spec
        .purchases
        .iter()
        .map(|p| Purchase {
            buyer_id: maybe_busy(&p.buyer),
            product_id: product_id(&p.product),
            purchased_at: purchase_time(p.time, as_of, params.lookback_days, &pool),
            visibility: p.visibility.to_string(),
            price_cents: p.price,
            refunded: p.refunded,
        })
        .collect();
    if let Some((a, b)) = &spec.mirror {
        let (a, b) = (a.index(products.len()), b.index(products.len()));
        if a != b {
            products[b].price_cents = products[a].price_cents;
            let (from, to) = (products[a].product_id, products[b].product_id);
            let copies: Vec<Purchase> = purchases
                .iter()
                .filter(|p| p.product_id == from)
                .map(|p| Purchase {
                    product_id: to,
                    ..p.clone()
                })
                .collect();
            purchases.extend(copies);
        }
    }

    let users_table = spec.users_table.as_ref().map(|rows| {
        rows.iter()
            .map(|(who, i, opt_out, suspended, hides)| User {
                user_id: match who {
                    0 => users[i.index(busy)],
                    1 if !follows.is_empty() => follows[i.index(follows.len())].follower_id,
                    _ => user(i),
                },
                promotions_opt_out: *opt_out,
                suspended: *suspended,
                hide_purchases: *hides,
            })
            .collect()
    });
    let blocks = spec.blocks.as_ref().map(|rows| {
        rows.iter()
            .map(|(a, b)| Block {
                user_id: user(a),
                blocked_id: user(b),
            })
            .collect()
    });
    let impressions = spec.impressions.as_ref().map(|groups| {
        let mut rows = Vec::new();
        for ((targeted, u), p, shows) in groups {
            let (user_id, product_id) = if *targeted && !follows.is_empty() {
                let row = &follows[u.index(follows.len())];
                let bought: Vec<i64> = purchases
                    .iter()
                    .filter(|pu| {
                        pu.buyer_id == row.followee_id
                            && pu.product_id != ghost
                            && pu.visibility != "private"
                            && pu.purchased_at < as_of
                    })
                    .map(|pu| pu.product_id)
                    .collect();
                let product = if bought.is_empty() {
                    products[p.index(products.len())].product_id
                } else {
                    bought[p.index(bought.len())]
                };
                (row.follower_id, product)
            } else {
                (user(u), products[p.index(products.len())].product_id)
            };
            for (t, clicked) in shows {
                rows.push(Impression {
                    user_id,
                    product_id,
                    shown_at: impression_time(*t, as_of, params.fatigue_days),
                    clicked: *clicked,
                });
            }
        }
        rows
    });
    World {
        followed_back_column: spec.followed_back.is_some(),
        follows,
        purchases,
        products,
        users: users_table,
        blocks,
        impressions,
    }
}

/// A whole case of the given size.
pub fn arb_case(size: Size) -> BoxedStrategy<Case> {
    (
        arb_params().boxed(),
        // Whole seconds between 2023-11 and 2027-01; sometimes midnight,
        // given as a plain date or not.
        1_700_000_000i64..1_800_000_000,
        prop_oneof![6 => Just(None), 1 => any::<bool>().prop_map(Some)],
        prop_oneof![4 => Just(0i64), 1 => 1i64..1_000_000],
        world_spec(size).boxed(),
        arb_layout().boxed(),
    )
        .prop_map(|(params, secs, midnight, fraction, spec, mut layout)| {
            layout.as_of_fraction = fraction;
            let as_of = match midnight {
                None => secs * 1_000_000,
                Some(plain_date) => {
                    layout.plain_date = plain_date;
                    if plain_date {
                        layout.as_of_fraction = 0;
                    }
                    (secs - secs % 86_400) * 1_000_000
                }
            };
            let params = match params {
                Some(p) => p,
                None => {
                    layout.config_style = ConfigStyle::Omit;
                    Params::default()
                }
            };
            let world = build_world(spec, &params, as_of);
            Case {
                world,
                params,
                as_of,
                layout,
            }
        })
        .boxed()
}
