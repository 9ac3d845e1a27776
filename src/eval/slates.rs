//! Defines `Slates`: each user's slotted products in slot order, over dense
//! indices, as the metrics read them — from the pipeline's slot rows or
//! from a baseline.

use crate::error::{Error, Result};
use crate::pipeline::Scoring;
use crate::world::Context;

/// Per user (ascending dense index), the dense products in slot order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slates {
    users: Vec<u32>,
    /// `products[offsets[i]..offsets[i + 1]]` belongs to `users[i]`.
    offsets: Vec<usize>,
    products: Vec<u32>,
}

impl Slates {
    /// Appends the slate of `user`; users must come in ascending order.
    pub fn push(&mut self, user: u32, products: &[u32]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        debug_assert!(self.users.last().is_none_or(|&last| last < user));
        self.users.push(user);
        self.products.extend_from_slice(products);
        self.offsets.push(self.products.len());
    }

    /// The slates of the pipeline's slot rows (sorted by user, then slot).
    pub fn of_scoring(scoring: &Scoring, ctx: &Context) -> Result<Slates> {
        let mut slates = Slates::default();
        let mut current: Option<i64> = None;
        let mut products = Vec::new();
        for rows in &scoring.chunks {
            for i in 0..rows.len() {
                let user = rows.user_id[i];
                if current != Some(user) {
                    slates.flush(ctx, current, &products)?;
                    products.clear();
                    current = Some(user);
                }
                let id = rows.product_id[i];
                let p = ctx.catalog.ids.index(id).ok_or_else(|| {
                    Error::Internal(format!("slotted product {id} is not in the catalog"))
                })?;
                products.push(p);
            }
        }
        slates.flush(ctx, current, &products)?;
        Ok(slates)
    }

    fn flush(&mut self, ctx: &Context, user: Option<i64>, products: &[u32]) -> Result<()> {
        if let Some(id) = user {
            let u = ctx
                .users
                .index(id)
                .ok_or_else(|| Error::Internal(format!("slotted user {id} is not known")))?;
            self.push(u, products);
        }
        Ok(())
    }

    /// The users with a slate, ascending.
    pub fn users(&self) -> &[u32] {
        &self.users
    }

    /// Every (user, products) pair, users ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u32])> + '_ {
        self.users
            .iter()
            .enumerate()
            .map(|(i, &u)| (u, &self.products[self.offsets[i]..self.offsets[i + 1]]))
    }
}
