//! The one Arrow schema of the slots output (the contract's table).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The element field of `top_buyer_ids`: buyers are never null.
pub fn buyer_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Int64, false))
}

/// `Timestamp(µs, UTC)`.
pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The slots schema: every column non-null, list elements too.
pub fn slots_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("slot", DataType::Int8, false),
        Field::new("position", DataType::Int32, false),
        Field::new("product_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("buyer_count", DataType::Int32, false),
        Field::new("top_buyer_ids", DataType::List(buyer_item()), false),
        Field::new("valid_from", timestamp(), false),
        Field::new("valid_until", timestamp(), false),
        Field::new("run_id", DataType::Utf8, false),
    ]))
}
