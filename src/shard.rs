//! Shards: which users one process of a sharded run scores.
//!
//! A user's shard is `mix(user_id as u64) % n` (the SplitMix64 finaliser,
//! see [`crate::ids::mix`]), so the split is stable, even, and known to any
//! reader without a lookup table.

use std::fmt;

use crate::ids::mix;

/// Shard `index` of `count`; `0/1` is the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole, unsharded run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("shard {text:?} must be I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard scores `user_id`.
    #[inline]
    pub fn owns(&self, user_id: i64) -> bool {
        self.count == 1 || Shard::index_of(user_id, self.count) == self.index
    }

    /// The index of `user_id`'s shard among `count` (at least 1).
    #[inline]
    pub fn index_of(user_id: i64, count: u32) -> u32 {
        (mix(user_id as u64) % u64::from(count.max(1))) as u32
    }

    /// `part-{I:05}-of-{N:05}.parquet`.
    pub fn part_name(&self) -> String {
        format!("part-{:05}-of-{:05}.parquet", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_own() {
        assert_eq!(Shard::parse("2/5"), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1", "a/2", "0/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        // mix(1) = 6238072747940578789, mix(42) = 12058926934050108962.
        assert!(
            Shard {
                index: (6_238_072_747_940_578_789u64 % 7) as u32,
                count: 7
            }
            .owns(1)
        );
        assert!(
            Shard {
                index: (12_058_926_934_050_108_962u64 % 3) as u32,
                count: 3
            }
            .owns(42)
        );
        assert_eq!(
            Shard::index_of(1, 1000),
            (6_238_072_747_940_578_789u64 % 1000) as u32
        );
        assert_eq!(Shard::index_of(42, 1), 0);
        let owners = (0..4)
            .filter(|&i| Shard { index: i, count: 4 }.owns(99))
            .count();
        assert_eq!(owners, 1);
        assert_eq!(
            Shard {
                index: 3,
                count: 12
            }
            .part_name(),
            "part-00003-of-00012.parquet"
        );
    }
}
