//! The optional users and blocks tables: flags and blocks per dense user.
//!
//! Rows naming accounts outside the follow graph are checked and then
//! dropped: such an account can neither receive slots nor be social proof.
//! Both tables are protective: a bad row fails the load whatever
//! `on_bad_rows` says ([`BadRowPolicy::FAIL_CLOSED`]).

use std::path::Path;

use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::ids::{Grouped, IdMap};
use crate::load::tables::{Table, read_table};

/// Flag bit: the user gets no slots.
pub const OPTED_OUT: u8 = 1;
/// Flag bit: the user gets no slots and is never social proof.
pub const SUSPENDED: u8 = 2;
/// Flag bit: the account's purchases never vouch and it is never named.
pub const HIDES_PURCHASES: u8 = 4;

/// Per dense user, its flags (any row saying so sets them).
pub fn load_users(path: Option<&Path>, users: &IdMap) -> Result<(Vec<u8>, Option<Table>)> {
    let mut flags = crate::memory::huge_filled(users.len(), 0u8);
    let Some(path) = path else {
        return Ok((flags, None));
    };
    let table = read_table(
        "users",
        path,
        &[
            "user_id",
            "promotions_opt_out",
            "suspended",
            "hide_purchases",
        ],
        BadRowPolicy::FAIL_CLOSED,
    )?;
    for part in &table.parts {
        let ids = part.ids("user_id")?;
        let opted_out = part.bools("promotions_opt_out", false)?;
        let suspended = part.bools("suspended", false)?;
        let hides = part.bools("hide_purchases", false)?;
        for (row, id) in ids.into_iter().enumerate() {
            let bits = u8::from(opted_out[row]) * OPTED_OUT
                + u8::from(suspended[row]) * SUSPENDED
                + u8::from(hides[row]) * HIDES_PURCHASES;
            // Most rows set nothing: only the others look the id up.
            if bits == 0 || part.is_bad(row) {
                continue;
            }
            if let Some(u) = users.index(id) {
                flags[u as usize] |= bits;
            }
        }
    }
    Ok((flags, Some(table)))
}

/// Per dense user, ascending, every user it blocks or is blocked by.
pub fn load_blocks(path: Option<&Path>, users: &IdMap) -> Result<(Grouped<u32>, Option<Table>)> {
    let Some(path) = path else {
        return Ok((Grouped::empty(users.len()), None));
    };
    let table = read_table(
        "blocks",
        path,
        &["user_id", "blocked_id"],
        BadRowPolicy::FAIL_CLOSED,
    )?;
    let mut pairs = Vec::new();
    for part in &table.parts {
        let a = part.ids("user_id")?;
        let b = part.ids("blocked_id")?;
        for (row, (a, b)) in a.into_iter().zip(b).enumerate() {
            if part.is_bad(row) {
                continue;
            }
            if let (Some(a), Some(b)) = (users.index(a), users.index(b)) {
                pairs.push((a, b));
                pairs.push((b, a));
            }
        }
    }
    pairs.par_sort_unstable();
    pairs.dedup();
    Ok((Grouped::from_sorted(users.len(), pairs)?, Some(table)))
}
