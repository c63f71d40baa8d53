//! `kiln online-endpoint …` and `kiln online-deployment …`: specs are read and checked here
//! (file, line, field), their local paths (the model, the scoring code, the conda file)
//! uploaded, and the result sent to the server; `create` and `update` wait until the
//! deployment serves, as `az ml` does unless told `--no-wait`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use kiln_api::{
    BatchDeploymentCreate, BatchEndpointUpdate, BatchInvoke, EndpointSpec, OnlineDeployment, OnlineDeploymentCreate,
    OnlineEndpointUpdate,
};
use kiln_client::Client;
use kiln_spec::Node;

use crate::bundle::{Bundler, entry_mut, local_path, scalar, text};
use crate::cli::{BatchDeploymentCmd, BatchEndpointCmd, OnlineDeploymentCmd, OnlineEndpointCmd};
use crate::output::{self, Format};
use crate::upload;

/// Reads a spec file with its overrides and checks it with `read`, printing its warnings.
fn load<T>(
    file: &Path,
    set: &[String],
    read: fn(&kiln_spec::read::Source, &Node) -> Result<T, kiln_spec::SpecError>,
) -> Result<(String, Node, T)> {
    let (label, tree) = kiln_spec::read_spec(file, set)?;
    let src = kiln_spec::read::Source::new(label.as_str());
    let spec = read(&src, &tree)?;
    for w in src.take_warnings() {
        eprintln!("warning: {w}");
    }
    Ok((label, tree, spec))
}

pub async fn endpoint(client: &Client, cmd: OnlineEndpointCmd, format: Format) -> Result<()> {
    match cmd {
        OnlineEndpointCmd::Create { file, name, auth_mode, mut set } => {
            if let Some(n) = name {
                set.push(format!("name={n}"));
            }
            if let Some(a) = auth_mode {
                set.push(format!("auth_mode={a}"));
            }
            let (label, tree, _) = load(&file, &set, kiln_spec::endpoint::online_endpoint)?;
            let spec = EndpointSpec { spec: tree.to_flow(), source: Some(label), overrides: Vec::new() };
            output::online_endpoint(&client.create_online_endpoint(&spec).await?, format)
        }
        OnlineEndpointCmd::Show { name } => output::online_endpoint(&client.online_endpoint(&name).await?, format),
        OnlineEndpointCmd::List => output::online_endpoints(&client.online_endpoints().await?.endpoints, format),
        OnlineEndpointCmd::Update { name, file, traffic, mirror_traffic, mut set } => {
            let mut update = OnlineEndpointUpdate::default();
            let name = match (&file, name) {
                (Some(f), name) => {
                    if let Some(n) = &name {
                        set.push(format!("name={n}"));
                    }
                    let (label, tree, e) = load(f, &set, kiln_spec::endpoint::online_endpoint)?;
                    update.spec = Some(tree.to_flow());
                    update.source = Some(label);
                    e.name
                }
                (None, Some(n)) => {
                    if !set.is_empty() {
                        // --set on the stored endpoint: its fields as a spec.
                        let current = client.online_endpoint(&n).await?;
                        let base = serde_json::json!({
                            "name": current.name, "auth_mode": current.auth_mode,
                            "description": current.description, "tags": current.tags,
                        });
                        let label = format!("endpoint '{n}'");
                        let tree = kiln_spec::parse_with_overrides(&label, &base.to_string(), &set)?;
                        kiln_spec::endpoint::online_endpoint(&kiln_spec::read::Source::new(label.as_str()), &tree)?;
                        update.spec = Some(tree.to_flow());
                        update.source = Some(label);
                    }
                    n
                }
                (None, None) => bail!("name the endpoint: -n NAME (or -f FILE)"),
            };
            if let Some(t) = traffic {
                update.traffic = Some(percent_flag(&t, "--traffic")?);
            }
            if let Some(t) = mirror_traffic {
                update.mirror_traffic = Some(percent_flag(&t, "--mirror-traffic")?);
            }
            output::online_endpoint(&client.update_online_endpoint(&name, &update).await?, format)
        }
        OnlineEndpointCmd::Delete { name, .. } => {
            client.delete_online_endpoint(&name).await?;
            eprintln!("deleted online endpoint '{name}' and its deployments");
            Ok(())
        }
        OnlineEndpointCmd::Invoke { name, request_file, deployment_name } => {
            let body = std::fs::read(&request_file)
                .with_context(|| format!("cannot read the request file {}", request_file.display()))?;
            let endpoint = client.online_endpoint(&name).await?;
            let creds = client.endpoint_credentials(&name).await?;
            let credential = creds.primary_key.or(creds.access_token);
            let (status, answer) =
                client.score(&endpoint.scoring_uri, credential.as_deref(), deployment_name.as_deref(), body).await?;
            if !(200..300).contains(&status) {
                bail!("the endpoint answered {status}: {}", answer.trim());
            }
            println!("{}", answer.trim_end());
            Ok(())
        }
        OnlineEndpointCmd::GetCredentials { name } => {
            let creds = client.endpoint_credentials(&name).await?;
            match format {
                Format::Yaml | Format::Json => output::structured_value(&creds, format),
                Format::Table => {
                    println!("{}", serde_json::to_string_pretty(&creds)?);
                    Ok(())
                }
            }
        }
        OnlineEndpointCmd::RegenerateKeys { name, key_type } => {
            client.regenerate_endpoint_key(&name, &key_type).await?;
            eprintln!("regenerated the {key_type} key of '{name}'");
            Ok(())
        }
    }
}

fn percent_flag(text: &str, flag: &str) -> Result<std::collections::BTreeMap<String, u32>> {
    kiln_spec::endpoint::parse_traffic(text).map_err(|e| anyhow!("{flag}: {e}"))
}

/// Replaces the local paths of a deployment spec by uploads.
async fn bundle_deployment(client: &Client, tree: &mut Node, label: &str, base: &Path) -> Result<()> {
    if let Some(model) = entry_mut(tree, "model")
        && let Some(path) = entry_mut(model, "path")
        && let Some(written) = scalar(path).map(str::to_string)
        && local_path(base, &written).is_some()
    {
        let p = path.pos;
        let uploaded = crate::assets::upload_model_path(client, base, &written)
            .await
            .map_err(|e| anyhow!("{label}:{}:{}: model.{e}", p.line, p.col))?;
        *path = text(&uploaded);
    }
    if let Some(cc) = entry_mut(tree, "code_configuration")
        && let Some(code) = entry_mut(cc, "code")
        && let Some(written) = scalar(code).map(str::to_string)
        && let Some(dir) = local_path(base, &written)
    {
        if !dir.is_dir() {
            let p = code.pos;
            bail!("{label}:{}:{}: code_configuration.code: {} is not a folder", p.line, p.col, dir.display());
        }
        *code = text(&upload::uri(client, &dir).await?);
    }
    Bundler::environment(tree, base, label, "")
}

/// Waits until a deployment serves or failed, saying so.
async fn wait_ready(client: &Client, endpoint: &str, name: &str) -> Result<OnlineDeployment> {
    // Building a Python environment can take minutes; beyond this, stop waiting (it goes on).
    let deadline = std::time::Instant::now() + Duration::from_secs(30 * 60);
    let mut said = String::new();
    loop {
        if std::time::Instant::now() > deadline {
            bail!(
                "deployment '{name}' is still not ready after 30 minutes; see `kiln online-deployment show -e {endpoint} -n {name}`"
            );
        }
        let d = client.online_deployment(endpoint, name).await?;
        match d.provisioning_state.as_str() {
            "Succeeded" => return Ok(d),
            "Failed" => bail!(
                "deployment '{name}' failed: {} (see `kiln online-deployment get-logs -e {endpoint} -n {name}`)",
                d.message.unwrap_or_default()
            ),
            other => {
                if said != other {
                    eprintln!("deployment '{name}': {other}…");
                    said = other.to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn deployment(client: &Client, cmd: OnlineDeploymentCmd, format: Format) -> Result<()> {
    match cmd {
        OnlineDeploymentCmd::Create { file, name, endpoint_name, all_traffic, mut set, no_wait } => {
            if let Some(n) = name {
                set.push(format!("name={n}"));
            }
            if let Some(e) = endpoint_name {
                set.push(format!("endpoint_name={e}"));
            }
            let (label, mut tree, d) = load(&file, &set, kiln_spec::endpoint::online_deployment)?;
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            bundle_deployment(client, &mut tree, &label, &base).await?;
            let req = OnlineDeploymentCreate {
                spec: tree.to_flow(),
                source: Some(label),
                overrides: Vec::new(),
                all_traffic,
            };
            let mut created = client.create_online_deployment(&d.endpoint_name, &req).await?;
            if !no_wait {
                created = wait_ready(client, &d.endpoint_name, &d.name).await?;
                if all_traffic {
                    eprintln!("deployment '{}' takes all of the traffic of '{}'", d.name, d.endpoint_name);
                }
            }
            output::online_deployment(&created, format)
        }
        OnlineDeploymentCmd::Update { file, name, endpoint_name, mut set, no_wait } => {
            let (endpoint, dep, req) = match file {
                Some(file) => {
                    if let Some(n) = &name {
                        set.push(format!("name={n}"));
                    }
                    if let Some(e) = &endpoint_name {
                        set.push(format!("endpoint_name={e}"));
                    }
                    let (label, mut tree, d) = load(&file, &set, kiln_spec::endpoint::online_deployment)?;
                    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                    bundle_deployment(client, &mut tree, &label, &base).await?;
                    let req = OnlineDeploymentCreate {
                        spec: tree.to_flow(),
                        source: Some(label),
                        overrides: Vec::new(),
                        all_traffic: false,
                    };
                    (d.endpoint_name, d.name, req)
                }
                None => {
                    let (Some(n), Some(e)) = (name, endpoint_name) else {
                        bail!("name the deployment: -f FILE, or -n NAME -e ENDPOINT with --set PATH=VALUE");
                    };
                    // The stored spec with the overrides, read by the server.
                    let req = OnlineDeploymentCreate {
                        spec: String::new(),
                        source: None,
                        overrides: set,
                        all_traffic: false,
                    };
                    (e, n, req)
                }
            };
            let mut updated = client.update_online_deployment(&endpoint, &dep, &req).await?;
            if !no_wait {
                updated = wait_ready(client, &endpoint, &dep).await?;
            }
            output::online_deployment(&updated, format)
        }
        OnlineDeploymentCmd::Show { name, endpoint_name } => {
            output::online_deployment(&client.online_deployment(&endpoint_name, &name).await?, format)
        }
        OnlineDeploymentCmd::List { endpoint_name } => {
            output::online_deployments(&client.online_deployments(&endpoint_name).await?.deployments, format)
        }
        OnlineDeploymentCmd::Delete { name, endpoint_name, .. } => {
            client.delete_online_deployment(&endpoint_name, &name).await?;
            eprintln!("deleted deployment '{name}' of '{endpoint_name}'");
            Ok(())
        }
        OnlineDeploymentCmd::GetLogs { name, endpoint_name, lines, .. } => {
            let logs = client.deployment_logs(&endpoint_name, &name, lines).await?;
            print!("{}", logs.content);
            Ok(())
        }
    }
}

/// `--set output_file_name=x` of `batch-endpoint invoke`.
fn invoke_override(set: &[String]) -> Result<Option<String>> {
    let mut name = None;
    for s in set {
        match s.split_once('=') {
            Some(("output_file_name", v)) => name = Some(v.to_string()),
            _ => bail!("--set '{s}': batch-endpoint invoke takes output_file_name=NAME"),
        }
    }
    Ok(name)
}

pub async fn batch_endpoint(client: &Client, cmd: BatchEndpointCmd, format: Format) -> Result<()> {
    match cmd {
        BatchEndpointCmd::Create { file, name, mut set } => {
            if let Some(n) = name {
                set.push(format!("name={n}"));
            }
            let (label, tree, _) = load(&file, &set, kiln_spec::endpoint::batch_endpoint)?;
            let spec = EndpointSpec { spec: tree.to_flow(), source: Some(label), overrides: Vec::new() };
            output::structured_value(&client.create_batch_endpoint(&spec).await?, format)
        }
        BatchEndpointCmd::Show { name } => output::structured_value(&client.batch_endpoint(&name).await?, format),
        BatchEndpointCmd::List => output::batch_endpoints(&client.batch_endpoints().await?.endpoints, format),
        BatchEndpointCmd::Update { name, file, set } => {
            let mut update = BatchEndpointUpdate::default();
            let name = match (file, name) {
                (Some(f), name) => {
                    let mut set = set;
                    if let Some(n) = &name {
                        set.push(format!("name={n}"));
                    }
                    let (label, tree, e) = load(&f, &set, kiln_spec::endpoint::batch_endpoint)?;
                    update.spec = Some(tree.to_flow());
                    update.source = Some(label);
                    e.name
                }
                (None, Some(n)) => {
                    for s in &set {
                        match s.split_once('=') {
                            Some(("defaults.deployment_name", v)) => update.default_deployment = Some(v.to_string()),
                            _ => bail!("--set '{s}': without -f, update takes defaults.deployment_name=NAME"),
                        }
                    }
                    n
                }
                (None, None) => bail!("name the endpoint: -n NAME (or -f FILE)"),
            };
            output::structured_value(&client.update_batch_endpoint(&name, &update).await?, format)
        }
        BatchEndpointCmd::Delete { name, .. } => {
            client.delete_batch_endpoint(&name).await?;
            eprintln!("deleted batch endpoint '{name}' (the jobs it ran are kept)");
            Ok(())
        }
        BatchEndpointCmd::Invoke {
            name,
            deployment_name,
            input,
            input_type,
            mini_batch_size,
            instance_count,
            job_name,
            set,
            stream,
        } => {
            let mut req = BatchInvoke {
                deployment_name,
                input: input.clone(),
                input_type,
                mini_batch_size,
                instance_count,
                output_file_name: invoke_override(&set)?,
                job_name,
            };
            // A local file or folder is uploaded; anything else is the server's to read.
            if let Some(local) = local_path(Path::new("."), &input) {
                if !local.exists() {
                    bail!("--input: {} does not exist", local.display());
                }
                if local.is_dir() {
                    req.input = upload::uri(client, &local).await?;
                    req.input_type.get_or_insert_with(|| "uri_folder".into());
                } else {
                    req.input = crate::assets::upload_model_path(client, Path::new("."), &input).await?;
                    req.input_type.get_or_insert_with(|| "uri_file".into());
                }
            }
            let job = client.invoke_batch_endpoint(&name, &req).await?;
            output::job(&job, format)?;
            if stream {
                let ended = crate::jobs::stream(client, &job.name).await?;
                if ended.status != "Completed" {
                    bail!("job {} ended {}", ended.name, ended.status);
                }
            }
            Ok(())
        }
        BatchEndpointCmd::ListJobs { name } => output::jobs(&client.batch_endpoint_jobs(&name).await?.jobs, format),
    }
}

pub async fn batch_deployment(client: &Client, cmd: BatchDeploymentCmd, format: Format) -> Result<()> {
    match cmd {
        BatchDeploymentCmd::Create { file, name, endpoint_name, set_default, set } => {
            let (d, req) = batch_request(client, &file, name, endpoint_name, set, set_default).await?;
            output::structured_value(&client.create_batch_deployment(&d.endpoint_name, &req).await?, format)
        }
        BatchDeploymentCmd::Update { file, name, endpoint_name, set } => {
            let (d, req) = batch_request(client, &file, name, endpoint_name, set, false).await?;
            output::structured_value(&client.update_batch_deployment(&d.endpoint_name, &d.name, &req).await?, format)
        }
        BatchDeploymentCmd::Show { name, endpoint_name } => {
            output::structured_value(&client.batch_deployment(&endpoint_name, &name).await?, format)
        }
        BatchDeploymentCmd::List { endpoint_name } => {
            output::batch_deployments(&client.batch_deployments(&endpoint_name).await?.deployments, format)
        }
        BatchDeploymentCmd::Delete { name, endpoint_name, .. } => {
            client.delete_batch_deployment(&endpoint_name, &name).await?;
            eprintln!("deleted batch deployment '{name}' of '{endpoint_name}'");
            Ok(())
        }
    }
}

/// A batch deployment spec read, checked and bundled.
async fn batch_request(
    client: &Client,
    file: &Path,
    name: Option<String>,
    endpoint_name: Option<String>,
    mut set: Vec<String>,
    set_default: bool,
) -> Result<(kiln_spec::endpoint::BatchDeployment, BatchDeploymentCreate)> {
    if let Some(n) = name {
        set.push(format!("name={n}"));
    }
    if let Some(e) = endpoint_name {
        set.push(format!("endpoint_name={e}"));
    }
    let (label, mut tree, d) = load(file, &set, kiln_spec::endpoint::batch_deployment)?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    bundle_deployment(client, &mut tree, &label, &base).await?;
    let req = BatchDeploymentCreate { spec: tree.to_flow(), source: Some(label), overrides: Vec::new(), set_default };
    Ok((d, req))
}
