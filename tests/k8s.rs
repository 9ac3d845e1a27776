//! The Kubernetes manifests of `jobs/k8s/`, parsed as YAML: what the
//! cluster and the driver rely on (the shard Job's index variable, shard
//! count, image and exit-code policy, the commit after it, the bucket's
//! credentials from a Secret, no shared volume), and the driver script
//! itself, taken from its ConfigMap and run by `sh` against a fake
//! `kubectl` that records its calls and answers with a night's Job
//! statuses, followed by the commit container's command against a fake
//! `boughtby`, as the pod would run them; last, a whole night of the
//! shipped commands and job file on moto's S3 server (see `objstore`).
//!
//! No cluster runs here: the API server's side (scheduling, the Job
//! controller applying the policies) is the fake's canned answers and the
//! policy evaluation in [`policy_action`], which follows the documented
//! rules (first matching rule wins).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use boughtby::config::{Job, Overrides};

/// The job file every boughtby container reads.
const INSTALLED_JOB: &str = "/etc/boughtby/nightly.toml";
const NIGHT: &str = "2026-11-24";
const RUN_ID: &str = "20261124T000000Z-3f770a01";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s_dir() -> PathBuf {
    repo().join("jobs/k8s")
}

/// Every document of a YAML text.
fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Every document of every manifest, with its file's name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.ends_with(".yaml"), "jobs/k8s/{name}: not a manifest");
        let text = fs::read_to_string(&path).unwrap();
        for doc in documents(&text, &name) {
            docs.push((name.clone(), doc));
        }
    }
    docs
}

/// The object `kind`/`name` of the manifests.
fn object(docs: &[(String, Value)], kind: &str, name: &str) -> Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name} in jobs/k8s/");
    found[0].clone()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn array_of<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

/// The entry named `name` of a list of named things (containers, env,
/// volumes).
fn named(list: &Value, name: &str) -> Value {
    let found: Vec<&Value> = array_of(list, name)
        .iter()
        .filter(|v| v["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {list}");
    found[0].clone()
}

/// A literal env value of a container.
fn env_value(container: &Value, name: &str) -> String {
    str_of(&named(&container["env"], name)["value"], name).to_string()
}

/// The one shell command a container runs: `sh -c <script>`, or `sh <file>`.
fn container_script(container: &Value) -> Vec<String> {
    array_of(&container["command"], "command")
        .iter()
        .map(|v| str_of(v, "command").to_string())
        .collect()
}

/// The CronJob's pod spec.
fn cronjob_pod(docs: &[(String, Value)]) -> Value {
    object(docs, "CronJob", "boughtby-nightly")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        .clone()
}

/// The driver's ConfigMap entry `key`.
fn driver_file(docs: &[(String, Value)], key: &str) -> String {
    str_of(
        &object(docs, "ConfigMap", "boughtby-driver")["data"][key],
        key,
    )
    .to_string()
}

// ---------------------------------------------------------------------------
// The Job controller's failure policy, as documented
// ---------------------------------------------------------------------------

/// What a Job's `podFailurePolicy` does with a pod whose container
/// `container` exited `code` (or, with `disrupted`, that was evicted): the
/// action of the first rule that matches, None for "count it against the
/// backoff limit" (retried while the limit lasts).
fn policy_action(job_spec: &Value, container: &str, code: i64, disrupted: bool) -> Option<String> {
    let rules = array_of(
        &job_spec["podFailurePolicy"]["rules"],
        "podFailurePolicy.rules",
    );
    for rule in rules {
        let action = str_of(&rule["action"], "action").to_string();
        if let Some(codes) = rule.get("onExitCodes") {
            if codes["containerName"].is_string() && codes["containerName"] != container {
                continue;
            }
            let values: Vec<i64> = array_of(&codes["values"], "values")
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let listed = values.contains(&code);
            let matches = match str_of(&codes["operator"], "operator") {
                "In" => listed,
                "NotIn" => !listed,
                other => panic!("unknown operator {other}"),
            };
            if matches && !disrupted {
                return Some(action);
            }
        } else if let Some(conditions) = rule.get("onPodConditions") {
            let on_disruption = array_of(conditions, "onPodConditions")
                .iter()
                .any(|c| c["type"] == "DisruptionTarget");
            if disrupted && on_disruption {
                return Some(action);
            }
        } else {
            panic!("a rule without onExitCodes nor onPodConditions: {rule}");
        }
    }
    None
}

// ---------------------------------------------------------------------------
// A night: the driver against a fake kubectl, then the commit container
// ---------------------------------------------------------------------------

/// What the fake API server answers during one night.
#[derive(Debug, Clone)]
struct Night {
    /// The driver's AS_OF; None leaves it unset (today).
    as_of: Option<String>,
    /// Overrides the CronJob's SHARDS.
    shards: Option<String>,
    /// A Job of the same night already exists (an earlier attempt).
    existing: bool,
    /// `kubectl create` fails.
    create_fails: bool,
    /// The Job's true conditions at each look, the last one repeated;
    /// `ERROR` for a look the API server does not answer.
    conditions: Vec<&'static str>,
    /// Exit codes of the Job's failed pods' shard container.
    failed_codes: Vec<&'static str>,
    /// The logs of the succeeded pods, by pod name.
    logs: Vec<(String, String)>,
    /// The commit's exit status (the fake boughtby's).
    commit_status: i32,
}

impl Night {
    /// Every index succeeds at the third look; each of `shards` pods
    /// staged its part of `RUN_ID`.
    fn succeeding(shards: u32) -> Night {
        Night {
            as_of: Some(NIGHT.to_string()),
            shards: None,
            existing: false,
            create_fails: false,
            conditions: vec!["", "SuccessCriteriaMet ", "SuccessCriteriaMet Complete "],
            failed_codes: Vec::new(),
            logs: (0..shards)
                .map(|i| {
                    (
                        format!("boughtby-shards-20261124-{i}-x7k2p"),
                        staged(i, shards, RUN_ID),
                    )
                })
                .collect(),
            commit_status: 0,
        }
    }

    /// The Job fails at the second look; its failed pods exited `codes`.
    fn failing(codes: &[&'static str]) -> Night {
        Night {
            conditions: vec!["", "FailureTarget Failed "],
            failed_codes: codes.to_vec(),
            logs: Vec::new(),
            ..Night::succeeding(8)
        }
    }
}

/// A shard's output, as `boughtby run --shard` prints it.
fn staged(index: u32, shards: u32, run_id: &str) -> String {
    format!(
        "staged shard {index}/{shards} of run {run_id}: 812 slots for 301 of 377 users scored; \
         commit with `boughtby commit --config {INSTALLED_JOB} --run-id {run_id}` once all {shards} shards are staged\n"
    )
}

/// What happened in one night.
#[derive(Debug)]
struct Outcome {
    driver_status: i32,
    driver_stderr: String,
    /// The kubectl calls, one line each (arguments joined by spaces).
    calls: Vec<String>,
    /// The Job the driver created, parsed.
    created: Option<Value>,
    /// The run id file the driver left.
    run_id_file: Option<String>,
    /// The fake boughtby's arguments in the commit container, if it ran.
    commit: Option<Vec<String>>,
    commit_status: Option<i32>,
}

const FAKE_KUBECTL: &str = r#"#!/bin/sh
# A fake kubectl: records the call, answers from the files of $STUB.
printf '%s\n' "$*" >>"$STUB/calls"
[ "$1" = --namespace ] && [ "$2" = boughtby ] || { echo "UNEXPECTED no --namespace boughtby: $*" >>"$STUB/calls"; exit 99; }
shift 2
case "$1 $2" in
  "get job")
    if [ $# -eq 3 ]; then
      [ -e "$STUB/existing" ] && exit 0
      echo "Error from server (NotFound): jobs.batch \"$3\" not found" >&2
      exit 1
    fi
    case "$*" in
      *"-o jsonpath={range .status.conditions[?(@.status==\"True\")]}{.type}{\" \"}{end}") ;;
      *) echo "UNEXPECTED $*" >>"$STUB/calls"; exit 99 ;;
    esac
    n=$(($(cat "$STUB/looks") + 1))
    echo "$n" >"$STUB/looks"
    total=$(wc -l <"$STUB/conditions")
    [ "$n" -le "$total" ] || n=$total
    answer=$(sed -n "${n}p" "$STUB/conditions")
    [ "$answer" = ERROR ] && { echo "The connection to the server was refused" >&2; exit 1; }
    printf '%s' "$answer"
    ;;
  "delete job") exit 0 ;;
  "create -f")
    cat >"$STUB/created.yaml"
    [ -e "$STUB/create_fails" ] && { echo "Error from server (Forbidden)" >&2; exit 1; }
    echo "job.batch/created"
    ;;
  "get pods")
    case "$*" in
      *"--field-selector=status.phase=Failed -o jsonpath={range .items[*]}{.status.containerStatuses[?(@.name==\"shard\")].state.terminated.exitCode}{\"\n\"}{end}")
        cat "$STUB/failed_codes" ;;
      *"--field-selector=status.phase=Succeeded -o name")
        for pod in $(ls "$STUB/logs"); do echo "pod/$pod"; done ;;
      *) echo "UNEXPECTED $*" >>"$STUB/calls"; exit 99 ;;
    esac
    ;;
  "logs pod/"*) cat "$STUB/logs/${2#pod/}" ;;
  *) echo "UNEXPECTED $*" >>"$STUB/calls"; exit 99 ;;
esac
"#;

const FAKE_BOUGHTBY: &str = r#"#!/bin/sh
printf '%s\n' "$@" >"$STUB/commit-args"
exit "$(cat "$STUB/commit_status")"
"#;

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs one night as the CronJob's pod would: the init container's
/// `driver.sh` (taken from the ConfigMap) with the CronJob's env, then,
/// only if it succeeded, the commit container's command.
fn run_night(night: &Night) -> Outcome {
    let docs = manifests();
    let pod = cronjob_pod(&docs);
    let driver = named(&pod["initContainers"], "driver");
    let commit = named(&pod["containers"], "commit");

    let dir = TempDir::new().unwrap();
    let stub = dir.path().join("stub");
    let bin = dir.path().join("bin");
    fs::create_dir_all(stub.join("logs")).unwrap();
    fs::create_dir_all(&bin).unwrap();
    write_executable(&bin.join("kubectl"), FAKE_KUBECTL);
    write_executable(&bin.join("boughtby"), FAKE_BOUGHTBY);
    fs::write(stub.join("looks"), "0\n").unwrap();
    fs::write(stub.join("calls"), "").unwrap();
    let mut conditions = night.conditions.join("\n");
    conditions.push('\n');
    fs::write(stub.join("conditions"), conditions).unwrap();
    let mut codes = night.failed_codes.join("\n");
    codes.push('\n');
    fs::write(stub.join("failed_codes"), codes).unwrap();
    for (pod, log) in &night.logs {
        fs::write(stub.join("logs").join(pod), log).unwrap();
    }
    if night.existing {
        fs::write(stub.join("existing"), "").unwrap();
    }
    if night.create_fails {
        fs::write(stub.join("create_fails"), "").unwrap();
    }
    fs::write(stub.join("commit_status"), night.commit_status.to_string()).unwrap();

    // The driver's files where its ConfigMap is mounted, here in `dir`.
    let script = dir.path().join("driver.sh");
    fs::write(&script, driver_file(&docs, "driver.sh")).unwrap();
    let template = dir.path().join("shards-job.yaml");
    fs::write(&template, driver_file(&docs, "shards-job.yaml")).unwrap();
    let run_id_file = dir.path().join("run-id");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let mut command = Command::new("sh");
    command
        .arg(&script)
        .env_clear()
        .env("PATH", &path)
        .env("STUB", &stub);
    for var in array_of(&driver["env"], "driver env") {
        let name = str_of(&var["name"], "env name");
        match name {
            "NAMESPACE" => {
                assert_eq!(
                    var["valueFrom"]["fieldRef"]["fieldPath"],
                    "metadata.namespace"
                );
                command.env(name, "boughtby");
            }
            "JOB_TEMPLATE" => {
                command.env(name, &template);
            }
            "RUN_ID_FILE" => {
                command.env(name, &run_id_file);
            }
            "SHARDS" if night.shards.is_some() => {
                command.env(name, night.shards.as_deref().unwrap());
            }
            _ => {
                command.env(name, str_of(&var["value"], name));
            }
        }
    }
    if let Some(as_of) = &night.as_of {
        command.env("AS_OF", as_of);
    }
    command.env("POLL_SECONDS", "0");
    let out = command.output().expect("cannot run sh");
    let driver_status = out.status.code().expect("the driver was killed");

    let calls: Vec<String> = fs::read_to_string(stub.join("calls"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        !calls.iter().any(|c| c.starts_with("UNEXPECTED")),
        "the driver called kubectl in a way the fake does not know: {calls:#?}"
    );
    let created = fs::read_to_string(stub.join("created.yaml"))
        .ok()
        .map(|text| {
            let mut docs = documents(&text, "the created Job");
            assert_eq!(docs.len(), 1, "{text}");
            docs.remove(0)
        });
    let run_id_text = fs::read_to_string(&run_id_file).ok();

    // The pod's main container runs only once the init container succeeded
    // (restartPolicy Never: a failed init container fails the pod).
    let (commit_args, commit_status) = if driver_status == 0 {
        let script = container_script(&commit);
        assert_eq!(script[..2], ["/bin/sh", "-c"], "{script:?}");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script[2]])
            .env_clear()
            .env("PATH", &path)
            .env("STUB", &stub);
        for var in array_of(&commit["env"], "commit env") {
            let name = str_of(&var["name"], "env name");
            if name == "RUN_ID_FILE" {
                command.env(name, &run_id_file);
            } else if let Some(value) = var["value"].as_str() {
                command.env(name, value);
            }
        }
        let out = command.output().unwrap();
        let args = fs::read_to_string(stub.join("commit-args"))
            .ok()
            .map(|t| t.lines().map(str::to_string).collect());
        (args, out.status.code())
    } else {
        (None, None)
    };

    Outcome {
        driver_status,
        driver_stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        calls,
        created,
        run_id_file: run_id_text,
        commit: commit_args,
        commit_status,
    }
}

fn commit_args(run_id: &str) -> Vec<String> {
    ["commit", "--config", INSTALLED_JOB, "--run-id", run_id]
        .map(str::to_string)
        .to_vec()
}

/// The CronJob's SHARDS.
fn cronjob_shards(docs: &[(String, Value)]) -> u32 {
    let driver = named(&cronjob_pod(docs)["initContainers"], "driver");
    env_value(&driver, "SHARDS").parse().unwrap()
}

// ---------------------------------------------------------------------------
// The manifests
// ---------------------------------------------------------------------------

#[test]
fn every_manifest_parses_and_lives_in_the_namespace() {
    let docs = manifests();
    let kinds: BTreeSet<(String, String)> = docs
        .iter()
        .map(|(_, d)| {
            (
                str_of(&d["kind"], "kind").to_string(),
                str_of(&d["metadata"]["name"], "metadata.name").to_string(),
            )
        })
        .collect();
    for (kind, name) in [
        ("Namespace", "boughtby"),
        ("ServiceAccount", "boughtby-driver"),
        ("Role", "boughtby-driver"),
        ("RoleBinding", "boughtby-driver"),
        ("ConfigMap", "boughtby-store"),
        ("ConfigMap", "boughtby-job"),
        ("ConfigMap", "boughtby-driver"),
        ("CronJob", "boughtby-nightly"),
    ] {
        assert!(
            kinds.contains(&(kind.to_string(), name.to_string())),
            "{kind} {name} missing from jobs/k8s/: {kinds:?}"
        );
    }
    assert_eq!(
        kinds.len(),
        docs.len(),
        "an object defined twice: {kinds:?}"
    );
    for (file, doc) in &docs {
        assert!(doc["apiVersion"].is_string(), "{file}: no apiVersion");
        if doc["kind"] != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"], "boughtby",
                "{file}: {}",
                doc["kind"]
            );
        }
    }
    // The embedded template is a manifest too (as the driver fills it in).
    let template = driver_file(&docs, "shards-job.yaml");
    let filled = template
        .replace("__NAME__", "boughtby-shards-20261124")
        .replace("__AS_OF__", NIGHT)
        .replace("__SHARDS__", "8")
        .replace("__IMAGE__", "registry.example.com/boughtby:0.1.0");
    assert!(
        !filled.contains("__"),
        "a placeholder the driver does not fill"
    );
    let job = documents(&filled, "shards-job.yaml");
    assert_eq!(job.len(), 1);
    assert_eq!(job[0]["kind"], "Job");
}

/// Every value under `v` with the key `key`, anywhere.
fn find_key<'a>(v: &'a Value, key: &str, found: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == key {
                    found.push(child);
                }
                find_key(child, key, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| find_key(c, key, found)),
        _ => {}
    }
}

/// The pods that run boughtby: the shard pod template (as the driver
/// creates it) and the CronJob's commit container, with their pod specs.
fn boughtby_containers() -> Vec<(String, Value, Value)> {
    let docs = manifests();
    let pod = cronjob_pod(&docs);
    let night = run_night(&Night::succeeding(cronjob_shards(&docs)));
    let created = night.created.expect("no Job created");
    let shard_pod = created["spec"]["template"]["spec"].clone();
    vec![
        (
            "the shard pod".to_string(),
            named(&shard_pod["containers"], "shard"),
            shard_pod,
        ),
        (
            "the commit container".to_string(),
            named(&pod["containers"], "commit"),
            pod,
        ),
    ]
}

#[test]
fn no_volume_is_shared_and_the_bucket_credentials_come_from_a_secret() {
    let docs = manifests();
    for (file, doc) in &docs {
        assert_ne!(
            doc["kind"], "Secret",
            "{file}: a Secret's keys in the repository"
        );
        assert_ne!(
            doc["kind"], "PersistentVolumeClaim",
            "{file}: a shared volume"
        );
        for key in ["persistentVolumeClaim", "nfs", "hostPath", "csi"] {
            let mut found = Vec::new();
            find_key(doc, key, &mut found);
            assert!(found.is_empty(), "{file}: a {key} volume");
        }
    }
    let store = object(&docs, "ConfigMap", "boughtby-store");
    let store_keys: Vec<&String> = store["data"].as_object().unwrap().keys().collect();
    assert!(!store_keys.is_empty());
    for key in &store_keys {
        assert!(key.starts_with("AWS_"), "boughtby-store holds {key}");
        assert!(
            !["SECRET", "KEY_ID", "TOKEN", "PASSWORD"]
                .iter()
                .any(|word| key.contains(word)),
            "boughtby-store is not secret: {key} belongs in the Secret"
        );
    }

    for (what, container, pod) in boughtby_containers() {
        // The store's settings, and the two credentials by reference.
        let from: Vec<&Value> = array_of(&container["envFrom"], what.as_str())
            .iter()
            .map(|e| &e["configMapRef"]["name"])
            .collect();
        assert_eq!(from, [&Value::from("boughtby-store")], "{what}");
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let var = named(&container["env"], name);
            assert!(
                var.get("value").is_none(),
                "{what}: {name} written in the manifest"
            );
            let secret = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(secret["name"], "boughtby-s3", "{what}: {name}");
            assert_eq!(secret["key"], name, "{what}: {name}");
        }
        for var in array_of(&container["env"], "env") {
            let name = str_of(&var["name"], "env name");
            if ["SECRET", "KEY", "TOKEN", "PASSWORD"]
                .iter()
                .any(|w| name.contains(w))
            {
                assert!(
                    var["value"].is_null(),
                    "{what}: {name} written in the manifest"
                );
            }
        }
        // The job file from its ConfigMap, and scratch space for what the
        // S3 client copies (TMPDIR) on an emptyDir, not a volume.
        let mounts = &container["volumeMounts"];
        let mut job_mount = None;
        let mut tmp_mount = None;
        let tmpdir = env_value(&container, "TMPDIR");
        for mount in array_of(mounts, "volumeMounts") {
            let volume = named(&pod["volumes"], str_of(&mount["name"], "mount name"));
            let at = str_of(&mount["mountPath"], "mountPath");
            if Path::new(INSTALLED_JOB).parent() == Some(Path::new(at)) {
                job_mount = Some(volume["configMap"]["name"].clone());
            }
            if at == tmpdir {
                tmp_mount = Some(volume["emptyDir"].clone());
            }
        }
        assert_eq!(job_mount, Some(Value::from("boughtby-job")), "{what}");
        assert!(
            tmp_mount.as_ref().is_some_and(Value::is_object),
            "{what}: TMPDIR {tmpdir} not on an emptyDir: {tmp_mount:?}"
        );
    }
}

#[test]
fn the_job_configmap_is_the_s3_job_and_the_one_machine_night() {
    let docs = manifests();
    let config = object(&docs, "ConfigMap", "boughtby-job");
    let installed = Path::new(INSTALLED_JOB)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let s3_job = repo().join("jobs/nightly-s3.toml");
    assert!(
        config["data"][installed] == fs::read_to_string(&s3_job).unwrap(),
        "the ConfigMap boughtby-job (jobs/k8s/30-job-config.yaml) must hold jobs/nightly-s3.toml as it is"
    );

    // Every input and the output on the bucket, as written in the file.
    let table: toml::Table = fs::read_to_string(&s3_job).unwrap().parse().unwrap();
    let inputs = table["inputs"].as_table().unwrap();
    for table in [
        "follows",
        "purchases",
        "products",
        "users",
        "blocks",
        "impressions",
    ] {
        let url = inputs[table].as_str().unwrap();
        assert!(url.starts_with("s3://"), "inputs.{table} = {url}");
    }
    let output = table["run"]["output"].as_str().unwrap();
    assert!(output.starts_with("s3://"), "run.output = {output}");

    // The same night as jobs/nightly.toml: every setting but the paths,
    // so the same run id.
    let local_job = repo().join("jobs/nightly.toml");
    let mut local: toml::Table = fs::read_to_string(&local_job).unwrap().parse().unwrap();
    let mut remote = table.clone();
    for t in [&mut local, &mut remote] {
        t.remove("inputs");
        t["run"].as_table_mut().unwrap().remove("output");
    }
    assert_eq!(
        remote, local,
        "jobs/nightly-s3.toml and jobs/nightly.toml differ beyond paths"
    );
    let s3 = Job::load(&s3_job, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    let one_machine = Job::load(&local_job, &Overrides::default()).unwrap();
    assert_eq!(s3.run_id(), one_machine.run_id());
    // Loaded, the URLs stay URLs (not paths relative to the job file).
    assert_eq!(s3.output, Path::new(output));
    assert_eq!(
        s3.inputs.follows,
        Path::new(inputs["follows"].as_str().unwrap())
    );
    assert!(!s3.as_of_explicit, "the driver passes --as-of");
}

#[test]
fn the_shard_job_runs_every_index_once_and_retries_only_what_a_retry_can_fix() {
    let docs = manifests();
    let shards = cronjob_shards(&docs);
    let night = run_night(&Night::succeeding(shards));
    let job = night.created.expect("no Job created");
    let spec = &job["spec"];

    // N indexes, all at once, pod I being shard I of N.
    assert_eq!(job["kind"], "Job");
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], shards);
    assert_eq!(spec["parallelism"], shards);
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["restartPolicy"], "Never",
        "needed for per-index retries"
    );
    let containers = array_of(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let shard = named(&pod["containers"], "shard");
    assert_eq!(env_value(&shard, "SHARDS"), shards.to_string());
    assert_eq!(env_value(&shard, "AS_OF"), NIGHT);
    let script = container_script(&shard);
    assert_eq!(script[..2], ["/bin/sh", "-c"]);
    let line = script[2].trim();
    assert!(line.starts_with("exec boughtby run "), "{line}");
    for arg in [
        format!("--config {INSTALLED_JOB}"),
        "--as-of \"$AS_OF\"".to_string(),
        "--shard \"$JOB_COMPLETION_INDEX/$SHARDS\"".to_string(),
    ] {
        assert!(line.contains(&arg), "{line} lacks {arg}");
    }
    // The shards' image is the commit's.
    let commit = named(&cronjob_pod(&docs)["containers"], "commit");
    assert_eq!(shard["image"], commit["image"]);
    let driver = named(&cronjob_pod(&docs)["initContainers"], "driver");
    assert_eq!(shard["image"], env_value(&driver, "IMAGE"));

    // Retries per index; the first index out of them fails the Job (the
    // commit needs every part).
    assert!(spec["backoffLimitPerIndex"].as_i64().unwrap() >= 1);
    assert_eq!(spec["maxFailedIndexes"], 0);
    assert!(spec["activeDeadlineSeconds"].as_i64().unwrap() > 0);
    // Exit 1 (bad input or config) and 3 fail without a retry; 2 and a
    // crash are retried; an eviction costs no retry.
    for code in [1, 3] {
        let action = policy_action(spec, "shard", code, false);
        assert!(
            matches!(action.as_deref(), Some("FailJob" | "FailIndex")),
            "exit {code}: {action:?}"
        );
    }
    for code in [2, 101, 137] {
        assert_eq!(
            policy_action(spec, "shard", code, false),
            None,
            "exit {code}"
        );
    }
    assert_eq!(
        policy_action(spec, "shard", 137, true).as_deref(),
        Some("Ignore")
    );
}

#[test]
fn the_cronjob_commits_after_the_driver_and_stops_on_1_and_3() {
    let docs = manifests();
    let cronjob = object(&docs, "CronJob", "boughtby-nightly");
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    let job = &cronjob["spec"]["jobTemplate"]["spec"];
    let pod = cronjob_pod(&docs);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(array_of(&pod["initContainers"], "initContainers").len(), 1);
    assert_eq!(array_of(&pod["containers"], "containers").len(), 1);

    // The driver runs the ConfigMap's script, and finds the template where
    // the ConfigMap is mounted.
    let driver = named(&pod["initContainers"], "driver");
    let command = container_script(&driver);
    assert_eq!(command.len(), 2, "{command:?}");
    let mount_of = |container: &Value, volume: &str| -> String {
        let mount = named(&container["volumeMounts"], volume);
        str_of(&mount["mountPath"], "mountPath").to_string()
    };
    let driver_dir = mount_of(&driver, "driver");
    assert_eq!(
        named(&pod["volumes"], "driver")["configMap"]["name"],
        "boughtby-driver"
    );
    assert_eq!(command[1], format!("{driver_dir}/driver.sh"));
    assert_eq!(
        env_value(&driver, "JOB_TEMPLATE"),
        format!("{driver_dir}/shards-job.yaml")
    );
    // The run id goes from the driver to the commit on a shared emptyDir.
    let commit = named(&pod["containers"], "commit");
    let file = env_value(&driver, "RUN_ID_FILE");
    assert_eq!(env_value(&commit, "RUN_ID_FILE"), file);
    let folder = Path::new(&file)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let handoff: Vec<&Value> = array_of(&pod["volumes"], "volumes")
        .iter()
        .filter(|v| v["emptyDir"].is_object())
        .filter(|v| {
            let name = str_of(&v["name"], "volume name");
            [&driver, &commit].iter().all(|c| {
                array_of(&c["volumeMounts"], "volumeMounts")
                    .iter()
                    .any(|m| m["name"] == name && m["mountPath"] == folder.as_str())
            })
        })
        .collect();
    assert_eq!(
        handoff.len(),
        1,
        "no emptyDir at {folder} in both containers"
    );

    // The driver's pod may do what the driver asks of the API server.
    let night = run_night(&Night {
        existing: true,
        ..Night::succeeding(cronjob_shards(&docs))
    });
    assert_eq!(night.driver_status, 0, "{}", night.driver_stderr);
    assert_eq!(pod["serviceAccountName"], "boughtby-driver");
    let role = object(&docs, "Role", "boughtby-driver");
    let binding = object(&docs, "RoleBinding", "boughtby-driver");
    assert_eq!(binding["roleRef"]["name"], "boughtby-driver");
    assert_eq!(binding["subjects"][0]["name"], "boughtby-driver");
    let allowed = |resource: &str, verb: &str| {
        array_of(&role["rules"], "rules").iter().any(|rule| {
            array_of(&rule["resources"], "resources").contains(&Value::from(resource))
                && array_of(&rule["verbs"], "verbs").contains(&Value::from(verb))
        })
    };
    for call in &night.calls {
        let words: Vec<&str> = call.split(' ').skip(2).collect();
        let (resource, verb) = match words[..2] {
            ["get", "job"] => ("jobs", "get"),
            ["delete", "job"] => ("jobs", "delete"),
            ["create", "-f"] => ("jobs", "create"),
            ["get", "pods"] => ("pods", "list"),
            ["logs", _] => ("pods/log", "get"),
            _ => panic!("a call the test does not know: {call}"),
        };
        assert!(
            allowed(resource, verb),
            "the Role does not allow {verb} {resource}: {call}"
        );
    }

    // The pod's exit status is boughtby's: 1 and 3 need a person, 2 is
    // retried (the whole night) while backoffLimit lasts.
    assert!(job["backoffLimit"].as_i64().unwrap() >= 1);
    for container in ["driver", "commit"] {
        for code in [1, 3] {
            assert_eq!(
                policy_action(job, container, code, false).as_deref(),
                Some("FailJob"),
                "{container} exit {code}"
            );
        }
        assert_eq!(
            policy_action(job, container, 2, false),
            None,
            "{container} exit 2"
        );
    }
}

// ---------------------------------------------------------------------------
// The driver's logic, night by night
// ---------------------------------------------------------------------------

#[test]
fn a_night_whose_shards_all_succeed_is_committed_with_their_run_id() {
    let shards = cronjob_shards(&manifests());
    let night = run_night(&Night::succeeding(shards));
    assert_eq!(night.driver_status, 0, "{}", night.driver_stderr);
    assert_eq!(
        night.run_id_file.as_deref(),
        Some(format!("{RUN_ID}\n").as_str())
    );
    assert_eq!(night.commit, Some(commit_args(RUN_ID)));
    assert_eq!(night.commit_status, Some(0));
    let name = "boughtby-shards-20261124";
    let created = night.created.unwrap();
    assert_eq!(created["metadata"]["name"], name);
    assert!(
        !created.to_string().contains("__"),
        "a placeholder left: {created}"
    );
    // No earlier attempt: nothing deleted; the Job looked at until Complete.
    assert!(
        !night.calls.iter().any(|c| c.contains("delete")),
        "{:#?}",
        night.calls
    );
    let looks = night
        .calls
        .iter()
        .filter(|c| c.contains(&format!("get job {name} -o jsonpath")))
        .count();
    assert_eq!(looks, 3, "{:#?}", night.calls);
    // Every succeeded pod's log read.
    let logs = night
        .calls
        .iter()
        .filter(|c| c.contains(" logs pod/"))
        .count();
    assert_eq!(logs, shards as usize);

    // The commit's exit status is the container's (exec): a refusal (3)
    // stays a 3 for the CronJob's policy.
    let refused = run_night(&Night {
        commit_status: 3,
        ..Night::succeeding(shards)
    });
    assert_eq!(refused.commit, Some(commit_args(RUN_ID)));
    assert_eq!(refused.commit_status, Some(3));
}

#[test]
fn a_rerun_deletes_the_earlier_attempt_before_starting_again() {
    let night = run_night(&Night {
        existing: true,
        ..Night::succeeding(4)
    });
    assert_eq!(night.driver_status, 0, "{}", night.driver_stderr);
    let position = |what: &str| {
        night
            .calls
            .iter()
            .position(|c| c.contains(what))
            .unwrap_or_else(|| panic!("no {what}: {:#?}", night.calls))
    };
    let delete = position("delete job boughtby-shards-20261124");
    assert!(night.calls[delete].contains("--wait=true"));
    assert!(delete < position("create -f -"));
    assert_eq!(night.commit, Some(commit_args(RUN_ID)));
}

#[test]
fn a_shard_with_bad_input_fails_the_night_with_1_and_nothing_is_committed() {
    let night = run_night(&Night::failing(&["2", "1", "143"]));
    assert_eq!(night.driver_status, 1, "{}", night.driver_stderr);
    assert!(
        night.driver_stderr.contains("2 1 143"),
        "{}",
        night.driver_stderr
    );
    assert_eq!(night.commit, None);
    assert_eq!(night.run_id_file, None);
    // Not one log read: the Job failed.
    assert!(!night.calls.iter().any(|c| c.contains(" logs ")));

    let refused = run_night(&Night::failing(&["3"]));
    assert_eq!(refused.driver_status, 3, "{}", refused.driver_stderr);
    assert_eq!(refused.commit, None);
}

#[test]
fn shards_out_of_retries_or_time_fail_the_night_with_2() {
    for codes in [&["2", "2", "2"][..], &["137"][..], &[""][..]] {
        let night = run_night(&Night::failing(codes));
        assert_eq!(night.driver_status, 2, "{codes:?}: {}", night.driver_stderr);
        assert_eq!(night.commit, None, "{codes:?}");
        assert_eq!(night.run_id_file, None, "{codes:?}");
    }
}

#[test]
fn shards_that_do_not_agree_on_one_run_are_not_committed() {
    let mut disagreeing = Night::succeeding(3);
    disagreeing.logs[2].1 = staged(2, 3, "20261124T000000Z-0badc0de");
    let mut silent = Night::succeeding(3);
    for (_, log) in &mut silent.logs {
        *log = "boughtby: error: nothing\n".to_string();
    }
    for night in [disagreeing, silent] {
        let outcome = run_night(&night);
        assert_eq!(outcome.driver_status, 2, "{}", outcome.driver_stderr);
        assert!(outcome.driver_stderr.contains("did not stage one run"));
        assert_eq!(outcome.commit, None);
    }
}

#[test]
fn the_driver_waits_out_a_few_missed_looks_but_not_an_api_server_gone() {
    let blip = run_night(&Night {
        conditions: vec!["", "ERROR", "ERROR", "SuccessCriteriaMet Complete "],
        ..Night::succeeding(2)
    });
    assert_eq!(blip.driver_status, 0, "{}", blip.driver_stderr);
    assert_eq!(blip.commit, Some(commit_args(RUN_ID)));

    let gone = run_night(&Night {
        conditions: vec!["", "ERROR"],
        ..Night::succeeding(2)
    });
    assert_eq!(gone.driver_status, 2, "{}", gone.driver_stderr);
    assert!(gone.driver_stderr.contains("cannot read job"));
    assert_eq!(gone.commit, None);
}

#[test]
fn a_bad_night_or_shard_count_or_a_refused_create_starts_nothing() {
    for (night, status) in [
        (
            Night {
                as_of: Some("24/11/2026".into()),
                ..Night::succeeding(2)
            },
            1,
        ),
        (
            Night {
                shards: Some("0".into()),
                ..Night::succeeding(2)
            },
            1,
        ),
        (
            Night {
                shards: Some("8x".into()),
                ..Night::succeeding(2)
            },
            1,
        ),
        (
            Night {
                create_fails: true,
                ..Night::succeeding(2)
            },
            2,
        ),
    ] {
        let outcome = run_night(&night);
        assert_eq!(
            outcome.driver_status, status,
            "{night:?}: {}",
            outcome.driver_stderr
        );
        assert_eq!(outcome.commit, None, "{night:?}");
        if !night.create_fails {
            assert!(outcome.calls.is_empty(), "{night:?}: {:#?}", outcome.calls);
        }
    }
}

#[test]
fn without_as_of_the_driver_runs_today_utc() {
    let before = today();
    let night = run_night(&Night {
        as_of: None,
        ..Night::succeeding(2)
    });
    let after = today();
    assert_eq!(night.driver_status, 0, "{}", night.driver_stderr);
    let job = night.created.unwrap();
    let as_of = env_value(
        &named(&job["spec"]["template"]["spec"]["containers"], "shard"),
        "AS_OF",
    );
    assert!(
        as_of == before || as_of == after,
        "{as_of}, today is {before}"
    );
    assert_eq!(
        job["metadata"]["name"],
        format!("boughtby-shards-{}", as_of.replace('-', ""))
    );
}

/// Today's date (UTC), from the clock.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

// ---------------------------------------------------------------------------
// The shipped commands on a real S3 API
// ---------------------------------------------------------------------------

/// A pod's environment as the manifests give it: the container's literal
/// values, the two credentials from the Secret (`secret`), and the
/// `boughtby-store` ConfigMap (with `store_extra` added, as an operator
/// would for a store of their own).
fn pod_env(
    container: &Value,
    docs: &[(String, Value)],
    secret: &[(&str, &str)],
    store_extra: &[(&str, String)],
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for from in array_of(&container["envFrom"], "envFrom") {
        let name = str_of(&from["configMapRef"]["name"], "configMapRef");
        let map = object(docs, "ConfigMap", name);
        for (key, value) in map["data"].as_object().unwrap() {
            env.push((key.clone(), str_of(value, key).to_string()));
        }
        if name == "boughtby-store" {
            env.extend(store_extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        }
    }
    for var in array_of(&container["env"], "env") {
        let name = str_of(&var["name"], "env name").to_string();
        if let Some(value) = var["value"].as_str() {
            env.push((name, value.to_string()));
        } else if var["valueFrom"]["secretKeyRef"]["name"] == "boughtby-s3" {
            let key = str_of(&var["valueFrom"]["secretKeyRef"]["key"], "key");
            let (_, value) = secret
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap_or_else(|| panic!("the Secret has no {key}"));
            env.push((name, value.to_string()));
        }
    }
    env
}

/// Runs a container's `sh -c` script with the real binary as `boughtby`,
/// the installed job file at `job`, and nothing of the test's environment
/// but PATH.
fn run_container(
    container: &Value,
    env: &[(String, String)],
    job: &Path,
    bin_dir: &Path,
) -> std::process::Output {
    let script = container_script(container);
    assert_eq!(script[..2], ["/bin/sh", "-c"], "{script:?}");
    let text = script[2].replace(INSTALLED_JOB, job.to_str().unwrap());
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    Command::new("sh")
        .args(["-c", &text])
        .env_clear()
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// A night on moto's S3 server with everything the manifests ship: the
/// job file of the ConfigMap (its bucket swapped for the test's), the Job
/// the driver creates (three shards of partitioned follows), each pod's
/// command and environment, the driver reading the run id from the real
/// shards' output, and the commit container's command. LATEST names the
/// run, and its rows are those of the one-machine night of
/// `jobs/nightly.toml` on the same inputs.
#[test]
fn the_shipped_night_publishes_on_s3() {
    let Some(bucket) = crate::objstore::Bucket::new() else {
        return;
    };
    let docs = manifests();
    let dir = TempDir::new().unwrap();
    let world = dir.path().join("world");
    let night = "2026-11-20";
    crate::util::run_ok(&[
        "generate",
        "--output",
        world.to_str().unwrap(),
        "--seed",
        "11",
        "--users",
        "500",
        "--products",
        "60",
        "--shards",
        "3",
    ]);
    // The exports as the job names them: a prefix of parts per table.
    for table in crate::util::TABLES {
        let folder = world.join(table);
        if folder.is_dir() {
            bucket.upload_dir(&folder, &format!("inputs/{table}"));
        } else {
            let part = fs::read(world.join(format!("{table}.parquet"))).unwrap();
            bucket.put(&format!("inputs/{table}/part-00000.parquet"), part);
        }
    }
    let shipped = str_of(
        &object(&docs, "ConfigMap", "boughtby-job")["data"]["nightly.toml"],
        "job",
    )
    .to_string();
    assert!(shipped.contains("s3://boughtby-data/"));
    let job = dir.path().join("nightly.toml");
    fs::write(
        &job,
        shipped.replace("s3://boughtby-data/", &bucket.url("")),
    )
    .unwrap();

    // The one-machine night: jobs/nightly.toml on the local files.
    let mut local: toml::Table = fs::read_to_string(repo().join("jobs/nightly.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for (table, path) in local["inputs"].as_table_mut().unwrap().iter_mut() {
        let folder = world.join(table);
        let file = if folder.is_dir() {
            folder
        } else {
            world.join(format!("{table}.parquet"))
        };
        *path = toml::Value::String(file.display().to_string());
    }
    let local_out = dir.path().join("out");
    local["run"].as_table_mut().unwrap().insert(
        "output".into(),
        toml::Value::String(local_out.display().to_string()),
    );
    let local_job = dir.path().join("local.toml");
    fs::write(&local_job, toml::to_string(&local).unwrap()).unwrap();
    crate::util::run_ok(&[
        "run",
        "--config",
        local_job.to_str().unwrap(),
        "--as-of",
        night,
    ]);
    let one_machine = crate::util::latest(&local_out).unwrap();

    // The store's settings as an operator sets them for this store.
    let secret = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let store = [
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", bucket.port),
        ),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ];
    let bin_dir = dir.path().join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_boughtby"), bin_dir.join("boughtby")).unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();

    // The driver creates the Job; its pods run, index by index.
    let mut night_of = Night::succeeding(3);
    night_of.as_of = Some(night.to_string());
    night_of.shards = Some("3".to_string());
    let created = run_night(&night_of).created.expect("no Job created");
    assert_eq!(created["spec"]["completions"], 3);
    let shard = named(&created["spec"]["template"]["spec"]["containers"], "shard");
    let mut logs = Vec::new();
    for index in 0..3 {
        let mut env = pod_env(&shard, &docs, &secret, &store);
        env.retain(|(k, _)| k != "TMPDIR");
        env.push(("TMPDIR".into(), scratch.display().to_string()));
        env.push(("JOB_COMPLETION_INDEX".into(), index.to_string()));
        let out = run_container(&shard, &env, &job, &bin_dir);
        assert!(
            out.status.success(),
            "shard {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push((
            format!("boughtby-shards-20261120-{index}-abcde"),
            String::from_utf8(out.stdout).unwrap(),
        ));
    }
    assert_eq!(bucket.latest("runs"), None, "the shards publish nothing");

    // The driver reads the run id from their output; the commit follows.
    let outcome = run_night(&Night { logs, ..night_of });
    assert_eq!(outcome.driver_status, 0, "{}", outcome.driver_stderr);
    assert_eq!(outcome.commit, Some(commit_args(&one_machine)));
    let pod = cronjob_pod(&docs);
    let commit = named(&pod["containers"], "commit");
    let mut env = pod_env(&commit, &docs, &secret, &store);
    for (k, v) in env.iter_mut() {
        if k == "TMPDIR" {
            *v = scratch.display().to_string();
        }
        if k == "RUN_ID_FILE" {
            let file = dir.path().join("run-id");
            fs::write(&file, outcome.run_id_file.as_deref().unwrap()).unwrap();
            *v = file.display().to_string();
        }
    }
    let out = run_container(&commit, &env, &job, &bin_dir);
    assert!(
        out.status.success(),
        "commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(bucket.latest("runs").as_deref(), Some(one_machine.as_str()));
    let mut rows = bucket.whole_rows("runs", &one_machine);
    let mut want = crate::util::read_run(&local_out.join(&one_machine));
    rows.sort_by_key(|r| (r.user_id, r.slot));
    want.sort_by_key(|r| (r.user_id, r.slot));
    assert!(!want.is_empty());
    assert!(
        rows == want,
        "the sharded night on S3 differs from the one-machine night"
    );
}
