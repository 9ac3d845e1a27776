//! Candidate sources: where a user's candidate products come from.

pub mod followee_purchases;

pub use followee_purchases::{Accumulator, Candidate};
