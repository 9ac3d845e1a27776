//! `SensitiveCategories`: a product whose category is one of `[model]
//! sensitive_categories` (exact, case-sensitive) is never promoted, to
//! anyone. A product without a category is never sensitive. Unit:
//! candidate.

use crate::load::catalog::{Catalog, NO_CATEGORY};

pub struct SensitiveCategories;

impl SensitiveCategories {
    pub const NAME: &'static str = "sensitive_categories";

    /// The dense products in a sensitive category, ascending.
    pub fn products(catalog: &Catalog, sensitive: &[String]) -> Vec<u32> {
        if sensitive.is_empty() {
            return Vec::new();
        }
        let is_sensitive: Vec<bool> = catalog
            .category_names
            .iter()
            .map(|name| sensitive.contains(name))
            .collect();
        (0..catalog.len() as u32)
            .filter(|&p| {
                let c = catalog.category[p as usize];
                c != NO_CATEGORY && is_sensitive[c as usize]
            })
            .collect()
    }
}
