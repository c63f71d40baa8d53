//! Command-line flags, parsed once into typed commands.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use kiln_client::Client;

use crate::output::{self, Format};
use crate::{assets, endpoints, jobs, schedules, up};

#[derive(Parser, Debug)]
#[command(name = "kiln", version, about = "Kiln: a machine-learning workspace in one binary")]
pub struct Args {
    /// Where the Kiln server is, for client commands.
    #[arg(long, global = true, env = "KILN_URL", default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// How client commands print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a workspace server (SQLite and a local folder unless told otherwise).
    Up(UpArgs),
    /// Experiments.
    #[command(subcommand, alias = "experiment")]
    Experiments(ExperimentCmd),
    /// Runs.
    #[command(subcommand, alias = "run")]
    Runs(RunCmd),
    /// Registered models.
    #[command(subcommand, alias = "model")]
    Models(ModelCmd),
    /// Jobs from Azure ML v2 YAML specs.
    #[command(subcommand, alias = "jobs")]
    Job(JobCmd),
    /// Compute targets jobs run on.
    #[command(subcommand)]
    Compute(ComputeCmd),
    /// Components (command and pipeline), versioned, for pipelines to name.
    #[command(subcommand)]
    Component(AssetCmd<ComponentCreateArgs>),
    /// Data assets (versioned).
    #[command(subcommand)]
    Data(AssetCmd<DataCreateArgs>),
    /// Environment assets (versioned).
    #[command(subcommand, alias = "env")]
    Environment(AssetCmd<EnvironmentCreateArgs>),
    /// Schedules that submit a job on a cron or recurrence trigger.
    #[command(subcommand, alias = "schedules")]
    Schedule(ScheduleCmd),
    /// Online endpoints: a scoring URI, keys, and a traffic split over deployments.
    #[command(subcommand)]
    OnlineEndpoint(OnlineEndpointCmd),
    /// Deployments of online endpoints: a model (and optionally a scoring script) served.
    #[command(subcommand)]
    OnlineDeployment(OnlineDeploymentCmd),
    /// Batch endpoints: score files, folders or data assets in bulk; each invocation is a job.
    #[command(subcommand)]
    BatchEndpoint(BatchEndpointCmd),
    /// Deployments of batch endpoints: a model (and optionally a scoring script) and how
    /// files are scored.
    #[command(subcommand)]
    BatchDeployment(BatchDeploymentCmd),
    /// Benchmarks of Kiln's own parts, for the scripts in `benches/`.
    #[command(subcommand, hide = true)]
    Bench(BenchCmd),
    /// Run one job where it is placed (started by a compute backend, not by hand).
    #[command(hide = true)]
    Launch { job_dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum AssetCmd<C: clap::Args> {
    /// Register a version (the next integer unless --version or version: says otherwise).
    Create(C),
    /// Show one version (the latest unless -v).
    Show {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
        /// The latest version (the default).
        #[arg(long, short = 'l')]
        label: Option<String>,
    },
    /// List versions (of one name with -n).
    List {
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, conflicts_with = "archived_only")]
        include_archived: bool,
        #[arg(long)]
        archived_only: bool,
    },
    /// Hide a version (or every version) from lists and @latest; it can still be used by version.
    Archive {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
    /// Undo archive.
    Restore {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ComponentCreateArgs {
    /// A command or pipeline component YAML file.
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Overrides, e.g. `--set version=2`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DataCreateArgs {
    /// A data asset YAML file (name, version, type, path, description, tags).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    #[arg(long, short = 'v')]
    pub version: Option<String>,
    /// A local file or folder (uploaded), a URL, or azureml://datastores/<ds>/paths/<p>.
    #[arg(long, short = 'p')]
    pub path: Option<String>,
    /// uri_file, uri_folder (default) or mltable.
    #[arg(long = "type", short = 't')]
    pub data_type: Option<String>,
    #[arg(long, short = 'd')]
    pub description: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct EnvironmentCreateArgs {
    /// An environment YAML file (name, version, image, conda_file, description, tags).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    #[arg(long, short = 'v')]
    pub version: Option<String>,
    #[arg(long, short = 'i')]
    pub image: Option<String>,
    #[arg(long)]
    pub conda_file: Option<PathBuf>,
    #[arg(long, short = 'd')]
    pub description: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ComputeCmd {
    /// Create (or replace) a compute target. Azure ML cluster types are accepted and run on
    /// this machine; `--max-instances` is how many jobs run at once.
    Create {
        /// A compute YAML file (`name`, `type`, `max_instances`).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        #[arg(long, short = 'n')]
        name: Option<String>,
        /// local (also amlcompute, computeinstance, virtualmachine).
        #[arg(long = "type", short = 't')]
        kind: Option<String>,
        /// How many jobs the target runs at once.
        #[arg(long, alias = "max-concurrent-jobs")]
        max_instances: Option<i64>,
        /// Accepted for Azure ML scripts; not used locally.
        #[arg(long, hide = true)]
        min_instances: Option<i64>,
        #[arg(long, hide = true)]
        size: Option<String>,
    },
    /// List compute targets.
    List,
    /// Show a compute target.
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Submit a job spec; `--stream` follows its output until it ends.
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 's')]
        stream: bool,
    },
    /// Show a job.
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List jobs, newest first.
    List {
        #[arg(long, short = 'r', default_value_t = 50)]
        max_results: i64,
        /// Every job, however many.
        #[arg(long)]
        all_results: bool,
        #[arg(long, conflicts_with = "archived_only")]
        include_archived: bool,
        #[arg(long)]
        archived_only: bool,
        /// The steps of this pipeline job.
        #[arg(long)]
        parent_job_name: Option<String>,
    },
    /// Follow a job's output live until it ends (every step of a pipeline).
    Stream {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Cancel a job: its whole process tree is stopped.
    Cancel {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Download a job's outputs: `artifacts` by default, one with --output-name, or --all.
    Download {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'p', default_value = ".")]
        download_path: PathBuf,
        #[arg(long)]
        output_name: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Change a job's display_name, description, tags or properties.
    Update {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long = "set", value_name = "PATH=VALUE", required = true)]
        set: Vec<String>,
    },
    /// Hide a job from `list`.
    Archive {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Bring an archived job back.
    Restore {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Check a job spec without running it: errors and warnings name file, line and field.
    Validate {
        /// The job's YAML file.
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Override a field after loading: `--set inputs.lr=0.1` (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// The job's name (overrides `name:`).
        #[arg(long, short = 'n')]
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// A sampler on Branin, Hartmann-6 and 5-D Rosenbrock: one JSON line per function and seed.
    Sampler {
        /// bayesian or random.
        #[arg(long, default_value = "bayesian")]
        sampler: String,
        #[arg(long, default_value_t = 50)]
        trials: usize,
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Also time suggestions at this many trials (0: not).
        #[arg(long, default_value_t = 200)]
        timing_at: usize,
    },
    /// HTTP load: `concurrency` connections POST one body for `duration` seconds; prints one
    /// JSON line (requests, errors, requests per second, latency percentiles in ms).
    Load {
        #[arg(long)]
        url: String,
        #[arg(long)]
        body_file: PathBuf,
        /// `Name: value`, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of load before measuring (connections open, caches warm).
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
}

#[derive(Subcommand, Debug)]
pub enum BatchEndpointCmd {
    /// Create a batch endpoint from its YAML file.
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    List,
    /// Change an endpoint (-f FILE), or its default deployment
    /// (`--set defaults.deployment_name=NAME`).
    Update {
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Delete a batch endpoint and its deployments (the jobs it ran are kept).
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Score a file, a folder (uploaded from here), a data asset or a URL; prints the job.
    Invoke {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'd')]
        deployment_name: Option<String>,
        /// A local file or folder, a URL, `azureml:<data>:<version>` or `azureml:<data>@latest`.
        #[arg(long, alias = "input-data", alias = "input-path", alias = "input-local-path")]
        input: String,
        /// `uri_folder` or `uri_file` (a local path says which by itself).
        #[arg(long)]
        input_type: Option<String>,
        #[arg(long, short = 'm')]
        mini_batch_size: Option<u64>,
        #[arg(long, short = 'c')]
        instance_count: Option<u64>,
        #[arg(long)]
        job_name: Option<String>,
        /// `output_file_name=NAME`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Follow the job's log until it ends.
        #[arg(long, short = 's')]
        stream: bool,
    },
    /// The jobs an endpoint's invocations created.
    ListJobs {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BatchDeploymentCmd {
    /// Create a batch deployment from its YAML file.
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'e')]
        endpoint_name: Option<String>,
        /// Make it the endpoint's default deployment.
        #[arg(long)]
        set_default: bool,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Replace a batch deployment's spec.
    Update {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'e')]
        endpoint_name: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    Show {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'e')]
        endpoint_name: String,
    },
    List {
        #[arg(long, short = 'e')]
        endpoint_name: String,
    },
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'e')]
        endpoint_name: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OnlineEndpointCmd {
    /// Create an endpoint from its YAML file.
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, short = 'n')]
        name: Option<String>,
        /// `key` or `aml_token`.
        #[arg(long)]
        auth_mode: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    List,
    /// Change an endpoint: its YAML (-f), its traffic split, its mirror traffic.
    Update {
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// `"blue=90 green=10"`: percents of live traffic, adding up to 100.
        #[arg(long, short = 'r')]
        traffic: Option<String>,
        /// `"green=10"`: the share of requests copied to one deployment (answers dropped).
        #[arg(long)]
        mirror_traffic: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Delete an endpoint and its deployments.
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        /// Do not ask (nothing is asked here; accepted for scripts written for az ml).
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Send a request file to the endpoint's scoring URI and print the answer.
    Invoke {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'r')]
        request_file: PathBuf,
        /// Score with this deployment, whatever the traffic split says.
        #[arg(long, short = 'd')]
        deployment_name: Option<String>,
    },
    /// The endpoint's keys (key auth) or a fresh token (aml_token auth).
    GetCredentials {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Replace the primary or secondary key; the other keeps working.
    RegenerateKeys {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, default_value = "primary")]
        key_type: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OnlineDeploymentCmd {
    /// Create a deployment from its YAML file; waits until it serves (or failed).
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'e')]
        endpoint_name: Option<String>,
        /// Once ready, send all of the endpoint's traffic to it.
        #[arg(long)]
        all_traffic: bool,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Update a deployment (a new YAML file, or `--set instance_count=2`); the running one
    /// serves until the new one is ready.
    Update {
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, short = 'e')]
        endpoint_name: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
    Show {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'e')]
        endpoint_name: String,
    },
    List {
        #[arg(long, short = 'e')]
        endpoint_name: String,
    },
    /// Delete a deployment (it must get no traffic).
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'e')]
        endpoint_name: String,
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Print a deployment's log.
    GetLogs {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'e')]
        endpoint_name: String,
        #[arg(long, short = 'l', default_value_t = 5000)]
        lines: usize,
        /// `inference-server` or `storage-initializer` (one log here; accepted).
        #[arg(long, short = 'c')]
        container: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCmd {
    /// Create a schedule from its YAML file (or replace the one of that name). Its job file is
    /// read, checked and uploaded now, as `job create` does.
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        #[arg(long, short = 'n')]
        name: Option<String>,
    },
    /// Show a schedule, its next time and its recent fires.
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List enabled schedules (all with --include-disabled).
    List {
        #[arg(long, conflicts_with = "disabled_only")]
        include_disabled: bool,
        #[arg(long)]
        disabled_only: bool,
    },
    /// Change fields of a schedule: `--set trigger.expression="0 3 * * *"`.
    Update {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long = "set", value_name = "PATH=VALUE", required = true)]
        set: Vec<String>,
    },
    /// Turn a schedule on: it fires from its next time on (what it missed is not run).
    Enable {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Turn a schedule off.
    Disable {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Delete a schedule; the jobs it created are kept.
    Delete {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Address to listen on.
    #[arg(long, env = "KILN_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short = 'p', env = "KILN_PORT", default_value_t = 5000)]
    pub port: u16,
    /// Folder holding the workspace's state.
    #[arg(long, env = "KILN_DATA_DIR", default_value = ".kiln")]
    pub data_dir: PathBuf,
    /// Metadata store: `sqlite://PATH` or `postgresql://…` (default: SQLite in the data folder).
    #[arg(long, env = "KILN_STORE")]
    pub store: Option<String>,
    /// Artifact store: a folder or `s3://BUCKET/PREFIX` (default: `artifacts/` in the data folder).
    #[arg(long, env = "KILN_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Job environments, snapshots and downloads shared by this machine's jobs
    /// (default: `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`).
    #[arg(long, env = "KILN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// List experiments.
    List {
        #[arg(long)]
        filter: Option<String>,
        /// active, deleted or all.
        #[arg(long, value_enum, default_value_t = View::Active)]
        view: View,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum View {
    Active,
    Deleted,
    All,
}

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// List runs with their latest metrics.
    List {
        /// Experiment id (repeatable); all active experiments when left out.
        #[arg(long = "experiment", short = 'e')]
        experiments: Vec<String>,
        /// MLflow filter, e.g. "metrics.rmse < 1 and params.alpha = '0.5'".
        #[arg(long)]
        filter: Option<String>,
        /// Order, e.g. "metrics.rmse ASC".
        #[arg(long)]
        order_by: Option<String>,
        #[arg(long, default_value_t = 100)]
        max_results: i64,
    },
    /// Show one run: info, params, tags and latest metrics.
    Show { run_id: String },
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Register a model version from a local file or folder, a run's or job's artifacts, or a
    /// datastore path: a version of the MLflow registry's registered model of that name.
    Create(ModelCreateArgs),
    /// List registered models, or the versions of one with -n.
    List {
        /// MLflow filter over registered models, e.g. "name LIKE 'fraud%'".
        #[arg(long, conflicts_with = "name")]
        filter: Option<String>,
        #[arg(long, short = 'n')]
        name: Option<String>,
        #[arg(long, conflicts_with = "archived_only", requires = "name")]
        include_archived: bool,
        #[arg(long, requires = "name")]
        archived_only: bool,
    },
    /// Show a registered model with all its versions, or one version with -v or -l.
    Show {
        /// The model's name (or -n).
        #[arg(required_unless_present = "name_flag", conflicts_with = "name_flag")]
        name: Option<String>,
        #[arg(long = "name", short = 'n', value_name = "NAME")]
        name_flag: Option<String>,
        #[arg(long, short = 'v', conflicts_with = "label")]
        version: Option<String>,
        /// `latest`: the highest version that is not archived.
        #[arg(long, short = 'l')]
        label: Option<String>,
    },
    /// Move a version (or every version) to the Archived stage: left out of lists and @latest,
    /// still usable by version.
    Archive {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
    /// Undo archive.
    Restore {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ModelCreateArgs {
    /// A model YAML file (name, version, type, path, description, tags).
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The next number when left out.
    #[arg(long, short = 'v')]
    pub version: Option<String>,
    /// A local file or folder (uploaded), runs:/<run>/<path>, azureml://jobs/<job>/outputs/…,
    /// or azureml://datastores/<ds>/paths/<p>.
    #[arg(long, short = 'p')]
    pub path: Option<String>,
    /// custom_model (default), mlflow_model or triton_model.
    #[arg(long = "type", short = 't')]
    pub model_type: Option<String>,
    #[arg(long, short = 'd')]
    pub description: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    // Building an HTTP client loads the TLS roots (milliseconds): the server and a job's
    // launcher, which start often and talk to no one through it, skip that.
    let command = match args.command {
        Command::Up(up_args) => return up::run(up_args).await,
        Command::Launch { job_dir } => {
            kiln_launcher::launch(&job_dir).await;
            return Ok(());
        }
        Command::Bench(BenchCmd::Sampler { sampler, trials, seeds, timing_at }) => {
            return crate::bench::sampler(&sampler, trials, seeds, timing_at);
        }
        Command::Bench(BenchCmd::Load { url, body_file, headers, concurrency, duration, warmup }) => {
            return crate::bench::load(&url, &body_file, &headers, concurrency, duration, warmup).await;
        }
        other => other,
    };
    let client = Client::new(&args.url);
    let format = args.output;
    match command {
        // Handled above, before the client was built.
        Command::Up(_) | Command::Launch { .. } | Command::Bench(_) => Ok(()),
        Command::Experiments(ExperimentCmd::List { filter, view }) => {
            let view = match view {
                View::Active => "active",
                View::Deleted => "deleted",
                View::All => "all",
            };
            let mut all = Vec::new();
            let mut token = None;
            loop {
                let page = client.experiments(filter.clone(), Some(view.into()), token).await?;
                all.extend(page.experiments);
                match page.next_page_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            output::experiments(&all, format)
        }
        Command::Runs(RunCmd::List { experiments, filter, order_by, max_results }) => {
            let page = client.runs(&experiments, filter, order_by, Some(max_results)).await?;
            output::runs(&page.runs, format)
        }
        Command::Runs(RunCmd::Show { run_id }) => output::run(&client.run(&run_id).await?, format),
        Command::Models(cmd) => model(&client, cmd, format).await,
        Command::Data(cmd) => {
            let create = |a| assets::create_data(&client, a);
            let items = |p: kiln_api::DataPage| p.data;
            asset_command(&client, "data", cmd, create, items, output::data, format).await
        }
        Command::Component(cmd) => {
            let c = &client;
            let create = |a: ComponentCreateArgs| async move { jobs::create_component(c, &a.file, &a.set).await };
            let items = |p: kiln_api::ComponentPage| p.components;
            asset_command(&client, "components", cmd, create, items, output::components, format).await
        }
        Command::Environment(cmd) => {
            let create = |a| assets::create_environment(&client, a);
            let items = |p: kiln_api::EnvironmentPage| p.environments;
            asset_command(&client, "environments", cmd, create, items, output::environments, format).await
        }
        Command::Schedule(cmd) => schedule(&client, cmd, format).await,
        Command::OnlineEndpoint(cmd) => endpoints::endpoint(&client, cmd, format).await,
        Command::OnlineDeployment(cmd) => endpoints::deployment(&client, cmd, format).await,
        Command::BatchEndpoint(cmd) => endpoints::batch_endpoint(&client, cmd, format).await,
        Command::BatchDeployment(cmd) => endpoints::batch_deployment(&client, cmd, format).await,
        Command::Compute(ComputeCmd::Create { file, name, kind, max_instances, .. }) => {
            jobs::create_compute(&client, file, name, kind, max_instances, format).await
        }
        Command::Compute(ComputeCmd::List) => output::computes(&client.computes().await?.computes, format),
        Command::Compute(ComputeCmd::Show { name }) => output::computes(&[client.compute(&name).await?], format),
        Command::Job(JobCmd::Create { file, set, name, stream }) => {
            let job = jobs::create(&client, &file, set, name).await?;
            output::job(&job, format)?;
            if stream {
                jobs::stream(&client, &job.name).await?;
            }
            Ok(())
        }
        Command::Job(JobCmd::Show { name }) => {
            let job = client.job(&name).await?;
            output::job(&job, format)?;
            if job.kind == "pipeline" && matches!(format, Format::Table) {
                println!();
                output::pipeline_steps(&client.pipeline_graph(&name).await?.nodes);
            }
            if job.kind == "sweep" && matches!(format, Format::Table) {
                println!();
                output::sweep_trials(&client.sweep_trials(&name).await?);
            }
            Ok(())
        }
        Command::Job(JobCmd::List { max_results, all_results, include_archived, archived_only, parent_job_name }) => {
            let archived = archived_flag(include_archived, archived_only);
            let limit = if all_results { None } else { Some(max_results) };
            output::jobs(&client.jobs(archived, limit, parent_job_name).await?.jobs, format)
        }
        Command::Job(JobCmd::Stream { name }) => jobs::stream(&client, &name).await.map(|_| ()),
        Command::Job(JobCmd::Cancel { name }) => output::job(&client.job_action(&name, "cancel").await?, format),
        Command::Job(JobCmd::Archive { name }) => output::job(&client.job_action(&name, "archive").await?, format),
        Command::Job(JobCmd::Restore { name }) => output::job(&client.job_action(&name, "restore").await?, format),
        Command::Job(JobCmd::Update { name, set }) => {
            let update = jobs::update_from_sets(&set)?;
            output::job(&client.update_job(&name, &update).await?, format)
        }
        Command::Job(JobCmd::Download { name, download_path, output_name, all }) => {
            jobs::download(&client, &name, &download_path, output_name, all).await
        }
        Command::Job(JobCmd::Validate { file, mut set, name }) => {
            if let Some(name) = name {
                set.push(format!("name={name}"));
            }
            let loaded = kiln_spec::load_job(&file, &set)?;
            match &loaded.spec {
                kiln_spec::JobSpec::Pipeline(p) => {
                    let (graph, warnings) = jobs::check_pipeline(&client, p, &loaded.warnings).await?;
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    output::validated_pipeline(&file, p, graph.as_ref(), &warnings, format)
                }
                kiln_spec::JobSpec::Command(job) => {
                    for w in &loaded.warnings {
                        eprintln!("warning: {w}");
                    }
                    output::validated(&file, job, &loaded.warnings, format)
                }
                kiln_spec::JobSpec::Sweep(sweep) => {
                    for w in &loaded.warnings {
                        eprintln!("warning: {w}");
                    }
                    output::validated_sweep(&file, sweep, &loaded.warnings, format)
                }
            }
        }
    }
}

fn archived_flag(include_archived: bool, archived_only: bool) -> Option<&'static str> {
    if archived_only {
        Some("only")
    } else if include_archived {
        Some("include")
    } else {
        None
    }
}

async fn schedule(client: &Client, cmd: ScheduleCmd, format: Format) -> Result<()> {
    match cmd {
        ScheduleCmd::Create { file, set, name } => {
            output::schedule(&schedules::create(client, &file, set, name).await?, format)
        }
        ScheduleCmd::Show { name } => output::schedule(&client.schedule(&name).await?, format),
        ScheduleCmd::List { include_disabled, disabled_only } => {
            let disabled = if disabled_only {
                Some("only")
            } else if include_disabled {
                Some("include")
            } else {
                None
            };
            output::schedules(&client.schedules(disabled).await?.schedules, format)
        }
        ScheduleCmd::Update { name, set } => output::schedule(&schedules::update(client, &name, &set).await?, format),
        ScheduleCmd::Enable { name } => output::schedule(&client.schedule_action(&name, "enable").await?, format),
        ScheduleCmd::Disable { name } => output::schedule(&client.schedule_action(&name, "disable").await?, format),
        ScheduleCmd::Delete { name } => {
            client.delete_schedule(&name).await?;
            eprintln!("deleted schedule '{name}' (the jobs it created are kept)");
            Ok(())
        }
    }
}

async fn model(client: &Client, cmd: ModelCmd, format: Format) -> Result<()> {
    match cmd {
        ModelCmd::Create(a) => output::model_versions(&[assets::create_model(client, a).await?], format),
        ModelCmd::List { name: Some(name), include_archived, archived_only, .. } => output::model_versions(
            &client.model_versions(&name, archived_flag(include_archived, archived_only)).await?.models,
            format,
        ),
        ModelCmd::List { name: None, filter, .. } => output::models(&client.models(filter).await?.models, format),
        ModelCmd::Show { name, name_flag, version, label } => {
            let name = name.or(name_flag).unwrap_or_default();
            match version.or(label) {
                Some(v) => output::model_versions(&[client.asset("models", &name, &v).await?], format),
                None => output::model(&client.model(&name).await?, format),
            }
        }
        ModelCmd::Archive { name, version } => {
            Ok(client.asset_action("models", &name, "archive", version.as_deref()).await?)
        }
        ModelCmd::Restore { name, version } => {
            Ok(client.asset_action("models", &name, "restore", version.as_deref()).await?)
        }
    }
}

/// The asset commands every versioned kind shares; `kind` is its API path (`data`,
/// `environments`, `components`), `create` registers one, `items` takes a listing apart.
async fn asset_command<C, T, P, F>(
    client: &Client,
    kind: &str,
    cmd: AssetCmd<C>,
    create: impl FnOnce(C) -> F,
    items: impl FnOnce(P) -> Vec<T>,
    print: fn(&[T], Format) -> Result<()>,
    format: Format,
) -> Result<()>
where
    C: clap::Args,
    T: serde::de::DeserializeOwned,
    P: serde::de::DeserializeOwned,
    F: std::future::Future<Output = Result<T>>,
{
    match cmd {
        AssetCmd::Create(a) => print(&[create(a).await?], format),
        AssetCmd::Show { name, version, label } => {
            let v = version.or(label).unwrap_or_else(|| "latest".into());
            print(&[client.asset(kind, &name, &v).await?], format)
        }
        AssetCmd::List { name, include_archived, archived_only } => {
            let page: P = client.assets(kind, name, archived_flag(include_archived, archived_only)).await?;
            print(&items(page), format)
        }
        AssetCmd::Archive { name, version } => {
            Ok(client.asset_action(kind, &name, "archive", version.as_deref()).await?)
        }
        AssetCmd::Restore { name, version } => {
            Ok(client.asset_action(kind, &name, "restore", version.as_deref()).await?)
        }
    }
}
