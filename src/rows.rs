//! Slot rows, column by column, as the engine produces them and the
//! Parquet writer consumes them.

/// Slot rows in columns; `buyer_offsets` delimits each row's
/// `top_buyer_ids` in `buyer_ids` (Arrow list layout).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRows {
    pub user_id: Vec<i64>,
    pub slot: Vec<i8>,
    pub position: Vec<i32>,
    pub product_id: Vec<i64>,
    pub merchant_id: Vec<i64>,
    pub score: Vec<f64>,
    pub buyer_count: Vec<i32>,
    pub buyer_offsets: Vec<i32>,
    pub buyer_ids: Vec<i64>,
}

impl Default for SlotRows {
    fn default() -> Self {
        SlotRows {
            user_id: Vec::new(),
            slot: Vec::new(),
            position: Vec::new(),
            product_id: Vec::new(),
            merchant_id: Vec::new(),
            score: Vec::new(),
            buyer_count: Vec::new(),
            buyer_offsets: vec![0],
            buyer_ids: Vec::new(),
        }
    }
}

/// One slot, as a row (for tests, explanations and small outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRow {
    pub user_id: i64,
    pub slot: i8,
    pub position: i32,
    pub product_id: i64,
    pub merchant_id: i64,
    pub score: f64,
    pub buyer_count: i32,
    pub top_buyer_ids: Vec<i64>,
}

impl SlotRows {
    pub fn len(&self) -> usize {
        self.user_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user_id.is_empty()
    }

    /// The users the rows hold (each user's rows start with slot 1).
    pub fn users(&self) -> u64 {
        self.slot.iter().filter(|&&s| s == 1).count() as u64
    }

    /// Appends every row of `other`.
    pub fn append(&mut self, other: &SlotRows) {
        self.append_range(other, 0..other.len());
    }

    /// Appends rows `range` of `other`.
    pub fn append_range(&mut self, other: &SlotRows, range: std::ops::Range<usize>) {
        self.user_id
            .extend_from_slice(&other.user_id[range.clone()]);
        self.slot.extend_from_slice(&other.slot[range.clone()]);
        self.position
            .extend_from_slice(&other.position[range.clone()]);
        self.product_id
            .extend_from_slice(&other.product_id[range.clone()]);
        self.merchant_id
            .extend_from_slice(&other.merchant_id[range.clone()]);
        self.score.extend_from_slice(&other.score[range.clone()]);
        self.buyer_count
            .extend_from_slice(&other.buyer_count[range.clone()]);
        self.extend_buyers(
            &other.buyer_offsets[range.start..=range.end],
            &other.buyer_ids,
        );
    }

    /// Appends the buyer lists delimited by `offsets` (one more than the
    /// rows) in `ids`.
    pub fn extend_buyers(&mut self, offsets: &[i32], ids: &[i64]) {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return;
        };
        let base = *self.buyer_offsets.last().unwrap_or(&0);
        self.buyer_ids
            .extend_from_slice(&ids[first as usize..last as usize]);
        self.buyer_offsets
            .extend(offsets[1..].iter().map(|&o| base + o - first));
    }

    /// Row `i` as a [`SlotRow`].
    pub fn row(&self, i: usize) -> SlotRow {
        let buyers = self.buyer_offsets[i] as usize..self.buyer_offsets[i + 1] as usize;
        SlotRow {
            user_id: self.user_id[i],
            slot: self.slot[i],
            position: self.position[i],
            product_id: self.product_id[i],
            merchant_id: self.merchant_id[i],
            score: self.score[i],
            buyer_count: self.buyer_count[i],
            top_buyer_ids: self.buyer_ids[buyers].to_vec(),
        }
    }

    /// Every row, in order.
    pub fn rows(&self) -> Vec<SlotRow> {
        (0..self.len()).map(|i| self.row(i)).collect()
    }
}
