//! The rules that keep a user, a buyer or a product out of the slots.
//!
//! Each rule is one small file named after what it removes; the engine
//! applies them in [`crate::pipeline`] and the counts of what they removed
//! are what make "why did user X not get product Y" answerable.

pub mod already_bought;
pub mod fatigue;
pub mod social_proof;
