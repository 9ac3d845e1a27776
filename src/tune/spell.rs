//! Defines how a grid spells its candidates: the product of its lists
//! (the last axis varying fastest) or seeded random draws, each put into
//! the job's settings and checked as a job file would be, repeats dropped.

use crate::config::{Job, JobFile, ModelConfig, Overrides, SelectionConfig};
use crate::error::{Error, Result};
use crate::random::Rng;
use crate::tune::grid::{Grid, Search, Values, toml_of};

/// The most candidates one tune may spell.
const MAX_CANDIDATES: usize = 100_000;

/// One setting to evaluate: the job's model and selection with the axes'
/// values put in.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// 1-based, in the order the grid spells them.
    pub id: usize,
    pub model: ModelConfig,
    pub selection: SelectionConfig,
    /// One value per axis of the grid.
    pub values: Vec<toml::Value>,
}

impl Grid {
    /// The candidates the grid spells over the job's settings, each
    /// checked as a job file would be.
    pub fn candidates(&self, job: &Job) -> Result<Vec<Candidate>> {
        let rows = match self.search {
            Search::Grid => self.grid_rows()?,
            Search::Random { samples, seed } => self.random_rows(samples, seed)?,
        };
        let mut candidates: Vec<Candidate> = Vec::with_capacity(rows.len());
        for values in rows {
            let (model, selection) = self.apply(job, &values)?;
            let seen = candidates
                .iter()
                .any(|c| c.model == model && c.selection == selection);
            if !seen {
                candidates.push(Candidate {
                    id: candidates.len() + 1,
                    model,
                    selection,
                    values,
                });
            }
        }
        Ok(candidates)
    }

    fn grid_rows(&self) -> Result<Vec<Vec<toml::Value>>> {
        let lists: Vec<&Vec<toml::Value>> = self
            .axes
            .iter()
            .map(|a| match &a.values {
                Values::List(list) => Ok(list),
                // Refused when the spell is read; an error here too, never a panic.
                Values::Range { .. } => Err(Error::config(
                    &self.path,
                    format!(
                        "{} is a range: ranges need search = \"random\" (or list the values)",
                        a.key
                    ),
                )),
            })
            .collect::<Result<_>>()?;
        let total = lists.iter().try_fold(1usize, |n, l| n.checked_mul(l.len()));
        if total.is_none_or(|n| n > MAX_CANDIDATES) {
            return Err(Error::config(
                &self.path,
                format!("the grid spells more than {MAX_CANDIDATES} candidates"),
            ));
        }
        // The last axis varies fastest.
        let mut rows = vec![Vec::new()];
        for list in lists {
            rows = rows
                .into_iter()
                .flat_map(|row: Vec<toml::Value>| {
                    list.iter().map(move |v| {
                        let mut next = row.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
        }
        Ok(rows)
    }

    fn random_rows(&self, samples: usize, seed: u64) -> Result<Vec<Vec<toml::Value>>> {
        if samples > MAX_CANDIDATES {
            return Err(Error::config(
                &self.path,
                format!("samples must be at most {MAX_CANDIDATES}"),
            ));
        }
        let mut rng = Rng(seed);
        let rows = (0..samples)
            .map(|_| {
                self.axes
                    .iter()
                    .map(|axis| match &axis.values {
                        Values::List(list) => list[rng.below(list.len() as u64) as usize].clone(),
                        Values::Range { min, max } if axis.integer => {
                            let span = (*max as i64 - *min as i64) as u64 + 1;
                            toml::Value::Integer(*min as i64 + rng.below(span) as i64)
                        }
                        Values::Range { min, max } => {
                            let x = min + (max - min) * rng.unit();
                            // Six decimals keep best.toml readable.
                            let x = ((x * 1e6).round() / 1e6).clamp(*min, *max);
                            toml::Value::Float(x)
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(rows)
    }

    /// The job's settings with `values` put in, checked.
    fn apply(&self, job: &Job, values: &[toml::Value]) -> Result<(ModelConfig, SelectionConfig)> {
        let mut model = toml_of(&job.model);
        let mut selection = toml_of(&job.selection);
        for (axis, value) in self.axes.iter().zip(values) {
            let section = if axis.section == "model" {
                &mut model
            } else {
                &mut selection
            };
            section.insert(axis.key.to_string(), value.clone());
        }
        let label = self.label(values);
        let mut file = toml::Table::new();
        let inputs: toml::Table = [("follows", "f"), ("purchases", "p"), ("products", "c")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect();
        file.insert("inputs".into(), inputs.into());
        file.insert("model".into(), model.into());
        file.insert("selection".into(), selection.into());
        let refused =
            |message: String| Error::config(&self.path, format!("candidate {label}: {message}"));
        let parsed: JobFile = toml::Value::Table(file)
            .try_into()
            .map_err(|e: toml::de::Error| refused(e.to_string().trim_end().to_string()))?;
        let checked = Job::from_file(&job.path, parsed, &Overrides::default()).map_err(|e| {
            refused(match e {
                Error::Config { message, .. } => message,
                other => other.to_string(),
            })
        })?;
        Ok((checked.model, checked.selection))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::tune::grid::Axis;

    fn job() -> Job {
        let text =
            "[inputs]\nfollows='f'\npurchases='p'\nproducts='c'\n[run]\nas_of='2026-11-24'\n";
        let file: JobFile = toml::from_str(text).unwrap();
        Job::from_file(Path::new("jobs/t.toml"), file, &Overrides::default()).unwrap()
    }

    fn grid(text: &str) -> Result<Grid> {
        Grid::parse(Path::new("g.toml"), text)
    }

    #[test]
    fn grid_is_the_product_in_config_order() {
        let g = grid(
            "min_user_coverage = 0.05\n[selection]\nmin_score = [0.0, 1]\n\
             [model]\nw_price = [0.1, 0.2]\nlookback_days = [30, 60, 90]\n",
        )
        .unwrap();
        assert_eq!(g.objective, "precision");
        let names: Vec<String> = g.axes.iter().map(Axis::name).collect();
        assert_eq!(
            names,
            [
                "model.lookback_days",
                "model.w_price",
                "selection.min_score"
            ]
        );
        assert_eq!(g.guards.len(), 1);
        assert!(g.guards[0].admits(0.05) && !g.guards[0].admits(0.049));
        let c = g.candidates(&job()).unwrap();
        assert_eq!(c.len(), 12);
        assert_eq!(c[0].id, 1);
        assert_eq!((c[0].model.lookback_days, c[0].model.w_price), (30, 0.1));
        assert_eq!(c[0].selection.min_score, 0.0);
        assert_eq!(c[1].selection.min_score, 1.0);
        assert_eq!((c[11].model.lookback_days, c[11].model.w_price), (90, 0.2));
        // Untouched keys keep the job's values.
        assert_eq!(c[5].model.half_life_days, 7.0);
    }

    #[test]
    fn random_search_is_seeded_and_in_range() {
        let text = "search = 'random'\nsamples = 40\nseed = 7\n[model]\n\
                    w_proof = { min = -1.0, max = 2 }\nlookback_days = { min = 10, max = 12 }\n\
                    [selection]\npositions = [[1, 2], [5]]\n";
        let a = grid(text).unwrap().candidates(&job()).unwrap();
        let b = grid(text).unwrap().candidates(&job()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() > 30, "{}", a.len());
        for c in &a {
            assert!((-1.0..=2.0).contains(&c.model.w_proof));
            assert!((10..=12).contains(&c.model.lookback_days));
            assert!(c.selection.positions == [1, 2] || c.selection.positions == [5]);
        }
        let days: std::collections::BTreeSet<i64> =
            a.iter().map(|c| c.model.lookback_days).collect();
        assert_eq!(days.len(), 3);
        let other = text.replace("seed = 7", "seed = 8");
        assert_ne!(grid(&other).unwrap().candidates(&job()).unwrap(), a);
    }
}
