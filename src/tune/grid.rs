//! Defines the grid file of `boughtby tune` and the candidates it spells.
//!
//! ```toml
//! objective = "precision"      # any metric of eval; merchant_gini is minimised
//! min_user_coverage = 0.05     # guard rails: min_<metric> / max_<metric>
//! search = "grid"              # or "random", with samples = N and seed = S
//! [model]
//! lookback_days = [30, 90]     # a list is a grid axis
//! w_popularity = { min = -0.5, max = 0.5 }   # a range, for random search
//! [selection]
//! min_score = [0.0, 0.5]
//! ```
//! Axes follow the config's key order (model keys, then selection keys),
//! whatever order the file uses, so a grid spells the same candidates in
//! the same order everywhere (see `spell`).

use std::path::{Path, PathBuf};

use crate::config::{ModelConfig, SelectionConfig};
use crate::error::{Error, Result};
use crate::eval::METRICS;

/// The `[model]` keys, in the config's order.
pub const MODEL_KEYS: [&str; 10] = [
    "name",
    "lookback_days",
    "half_life_days",
    "mutual_bonus",
    "w_proof",
    "w_buyers",
    "w_popularity",
    "w_price",
    "fatigue_max_impressions",
    "fatigue_days",
];

/// The `[selection]` keys, in the config's order.
pub const SELECTION_KEYS: [&str; 6] = [
    "positions",
    "min_buyers",
    "min_score",
    "max_per_merchant",
    "max_per_category",
    "max_buyers_shown",
];

/// How the grid is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Every combination of the listed values.
    Grid,
    /// `samples` draws, each key uniform over its list or range.
    Random { samples: usize, seed: u64 },
}

/// The values one key takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    List(Vec<toml::Value>),
    /// Uniform between the bounds (inclusive integers for integer keys).
    Range {
        min: f64,
        max: f64,
    },
}

/// One swept key.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// `model` or `selection`.
    pub section: &'static str,
    pub key: &'static str,
    pub integer: bool,
    pub values: Values,
}

impl Axis {
    /// `section.key`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// A bound on a metric that a candidate must meet to be chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub metric: &'static str,
    /// True for `min_<metric>`, false for `max_<metric>`.
    pub at_least: bool,
    pub bound: f64,
}

impl Guard {
    /// Whether `value` of the metric keeps within the guard rail.
    pub fn admits(&self, value: f64) -> bool {
        if self.at_least {
            value >= self.bound
        } else {
            value <= self.bound
        }
    }

    /// `min_user_coverage = 0.05` style text.
    pub fn text(&self) -> String {
        let side = if self.at_least { "min" } else { "max" };
        format!("{side}_{} = {}", self.metric, self.bound)
    }
}

/// A parsed grid file.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub path: PathBuf,
    pub objective: &'static str,
    pub guards: Vec<Guard>,
    pub search: Search,
    pub axes: Vec<Axis>,
}

/// Whether a lower value of `metric` is better.
pub fn minimised(metric: &str) -> bool {
    metric == "merchant_gini"
}

fn metric_name(name: &str) -> Option<&'static str> {
    METRICS.iter().copied().find(|m| *m == name)
}

impl Grid {
    /// Reads and checks a grid file.
    pub fn load(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::config(path, e.to_string()))?;
        Grid::parse(path, &text)
    }

    /// Parses the text of a grid file (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Grid> {
        let bad = |m: String| Error::config(path, m);
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut grid = Grid {
            path: path.to_path_buf(),
            objective: "precision",
            guards: Vec::new(),
            search: Search::Grid,
            axes: Vec::new(),
        };
        let (mut search, mut samples, mut seed) = ("grid".to_string(), None, None);
        for (key, value) in &table {
            match key.as_str() {
                "objective" => {
                    let name = value.as_str().unwrap_or_default();
                    grid.objective = metric_name(name).ok_or_else(|| {
                        bad(format!(
                            "objective {value} is not a metric (one of {})",
                            METRICS.join(", ")
                        ))
                    })?;
                }
                "search" => search = value.as_str().unwrap_or_default().to_string(),
                "samples" => {
                    samples = Some(value.as_integer().filter(|&n| n >= 1).ok_or_else(|| {
                        bad(format!("samples must be a positive integer, not {value}"))
                    })?)
                }
                "seed" => {
                    seed = Some(value.as_integer().filter(|&n| n >= 0).ok_or_else(|| {
                        bad(format!("seed must be a non-negative integer, not {value}"))
                    })?)
                }
                "model" | "selection" => {}
                other => grid.guards.push(guard(other, value).map_err(bad)?),
            }
        }
        grid.search = match (search.as_str(), samples, seed) {
            ("grid", None, None) => Search::Grid,
            ("grid", _, _) => {
                return Err(bad("samples and seed need search = \"random\"".into()));
            }
            ("random", Some(samples), seed) => Search::Random {
                samples: samples as usize,
                seed: seed.unwrap_or(0) as u64,
            },
            ("random", None, _) => {
                return Err(bad("search = \"random\" needs samples = N".into()));
            }
            (other, _, _) => {
                return Err(bad(format!(
                    "search {other:?} is unknown (\"grid\" or \"random\")"
                )));
            }
        };
        let defaults = [
            (
                "model",
                MODEL_KEYS.as_slice(),
                toml_of(&ModelConfig::default()),
            ),
            (
                "selection",
                SELECTION_KEYS.as_slice(),
                toml_of(&SelectionConfig::default()),
            ),
        ];
        for (section, keys, default) in defaults {
            let Some(given) = table.get(section) else {
                continue;
            };
            let given = given
                .as_table()
                .ok_or_else(|| bad(format!("{section} must be a table of keys")))?;
            if let Some(unknown) = given.keys().find(|k| !keys.contains(&k.as_str())) {
                return Err(bad(format!(
                    "{section}.{unknown} is not a key of [{section}] (known: {})",
                    keys.join(", ")
                )));
            }
            for &key in keys {
                if let Some(value) = given.get(key) {
                    let integer = default[key].is_integer();
                    let axis = axis(section, key, integer, value, grid.search).map_err(bad)?;
                    grid.axes.push(axis);
                }
            }
        }
        if grid.axes.is_empty() {
            return Err(bad(
                "no key to sweep: list values under [model] or [selection]".into(),
            ));
        }
        Ok(grid)
    }

    /// `key=value` pairs of a candidate's axis values.
    pub fn label(&self, values: &[toml::Value]) -> String {
        let pairs: Vec<String> = self
            .axes
            .iter()
            .zip(values)
            .map(|(a, v)| format!("{}={}", a.key, v))
            .collect();
        pairs.join(" ")
    }
}

/// The TOML table of a config section.
pub fn toml_of<T: serde::Serialize>(section: &T) -> toml::Table {
    toml::Table::try_from(section).expect("config sections serialise to TOML")
}

fn guard(key: &str, value: &toml::Value) -> Result<Guard, String> {
    let (at_least, name) = match (key.strip_prefix("min_"), key.strip_prefix("max_")) {
        (Some(name), _) => (true, name),
        (_, Some(name)) => (false, name),
        _ => return Err(unknown_key(key)),
    };
    let metric = metric_name(name).ok_or_else(|| unknown_key(key))?;
    let bound = number(value)
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("{key} must be a number, not {value}"))?;
    Ok(Guard {
        metric,
        at_least,
        bound,
    })
}

fn unknown_key(key: &str) -> String {
    format!(
        "{key} is not a key of a grid file (objective, search, samples, seed, \
         min_<metric> or max_<metric> with a metric of eval, [model], [selection])"
    )
}

fn number(value: &toml::Value) -> Option<f64> {
    value
        .as_float()
        .or_else(|| value.as_integer().map(|i| i as f64))
}

fn axis(
    section: &'static str,
    key: &'static str,
    integer: bool,
    value: &toml::Value,
    search: Search,
) -> Result<Axis, String> {
    let name = format!("{section}.{key}");
    let values = match value {
        toml::Value::Array(list) if list.is_empty() => {
            return Err(format!("{name} lists no value"));
        }
        toml::Value::Array(list) => {
            let float = !integer && list.iter().all(|v| number(v).is_some());
            // Integers are accepted where a float is expected, as in a job file.
            let list = list
                .iter()
                .map(|v| match (float, v.as_integer()) {
                    (true, Some(i)) => toml::Value::Float(i as f64),
                    _ => v.clone(),
                })
                .collect();
            Values::List(list)
        }
        toml::Value::Table(range) => {
            if matches!(search, Search::Grid) {
                return Err(format!(
                    "{name} is a range: ranges need search = \"random\" (or list the values)"
                ));
            }
            if range.keys().any(|k| k != "min" && k != "max") {
                return Err(format!("{name} must be {{ min = .., max = .. }}"));
            }
            let bound = |k: &str| -> Result<f64, String> {
                let v = range.get(k).ok_or_else(|| format!("{name} needs {k}"))?;
                match (integer, v.as_integer(), number(v)) {
                    (true, Some(i), _) => Ok(i as f64),
                    (false, _, Some(x)) if x.is_finite() && key != "name" && key != "positions" => {
                        Ok(x)
                    }
                    _ => Err(format!(
                        "{name}.{k} must be {}",
                        if integer {
                            "an integer"
                        } else {
                            "a number (ranges are for numeric keys)"
                        }
                    )),
                }
            };
            let (min, max) = (bound("min")?, bound("max")?);
            if min > max {
                return Err(format!("{name}: min {min} is above max {max}"));
            }
            Values::Range { min, max }
        }
        other => {
            return Err(format!(
                "{name} must be a list of values or {{ min = .., max = .. }}, not {other}"
            ));
        }
    };
    Ok(Axis {
        section,
        key,
        integer,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Job, JobFile, Overrides};

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
    fn key_lists_match_the_config() {
        let mut model: Vec<String> = toml_of(&ModelConfig::default()).keys().cloned().collect();
        let mut selection: Vec<String> = toml_of(&SelectionConfig::default())
            .keys()
            .cloned()
            .collect();
        model.sort();
        selection.sort();
        let mut m: Vec<&str> = MODEL_KEYS.to_vec();
        let mut s: Vec<&str> = SELECTION_KEYS.to_vec();
        m.sort();
        s.sort();
        assert_eq!(model, m);
        assert_eq!(selection, s);
    }

    #[test]
    fn refuses_what_cannot_be_run() {
        for bad in [
            "[model]\nbogus = [1]\n",
            "objective = 'clicks'\n[model]\nw_proof = [1]\n",
            "min_clicks = 1\n[model]\nw_proof = [1]\n",
            "[model]\nw_proof = { min = 0, max = 1 }\n",
            "search = 'random'\n[model]\nw_proof = [1]\n",
            "search = 'random'\nsamples = 3\n[model]\nw_proof = { min = 2, max = 1 }\n",
            "[model]\nw_proof = []\n",
            "[model]\nhalf_life_days = [7, 0]\n",
            "[model]\nlookback_days = [1.5]\n",
            "[selection]\npositions = [[3, 2]]\n",
            "seed = 1\n[model]\nw_proof = [1]\n",
            "objective = 'precision'\n",
        ] {
            let result = grid(bad).and_then(|g| g.candidates(&job()));
            let err = result.expect_err(bad);
            assert_eq!(err.exit_code(), 1, "{bad}");
        }
    }
}
