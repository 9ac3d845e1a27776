//! Scoring: the features of a candidate and the `social_v1` formula.

pub mod social_v1;

pub use social_v1::{Features, SocialV1, round9};
