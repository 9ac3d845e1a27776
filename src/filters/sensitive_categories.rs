//! `SensitiveCategories`: a product whose category is one of `[model]
//! sensitive_categories` (exact, case-sensitive) is never promoted, to
//! anyone. A product without a category is never sensitive. Unit:
//! candidate.

use crate::world::catalog::{Catalog, NO_CATEGORY};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::catalog;

    #[test]
    fn listed_categories_exactly_never_a_product_without_one() {
        let c = catalog();
        assert_eq!(SensitiveCategories::products(&c, &[]), Vec::<u32>::new());
        assert_eq!(SensitiveCategories::products(&c, &["a".into()]), [0, 2]);
        assert_eq!(
            SensitiveCategories::products(&c, &["b".into(), "zzz".into()]),
            [1]
        );
        // Exact and case-sensitive.
        assert!(SensitiveCategories::products(&c, &["A".into(), " a".into()]).is_empty());
    }
}
