//! Sparse 64-bit ids to dense `u32` indices and back.
//!
//! The map is the sorted list of distinct ids, so a dense index orders
//! exactly as its id does: "ascending buyer_id" and "ascending product_id"
//! in the contract are plain ascending dense indices in the engine.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A sorted set of distinct ids; an id's dense index is its rank.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    ids: Vec<i64>,
}

impl IdMap {
    /// Builds the map from ids in any order, with repeats.
    pub fn from_ids(mut ids: Vec<i64>) -> Result<IdMap> {
        ids.par_sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        if ids.len() > u32::MAX as usize {
            return Err(Error::Internal(format!(
                "{} distinct ids do not fit in 32-bit indices",
                ids.len()
            )));
        }
        Ok(IdMap { ids })
    }

    /// The dense index of `id`, if it is known.
    #[inline]
    pub fn index(&self, id: i64) -> Option<u32> {
        self.ids.binary_search(&id).ok().map(|i| i as u32)
    }

    /// The id behind a dense index.
    #[inline]
    pub fn id(&self, index: u32) -> i64 {
        self.ids[index as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// All ids, ascending.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }
}

/// Values grouped by a dense key, like one CSR row per key.
#[derive(Debug, Clone)]
pub struct Grouped<T> {
    offsets: Vec<usize>,
    values: Vec<T>,
}

impl<T> Grouped<T> {
    /// Groups `(key, value)` pairs already sorted by key, for keys `0..keys`.
    pub fn from_sorted(keys: usize, pairs: impl IntoIterator<Item = (u32, T)>) -> Grouped<T> {
        let mut offsets = Vec::with_capacity(keys + 1);
        let mut values = Vec::new();
        offsets.push(0);
        for (key, value) in pairs {
            let key = key as usize;
            debug_assert!(key + 1 >= offsets.len(), "pairs must be sorted by key");
            while offsets.len() <= key {
                offsets.push(values.len());
            }
            values.push(value);
        }
        while offsets.len() <= keys {
            offsets.push(values.len());
        }
        Grouped { offsets, values }
    }

    /// The values of `key` (empty when it has none).
    #[inline]
    pub fn get(&self, key: u32) -> &[T] {
        let k = key as usize;
        &self.values[self.offsets[k]..self.offsets[k + 1]]
    }

    /// Every value, over all keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_order_is_id_order() {
        let map = IdMap::from_ids(vec![900, 5, i64::MAX, 5, 0]).unwrap();
        assert_eq!(map.ids(), &[0, 5, 900, i64::MAX]);
        assert_eq!(map.index(900), Some(2));
        assert_eq!(map.index(6), None);
        assert_eq!(map.id(3), i64::MAX);
    }

    #[test]
    fn grouped_rows_with_gaps() {
        let g = Grouped::from_sorted(4, vec![(1, 'a'), (1, 'b'), (3, 'c')]);
        assert_eq!(g.get(0), &[] as &[char]);
        assert_eq!(g.get(1), &['a', 'b']);
        assert_eq!(g.get(2), &[] as &[char]);
        assert_eq!(g.get(3), &['c']);
        assert_eq!(g.len(), 3);
    }
}

/// The SplitMix64 finaliser without the increment, as the contract gives
/// it: the hash behind shards and the generator's random numbers.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod mix_tests {
    #[test]
    fn contract_test_vectors() {
        assert_eq!(super::mix(1), 6_238_072_747_940_578_789);
        assert_eq!(super::mix(42), 12_058_926_934_050_108_962);
    }
}
