//! Command-line flags, parsed once into typed commands.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use kiln_client::Client;

use crate::output::{self, Format};
use crate::up;

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
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
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
    /// List registered models.
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show a registered model with all its versions.
    Show { name: String },
}

pub async fn run(args: Args) -> Result<()> {
    let client = Client::new(&args.url);
    let format = args.output;
    match args.command {
        Command::Up(up_args) => up::run(up_args).await,
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
        Command::Models(ModelCmd::List { filter }) => output::models(&client.models(filter).await?.models, format),
        Command::Models(ModelCmd::Show { name }) => output::model(&client.model(&name).await?, format),
        Command::Job(JobCmd::Validate { file, mut set, name }) => {
            if let Some(name) = name {
                set.push(format!("name={name}"));
            }
            let loaded = kiln_spec::load_command_job(&file, &set)?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            output::validated(&file, &loaded, format)
        }
    }
}
