//! The store test suite. Every test runs on SQLite and, when `KILN_TEST_POSTGRES_URL` names a
//! server (the test script starts one), on PostgreSQL in a fresh database of its own.

use std::sync::atomic::{AtomicU32, Ordering};

use kiln_store::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);

struct Backend {
    name: &'static str,
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kiln.db").display());
    let mut out = vec![Backend { name: "sqlite", store: Store::connect(&url).await.unwrap(), _dir: Some(dir) }];
    match std::env::var("KILN_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let db = format!("kiln_t{}_{}_{}", std::process::id(), now_ms(), COUNTER.fetch_add(1, Ordering::SeqCst));
            sqlx::any::install_default_drivers();
            let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await.unwrap();
            sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await.unwrap();
            let url = match base.rsplit_once('/') {
                Some((head, _)) => format!("{head}/{db}"),
                None => panic!("KILN_TEST_POSTGRES_URL must end with /DATABASE"),
            };
            out.push(Backend { name: "postgres", store: Store::connect(&url).await.unwrap(), _dir: None });
        }
        _ => assert!(
            std::env::var("KILN_REQUIRE_POSTGRES").is_err(),
            "KILN_REQUIRE_POSTGRES is set but KILN_TEST_POSTGRES_URL is not"
        ),
    }
    out
}

fn run_info(id: &str, experiment_id: i64, start: i64) -> RunInfo {
    RunInfo {
        run_id: id.into(),
        experiment_id,
        run_name: format!("name-{id}"),
        user_id: "u".into(),
        status: "RUNNING".into(),
        start_time: Some(start),
        end_time: None,
        artifact_uri: format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts"),
        lifecycle_stage: ACTIVE.into(),
    }
}

fn metric(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric { key: key.into(), value, timestamp, step, model_id: None, dataset_name: None, dataset_digest: None }
}

fn search(clauses: Vec<Clause>, order_by: Vec<OrderKey>) -> Search {
    Search { clauses, order_by, limit: 100, ..Default::default() }
}

fn clause(target: Target, op: Op, value: Value) -> Clause {
    Clause { target, op, value }
}

fn ids(page: &Page<Run>) -> Vec<String> {
    page.items.iter().map(|r| r.info.run_id.clone()).collect()
}

#[tokio::test]
async fn experiments_are_created_found_renamed_and_soft_deleted() {
    for b in backends().await {
        let s = &b.store;
        s.ensure_default_experiment("Default", "mlflow-artifacts:/0").await.unwrap();
        s.ensure_default_experiment("Default", "mlflow-artifacts:/0").await.unwrap();
        let id = s.create_experiment("exp", "mlflow-artifacts:/", &[Tag::new("team", "a")]).await.unwrap();
        assert_eq!(id, 1, "{}", b.name);
        let e = s.get_experiment(id).await.unwrap().unwrap();
        assert_eq!(e.artifact_location, "mlflow-artifacts:/1");
        assert_eq!(e.tags, vec![Tag::new("team", "a")]);
        assert!(matches!(s.create_experiment("exp", "x/", &[]).await, Err(StoreError::AlreadyExists(_))));
        s.rename_experiment(id, "renamed").await.unwrap();
        assert!(s.get_experiment_by_name("exp").await.unwrap().is_none());
        assert_eq!(s.get_experiment_by_name("renamed").await.unwrap().unwrap().experiment_id, id);
        s.create_run(&run_info("r1", id, 1), &[]).await.unwrap();
        s.set_experiment_lifecycle(id, true).await.unwrap();
        assert_eq!(s.get_run_info("r1").await.unwrap().unwrap().lifecycle_stage, DELETED, "{}", b.name);
        let active = s.search_experiments(&search(vec![], vec![])).await.unwrap();
        assert_eq!(active.items.len(), 1, "only Default stays active on {}", b.name);
        s.set_experiment_lifecycle(id, false).await.unwrap();
        assert_eq!(s.get_run_info("r1").await.unwrap().unwrap().lifecycle_stage, ACTIVE);
        // Filters: name LIKE is case-sensitive, ILIKE is not; tags; ids IN.
        let like =
            |p: &str, op| search(vec![clause(Target::Attribute("name".into()), op, Value::Str(p.into()))], vec![]);
        assert_eq!(s.search_experiments(&like("ren%", Op::Like)).await.unwrap().items.len(), 1);
        assert_eq!(s.search_experiments(&like("REN%", Op::Like)).await.unwrap().items.len(), 0, "{}", b.name);
        assert_eq!(s.search_experiments(&like("REN%", Op::ILike)).await.unwrap().items.len(), 1);
        let by_tag = search(vec![clause(Target::Tag("team".into()), Op::Eq, Value::Str("a".into()))], vec![]);
        assert_eq!(s.search_experiments(&by_tag).await.unwrap().items[0].experiment_id, id);
        assert!(s.delete_experiment_tag(id, "team").await.unwrap());
        assert!(!s.delete_experiment_tag(id, "team").await.unwrap());
    }
}

#[tokio::test]
async fn log_batch_keeps_params_immutable_and_metrics_latest() {
    for b in backends().await {
        let s = &b.store;
        let exp = s.create_experiment("e", "mlflow-artifacts:/", &[]).await.unwrap();
        s.create_run(&run_info("r", exp, 10), &[Tag::new("mlflow.runName", "first")]).await.unwrap();
        let batch = RunBatch {
            metrics: vec![metric("loss", 3.0, 0, 100), metric("loss", 2.0, 1, 90), metric("loss", 9.0, 0, 200)],
            params: vec![Tag::new("lr", "0.1")],
            tags: vec![Tag::new("t", "1"), Tag::new("t", "2")],
        };
        assert_eq!(s.log_batch("r", &batch).await.unwrap(), None);
        // Re-logging the same param is fine; a new value is a conflict and writes nothing.
        assert_eq!(
            s.log_batch("r", &RunBatch { params: vec![Tag::new("lr", "0.1")], ..Default::default() }).await.unwrap(),
            None
        );
        let conflict = RunBatch {
            params: vec![Tag::new("lr", "0.2")],
            metrics: vec![metric("other", 1.0, 0, 1)],
            ..Default::default()
        };
        let Some(BatchRefused::ParamChanged(c)) = s.log_batch("r", &conflict).await.unwrap() else {
            panic!("a changed param is refused on {}", b.name)
        };
        assert_eq!((c.old_value.as_str(), c.new_value.as_str()), ("0.1", "0.2"));
        let run = s.get_run("r").await.unwrap().unwrap();
        assert_eq!(run.metrics.len(), 1, "the conflicting batch wrote nothing on {}", b.name);
        // Latest = largest step, then timestamp: step 1 wins although its timestamp is older.
        assert_eq!((run.metrics[0].value, run.metrics[0].step), (2.0, 1), "{}", b.name);
        assert_eq!(run.tags.iter().find(|t| t.key == "t").unwrap().value, "2");
        // A deleted run takes nothing; a missing one is not found.
        s.create_run(&run_info("gone", exp, 1), &[]).await.unwrap();
        s.set_run_lifecycle("gone", true).await.unwrap();
        assert_eq!(
            s.log_batch("gone", &RunBatch { tags: vec![Tag::new("x", "1")], ..Default::default() }).await.unwrap(),
            Some(BatchRefused::RunNotActive("deleted".into()))
        );
        assert!(s.get_run("gone").await.unwrap().unwrap().tags.is_empty());
        assert!(matches!(s.log_batch("nope", &RunBatch::default()).await, Err(StoreError::NotFound(_))));
        // Identical points are stored once; NaN and infinities survive.
        s.log_batch("r", &RunBatch { metrics: vec![metric("loss", 2.0, 1, 90)], ..Default::default() }).await.unwrap();
        s.log_batch(
            "r",
            &RunBatch {
                metrics: vec![metric("odd", f64::NAN, 0, 1), metric("big", f64::INFINITY, 0, 1)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let history = s.metric_history("r", "loss", None, None).await.unwrap();
        let steps: Vec<(i64, i64)> = history.items.iter().map(|m| (m.step, m.timestamp)).collect();
        assert_eq!(steps, vec![(0, 100), (0, 200), (1, 90)], "{}", b.name);
        let run = s.get_run("r").await.unwrap().unwrap();
        assert!(run.metrics.iter().find(|m| m.key == "odd").unwrap().value.is_nan());
        assert_eq!(run.metrics.iter().find(|m| m.key == "big").unwrap().value, f64::MAX);
        // A runName tag renames the run.
        s.log_batch("r", &RunBatch { tags: vec![Tag::new("mlflow.runName", "second")], ..Default::default() })
            .await
            .unwrap();
        assert_eq!(s.get_run_info("r").await.unwrap().unwrap().run_name, "second");
        assert!(s.delete_run_tag("r", "t").await.unwrap());
        assert!(!s.delete_run_tag("r", "t").await.unwrap());
    }
}

/// Run reads cache a run's side rows by its data version (SQLite): every kind of change, made
/// after a read, shows in the next one, through search and get alike.
#[tokio::test]
async fn run_reads_show_every_change_made_after_an_earlier_read() {
    for b in backends().await {
        let s = &b.store;
        let exp = s.create_experiment("fresh", "mlflow-artifacts:/", &[]).await.unwrap();
        s.create_run(&run_info("r1", exp, 1000), &[Tag::new("t", "1")]).await.unwrap();
        s.create_run(&run_info("r2", exp, 1000), &[]).await.unwrap();
        let read = || async {
            let page = s.search_runs(&[exp], &Search { limit: 10, ..Default::default() }).await.unwrap();
            let run = page.items.into_iter().find(|r| r.info.run_id == "r1").unwrap();
            assert_eq!(Some(&run), s.get_run("r1").await.unwrap().as_ref(), "{}", b.name);
            run
        };
        let tag = |run: &Run, key: &str| run.tags.iter().find(|t| t.key == key).map(|t| t.value.clone());
        assert_eq!(tag(&read().await, "t").as_deref(), Some("1"));

        let batch = RunBatch {
            params: vec![Tag::new("p", "a")],
            tags: vec![Tag::new("t", "2")],
            metrics: vec![metric("m", 1.0, 0, 1)],
        };
        s.log_batch("r1", &batch).await.unwrap();
        let run = read().await;
        assert_eq!((tag(&run, "t").as_deref(), run.params.len(), run.metrics[0].value), (Some("2"), 1, 1.0));

        s.log_batch("r1", &RunBatch { metrics: vec![metric("m", 2.0, 1, 2)], ..Default::default() }).await.unwrap();
        assert_eq!(read().await.metrics[0].value, 2.0, "{}: the latest value", b.name);

        s.delete_run_tag("r1", "t").await.unwrap();
        assert_eq!(tag(&read().await, "t"), None, "{}", b.name);

        s.update_run("r1", None, None, Some("renamed")).await.unwrap();
        let run = read().await;
        assert_eq!((run.info.run_name.as_str(), tag(&run, "mlflow.runName").as_deref()), ("renamed", Some("renamed")));

        let dataset = Dataset {
            name: "d".into(),
            digest: "x".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        };
        s.log_inputs("r1", &[DatasetInput { dataset, tags: vec![] }], &["m-1".into()]).await.unwrap();
        let run = read().await;
        assert_eq!((run.dataset_inputs.len(), run.model_inputs.clone()), (1, vec!["m-1".to_string()]));
        s.log_outputs("r1", &[ModelOutput { model_id: "m-2".into(), step: 3 }]).await.unwrap();
        assert_eq!(read().await.model_outputs, vec![ModelOutput { model_id: "m-2".into(), step: 3 }]);

        s.set_run_lifecycle("r1", true).await.unwrap();
        assert_eq!(s.get_run("r1").await.unwrap().unwrap().info.lifecycle_stage, "deleted");
        // The other run was never touched and reads the same throughout.
        let r2 = s.get_run("r2").await.unwrap().unwrap();
        assert!(r2.params.is_empty() && r2.metrics.is_empty(), "{}", b.name);
    }
}

fn desc_m() -> OrderKey {
    OrderKey { target: Target::Metric("m".into()), ascending: false }
}

#[tokio::test]
async fn run_search_filters_orders_and_pages() {
    for b in backends().await {
        let s = &b.store;
        let exp = s.create_experiment("e", "mlflow-artifacts:/", &[]).await.unwrap();
        for i in 0..10i64 {
            let id = format!("run{i}");
            s.create_run(&run_info(&id, exp, 1000), &[]).await.unwrap();
            let mut batch = RunBatch {
                params: vec![Tag::new("p", if i % 2 == 0 { "Even" } else { "odd" })],
                tags: vec![Tag::new("k", format!("v{i}"))],
                ..Default::default()
            };
            if i < 8 {
                batch.metrics.push(metric("m", i as f64 / 10.0, 0, 1));
            }
            s.log_batch(&id, &batch).await.unwrap();
        }
        let m = |op, v| clause(Target::Metric("m".into()), op, Value::Number(v));
        let got = s.search_runs(&[exp], &search(vec![m(Op::Gt, 0.45)], vec![])).await.unwrap();
        assert_eq!(ids(&got), vec!["run5", "run6", "run7"], "{}", b.name);
        let p = |op, v: &str| clause(Target::Param("p".into()), op, Value::Str(v.into()));
        assert_eq!(s.search_runs(&[exp], &search(vec![p(Op::Like, "E%")], vec![])).await.unwrap().items.len(), 5);
        assert_eq!(
            s.search_runs(&[exp], &search(vec![p(Op::Like, "e%")], vec![])).await.unwrap().items.len(),
            0,
            "{}",
            b.name
        );
        assert_eq!(s.search_runs(&[exp], &search(vec![p(Op::ILike, "e%")], vec![])).await.unwrap().items.len(), 5);
        let missing = clause(Target::Tag("nope".into()), Op::IsNull, Value::None);
        assert_eq!(s.search_runs(&[exp], &search(vec![missing], vec![])).await.unwrap().items.len(), 10);
        let ne = clause(Target::Tag("nope".into()), Op::Ne, Value::Str("x".into()));
        assert_eq!(
            s.search_runs(&[exp], &search(vec![ne], vec![])).await.unwrap().items.len(),
            0,
            "!= excludes runs lacking the tag"
        );
        // Several comparisons at once, two on one metric, ordered by that metric: each run once.
        let k_in = clause(Target::Tag("k".into()), Op::In, Value::List(vec!["v2".into(), "v4".into(), "v5".into()]));
        let combined = search(vec![m(Op::Gt, 0.15), m(Op::Lt, 0.55), p(Op::Ne, "odd"), k_in], vec![desc_m()]);
        assert_eq!(ids(&s.search_runs(&[exp], &combined).await.unwrap()), vec!["run4", "run2"], "{}", b.name);
        let in_ids =
            clause(Target::Attribute("run_id".into()), Op::In, Value::List(vec!["run1".into(), "run3".into()]));
        assert_eq!(ids(&s.search_runs(&[exp], &search(vec![in_ids], vec![])).await.unwrap()), vec!["run1", "run3"]);
        // Order by metric descending: runs lacking it come last in either direction.
        let got = s.search_runs(&[exp], &search(vec![], vec![desc_m()])).await.unwrap();
        assert_eq!(&ids(&got)[..2], &["run7", "run6"]);
        assert_eq!(&ids(&got)[8..], &["run8", "run9"], "{}", b.name);
        // Pages of 3 in run_id order under equal start times.
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let page = s.search_runs(&[exp], &Search { limit: 3, offset, ..Default::default() }).await.unwrap();
            all.extend(ids(&page));
            match page.next_offset {
                Some(o) => offset = o,
                None => break,
            }
        }
        assert_eq!(all, (0..10).map(|i| format!("run{i}")).collect::<Vec<_>>());
        s.set_run_lifecycle("run0", true).await.unwrap();
        assert_eq!(s.search_runs(&[exp], &search(vec![], vec![])).await.unwrap().items.len(), 9);
        let deleted = Search { view: ViewType::DeletedOnly, limit: 10, ..Default::default() };
        assert_eq!(ids(&s.search_runs(&[exp], &deleted).await.unwrap()), vec!["run0"]);
    }
}

#[tokio::test]
async fn metric_history_pages_and_samples() {
    for b in backends().await {
        let s = &b.store;
        let exp = s.create_experiment("e", "mlflow-artifacts:/", &[]).await.unwrap();
        s.create_run(&run_info("r", exp, 1), &[]).await.unwrap();
        let points: Vec<Metric> = (0..1000).map(|i| metric("m", i as f64, i, i)).collect();
        s.log_batch("r", &RunBatch { metrics: points, ..Default::default() }).await.unwrap();
        let first = s.metric_history("r", "m", None, Some(400)).await.unwrap();
        assert_eq!(first.items.len(), 400);
        assert_eq!(first.next.map(|p| p.step), Some(399));
        let second = s.metric_history("r", "m", first.next, Some(400)).await.unwrap();
        assert_eq!((second.items[0].step, second.items.len()), (400, 400));
        let last = s.metric_history("r", "m", second.next, Some(400)).await.unwrap();
        assert_eq!((last.items.len(), last.next), (200, None));
        // Points that share step and timestamp (negative values have negative bits) page
        // without loss or repeats, whatever the page size.
        let same: Vec<Metric> =
            [-2.5, 0.0, -0.0, 3.0, f64::NAN, -1e300].iter().map(|v| metric("t", *v, 7, 7)).collect();
        s.log_batch("r", &RunBatch { metrics: same, ..Default::default() }).await.unwrap();
        let whole = s.metric_history("r", "t", None, None).await.unwrap().items;
        assert_eq!(whole.len(), 6, "{}", b.name);
        for size in 1..=6 {
            let (mut seen, mut after) = (Vec::new(), None);
            loop {
                let page = s.metric_history("r", "t", after, Some(size)).await.unwrap();
                seen.extend(page.items.iter().map(|m| m.value.to_bits()));
                match page.next {
                    Some(p) => after = Some(p),
                    None => break,
                }
            }
            assert_eq!(seen, whole.iter().map(|m| m.value.to_bits()).collect::<Vec<_>>(), "{} size {size}", b.name);
        }
        let sampled = s.metric_history_sampled(&["r".to_string()], "m", None, 10).await.unwrap();
        let steps: Vec<i64> = sampled.iter().map(|m| m.metric.step).collect();
        assert_eq!(steps.len(), 10, "{}", b.name);
        assert_eq!((steps[0], steps[9]), (0, 999));
        let window = s.metric_history_sampled(&["r".to_string()], "m", Some((10, 20)), 100).await.unwrap();
        assert_eq!(window.len(), 11);

        // Sampling happens in the database; it picks what MLflow's evenly spaced indices pick.
        fn reference(steps: &[i64], max: usize) -> Vec<i64> {
            if steps.len() <= max {
                return steps.to_vec();
            }
            match max {
                0 => Vec::new(),
                1 => vec![steps[steps.len() - 1]],
                _ => {
                    let last = steps.len() - 1;
                    let picked: std::collections::BTreeSet<i64> =
                        (0..max).map(|i| steps[i * last / (max - 1)]).collect();
                    picked.into_iter().collect()
                }
            }
        }
        for n in [1usize, 2, 5, 17, 50, 101] {
            let run = format!("sample-{n}");
            s.create_run(&run_info(&run, exp, 1), &[]).await.unwrap();
            let steps: Vec<i64> = (0..n as i64).map(|i| i * 3 + 1).collect();
            let points: Vec<Metric> = steps.iter().map(|st| metric("x", *st as f64, *st, 1)).collect();
            s.log_batch(&run, &RunBatch { metrics: points, ..Default::default() }).await.unwrap();
            for max in [1usize, 2, 3, 7, 10, 60] {
                let got: Vec<i64> = s
                    .metric_history_sampled(std::slice::from_ref(&run), "x", None, max)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.metric.step)
                    .collect();
                assert_eq!(got, reference(&steps, max), "{} n={n} max={max}", b.name);
            }
        }
    }
}

#[tokio::test]
async fn fifty_concurrent_writers_lose_nothing() {
    for b in backends().await {
        let s = b.store.clone();
        let exp = s.create_experiment("e", "mlflow-artifacts:/", &[]).await.unwrap();
        s.create_run(&run_info("shared", exp, 1), &[]).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..50i64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let own = format!("w{w}");
                s.create_run(&run_info(&own, exp, 1), &[]).await?;
                for i in 0..20i64 {
                    let m = RunBatch { metrics: vec![metric("m", i as f64, i, w * 100 + i)], ..Default::default() };
                    s.log_batch(&own, &m).await?;
                    s.log_batch("shared", &m).await?;
                }
                s.log_batch("shared", &RunBatch { params: vec![Tag::new(format!("p{w}"), "v")], ..Default::default() })
                    .await?;
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("writer failed on {}: {e}", b.name));
        }
        assert_eq!(s.metric_history("shared", "m", None, None).await.unwrap().items.len(), 50 * 20);
        assert_eq!(s.get_run("shared").await.unwrap().unwrap().params.len(), 50);
        for w in 0..50 {
            assert_eq!(s.metric_history(&format!("w{w}"), "m", None, None).await.unwrap().items.len(), 20);
        }
    }
}

#[tokio::test]
async fn registry_versions_aliases_stages_and_cascades() {
    for b in backends().await {
        let s = &b.store;
        s.create_registered_model("m", Some("d"), None, &[Tag::new("k", "v")]).await.unwrap();
        assert!(matches!(s.create_registered_model("m", None, None, &[]).await, Err(StoreError::AlreadyExists(_))));
        for _ in 0..3 {
            let v = NewModelVersion { name: "m".into(), source: "models:/m-1".into(), ..Default::default() };
            s.create_model_version(&v).await.unwrap();
        }
        assert_eq!(s.get_model_version("m", 3).await.unwrap().unwrap().status, "READY");
        s.transition_model_version_stage("m", 1, "Production", false).await.unwrap();
        s.transition_model_version_stage("m", 2, "Production", true).await.unwrap();
        assert_eq!(s.get_model_version("m", 1).await.unwrap().unwrap().current_stage, "Archived", "{}", b.name);
        let latest = s.latest_model_versions("m", &["Production".into()]).await.unwrap();
        assert_eq!(latest.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2]);
        s.set_registered_model_alias("m", "champion", 3).await.unwrap();
        assert_eq!(s.alias_version("m", "champion").await.unwrap(), Some(3));
        let model = s.get_registered_model("m").await.unwrap().unwrap();
        assert_eq!(model.aliases, vec![("champion".to_string(), 3)]);
        let stages: Vec<&str> = model.latest_versions.iter().map(|v| v.current_stage.as_str()).collect();
        assert_eq!(stages, vec!["Archived", "Production", "None"], "{}", b.name);
        s.delete_model_version("m", 3).await.unwrap();
        assert_eq!(s.alias_version("m", "champion").await.unwrap(), None, "deleting a version drops its aliases");
        s.rename_registered_model("m", "n").await.unwrap();
        assert_eq!(s.get_model_version("n", 2).await.unwrap().unwrap().name, "n");
        // The prompt clause MLflow's client always adds matches models without the tag.
        let not_prompt =
            clause(Target::Tag("mlflow.prompt.is_prompt".into()), Op::NeOrMissing, Value::Str("true".into()));
        assert_eq!(s.search_registered_models(&search(vec![not_prompt], vec![])).await.unwrap().items.len(), 1);
        let by_name = clause(Target::Attribute("name".into()), Op::Eq, Value::Str("n".into()));
        assert_eq!(s.search_model_versions(&search(vec![by_name], vec![])).await.unwrap().items.len(), 2);
        s.delete_registered_model("n").await.unwrap();
        assert!(s.get_model_version("n", 2).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn logged_models_and_traces() {
    for b in backends().await {
        let s = &b.store;
        let exp = s.create_experiment("e", "mlflow-artifacts:/", &[]).await.unwrap();
        let new = NewLoggedModel {
            model_id: "m-1".into(),
            experiment_id: exp,
            name: "model".into(),
            artifact_uri: "mlflow-artifacts:/1/models/m-1/artifacts".into(),
            model_type: None,
            source_run_id: None,
            params: vec![Tag::new("alpha", "1")],
            tags: vec![Tag::new("t", "x")],
        };
        s.create_logged_model(&new).await.unwrap();
        s.set_logged_model_status("m-1", "LOGGED_MODEL_READY", None).await.unwrap();
        let m = s.get_logged_model("m-1").await.unwrap().unwrap();
        assert_eq!((m.status.as_str(), m.params.len(), m.tags.len()), ("LOGGED_MODEL_READY", 1, 1));
        let by_name = clause(Target::Attribute("name".into()), Op::Eq, Value::Str("model".into()));
        assert_eq!(s.search_logged_models(&[exp], &search(vec![by_name], vec![])).await.unwrap().items.len(), 1);
        s.delete_logged_model("m-1").await.unwrap();
        assert!(s.get_logged_model("m-1").await.unwrap().is_none());

        let trace = TraceInfo {
            trace_id: "tr-1".into(),
            experiment_id: exp,
            client_request_id: None,
            request_time: 5,
            execution_duration: Some(3),
            state: "OK".into(),
            request_preview: Some("in".into()),
            response_preview: None,
            metadata: vec![Tag::new("mlflow.user", "me")],
            tags: vec![Tag::new("mlflow.traceName", "f")],
        };
        s.put_trace(&trace).await.unwrap();
        assert_eq!(s.get_trace("tr-1").await.unwrap().unwrap(), trace, "{}", b.name);
        let named = clause(Target::Tag("mlflow.traceName".into()), Op::Eq, Value::Str("f".into()));
        assert_eq!(s.search_traces(&[exp], &search(vec![named], vec![])).await.unwrap().items.len(), 1);
        assert_eq!(s.delete_traces(exp, &[], Some(10), None).await.unwrap(), vec!["tr-1".to_string()]);
        assert!(s.get_trace("tr-1").await.unwrap().is_none());
    }
}

fn job(name: &str, created_at: i64) -> JobRecord {
    JobRecord {
        name: name.into(),
        kind: "command".into(),
        display_name: None,
        description: None,
        experiment_id: 0,
        compute: "local".into(),
        status: "Queued".into(),
        failure: None,
        spec: "{}".into(),
        tags: "{}".into(),
        properties: "{}".into(),
        created_at,
        updated_at: created_at,
        archived: false,
        runner: None,
        parent: None,
        reuse_key: None,
        lineage: None,
        transitions: Vec::new(),
    }
}

#[tokio::test]
async fn pipeline_steps_are_listed_by_parent_and_found_by_reuse_key_and_lineage() {
    for b in backends().await {
        let s = &b.store;
        s.insert_job(&JobRecord { kind: "pipeline".into(), ..job("p", 1) }).await.unwrap();
        let step = |name: &str, at: i64, status: &str, key: Option<&str>| JobRecord {
            status: status.into(),
            parent: Some("p".into()),
            reuse_key: key.map(str::to_string),
            lineage: Some("0/train".into()),
            ..job(name, at)
        };
        s.insert_job(&step("s1", 2, "Completed", Some("k1"))).await.unwrap();
        s.insert_job(&step("s2", 3, "Failed", Some("k1"))).await.unwrap();
        s.insert_job(&step("s3", 4, "Completed", None)).await.unwrap();
        let top = s.list_jobs(&JobFilter { top_level_only: true, ..Default::default() }).await.unwrap();
        assert_eq!(top.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["p"], "{}", b.name);
        let of_p = JobFilter { parent: Some("p".into()), oldest_first: true, ..Default::default() };
        let steps = s.list_jobs(&of_p).await.unwrap();
        assert_eq!(steps.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3"]);
        assert_eq!(steps[0].reuse_key.as_deref(), Some("k1"));
        // Only a completed job is a reuse source.
        assert_eq!(s.find_reusable_job("k1").await.unwrap().unwrap().name, "s1", "{}", b.name);
        assert!(s.find_reusable_job("k2").await.unwrap().is_none());
        // The newest run with a key (s3 has none: a forced rerun), not the asking job itself.
        assert_eq!(s.latest_run_of_lineage("0/train", "s9").await.unwrap().unwrap().name, "s2");
        assert_eq!(s.latest_run_of_lineage("0/train", "s2").await.unwrap().unwrap().name, "s1");
        s.set_job_spec("p", "{\"x\":1}").await.unwrap();
        assert_eq!(s.get_job("p").await.unwrap().unwrap().spec, "{\"x\":1}");
    }
}

#[tokio::test]
async fn job_status_changes_only_from_the_statuses_named() {
    for b in backends().await {
        let s = &b.store;
        s.insert_job(&job("a", 1)).await.unwrap();
        s.insert_job(&job("b", 2)).await.unwrap();
        assert!(matches!(s.insert_job(&job("a", 3)).await, Err(StoreError::AlreadyExists(_))), "{}", b.name);
        assert!(s.set_job_status("a", &["Queued"], "Running", None).await.unwrap());
        // A cancel that arrives after completion must not win.
        assert!(s.set_job_status("a", &["Running"], "Completed", None).await.unwrap());
        assert!(!s.set_job_status("a", &["Queued", "Running"], "Canceled", Some("x")).await.unwrap());
        let a = s.get_job("a").await.unwrap().unwrap();
        assert_eq!(a.status, "Completed", "{}", b.name);
        assert_eq!(a.failure, None);
        let seen: Vec<&str> = a.transitions.iter().map(|(s, _)| s.as_str()).collect();
        assert!(seen.contains(&"Queued") && seen.contains(&"Running") && seen.contains(&"Completed"), "{seen:?}");
        assert!(!seen.contains(&"Canceled"));

        let queued = s
            .list_jobs(&JobFilter { statuses: vec!["Queued".into()], oldest_first: true, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(queued.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["b"]);
        let mut b_job = s.get_job("b").await.unwrap().unwrap();
        b_job.archived = true;
        s.update_job_meta(&b_job).await.unwrap();
        let visible = s.list_jobs(&JobFilter { archived: Some(false), ..Default::default() }).await.unwrap();
        assert_eq!(visible.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["a"], "{}", b.name);
        let all = s.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["b", "a"], "newest first");
    }
}

#[tokio::test]
async fn asset_versions_increment_resolve_latest_and_refuse_changed_content() {
    for b in backends().await {
        let s = &b.store;
        let AssetCreated::New(v1) = s.create_asset("data", "iris", None, "h1", "{}").await.unwrap() else { panic!() };
        assert_eq!(v1.version, "1", "{}", b.name);
        let AssetCreated::New(v7) = s.create_asset("data", "iris", Some("7"), "h7", "{}").await.unwrap() else {
            panic!()
        };
        assert_eq!(v7.version, "7");
        let AssetCreated::New(v8) = s.create_asset("data", "iris", None, "h8", "{}").await.unwrap() else { panic!() };
        assert_eq!(v8.version, "8");
        // Created last: @latest follows creation order, not the version's text.
        let AssetCreated::New(_) = s.create_asset("data", "iris", Some("abc"), "hx", "{}").await.unwrap() else {
            panic!()
        };
        assert_eq!(s.latest_asset("data", "iris").await.unwrap().unwrap().version, "abc");
        assert!(matches!(s.create_asset("data", "iris", Some("7"), "h7", "{}").await.unwrap(), AssetCreated::Same(_)));
        assert!(matches!(
            s.create_asset("data", "iris", Some("7"), "other", "{}").await.unwrap(),
            AssetCreated::Conflict(_)
        ));
        assert_eq!(s.set_asset_archived("data", "iris", Some("abc"), true).await.unwrap(), 1);
        assert_eq!(s.latest_asset("data", "iris").await.unwrap().unwrap().version, "8", "archived is not latest");
        assert!(s.get_asset("data", "iris", "abc").await.unwrap().is_some(), "archived still resolves by version");
        assert_eq!(s.list_assets("data", Some("iris"), Some(false)).await.unwrap().len(), 3);
        assert!(s.latest_asset("environment", "iris").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn schedules_fire_once_per_claim_and_keep_their_record() {
    for b in backends().await {
        let s = &b.store;
        let mut rec = ScheduleRecord {
            name: "nightly".into(),
            spec: "{}".into(),
            source: "s.yml".into(),
            enabled: true,
            created_at: 1_000,
            updated_at: 1_000,
            anchor_at: 1_000,
            next_fire_at: Some(5_000),
        };
        assert!(s.put_schedule(&rec).await.unwrap(), "{}", b.name);
        let mut off = rec.clone();
        off.name = "off".into();
        off.enabled = false;
        off.next_fire_at = Some(10);
        assert!(s.put_schedule(&off).await.unwrap());
        assert_eq!(s.next_schedule_fire().await.unwrap(), Some(5_000), "disabled schedules are not due");
        assert!(s.due_schedules(4_999).await.unwrap().is_empty());
        assert_eq!(s.due_schedules(5_000).await.unwrap().len(), 1);
        // Two servers claim the same fire: one wins.
        assert!(s.claim_schedule_fire("nightly", 5_000, Some(6_000)).await.unwrap());
        assert!(!s.claim_schedule_fire("nightly", 5_000, Some(6_000)).await.unwrap());
        let fire = |at: i64, status: &str| ScheduleFire {
            schedule: "nightly".into(),
            fire_at: at,
            status: status.into(),
            job_name: None,
            message: None,
            recorded_at: at,
        };
        s.record_schedule_fires(&[fire(4_000, "skipped"), fire(5_000, "started")]).await.unwrap();
        s.record_schedule_fires(&[fire(5_000, "failed")]).await.unwrap();
        let fires = s.schedule_fires("nightly", 10).await.unwrap();
        assert_eq!(
            fires.iter().map(|f| (f.fire_at, f.status.as_str())).collect::<Vec<_>>(),
            [(5_000, "started"), (4_000, "skipped")]
        );
        // An update keeps the creation time; the list filters on state.
        rec.spec = "{\"v\": 2}".into();
        rec.created_at = 99;
        assert!(!s.put_schedule(&rec).await.unwrap());
        let got = s.get_schedule("nightly").await.unwrap().unwrap();
        assert_eq!((got.created_at, got.spec.as_str(), got.next_fire_at), (1_000, "{\"v\": 2}", Some(5_000)));
        assert_eq!(s.list_schedules(Some(false)).await.unwrap().len(), 1);
        assert_eq!(s.list_schedules(None).await.unwrap().len(), 2);
        assert!(s.set_schedule_enabled("off", true, None).await.unwrap());
        assert_eq!(s.next_schedule_fire().await.unwrap(), Some(5_000), "no next time: never due");
        assert!(s.delete_schedule("nightly").await.unwrap());
        assert!(!s.delete_schedule("nightly").await.unwrap());
        assert!(s.schedule_fires("nightly", 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn endpoints_and_deployments_are_kept_and_deleted_together() {
    for b in backends().await {
        let s = &b.store;
        let ep = EndpointRecord {
            name: "iris-ep".into(),
            kind: "online".into(),
            document: "{\"a\":1}".into(),
            created_at: 1,
            updated_at: 1,
        };
        s.insert_endpoint(&ep).await.unwrap();
        assert!(matches!(s.insert_endpoint(&ep).await, Err(StoreError::AlreadyExists(_))), "{}", b.name);
        let batch = EndpointRecord { name: "scorer".into(), kind: "batch".into(), ..ep.clone() };
        s.insert_endpoint(&batch).await.unwrap();
        assert_eq!(s.list_endpoints(Some("online")).await.unwrap(), vec![ep.clone()]);
        assert_eq!(s.list_endpoints(None).await.unwrap().len(), 2);
        assert!(s.update_endpoint("iris-ep", "{\"a\":2}", 5).await.unwrap());
        assert!(!s.update_endpoint("nope", "{}", 5).await.unwrap());
        let got = s.get_endpoint("iris-ep").await.unwrap().unwrap();
        assert_eq!((got.document.as_str(), got.updated_at, got.created_at), ("{\"a\":2}", 5, 1));

        let mut blue = DeploymentRecord {
            endpoint: "iris-ep".into(),
            name: "blue".into(),
            document: "{}".into(),
            state: "Creating".into(),
            message: None,
            created_at: 2,
            updated_at: 2,
        };
        assert!(s.put_deployment(&blue).await.unwrap(), "new");
        blue.document = "{\"r\":2}".into();
        blue.state = "Updating".into();
        assert!(!s.put_deployment(&blue).await.unwrap(), "replaced");
        assert!(s.set_deployment_state("iris-ep", "blue", "Failed", Some("bad model"), 9).await.unwrap());
        let got = s.get_deployment("iris-ep", "blue").await.unwrap().unwrap();
        assert_eq!(
            (got.state.as_str(), got.message.as_deref(), got.document.as_str()),
            ("Failed", Some("bad model"), "{\"r\":2}")
        );
        let green = DeploymentRecord { name: "green".into(), ..blue.clone() };
        s.put_deployment(&green).await.unwrap();
        let names: Vec<String> =
            s.list_deployments(Some("iris-ep")).await.unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["blue", "green"]);
        assert!(s.delete_deployment("iris-ep", "green").await.unwrap());
        assert!(!s.delete_deployment("iris-ep", "green").await.unwrap());

        assert!(s.delete_endpoint("iris-ep").await.unwrap());
        assert!(s.get_endpoint("iris-ep").await.unwrap().is_none());
        assert!(s.list_deployments(Some("iris-ep")).await.unwrap().is_empty(), "deployments go with their endpoint");
        assert!(!s.delete_endpoint("iris-ep").await.unwrap());
    }
}
