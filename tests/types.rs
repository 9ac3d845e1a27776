//! The physical types of input columns (docs/contract.md §1): every type a
//! Parquet writer can give a contract column is either read as the plain
//! one (same `validate` summary, same published slots) or refused as a
//! table-level error (exit 1, naming table, file, column and type, even in
//! skip mode); nothing exits 2 or panics. Also: a CSV header naming a
//! column twice, and symlinks in a folder of parts.
//!
//! The world (as_of 2026-11-24), every id and price below 128 so that every
//! integer type holds it:
//!
//! | follower | followee | | buyer | product | bought     | visibility | paid |
//! |----------|----------|-|-------|---------|------------|------------|------|
//! | 12       | 21       | | 21    | 71      | 2026-11-20 | public     |      |
//! | 12       | 22       | | 22    | 72      | 2026-11-22 | followers  | 90   |
//! | 11       | 21       | |       |         |            |            |      |
//!
//! Products 71 (merchant 51, list price 100, category `shoes`) and 72
//! (merchant 52, 120, no category), both available.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, DictionaryArray, Float64Array,
    Int32Array, Int64Array, ListArray, NullArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, Int64Type as PqInt64, Int96, Int96Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use tempfile::TempDir;

use crate::util::{Slot, read_latest, run, write_job};

const AS_OF: &str = "2026-11-24T00:00:00Z";
const DAY_US: i64 = 86_400_000_000;
/// 2026-11-20T00:00:00Z and 2026-11-22T00:00:00Z in epoch µs.
const BOUGHT_US: [i64; 2] = [1_795_132_800_000_000, 1_795_132_800_000_000 + 2 * DAY_US];
const SKIP: &str = "on_bad_rows = \"skip\"\nmax_bad_fraction = 0.9\n";

// ---------------------------------------------------------------------------
// Worlds
// ---------------------------------------------------------------------------

/// The three tables of a world as named Arrow columns.
#[derive(Clone)]
struct Tables {
    follows: Vec<(&'static str, ArrayRef)>,
    purchases: Vec<(&'static str, ArrayRef)>,
    products: Vec<(&'static str, ArrayRef)>,
}

fn ints(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn opt_ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn texts(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn bools(v: &[Option<bool>]) -> ArrayRef {
    Arc::new(BooleanArray::from(v.to_vec()))
}

/// The world of the module doc, every column of its plain type.
fn base() -> Tables {
    Tables {
        follows: vec![
            ("follower_id", ints(&[12, 12, 11])),
            ("followee_id", ints(&[21, 22, 21])),
            ("muted", bools(&[Some(false), Some(false), None])),
        ],
        purchases: vec![
            ("buyer_id", ints(&[21, 22])),
            ("product_id", ints(&[71, 72])),
            (
                "purchased_at",
                Arc::new(TimestampMicrosecondArray::from(BOUGHT_US.to_vec())),
            ),
            ("visibility", texts(&[Some("public"), Some("followers")])),
            ("price_cents", opt_ints(&[None, Some(90)])),
            ("refunded", bools(&[Some(false), None])),
        ],
        products: vec![
            ("product_id", ints(&[71, 72])),
            ("merchant_id", ints(&[51, 52])),
            ("price_cents", ints(&[100, 120])),
            ("category", texts(&[Some("shoes"), None])),
            ("available", bools(&[Some(true), Some(true)])),
        ],
    }
}

impl Tables {
    fn table(&mut self, table: &str) -> &mut Vec<(&'static str, ArrayRef)> {
        match table {
            "follows" => &mut self.follows,
            "purchases" => &mut self.purchases,
            "products" => &mut self.products,
            other => panic!("no table {other}"),
        }
    }

    /// This world with `table.column` replaced by `array`.
    fn with(mut self, table: &str, column: &str, array: ArrayRef) -> Tables {
        let slot = self
            .table(table)
            .iter_mut()
            .find(|(name, _)| *name == column)
            .unwrap_or_else(|| panic!("no column {table}.{column}"));
        slot.1 = array;
        self
    }

    /// This world without `table.column`.
    fn without(mut self, table: &str, column: &str) -> Tables {
        self.table(table).retain(|(name, _)| *name != column);
        self
    }

    /// This world with `f` applied to every column of every table.
    fn map(mut self, f: impl Fn(&str, &str, &ArrayRef) -> ArrayRef) -> Tables {
        for table in ["follows", "purchases", "products"] {
            for (name, array) in self.table(table).iter_mut() {
                *array = f(table, name, array);
            }
        }
        self
    }

    /// The original of `table.column`.
    fn column(&mut self, table: &str, column: &str) -> ArrayRef {
        self.table(table)
            .iter()
            .find(|(name, _)| *name == column)
            .unwrap_or_else(|| panic!("no column {table}.{column}"))
            .1
            .clone()
    }
}

/// Writes `columns` as one Parquet file (every column nullable).
fn write_parquet(path: &Path, columns: &[(&str, ArrayRef)]) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.iter().map(|(_, a)| a.clone()).collect(),
    )
    .unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A folder holding `<table>.parquet` for the three tables and `job.toml`
/// naming them, with `extra` lines in its `[run]` section.
struct World {
    dir: TempDir,
}

impl World {
    fn new(tables: &Tables, extra: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(&dir.path().join("follows.parquet"), &tables.follows);
        write_parquet(&dir.path().join("purchases.parquet"), &tables.purchases);
        write_parquet(&dir.path().join("products.parquet"), &tables.products);
        let world = World { dir };
        world.job(extra);
        world
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites `job.toml` naming `<table>.parquet` for the three tables.
    fn job(&self, extra: &str) {
        self.job_with(
            &[
                ("follows", "follows.parquet"),
                ("purchases", "purchases.parquet"),
                ("products", "products.parquet"),
            ],
            extra,
        );
    }

    fn job_with(&self, inputs: &[(&str, &str)], extra: &str) {
        write_job(self.path(), inputs, AS_OF, extra);
    }

    fn command(&self, command: &str) -> Output {
        let job = self.path().join("job.toml");
        let out = run(&[command, "--config", job.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && out.status.code() != Some(2),
            "boughtby {command} panicked or failed internally ({:?}):\n{err}",
            out.status.code()
        );
        out
    }
}

/// What a world gives: the `validate` summary (without the per-table size
/// lines, which differ with the encoding) and the published slots (run id
/// blanked, as it hashes the inputs).
#[derive(Debug, PartialEq)]
struct Outcome {
    summary: Vec<String>,
    rows: Vec<Slot>,
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

fn outcome_of(world: &World, what: &str) -> Outcome {
    let out = world.command("validate");
    expect_code(&out, 0, &format!("validate {what}"));
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            [
                "follow graph",
                "catalog",
                "purchases in",
                "ignored rows",
                "ok",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    let out = world.command("run");
    expect_code(&out, 0, &format!("run {what}"));
    let rows = read_latest(&world.path().join("out"))
        .into_iter()
        .map(|r| Slot {
            run_id: String::new(),
            ..r
        })
        .collect();
    Outcome { summary, rows }
}

/// What the plain world gives (computed once).
fn plain() -> &'static Outcome {
    static PLAIN: OnceLock<Outcome> = OnceLock::new();
    PLAIN.get_or_init(|| {
        let outcome = outcome_of(&World::new(&base(), ""), "plain world");
        assert!(
            outcome.rows.len() >= 3,
            "the plain world gives slots: {outcome:?}"
        );
        outcome
    })
}

/// Asserts that `tables` gives exactly what `want` gives.
fn expect_read_alike(tables: &Tables, want: &Outcome, what: &str) {
    let got = outcome_of(&World::new(tables, ""), what);
    assert_eq!(&got, want, "{what} is not read as the plain types are");
}

/// Asserts that `tables` is refused by `validate` (fail mode) and by `run`
/// in skip mode (a table-level error is never a skipped row), exit 1, with
/// a message naming `table`, its file, `column` and each of `words`.
fn expect_refused(tables: &Tables, table: &str, column: &str, words: &[&str]) {
    let world = World::new(tables, "");
    for (command, extra) in [("validate", ""), ("run", SKIP)] {
        world.job(extra);
        let out = world.command(command);
        let what = format!("{command} with {table}.{column} of an odd type");
        expect_code(&out, 1, &what);
        let err = stderr(&out);
        let file = format!("{table}.parquet");
        for word in [table, file.as_str(), column].iter().chain(words) {
            assert!(err.contains(word), "{what}: {word:?} not named in:\n{err}");
        }
    }
    assert!(
        !world.path().join("out").join("LATEST").exists(),
        "a refused world published"
    );
}

/// Asserts that `tables` fails `validate` with a row-level fault of
/// `table.column` naming `value` and `problem`, and that a skip-mode run
/// skips that row (exit 0).
fn expect_row_fault(tables: &Tables, table: &str, column: &str, value: &str, problem: &str) {
    let world = World::new(tables, "");
    let out = world.command("validate");
    let what = format!("validate with a bad value in {table}.{column}");
    expect_code(&out, 1, &what);
    let err = stderr(&out);
    for word in [table, column, value, problem, "row"] {
        assert!(err.contains(word), "{what}: {word:?} not named in:\n{err}");
    }
    world.job(SKIP);
    let out = world.command("run");
    expect_code(
        &out,
        0,
        &format!("skip-mode run with a bad value in {table}.{column}"),
    );
}

fn is_integer_column(table: &str, column: &str) -> bool {
    column.ends_with("_id")
        || (column == "price_cents" && ["purchases", "products"].contains(&table))
}

// ---------------------------------------------------------------------------
// Integers and decimals
// ---------------------------------------------------------------------------

#[test]
fn every_integer_type_and_scale_0_decimal_reads_as_int64() {
    let types = [
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Decimal32(9, 0),
        DataType::Decimal64(18, 0),
        DataType::Decimal128(10, 0),
        DataType::Decimal128(38, 0),
    ];
    for to in types {
        let tables = base().map(|table, column, array| {
            if is_integer_column(table, column) {
                cast(array, &to).unwrap()
            } else {
                array.clone()
            }
        });
        expect_read_alike(&tables, plain(), &format!("every id and price as {to}"));
    }
}

#[test]
fn uint64_id_above_i64_max_is_a_row_fault() {
    let mut tables = base();
    let big = 1u64 << 63;
    let ids: ArrayRef = Arc::new(UInt64Array::from(vec![71, 72, big]));
    tables.products = vec![
        ("product_id", ids),
        ("merchant_id", Arc::new(UInt64Array::from(vec![51, 52, 53]))),
        ("price_cents", ints(&[100, 120, 130])),
    ];
    expect_row_fault(
        &tables,
        "products",
        "product_id",
        &big.to_string(),
        "not an id",
    );
}

#[test]
fn decimal_ids_out_of_range_or_negative_are_row_faults() {
    let decimal = |v: Vec<i128>| -> ArrayRef {
        Arc::new(
            arrow::array::Decimal128Array::from(v)
                .with_precision_and_scale(38, 0)
                .unwrap(),
        )
    };
    let huge = 100_000_000_000_000_000_000i128;
    let tables = base().with("purchases", "buyer_id", decimal(vec![21, huge]));
    expect_row_fault(
        &tables,
        "purchases",
        "buyer_id",
        &huge.to_string(),
        "not an id",
    );
    let tables = base().with("purchases", "buyer_id", decimal(vec![21, -5]));
    expect_row_fault(&tables, "purchases", "buyer_id", "-5", "negative id");
}

#[test]
fn fractional_decimal_prices_are_refused() {
    let cents = cast(
        &base().column("products", "price_cents"),
        &DataType::Decimal128(10, 2),
    );
    let tables = base().with("products", "price_cents", cents.unwrap());
    expect_refused(&tables, "products", "price_cents", &["decimal[10,2]"]);
    let paid = cast(
        &base().column("purchases", "price_cents"),
        &DataType::Decimal64(12, 1),
    );
    let tables = base().with("purchases", "price_cents", paid.unwrap());
    expect_refused(&tables, "purchases", "price_cents", &["decimal[12,1]"]);
}

#[test]
fn float_prices_are_refused() {
    let list: ArrayRef = Arc::new(Float64Array::from(vec![100.0, 120.0]));
    let tables = base().with("products", "price_cents", list);
    expect_refused(&tables, "products", "price_cents", &["f64"]);
    let paid: ArrayRef = Arc::new(Float64Array::from(vec![None, Some(90.0)]));
    let tables = base().with("purchases", "price_cents", paid);
    expect_refused(&tables, "purchases", "price_cents", &["f64"]);
}

#[test]
fn text_ids_in_parquet_are_refused() {
    let tables = base().with("purchases", "buyer_id", texts(&[Some("21"), Some("22")]));
    expect_refused(&tables, "purchases", "buyer_id", &["str"]);
    let tables = base().with("follows", "follower_id", texts(&[Some("12"); 3]));
    expect_refused(&tables, "follows", "follower_id", &["str"]);
    let tables = base().with(
        "products",
        "price_cents",
        texts(&[Some("100"), Some("120")]),
    );
    expect_refused(&tables, "products", "price_cents", &["str"]);
}

#[test]
fn wide_decimals_and_other_types_are_refused_without_a_panic() {
    let ids = || base().column("products", "product_id");
    let odd: Vec<(ArrayRef, &str)> = vec![
        (cast(&ids(), &DataType::Decimal256(40, 0)).unwrap(), "38"),
        (cast(&ids(), &DataType::Float16).unwrap(), "Float16"),
        (
            cast(&ids(), &DataType::Time64(TimeUnit::Microsecond)).unwrap(),
            "Time64",
        ),
        (
            cast(&ids(), &DataType::Duration(TimeUnit::Second)).unwrap(),
            "Duration",
        ),
        (bools(&[Some(true), Some(false)]), "bool"),
        (
            Arc::new(BinaryArray::from(vec![b"71".as_ref(), b"72".as_ref()])),
            "binary",
        ),
        (
            Arc::new(ListArray::from_iter_primitive::<
                arrow::datatypes::Int64Type,
                _,
                _,
            >(vec![
                Some(vec![Some(71)]),
                Some(vec![Some(72)]),
            ])),
            "List",
        ),
        (
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("id", DataType::Int64, false)),
                ids(),
            )])),
            "Struct",
        ),
    ];
    for (array, word) in odd {
        let tables = base().with("products", "product_id", array);
        expect_refused(&tables, "products", "product_id", &[word]);
    }
}

/// Extra columns are ignored whatever their type, even one Polars cannot
/// hold.
#[test]
fn extra_columns_of_any_type_are_ignored() {
    let mut tables = base();
    let ids = tables.column("products", "product_id");
    let odd: Vec<(&'static str, ArrayRef)> = vec![
        ("note_f16", cast(&ids, &DataType::Float16).unwrap()),
        (
            "note_time",
            cast(&ids, &DataType::Time64(TimeUnit::Microsecond)).unwrap(),
        ),
        (
            "note_wide",
            cast(&ids, &DataType::Decimal256(60, 0)).unwrap(),
        ),
        (
            "note_struct",
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("id", DataType::Int64, false)),
                ids.clone(),
            )])),
        ),
    ];
    tables.products.extend(odd);
    expect_read_alike(&tables, plain(), "products with odd extra columns");
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

#[test]
fn every_timestamp_unit_and_zone_reads_as_utc_microseconds() {
    let us = BOUGHT_US.to_vec();
    for zone in [None, Some("UTC"), Some("+01:00"), Some("America/New_York")] {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampSecondArray::from(us.iter().map(|t| t / 1_000_000).collect::<Vec<_>>())
                    .with_timezone_opt(zone),
            ),
            Arc::new(
                TimestampMillisecondArray::from(us.iter().map(|t| t / 1_000).collect::<Vec<_>>())
                    .with_timezone_opt(zone),
            ),
            Arc::new(TimestampMicrosecondArray::from(us.clone()).with_timezone_opt(zone)),
            Arc::new(
                // 999 ns past each instant: rounded down to the µs.
                TimestampNanosecondArray::from(
                    us.iter().map(|t| t * 1_000 + 999).collect::<Vec<_>>(),
                )
                .with_timezone_opt(zone),
            ),
        ];
        for array in arrays {
            let what = format!("purchased_at as {}", array.data_type());
            let tables = base().with("purchases", "purchased_at", array);
            expect_read_alike(&tables, plain(), &what);
        }
    }
}

#[test]
fn dates_read_as_midnight_utc() {
    let days: Vec<i32> = BOUGHT_US.iter().map(|t| (t / DAY_US) as i32).collect();
    let tables = base().with(
        "purchases",
        "purchased_at",
        Arc::new(Date32Array::from(days)),
    );
    expect_read_alike(&tables, plain(), "purchased_at as Date32");
    let ms: Vec<i64> = BOUGHT_US.iter().map(|t| t / 1_000).collect();
    let tables = base().with("purchases", "purchased_at", Arc::new(Date64Array::from(ms)));
    expect_read_alike(&tables, plain(), "purchased_at as Date64");
}

/// Timestamps and dates at the ends of their ranges are read without an
/// overflow (saturating to the µs range): whatever the run makes of such a
/// purchase, it never panics.
#[test]
fn extreme_timestamps_never_panic() {
    let extremes: Vec<ArrayRef> = vec![
        Arc::new(TimestampSecondArray::from(vec![i64::MAX, i64::MIN])),
        Arc::new(TimestampMillisecondArray::from(vec![i64::MAX, i64::MIN])),
        Arc::new(TimestampNanosecondArray::from(vec![i64::MAX, i64::MIN])),
        Arc::new(Date32Array::from(vec![i32::MAX, i32::MIN])),
        Arc::new(Date64Array::from(vec![i64::MAX, i64::MIN])),
    ];
    for array in extremes {
        let world = World::new(&base().with("purchases", "purchased_at", array), "");
        for command in ["validate", "run"] {
            let out = world.command(command);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{command}: {}",
                stderr(&out)
            );
        }
    }
}

/// Writes the purchases of the base world with the low-level Parquet
/// writer, `purchased_at` as INT96 (Julian day, nanoseconds of the day), as
/// Spark and Impala write it; no Arrow schema is stored. With `legacy`,
/// the footer has the column orders they write (see
/// [`legacy_column_orders`]).
fn write_int96_purchases(path: &Path, legacy: bool) {
    let schema = parse_message_type(
        "message purchases {
            required int64 buyer_id;
            required int64 product_id;
            required int96 purchased_at;
            required binary visibility (UTF8);
            optional int64 price_cents;
            optional boolean refunded;
        }",
    )
    .unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let file = fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    // buyer_id, product_id
    for values in [[21i64, 22], [71, 72]] {
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<PqInt64>()
            .write_batch(&values, None, None)
            .unwrap();
        column.close().unwrap();
    }
    // purchased_at: 2440588 is the Julian day of 1970-01-01.
    let stamps: Vec<Int96> = BOUGHT_US
        .iter()
        .map(|t| {
            let day = 2_440_588 + (t / DAY_US) as u32;
            let nanos = ((t % DAY_US) * 1_000) as u64;
            let mut v = Int96::new();
            v.set_data(nanos as u32, (nanos >> 32) as u32, day);
            v
        })
        .collect();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<Int96Type>()
        .write_batch(&stamps, None, None)
        .unwrap();
    column.close().unwrap();
    let visibility: Vec<ByteArray> = vec!["public".into(), "followers".into()];
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&visibility, None, None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<PqInt64>()
        .write_batch(&[90], Some(&[0, 1]), None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<BoolType>()
        .write_batch(&[false], Some(&[1, 0]), None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    if legacy {
        legacy_column_orders(path);
    }
}

/// Rewrites the footer of `path` with the column order Spark, Impala and
/// parquet-rs before 2025 give an INT96 column (type-defined): this
/// parquet-rs writes the INT96_TIMESTAMP_ORDER of parquet-format 2.12,
/// which the Parquet reader of Polars 0.55 cannot parse (see
/// `int96_with_the_2025_column_order_is_refused_cleanly`). In Thrift's
/// compact protocol a column order is a union holding an empty struct:
/// field 1 (type-defined) is `1c 00 00`, field 3 (INT96) `3c 00 00`; the
/// third of the six columns is the INT96 one.
fn legacy_column_orders(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let start = n - 8 - footer;
    let (typed, int96) = ([0x1c, 0, 0], [0x3c, 0, 0]);
    let orders: Vec<u8> = [typed, typed, int96, typed, typed, typed].concat();
    let at = bytes[start..]
        .windows(orders.len())
        .rposition(|w| w == orders)
        .expect("the footer lists the column orders");
    bytes[start + at + 6] = 0x1c;
    fs::write(path, bytes).unwrap();
}

#[test]
fn int96_timestamps_read_alike() {
    let world = World::new(&base(), "");
    let path = world.path().join("purchases.parquet");
    write_int96_purchases(&path, true);
    // The file really holds INT96.
    let reader =
        parquet::file::serialized_reader::SerializedFileReader::new(fs::File::open(&path).unwrap())
            .unwrap();
    let schema = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .schema_descr_ptr();
    assert_eq!(
        schema.column(2).physical_type(),
        parquet::basic::Type::INT96
    );
    assert_eq!(&outcome_of(&world, "INT96 purchased_at"), plain());
}

/// An INT96 column with the column order of parquet-format 2.12 (2025),
/// which this parquet-rs writes: Polars 0.55 cannot parse that footer, so
/// the file is unreadable, a clean exit 1 naming it (read alike once Polars
/// learns the new order); never a panic.
#[test]
fn int96_with_the_2025_column_order_is_refused_cleanly() {
    let world = World::new(&base(), "");
    write_int96_purchases(&world.path().join("purchases.parquet"), false);
    let out = world.command("validate");
    if out.status.code() == Some(0) {
        assert_eq!(&outcome_of(&world, "INT96 with the new order"), plain());
        return;
    }
    expect_code(&out, 1, "validate with the new INT96 column order");
    let err = stderr(&out);
    for word in ["purchases", "purchases.parquet", "cannot read as Parquet"] {
        assert!(err.contains(word), "{word:?} not named in:\n{err}");
    }
}

#[test]
fn text_and_integer_timestamps_in_parquet_are_refused() {
    let text = texts(&[Some("2026-11-20T00:00:00Z"), Some("2026-11-22T00:00:00Z")]);
    let tables = base().with("purchases", "purchased_at", text);
    expect_refused(&tables, "purchases", "purchased_at", &["str"]);
    let tables = base().with("purchases", "purchased_at", ints(&BOUGHT_US));
    expect_refused(&tables, "purchases", "purchased_at", &["i64"]);
}

// ---------------------------------------------------------------------------
// Strings and booleans
// ---------------------------------------------------------------------------

#[test]
fn every_string_type_reads_alike() {
    let types = [
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::LargeUtf8)),
    ];
    for to in types {
        let tables = base().map(|_, column, array| {
            if ["visibility", "category"].contains(&column) {
                cast(array, &to).unwrap()
            } else {
                array.clone()
            }
        });
        expect_read_alike(
            &tables,
            plain(),
            &format!("visibility and category as {to}"),
        );
    }
    // A dictionary built as such (not cast), with a value no row uses.
    let keys = Int32Array::from(vec![Some(1), Some(2)]);
    let values = StringArray::from(vec!["private", "public", "followers"]);
    let dict: ArrayRef =
        Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap());
    let tables = base().with("purchases", "visibility", dict);
    expect_read_alike(&tables, plain(), "visibility as a dictionary");
}

#[test]
fn text_and_integer_booleans_in_parquet_are_refused() {
    let tables = base().with("purchases", "refunded", texts(&[Some("false"), None]));
    expect_refused(&tables, "purchases", "refunded", &["str"]);
    let tables = base().with("follows", "muted", texts(&[Some("false"); 3]));
    expect_refused(&tables, "follows", "muted", &["str"]);
    let tables = base().with("products", "available", ints(&[1, 1]));
    expect_refused(&tables, "products", "available", &["i64"]);
    let tables = base().with("purchases", "visibility", ints(&[1, 2]));
    expect_refused(&tables, "purchases", "visibility", &["i64"]);
}

// ---------------------------------------------------------------------------
// The all-null type
// ---------------------------------------------------------------------------

#[test]
fn null_typed_optional_columns_take_their_defaults() {
    let optional = [
        ("follows", "muted"),
        ("purchases", "price_cents"),
        ("purchases", "refunded"),
        ("products", "category"),
        ("products", "available"),
    ];
    let mut without = base();
    let mut nulls = base();
    for (table, column) in optional {
        without = without.without(table, column);
        let len = nulls.column(table, column).len();
        nulls = nulls.with(table, column, Arc::new(NullArray::new(len)));
    }
    let want = outcome_of(&World::new(&without, ""), "optional columns left out");
    assert!(!want.rows.is_empty());
    expect_read_alike(&nulls, &want, "optional columns of the null type");
}

#[test]
fn null_typed_required_columns_are_errors() {
    let required = [
        ("follows", "followee_id"),
        ("purchases", "buyer_id"),
        ("purchases", "purchased_at"),
        ("purchases", "visibility"),
        ("products", "price_cents"),
    ];
    for (table, column) in required {
        let len = base().column(table, column).len();
        let tables = base().with(table, column, Arc::new(NullArray::new(len)));
        let world = World::new(&tables, "");
        for command in ["validate", "run"] {
            let out = world.command(command);
            let what = format!("{command} with {table}.{column} of the null type");
            expect_code(&out, 1, &what);
            let err = stderr(&out);
            for word in [table, column, "null in a required column"] {
                assert!(err.contains(word), "{what}: {word:?} not named in:\n{err}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// CSV headers
// ---------------------------------------------------------------------------

#[test]
fn csv_header_naming_a_column_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("follows.csv"), "follower_id,followee_id\n12,21\n").unwrap();
    fs::write(
        d.join("products.csv"),
        "product_id,merchant_id,price_cents\n71,51,100\n",
    )
    .unwrap();
    let inputs = [
        ("follows", "follows.csv"),
        ("purchases", "purchases.csv"),
        ("products", "products.csv"),
    ];
    let job = write_job(d, &inputs, AS_OF, "");
    let job = job.to_str().unwrap();
    let header = "buyer_id,product_id,purchased_at,visibility";
    let row = "21,71,2026-11-20T00:00:00Z,public";
    fs::write(d.join("purchases.csv"), format!("{header}\n{row}\n")).unwrap();
    expect_code(
        &run(&["validate", "--config", job]),
        0,
        "a plain CSV header",
    );
    for (extra, value, repeated) in [("buyer_id", "22", "buyer_id"), ("note,note", "a,b", "note")] {
        let text = format!("{header},{extra}\n{row},{value}\n");
        fs::write(d.join("purchases.csv"), text).unwrap();
        for command in ["validate", "run"] {
            let out = run(&[command, "--config", job]);
            let what = format!("{command} with {repeated} twice in the header");
            expect_code(&out, 1, &what);
            let err = stderr(&out);
            for word in ["purchases", "purchases.csv", repeated, "more than once"] {
                assert!(err.contains(word), "{what}: {word:?} not named in:\n{err}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Symlinks in a folder of parts
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn symlinked_parts_and_hive_folders_are_followed() {
    use std::os::unix::fs::symlink;

    let world = World::new(&base(), "");
    let d = world.path();
    let elsewhere = d.join("elsewhere");
    fs::create_dir_all(elsewhere.join("hive")).unwrap();
    fs::rename(d.join("purchases.parquet"), elsewhere.join("p.parquet")).unwrap();
    fs::rename(
        d.join("follows.parquet"),
        elsewhere.join("hive").join("part-0.parquet"),
    )
    .unwrap();
    // purchases/part-0.parquet -> ../elsewhere/p.parquet
    fs::create_dir(d.join("purchases")).unwrap();
    symlink("../elsewhere/p.parquet", d.join("purchases/part-0.parquet")).unwrap();
    // follows/day=2026-11-20 -> ../elsewhere/hive
    fs::create_dir(d.join("follows")).unwrap();
    symlink("../elsewhere/hive", d.join("follows/day=2026-11-20")).unwrap();
    world.job_with(
        &[
            ("follows", "follows"),
            ("purchases", "purchases"),
            ("products", "products.parquet"),
        ],
        "",
    );
    assert_eq!(&outcome_of(&world, "symlinked parts"), plain());
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_doubled_parts_are_errors() {
    use std::os::unix::fs::symlink;

    let world = World::new(&base(), "");
    let d = world.path();
    fs::create_dir_all(d.join("follows/day=1")).unwrap();
    fs::rename(
        d.join("follows.parquet"),
        d.join("follows/day=1/part-0.parquet"),
    )
    .unwrap();
    world.job_with(
        &[
            ("follows", "follows"),
            ("purchases", "purchases.parquet"),
            ("products", "products.parquet"),
        ],
        "",
    );
    expect_code(&world.command("validate"), 0, "a plain folder of parts");

    let expect_twice = |what: &str| {
        for command in ["validate", "run"] {
            let out = world.command(command);
            expect_code(&out, 1, &format!("{command} with {what}"));
            let err = stderr(&out);
            assert!(
                err.contains("follows") && err.contains("twice"),
                "{command} with {what}: not named in:\n{err}"
            );
        }
    };
    // follows/day=1/back -> .. (a loop)
    let back = d.join("follows/day=1/back");
    symlink("..", &back).unwrap();
    expect_twice("a symlink loop");
    fs::remove_file(&back).unwrap();
    // follows/day=2 -> day=1 (the same parts twice)
    symlink("day=1", d.join("follows/day=2")).unwrap();
    expect_twice("a folder linked twice");
    fs::remove_file(d.join("follows/day=2")).unwrap();
    // follows/day=1/part-1.parquet -> part-0.parquet
    symlink("part-0.parquet", d.join("follows/day=1/part-1.parquet")).unwrap();
    expect_twice("a part linked twice");
    fs::remove_file(d.join("follows/day=1/part-1.parquet")).unwrap();
    // A dangling link is unreadable.
    symlink("nowhere.parquet", d.join("follows/day=1/part-2.parquet")).unwrap();
    let out = world.command("validate");
    expect_code(&out, 1, "validate with a dangling symlink");
    assert!(stderr(&out).contains("part-2.parquet"), "{}", stderr(&out));
}
