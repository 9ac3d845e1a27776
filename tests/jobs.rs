//! The scheduling files under `jobs/`: every `boughtby` command line they
//! run (the systemd unit's `ExecStart=`, the Kubernetes shard pods and the
//! commit container) is accepted by the CLI, as the expected subcommand;
//! `jobs/nightly.toml` is the default model on the shared volume and
//! validates once pointed at the sample world (the Kubernetes manifests
//! themselves are `k8s`'s); and the scheduled commands, run for real on the
//! sample world (shards, the driver's run id extraction, commit, then the
//! single-machine run of the same night), publish one and the same run.
//!
//! Command lines are taken from the code of each file, not its comments:
//! every line holding `boughtby <word> --` (lines ending in `\` continue),
//! split into words as `sh` would, shell variables and `$(...)` replaced by
//! sample values ([`Vars`]). An unknown variable fails the test: give it a
//! sample value here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use clap::Parser;
use tempfile::TempDir;

use boughtby::cli::{Cli, Command};
use boughtby::config::{Job, ModelConfig, Overrides, SelectionConfig};
use boughtby::shard::Shard;

use crate::util::{latest, read_latest, run, run_ok};

/// Where the scheduled commands find the job file (the installed
/// `jobs/nightly.toml`).
const INSTALLED_JOB: &str = "/etc/boughtby/nightly.toml";
/// The night of the sample world, and its run with the default model.
const SAMPLE_AS_OF: &str = "2026-11-24";
const SAMPLE_RUN_ID: &str = "20261124T000000Z-3f770a01";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jobs_dir() -> PathBuf {
    repo().join("jobs")
}

/// Sample values of the shell variables of the scheduled command lines.
#[derive(Debug, Clone)]
struct Vars {
    as_of: String,
    shard_index: u32,
    shards: u32,
    run_id: String,
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            as_of: SAMPLE_AS_OF.to_string(),
            shard_index: 3,
            shards: 8,
            run_id: SAMPLE_RUN_ID.to_string(),
        }
    }
}

impl Vars {
    fn variable(&self, name: &str, at: &str) -> String {
        match name {
            "AS_OF" => self.as_of.clone(),
            "JOB_COMPLETION_INDEX" => self.shard_index.to_string(),
            "SHARDS" | "N" => self.shards.to_string(),
            "RUN_ID" => self.run_id.clone(),
            _ => panic!("{at}: no sample value for ${name}; add one to Vars in tests/jobs.rs"),
        }
    }

    /// `$(inner)`: a `date` is run for real (its output must be an as_of
    /// the CLI takes) and stands for the sample night; reading the run id
    /// file stands for the run id.
    fn substitution(&self, inner: &str, at: &str) -> String {
        let inner = inner.trim();
        if inner.starts_with("date ") {
            let out = Process::new("sh")
                .args(["-c", inner])
                .output()
                .expect("cannot run sh");
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                out.status.success() && boughtby::time::parse_as_of(&text).is_ok(),
                "{at}: $({inner}) gives {text:?}, not an as_of (RFC 3339 or YYYY-MM-DD)"
            );
            self.as_of.clone()
        } else if inner.contains("run-id") || inner.contains("RUN_ID_FILE") {
            self.run_id.clone()
        } else {
            panic!("{at}: no sample value for $({inner}); add one to Vars in tests/jobs.rs")
        }
    }
}

/// A `boughtby` command line found in a file under jobs/.
#[derive(Debug, Clone)]
struct Found {
    /// `<file under jobs/>:<line>`.
    at: String,
    /// The words the process gets, `boughtby` first.
    args: Vec<String>,
}

impl Found {
    fn parse(&self) -> Cli {
        Cli::try_parse_from(&self.args).unwrap_or_else(|e| {
            panic!(
                "{}: the CLI refuses `{}`:\n{}",
                self.at,
                self.args.join(" "),
                e.render()
            )
        })
    }

    /// The arguments after `boughtby`, with the installed job file swapped
    /// for `job`.
    fn with_job(&self, job: &Path) -> Vec<String> {
        self.args[1..]
            .iter()
            .map(|a| {
                if a == INSTALLED_JOB {
                    job.display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect()
    }
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The command lines of every file under jobs/.
fn command_lines(vars: &Vars) -> Vec<Found> {
    let dir = jobs_dir();
    let mut found = Vec::new();
    for path in files_under(&dir) {
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let mut text = fs::read_to_string(&path).unwrap();
        if name.ends_with(".service") || name.ends_with(".timer") {
            // systemd's own escapes: `%%` is `%` and `$$` is `$`.
            text = text.replace("%%", "%").replace("$$", "$");
        }
        found.extend(extract(&name, &text, vars));
    }
    found
}

/// The command lines of one file's text.
fn extract(name: &str, text: &str, vars: &Vars) -> Vec<Found> {
    let mut found = Vec::new();
    let mut logical = String::new();
    let mut first = 0;
    for (i, line) in text.lines().enumerate() {
        if logical.is_empty() {
            first = i + 1;
            if line.trim_start().starts_with('#') {
                continue;
            }
            logical.push_str(line);
        } else {
            logical.push(' ');
            logical.push_str(line.trim_start());
        }
        if logical.ends_with('\\') {
            logical.pop();
            continue;
        }
        let at = format!("{name}:{first}");
        for start in command_starts(&logical) {
            found.push(Found {
                at: at.clone(),
                args: words(&logical, start, vars, &at),
            });
        }
        logical.clear();
    }
    found
}

/// Where `boughtby <word> --` starts in `line` (a word of its own, maybe
/// after a path: `/usr/local/bin/boughtby run --config ...`).
fn command_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    for (pos, _) in line.match_indices("boughtby") {
        let before = line[..pos].chars().next_back();
        if !before.is_none_or(|c| c.is_whitespace() || "/'\"".contains(c)) {
            continue;
        }
        let rest = &line[pos + "boughtby".len()..];
        let Some(rest) = rest.strip_prefix(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let word_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(rest.len());
        if word_len > 0 && rest[word_len..].trim_start().starts_with("--") {
            // Back to the start of the program's path, if it has one.
            let path_start = line[..pos]
                .rfind(|c: char| c.is_whitespace() || "'\"".contains(c))
                .map_or(0, |p| p + 1);
            starts.push(path_start);
        }
    }
    starts
}

/// The quoting in force at byte `end` of `line`: `'` or `"` when inside
/// such a string, None outside.
fn quote_at(line: &str, end: usize) -> Option<char> {
    let mut quote = None;
    let mut escaped = false;
    for c in line[..end].chars() {
        match quote {
            _ if escaped => escaped = false,
            None if c == '\\' => escaped = true,
            Some('"') if c == '\\' => escaped = true,
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
    }
    quote
}

/// Splits the command starting at byte `start` of `line` into words as
/// `sh` would, up to the end of the command (`;`, `&`, `|`, a redirection,
/// a comment, or the closing quote of an enclosing `sh -c '...'`).
fn words(line: &str, start: usize, vars: &Vars, at: &str) -> Vec<String> {
    let enclosing = quote_at(line, start);
    assert!(
        enclosing != Some('"'),
        "{at}: a command inside a double-quoted string; use sh -c '...' or a YAML block"
    );
    let chars: Vec<char> = line[start..].chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                i += 1;
            }
            '\'' if enclosing == Some('\'') => break,
            '\'' => {
                let close =
                    find_from(&chars, i + 1, '\'').unwrap_or_else(|| panic!("{at}: unclosed '"));
                word.extend(&chars[i + 1..close]);
                in_word = true;
                i = close + 1;
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() && "\"\\$`".contains(chars[i + 1]) {
                        word.push(chars[i + 1]);
                        i += 2;
                    } else if chars[i] == '$' {
                        i = expand(&chars, i, &mut word, vars, at);
                    } else {
                        word.push(chars[i]);
                        i += 1;
                    }
                }
                assert!(i < chars.len(), "{at}: unclosed \"");
                i += 1;
            }
            '$' => {
                in_word = true;
                i = expand(&chars, i, &mut word, vars, at);
            }
            '\\' if i + 1 < chars.len() => {
                word.push(chars[i + 1]);
                in_word = true;
                i += 2;
            }
            ';' | '&' | '|' | '<' | '>' | ')' | '`' => break,
            '#' if !in_word => break,
            c => {
                word.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    // The program, whatever its path, is `boughtby`.
    if let Some(program) = words.first_mut() {
        *program = "boughtby".to_string();
    }
    words
}

fn find_from(chars: &[char], from: usize, wanted: char) -> Option<usize> {
    (from..chars.len()).find(|&j| chars[j] == wanted)
}

/// Expands the `$...` at `chars[i]` into `word`; returns where it ends.
fn expand(chars: &[char], i: usize, word: &mut String, vars: &Vars, at: &str) -> usize {
    match chars.get(i + 1) {
        Some('(') => {
            let mut depth = 0;
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    Some('(') => depth += 1,
                    Some(')') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => panic!("{at}: unclosed $("),
                }
                j += 1;
            }
            let inner: String = chars[i + 2..j].iter().collect();
            word.push_str(&vars.substitution(&inner, at));
            j + 1
        }
        Some('{') => {
            let close =
                find_from(chars, i + 2, '}').unwrap_or_else(|| panic!("{at}: unclosed ${{"));
            let inner: String = chars[i + 2..close].iter().collect();
            // ${NAME}, ${NAME:-default}, ...: the sample value of NAME.
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            word.push_str(&vars.variable(&inner[..name_end], at));
            close + 1
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            word.push_str(&vars.variable(&name, at));
            j
        }
        _ => {
            word.push('$');
            i + 1
        }
    }
}

/// The found command lines of the file `name` (under jobs/).
fn in_file<'a>(found: &'a [Found], name: &str) -> Vec<&'a Found> {
    found
        .iter()
        .filter(|f| f.at.starts_with(&format!("{name}:")))
        .collect()
}

#[test]
fn every_command_line_in_jobs_is_accepted_by_the_cli() {
    let found = command_lines(&Vars::default());
    for f in &found {
        f.parse();
    }

    // The single machine: one unsharded run of tonight, as_of given.
    let systemd = in_file(&found, "systemd/boughtby.service");
    assert_eq!(systemd.len(), 1, "ExecStart of boughtby.service: {found:?}");
    match systemd[0].parse().command {
        Command::Run(a) => {
            assert_eq!(a.config, Path::new(INSTALLED_JOB), "{}", systemd[0].at);
            assert_eq!(
                a.as_of,
                boughtby::time::parse_as_of(SAMPLE_AS_OF).ok(),
                "{}",
                systemd[0].at
            );
            assert!(a.shard.is_none() && !a.force, "{}", systemd[0].at);
        }
        other => panic!("{}: expected `run`, got {other:?}", systemd[0].at),
    }

    // Kubernetes: the shard pods run shard JOB_COMPLETION_INDEX of N...
    let shards = in_file(&found, "k8s/40-driver.yaml");
    assert_eq!(shards.len(), 1, "the shard pod's command: {found:?}");
    match shards[0].parse().command {
        Command::Run(a) => {
            assert_eq!(a.config, Path::new(INSTALLED_JOB), "{}", shards[0].at);
            assert_eq!(
                a.as_of,
                boughtby::time::parse_as_of(SAMPLE_AS_OF).ok(),
                "{}",
                shards[0].at
            );
            assert_eq!(
                a.shard,
                Some(Shard { index: 3, count: 8 }),
                "{}",
                shards[0].at
            );
            assert!(!a.force, "{}", shards[0].at);
        }
        other => panic!("{}: expected `run`, got {other:?}", shards[0].at),
    }
    // ...and the driver's pod commits the run the shards staged.
    let commit = in_file(&found, "k8s/50-cronjob.yaml");
    assert_eq!(commit.len(), 1, "the commit container's command: {found:?}");
    match commit[0].parse().command {
        Command::Commit(a) => {
            assert_eq!(a.config, Path::new(INSTALLED_JOB), "{}", commit[0].at);
            assert_eq!(a.run_id, SAMPLE_RUN_ID, "{}", commit[0].at);
            assert!(!a.force, "{}", commit[0].at);
        }
        other => panic!("{}: expected `commit`, got {other:?}", commit[0].at),
    }
}

#[test]
fn a_mistyped_command_line_is_caught() {
    let text = "\
# boughtby run --this-comment-is-not-checked
ExecStart=/bin/sh -c 'exec /usr/local/bin/boughtby run --config /etc/boughtby/nightly.toml --as_of \"$(date -u +%Y-%m-%d)\"'
        - |
          exec boughtby run --config /etc/boughtby/nightly.toml \\
            --as-of \"$AS_OF\" --shard \"$JOB_COMPLETION_INDEX/$SHARDS\" # shard I of N
";
    let found = extract("test", text, &Vars::default());
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].at, "test:2");
    assert!(
        Cli::try_parse_from(&found[0].args).is_err(),
        "--as_of must be refused: {:?}",
        found[0].args
    );
    assert_eq!(found[1].at, "test:4");
    assert_eq!(
        found[1].args,
        [
            "boughtby",
            "run",
            "--config",
            INSTALLED_JOB,
            "--as-of",
            SAMPLE_AS_OF,
            "--shard",
            "3/8"
        ]
    );
    found[1].parse();
}

#[test]
fn nightly_job_is_the_default_model_on_the_shared_volume() {
    let path = jobs_dir().join("nightly.toml");
    let job = Job::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.model, ModelConfig::default());
    assert_eq!(job.selection, SelectionConfig::default());
    // The scheduler passes --as-of: a job file pinning a night would be a
    // trap (every night the same run).
    assert!(
        !job.as_of_explicit,
        "jobs/nightly.toml must not set [run] as_of"
    );
    for input in [
        &job.inputs.follows,
        &job.inputs.purchases,
        &job.inputs.products,
    ]
    .into_iter()
    .chain(
        [
            &job.inputs.users,
            &job.inputs.blocks,
            &job.inputs.impressions,
        ]
        .into_iter()
        .flatten(),
    ) {
        assert!(
            input.starts_with("/data/boughtby/inputs"),
            "{}: inputs on the shared volume",
            input.display()
        );
    }
    assert!(job.inputs.users.is_some() && job.inputs.blocks.is_some());
    assert!(job.inputs.impressions.is_some());
    assert_eq!(job.output, Path::new("/data/boughtby/runs"));
}

/// A copy of jobs/nightly.toml in `dir` whose inputs are the sample world's
/// and whose output is `dir/runs`.
fn nightly_on_sample(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(jobs_dir().join("nightly.toml")).unwrap();
    let mut table: toml::Table = text.parse().unwrap();
    let inputs = table["inputs"].as_table_mut().unwrap();
    for (name, value) in inputs.iter_mut() {
        let sample = repo().join("data/sample").join(format!("{name}.parquet"));
        assert!(sample.is_file(), "{}", sample.display());
        *value = toml::Value::String(sample.display().to_string());
    }
    let run = table["run"].as_table_mut().unwrap();
    run.insert(
        "output".into(),
        toml::Value::String(dir.join("runs").display().to_string()),
    );
    let path = dir.join("nightly.toml");
    fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    path
}

#[test]
fn nightly_job_validates_on_the_sample_world() {
    let dir = TempDir::new().unwrap();
    let job = nightly_on_sample(dir.path());
    let out = run_ok(&["validate", "--config", job.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: every input is valid"));
}

#[test]
fn every_job_file_loads() {
    // Job::load checks the config without reading the inputs.
    let mut jobs = 0;
    for path in files_under(&jobs_dir()) {
        if path.parent() == Some(jobs_dir().as_path())
            && path.extension().is_some_and(|e| e == "toml")
        {
            Job::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
            jobs += 1;
        }
    }
    assert!(jobs >= 2, "jobs/sample.toml and jobs/nightly.toml at least");
}

#[test]
fn sample_job_validates() {
    let job = jobs_dir().join("sample.toml");
    let out = run(&["validate", "--config", job.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `sed` expression by which the driver reads the run id from a shard's
/// output.
fn driver_sed_expression() -> String {
    let driver = fs::read_to_string(jobs_dir().join("k8s/40-driver.yaml")).unwrap();
    let line = driver
        .lines()
        .find(|l| l.contains("sed -n") && l.contains("staged shard"))
        .expect("the driver's sed over the shards' logs");
    let start = line.find("sed -n '").unwrap() + "sed -n '".len();
    let len = line[start..].find('\'').unwrap();
    line[start..start + len].to_string()
}

fn sed(expression: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Process::new("sed")
        .args(["-n", expression])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run sed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn scheduled_commands_publish_the_sample_night() {
    let dir = TempDir::new().unwrap();
    let job = nightly_on_sample(dir.path());
    let runs = dir.path().join("runs");
    let expression = driver_sed_expression();

    // Kubernetes: the shard pods of a 3-shard night, the run id as the
    // driver reads it from their output, then the commit container.
    let shards = 3;
    let mut run_ids = Vec::new();
    for index in 0..shards {
        let vars = Vars {
            shard_index: index,
            shards,
            ..Vars::default()
        };
        let found = command_lines(&vars);
        let pod = in_file(&found, "k8s/40-driver.yaml")[0].with_job(&job);
        let out = run_ok(&pod.iter().map(String::as_str).collect::<Vec<_>>());
        let id = sed(&expression, &out.stdout);
        assert_eq!(id.lines().count(), 1, "shard {index}: {id:?}");
        run_ids.push(id.trim().to_string());
    }
    assert!(run_ids.iter().all(|id| id == &run_ids[0]), "{run_ids:?}");
    let run_id = run_ids[0].clone();
    assert!(run_id.starts_with("20261124T000000Z-"), "{run_id}");

    let vars = Vars {
        run_id: run_id.clone(),
        ..Vars::default()
    };
    let found = command_lines(&vars);
    let commit = in_file(&found, "k8s/50-cronjob.yaml")[0].with_job(&job);
    run_ok(&commit.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(latest(&runs).as_deref(), Some(run_id.as_str()));
    let mut sharded = read_latest(&runs);
    assert!(!sharded.is_empty());
    sharded.sort_by_key(|s| (s.user_id, s.slot));

    // One machine, the same night and job: the same run, replaced.
    let systemd = in_file(&found, "systemd/boughtby.service")[0].with_job(&job);
    run_ok(&systemd.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(latest(&runs).as_deref(), Some(run_id.as_str()));
    assert_eq!(
        read_latest(&runs),
        sharded,
        "one process, same rows as the shards"
    );
}
