//! `vpclab class …`: make and keep a course (docs/teaching.md). `init` creates the course
//! folder from a roster CSV; `add-learner`, `remove-learner` and `list` keep the roster;
//! `credentials` prints what a learner pastes (or writes an AWS CLI profile); `grades`
//! prints the gradebook. The daemon serves the course with `vpclab up --class COURSE_DIR`.
//! A course made with `--database postgres://…` keeps its roster, progress and grades in
//! PostgreSQL, and every command that reads them takes the same `--database`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::class::{Course, Learner, NewLearner};
use crate::cli::outln;

#[derive(Debug, Args)]
pub struct ClassArgs {
    #[command(subcommand)]
    pub command: ClassCommand,
    /// The PostgreSQL database of a course's roster, progress and grades (default: the
    /// course folder's course.db).
    #[arg(long, global = true, value_name = "postgres://…")]
    pub database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClassCommand {
    /// Create a course folder: secret, instructor key, the labs' copies, the roster.
    Init {
        /// The course folder to create.
        dir: PathBuf,
        /// Lab ids, comma-separated (`first-instance,custom-vpc`).
        #[arg(long, value_delimiter = ',', required = true)]
        labs: Vec<String>,
        /// Labs run in assessed mode (no hints, no skip, no solutions), comma-separated.
        #[arg(long, value_delimiter = ',')]
        assessed: Vec<String>,
        /// The roster: CSV, `learner[,name]` a line.
        #[arg(long, value_name = "CSV")]
        learners: PathBuf,
        /// The course's name (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Where the labs are (as for `vpclab lab`).
        #[arg(long = "labs-dir", value_name = "DIR")]
        labs_dir: Option<PathBuf>,
    },
    /// Add a learner (a new account, key pair and console password).
    AddLearner {
        dir: PathBuf,
        learner: String,
        /// How the dashboard shows them.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a learner: their key stops working when the daemon next starts.
    RemoveLearner { dir: PathBuf, learner: String },
    /// List the roster.
    List {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print a learner's `export` line and `vpclab ssh-config` line (`instructor` for the
    /// instructor's key).
    Credentials {
        dir: PathBuf,
        learner: String,
        /// The API endpoint learners reach (default: the running daemon's, else
        /// http://127.0.0.1:4566).
        #[arg(long)]
        endpoint: Option<String>,
        /// Write an AWS CLI profile `vpclab-LEARNER` into ~/.aws/config and
        /// ~/.aws/credentials (or $AWS_CONFIG_FILE, $AWS_SHARED_CREDENTIALS_FILE).
        #[arg(long)]
        write_profile: bool,
    },
    /// Print the gradebook as CSV: a row per learner, three columns per lab.
    Grades { dir: PathBuf },
}

pub fn run(args: ClassArgs) -> anyhow::Result<ExitCode> {
    let database = args.database.as_deref();
    match args.command {
        ClassCommand::Init {
            dir,
            labs,
            assessed,
            learners,
            name,
            labs_dir,
        } => {
            let root = super::lab::labs_root(labs_dir.as_deref())?;
            let name = name.unwrap_or_else(|| {
                dir.file_name()
                    .map_or_else(|| "course".into(), |n| n.to_string_lossy().into_owned())
            });
            let (course, instructor_pw, added) =
                Course::init(&dir, &name, &root, &labs, &assessed, &learners, database)?;
            outln!(
                "course {} in {}: {} learners, labs {}",
                course.file.name,
                dir.display(),
                added.len(),
                course.file.labs.join(", ")
            )?;
            outln!("Console passwords (shown once; stored hashed):")?;
            outln!("  instructor  {instructor_pw}")?;
            print_passwords(&added)?;
            outln!("Serve it: vpclab up --class {}", dir.display())?;
        }
        ClassCommand::AddLearner { dir, learner, name } => {
            let course = Course::open(&dir, database)?;
            let display = name.unwrap_or_else(|| learner.clone());
            let added = course.add_learner(&learner, &display)?;
            outln!(
                "added {} (account {}); restart the daemon for the key to work",
                added.learner.name,
                added.learner.account
            )?;
            print_passwords(&[added])?;
        }
        ClassCommand::RemoveLearner { dir, learner } => {
            let course = Course::open(&dir, database)?;
            let l = course.remove_learner(&learner)?;
            outln!(
                "removed {} (account {} is kept in the state and never reused)",
                l.name,
                l.account
            )?;
        }
        ClassCommand::List { dir, json } => {
            let course = Course::open(&dir, database)?;
            let learners = course.learners()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&learners)?)?;
            } else {
                outln!(
                    "{:<20} {:<14} {:<22} name",
                    "learner",
                    "account",
                    "access key"
                )?;
                for l in &learners {
                    outln!(
                        "{:<20} {:<14} {:<22} {}",
                        l.name,
                        l.account,
                        l.access_key,
                        l.display
                    )?;
                }
            }
        }
        ClassCommand::Credentials {
            dir,
            learner,
            endpoint,
            write_profile,
        } => {
            let course = Course::open(&dir, database)?;
            let endpoint = match endpoint {
                Some(e) => e,
                None => running_endpoint(&course.state_dir())
                    .unwrap_or_else(|| "http://127.0.0.1:4566".into()),
            };
            let (key, secret, name) = if learner == "instructor" {
                let i = &course.file.instructor;
                (i.access_key.clone(), i.secret_key.clone(), None)
            } else {
                let l: Learner = course.learner(&learner)?;
                (l.access_key, l.secret_key, Some(l.name))
            };
            if write_profile {
                let profile = format!("vpclab-{learner}");
                write_profile_files(&profile, &endpoint, &key, &secret)?;
                outln!("wrote profile {profile}: aws --profile {profile} ec2 describe-vpcs")?;
            } else {
                let who = name
                    .map(|n| format!(" VPCLAB_LEARNER={n}"))
                    .unwrap_or_default();
                outln!(
                    "export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1{who}"
                )?;
                outln!("vpclab ssh-config --endpoint {endpoint} >> ~/.ssh/config")?;
            }
        }
        ClassCommand::Grades { dir } => {
            let course = Course::open(&dir, database)?;
            let members: Vec<_> = course
                .learners()?
                .into_iter()
                .map(|l| crate::class::dashboard::Member {
                    name: l.name,
                    display: l.display,
                    account: l.account,
                })
                .collect();
            let scores = course.store.grades()?;
            crate::cli::out!(
                "{}",
                crate::class::dashboard::scores_csv(&course, &members, &scores)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_passwords(added: &[NewLearner]) -> anyhow::Result<()> {
    for a in added {
        outln!(
            "  {:<10}  {}  (account {})",
            a.learner.name,
            a.password,
            a.learner.account
        )?;
    }
    Ok(())
}

fn running_endpoint(state: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state.join("endpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["api"].as_str().map(str::to_string)
}

/// Replaces (or adds) one `[header]` section of an INI-style AWS file.
fn put_section(path: &Path, header: &str, lines: &[String]) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    let mut skipping = false;
    for line in old.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = t == header;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(header);
    out.push('\n');
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(out.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_profile_files(
    profile: &str,
    endpoint: &str,
    key: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let home = dirs::home_dir().context("no home directory")?;
    let config =
        std::env::var_os("AWS_CONFIG_FILE").map_or_else(|| home.join(".aws/config"), PathBuf::from);
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map_or_else(|| home.join(".aws/credentials"), PathBuf::from);
    put_section(
        &config,
        &format!("[profile {profile}]"),
        &[
            "region = us-east-1".to_string(),
            format!("endpoint_url = {endpoint}"),
        ],
    )?;
    put_section(
        &creds,
        &format!("[{profile}]"),
        &[
            format!("aws_access_key_id = {key}"),
            format!("aws_secret_access_key = {secret}"),
        ],
    )
}
