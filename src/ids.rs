//! Sparse 64-bit ids to dense `u32` indices and back.
//!
//! The map is the sorted list of distinct ids, so a dense index orders
//! exactly as its id does: "ascending buyer_id" and "ascending product_id"
//! in the contract are plain ascending dense indices in the engine.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::memory::{huge_filled, huge_vec, prefetch};

/// A sorted set of distinct ids; an id's dense index is its rank.
///
/// Lookups go through an open-addressing hash table of dense indices
/// (4 bytes per slot, at most 3/4 full), not a binary search: the loader
/// maps tens of millions of endpoints and a probe touches one or two cache
/// lines where a search over millions of ids touches twenty.
#[derive(Debug, Default)]
pub struct IdMap {
    ids: Vec<i64>,
    /// `slot == 0` is empty, else `ids[slot - 1]` hashes here. Atomic so
    /// that the table is filled on every thread at once (the ids are
    /// distinct, so each claims a slot of its own); once built, it is only
    /// read, with plain loads.
    slots: Vec<AtomicU32>,
}

impl Clone for IdMap {
    fn clone(&self) -> IdMap {
        IdMap {
            ids: self.ids.clone(),
            slots: self
                .slots
                .iter()
                .map(|s| AtomicU32::new(s.load(Relaxed)))
                .collect(),
        }
    }
}

/// Slots for `n` keys: a power of two at least 4/3 of `n` (and 8).
fn table_size(n: usize) -> usize {
    (n + n / 3 + 1).next_power_of_two().max(8)
}

#[inline]
fn home(id: i64, mask: usize) -> usize {
    mix(id as u64) as usize & mask
}

impl IdMap {
    /// Builds the map from ids in any order, with repeats.
    pub fn from_ids(mut ids: Vec<i64>) -> Result<IdMap> {
        // Often given as ascending runs one after another (the followers
        // of sorted follows, then the supporters), which a merge sort finds
        // and merges, where a quicksort would sort them over again.
        ids.par_sort();
        ids.dedup();
        // Kept on huge pages: every look-up reads the ids at random.
        let ids = {
            let mut kept = huge_vec(ids.len());
            kept.par_extend(ids.par_iter().copied());
            kept
        };
        if ids.len() >= u32::MAX as usize {
            return Err(Error::Internal(format!(
                "{} distinct ids do not fit in 32-bit indices",
                ids.len()
            )));
        }
        let size = table_size(ids.len());
        let mut slots: Vec<AtomicU32> = huge_vec(size);
        slots.par_extend((0..size).into_par_iter().map(|_| AtomicU32::new(0)));
        let mask = size - 1;
        // Each id's home slot is asked for a few ids ahead, so that the
        // misses of a table larger than the cache overlap.
        const AHEAD: usize = 16;
        const BLOCK: usize = 1 << 14;
        ids.par_chunks(BLOCK).enumerate().for_each(|(b, block)| {
            for (k, &id) in block.iter().enumerate() {
                if let Some(&next) = block.get(k + AHEAD) {
                    prefetch(&slots[home(next, mask)]);
                }
                let dense = (b * BLOCK + k) as u32 + 1;
                let mut h = home(id, mask);
                while slots[h].load(Relaxed) != 0
                    || slots[h]
                        .compare_exchange(0, dense, Relaxed, Relaxed)
                        .is_err()
                {
                    h = (h + 1) & mask;
                }
            }
        });
        Ok(IdMap { ids, slots })
    }

    /// The dense index of `id`, if it is known.
    #[inline]
    pub fn index(&self, id: i64) -> Option<u32> {
        if self.ids.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut h = home(id, mask);
        loop {
            let slot = self.slots[h].load(Relaxed);
            if slot == 0 {
                return None;
            }
            if self.ids[slot as usize - 1] == id {
                return Some(slot - 1);
            }
            h = (h + 1) & mask;
        }
    }

    /// The id behind a dense index.
    #[inline]
    pub fn id(&self, index: u32) -> i64 {
        self.ids[index as usize]
    }

    /// The dense index of each of `ids`, `missing` for an id the map does
    /// not hold. Ascending ids are found by walking the map's ids beside
    /// them (sequential reads, where a hash probe each would miss the cache
    /// each time); others by a probe each.
    pub fn indices(&self, ids: &[i64], missing: u32) -> Vec<u32> {
        if !ids.is_sorted() {
            return ids
                .iter()
                .map(|&id| self.index(id).unwrap_or(missing))
                .collect();
        }
        let mut at = ids
            .first()
            .map_or(0, |&first| self.ids.partition_point(|&x| x < first));
        ids.iter()
            .map(|&id| {
                while self.ids.get(at).is_some_and(|&x| x < id) {
                    at += 1;
                }
                match self.ids.get(at) {
                    Some(&x) if x == id => at as u32,
                    _ => missing,
                }
            })
            .collect()
    }

    /// Asks for the id behind `index` to be brought into the cache.
    #[inline]
    pub fn prefetch_id(&self, index: u32) {
        if let Some(id) = self.ids.get(index as usize) {
            prefetch(id);
        }
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

/// A set of non-negative ids for membership tests while streaming a table:
/// open addressing, ids stored in the slots (-1 marks an empty one), behind
/// a blocked bit filter of 8 to 16 bits per id that sets three bits of one
/// 64-bit word per id, so that the common answer, "not in the set", mostly
/// costs one word read from an array small enough to stay in cache (a
/// wrong "maybe" about one time in 27 at 8 bits per id, one in 130 at 16).
///
/// Each slot can carry a value beside its id ([`IdSet::ranked`]: the id's
/// rank), so that a hit reads one slot, not the slot and then an array.
#[derive(Debug, Clone)]
pub struct IdSet<V = ()> {
    slots: Vec<(i64, V)>,
    filter: Vec<u64>,
    len: usize,
}

impl IdSet {
    /// The distinct non-negative ids among `ids`.
    pub fn from_ids(ids: impl IntoIterator<Item = i64>) -> IdSet {
        // Sized for the distinct ids, not the repeats.
        let mut ids: Vec<i64> = ids.into_iter().collect();
        ids.par_sort_unstable();
        ids.dedup();
        let bits = (ids.len() * 8).next_power_of_two().max(64);
        let mut set = IdSet {
            slots: huge_filled(table_size(ids.len()), (-1, ())),
            filter: huge_filled(bits / 64, 0),
            len: 0,
        };
        let mask = set.slots.len() - 1;
        for id in ids {
            debug_assert!(id >= 0, "ids are checked non-negative");
            let (word, bits) = set.filter_bits(id);
            set.filter[word] |= bits;
            let mut h = home(id, mask);
            loop {
                match set.slots[h].0 {
                    -1 => {
                        set.slots[h].0 = id;
                        set.len += 1;
                        break;
                    }
                    there if there == id => break,
                    _ => h = (h + 1) & mask,
                }
            }
        }
        set
    }

    /// The same set with each id's rank among the ids, ascending, and the
    /// ids by rank.
    pub fn ranked(&self) -> (IdSet<u32>, Vec<i64>) {
        let mut ids: Vec<i64> = self.iter().map(|(_, id)| id).collect();
        ids.par_sort_unstable();
        let mut slots: Vec<(i64, u32)> = huge_vec(self.slots.len());
        slots.extend(self.slots.iter().map(|&(id, ())| (id, 0)));
        for (r, &id) in ids.iter().enumerate() {
            if let Some(slot) = self.slot(id) {
                slots[slot].1 = r as u32;
            }
        }
        let set = IdSet {
            slots,
            filter: self.filter.clone(),
            len: self.len,
        };
        (set, ids)
    }
}

impl<V: Copy> IdSet<V> {
    /// The filter's word and bits for `id`: the word from the hash's high
    /// bits (the slots use its low ones), three bits of it from the low 18.
    #[inline]
    fn filter_bits(&self, id: i64) -> (usize, u64) {
        self.filter_bits_of(mix(id as u64))
    }

    /// [`IdSet::filter_bits`] of an id whose hash is `hash`.
    #[inline]
    fn filter_bits_of(&self, hash: u64) -> (usize, u64) {
        let word = (hash >> 32) as usize & (self.filter.len() - 1);
        let bits = 1 << (hash & 63) | 1 << (hash >> 6 & 63) | 1 << (hash >> 12 & 63);
        (word, bits)
    }

    /// Whether the filter lets an id with hash `hash` through.
    #[inline]
    fn passes(&self, hash: u64) -> bool {
        let (word, bits) = self.filter_bits_of(hash);
        self.filter[word] & bits == bits
    }

    /// The slot holding `id`, walking from `h`, its home slot.
    #[inline]
    fn probe(&self, id: i64, mut h: usize) -> Option<usize> {
        let mask = self.slots.len() - 1;
        loop {
            match self.slots[h].0 {
                -1 => return None,
                there if there == id => return Some(h),
                _ => h = (h + 1) & mask,
            }
        }
    }

    /// The slot holding `id`, if it is in the set: a number below
    /// [`IdSet::slot_count`], for arrays kept beside the set.
    #[inline]
    pub fn slot(&self, id: i64) -> Option<usize> {
        if !self.passes(mix(id as u64)) {
            return None;
        }
        self.probe(id, home(id, self.slots.len() - 1))
    }

    /// The value beside `id`, if it is in the set.
    #[inline]
    pub fn get(&self, id: i64) -> Option<V> {
        self.slot(id).map(|h| self.slots[h].1)
    }

    /// [`IdSet::get`] of each of `ids`, appended to `out` in order. The
    /// ids are taken in blocks of 64, three blocks in flight, each a stage
    /// further: block *k + 2* is hashed and its filter words requested,
    /// block *k + 1* is tested against the filter (without a branch) and
    /// the slots of the ids it lets through are requested, block *k* is
    /// looked up. The cache misses of a block (filter words, then slots)
    /// are waited for while other blocks are worked on, instead of one
    /// after another.
    pub fn get_each(&self, ids: &[i64], out: &mut Vec<Option<V>>) {
        const BLOCK: usize = 64;
        let mask = self.slots.len() - 1;
        out.reserve(ids.len());
        let block = |k: usize| &ids[(k * BLOCK).min(ids.len())..((k + 1) * BLOCK).min(ids.len())];
        let blocks = ids.len().div_ceil(BLOCK);
        let mut hashes = [[0u64; BLOCK]; 3];
        // Bit i of passed[k % 3]: the filter lets block k's i-th id through.
        let mut passed = [0u64; 3];
        for k in 0..blocks + 2 {
            if k < blocks {
                for (hash, &id) in hashes[k % 3].iter_mut().zip(block(k)) {
                    *hash = mix(id as u64);
                    prefetch(&self.filter[self.filter_bits_of(*hash).0]);
                }
            }
            if let Some(k) = k.checked_sub(1).filter(|&k| k < blocks) {
                let hashes = &hashes[k % 3][..block(k).len()];
                let mut through = 0u64;
                for (i, &hash) in hashes.iter().enumerate() {
                    through |= u64::from(self.passes(hash)) << i;
                }
                passed[k % 3] = through;
                while through != 0 {
                    let i = through.trailing_zeros() as usize;
                    prefetch(&self.slots[hashes[i] as usize & mask]);
                    through &= through - 1;
                }
            }
            if let Some(k) = k.checked_sub(2) {
                let (hashes, passed) = (&hashes[k % 3], passed[k % 3]);
                out.extend(
                    block(k)
                        .iter()
                        .zip(hashes)
                        .enumerate()
                        .map(|(i, (&id, &hash))| match passed >> i & 1 {
                            0 => None,
                            _ => self
                                .probe(id, hash as usize & mask)
                                .map(|h| self.slots[h].1),
                        }),
                );
            }
        }
    }

    #[inline]
    pub fn contains(&self, id: i64) -> bool {
        self.slot(id).is_some()
    }

    /// Slots, used or not.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The ids with their slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|&(_, s)| s.0 >= 0)
            .map(|(h, s)| (h, s.0))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Values grouped by a dense key, like one CSR row per key, with 32-bit
/// offsets (4 bytes per key).
#[derive(Debug, Clone)]
pub struct Grouped<T> {
    offsets: Vec<u32>,
    values: Vec<T>,
}

impl<T> Grouped<T> {
    /// Groups `(key, value)` pairs already sorted by key, for keys `0..keys`
    /// (more than `u32::MAX` values in all is an error).
    pub fn from_sorted(
        keys: usize,
        pairs: impl IntoIterator<Item = (u32, T)>,
    ) -> Result<Grouped<T>> {
        let pairs = pairs.into_iter();
        let mut offsets = huge_vec(keys + 1);
        // Room for the most values the pairs say they hold (room never
        // written costs no memory), so the values are rarely moved.
        let (least, most) = pairs.size_hint();
        let mut values = huge_vec(most.unwrap_or(least));
        offsets.push(0);
        let too_many = || Error::Internal("more than 2^32 values in one grouping".into());
        for (key, value) in pairs {
            let key = key as usize;
            debug_assert!(key + 1 >= offsets.len(), "pairs must be sorted by key");
            let at = u32::try_from(values.len()).map_err(|_| too_many())?;
            while offsets.len() <= key {
                offsets.push(at);
            }
            values.push(value);
        }
        let end = u32::try_from(values.len()).map_err(|_| too_many())?;
        while offsets.len() <= keys {
            offsets.push(end);
        }
        Ok(Grouped { offsets, values })
    }

    /// An empty grouping over `keys` keys.
    pub fn empty(keys: usize) -> Grouped<T> {
        Grouped {
            offsets: vec![0; keys + 1],
            values: Vec::new(),
        }
    }

    /// The values of `key` (empty when it has none).
    #[inline]
    pub fn get(&self, key: u32) -> &[T] {
        &self.values[self.range(key)]
    }

    /// Where the values of `key` sit in [`Grouped::values`].
    #[inline]
    pub fn range(&self, key: u32) -> std::ops::Range<usize> {
        let k = key as usize;
        self.offsets[k] as usize..self.offsets[k + 1] as usize
    }

    /// Asks for `key`'s offsets to be brought into the cache ([`prefetch`]).
    #[inline]
    pub fn prefetch(&self, key: u32) {
        if let Some(at) = self.offsets.get(key as usize) {
            prefetch(at);
        }
    }

    /// Every value, key after key.
    pub fn values(&self) -> &[T] {
        &self.values
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
    fn a_batch_lookup_answers_as_single_lookups_do() {
        // Members spread over the id range, asked among non-members, in
        // batches longer and shorter than a block, in any order.
        let members: Vec<i64> = (0..3_000).map(|i| i * 7_919 + 13).collect();
        let (set, ids) = IdSet::from_ids(members.iter().copied()).ranked();
        let asked: Vec<i64> = (0..20_000)
            .map(|i| (i * 2_654_435_761_i64) % 24_000_000)
            .collect();
        for len in [0, 1, 63, 64, 65, 20_000] {
            let mut out = vec![Some(u32::MAX)];
            set.get_each(&asked[..len], &mut out);
            assert_eq!(out.len(), len + 1, "appends one answer per id");
            for (&id, &got) in asked[..len].iter().zip(&out[1..]) {
                let rank = members.binary_search(&id).ok().map(|r| r as u32);
                assert_eq!(got, rank, "id {id}");
            }
        }
        let mut out = Vec::new();
        set.get_each(&members, &mut out);
        assert!(
            out.iter()
                .enumerate()
                .all(|(r, &got)| got == Some(r as u32))
        );
        assert_eq!(ids, members);
    }

    #[test]
    fn dense_order_is_id_order() {
        let map = IdMap::from_ids(vec![900, 5, i64::MAX, 5, 0]).unwrap();
        assert_eq!(map.ids(), &[0, 5, 900, i64::MAX]);
        assert_eq!(map.index(900), Some(2));
        assert_eq!(map.index(6), None);
        assert_eq!(map.id(3), i64::MAX);
    }

    #[test]
    fn lookups_agree_with_a_search() {
        // Ids that collide in the table's low bits, and ids absent.
        let ids: Vec<i64> = (0..5000).map(|i| i * 1024 + (i % 7)).collect();
        let map = IdMap::from_ids(ids.iter().rev().copied().collect()).unwrap();
        let set = IdSet::from_ids(ids.iter().copied().chain(ids.iter().copied()));
        assert_eq!(set.len(), ids.len());
        let mut back: Vec<i64> = set.iter().map(|(_, id)| id).collect();
        assert!(set.iter().all(|(slot, id)| set.slot(id) == Some(slot)));
        back.sort_unstable();
        assert_eq!(back, ids);
        for probe in (0..5000 * 1024 + 10).step_by(97) {
            let expected = ids.binary_search(&probe).ok().map(|i| i as u32);
            assert_eq!(map.index(probe), expected, "{probe}");
            assert_eq!(set.contains(probe), expected.is_some(), "{probe}");
        }
        assert_eq!(IdMap::default().index(3), None);
        assert!(!IdSet::from_ids([]).contains(0));
    }

    /// A map built on four threads, from ascending runs one after another
    /// with repeats (as the loader gives them), ranks every id as a search
    /// of the sorted distinct ids does, and so does its clone.
    #[test]
    fn a_map_built_on_every_thread_ranks_every_id() {
        let odd: Vec<i64> = (0..150_000).map(|i| 2 * i * 7_919 + 1).collect();
        let even: Vec<i64> = (0..90_000).map(|i| 2 * i * 104_729).collect();
        let mut given = odd.clone();
        given.extend(&even);
        given.extend(&odd[..1_000]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let map = pool.install(|| IdMap::from_ids(given)).unwrap();
        let mut ids = odd;
        ids.extend(even);
        ids.sort_unstable();
        assert_eq!(map.ids(), ids.as_slice());
        let copy = map.clone();
        for (rank, &id) in ids.iter().enumerate() {
            assert_eq!(map.index(id), Some(rank as u32), "{id}");
            assert_eq!(copy.index(id), Some(rank as u32), "{id}");
            assert_eq!(
                map.index(id + 2),
                ids.binary_search(&(id + 2)).ok().map(|r| r as u32)
            );
        }
    }

    #[test]
    fn many_indices_agree_with_a_search() {
        let ids: Vec<i64> = (0..5000).map(|i| i * 1024 + (i % 7)).collect();
        let map = IdMap::from_ids(ids.clone()).unwrap();
        let expected = |probe: i64| ids.binary_search(&probe).map_or(u32::MAX, |i| i as u32);
        // Ascending (members and not, repeats, before the first and after
        // the last), then the same ids in another order.
        let mut asked: Vec<i64> = (-2_000..5000 * 1024 + 2_000).step_by(331).collect();
        asked.extend_from_slice(&ids[4990..]);
        asked.sort_unstable();
        for order in [asked.clone(), asked.iter().rev().copied().collect()] {
            let got = map.indices(&order, u32::MAX);
            assert_eq!(got.len(), order.len());
            for (&id, &dense) in order.iter().zip(&got) {
                assert_eq!(dense, expected(id), "{id}");
            }
        }
        assert_eq!(map.indices(&[], 0), Vec::<u32>::new());
        assert_eq!(IdMap::default().indices(&[1, 2], 7), vec![7, 7]);
    }

    #[test]
    fn grouped_rows_with_gaps() {
        let g = Grouped::from_sorted(4, vec![(1, 'a'), (1, 'b'), (3, 'c')]).unwrap();
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
