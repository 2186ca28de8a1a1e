//! The Lambda function runtime: functions run as local `python3` / `node` processes that
//! speak the Lambda Runtime API, which this module serves.
//!
//! Each execution environment is one process running a small bootstrap from the repo
//! (`bootstrap.py`, `bootstrap.js`) in new user and network namespaces (only a loopback
//! interface inside: function code cannot reach the host's network), with
//! `RLIMIT_DATA` set to the function's memory size. The Runtime API (`GET
//! /2018-06-01/runtime/invocation/next`, `POST …/response`, `…/error`, `…/init/error`) is
//! HTTP/1.1 over a Unix socket pair handed to the process as its file descriptor 0, not
//! over TCP. The process's stdout and stderr share one pipe: the function's log.
//!
//! [`Runtime::invoke`] takes a warm environment of the function's current code and
//! configuration when one is idle, or starts a new one (up to [`MAX_ENVIRONMENTS`] per
//! function; further invokes wait), enforces the timeout by killing the process, and
//! returns what the handler answered with the log lines it wrote. It knows nothing of the
//! model or CloudWatch: the API layer turns an [`Outcome`] into the Invoke answer and the
//! `START`/`END`/`REPORT` log events.

pub mod zip;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Execution environments one function may have at once.
pub const MAX_ENVIRONMENTS: usize = 4;
/// How long the daemon waits for a process's last output after its answer.
const LOG_GRACE: Duration = Duration::from_secs(2);

const BOOTSTRAP_PY: &str = include_str!("bootstrap.py");
const BOOTSTRAP_JS: &str = include_str!("bootstrap.js");

/// Everything an environment needs to run one version of one function.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The pool this environment belongs to (account, region, function, version).
    pub key: String,
    /// Changes whenever code or configuration change: warm environments of another
    /// revision are discarded.
    pub revision: String,
    pub name: String,
    pub version: String,
    pub arn: String,
    pub region: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u64,
    pub timeout: Duration,
    pub environment: BTreeMap<String, String>,
    /// The deployment package, and its hex digest (the unpacked copy's folder name).
    pub zip: PathBuf,
    pub code_id: String,
    pub log_group: String,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Status {
    /// The handler's result (JSON bytes).
    Ok(Bytes),
    /// The handler raised: the runtime's error document.
    Error(Bytes),
    /// Importing the handler failed (the runtime's error document).
    InitError(Bytes),
    /// The timeout passed; the process was killed.
    TimedOut,
    /// The process ended without answering (exit status).
    Exited(String),
}

#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    /// Lines the function wrote (stdout and stderr), with their time in epoch ms.
    pub logs: Vec<(i64, String)>,
    pub duration: Duration,
    /// Set for the first invoke of a new environment.
    pub init: Option<Duration>,
    pub max_memory_mb: u64,
    pub log_stream: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "vpclab cannot confine function processes here: creating a user and network namespace failed ({0}); Lambda functions do not run without them (see docs/compute.md)"
    )]
    Namespaces(String),
    #[error("the {0} interpreter for this runtime is not installed")]
    Interpreter(String),
    #[error("cannot unpack the function's code: {0}")]
    Code(String),
    #[error("cannot start the function: {0}")]
    Spawn(String),
}

struct Job {
    request_id: String,
    payload: Bytes,
    deadline_ms: i64,
    arn: String,
    reply: oneshot::Sender<Status>,
}

struct Environment {
    child: tokio::process::Child,
    jobs: mpsc::Sender<Job>,
    logs: mpsc::UnboundedReceiver<(i64, String)>,
    stream: String,
    pid: Option<u32>,
    started: Instant,
    /// When the bootstrap first asked for an event (its handler is imported).
    ready: Arc<OnceLock<Instant>>,
    initialised: bool,
}

struct Pool {
    revision: String,
    idle: Vec<Environment>,
    permits: Arc<Semaphore>,
}

/// The function runtime of one daemon.
pub struct Runtime {
    root: PathBuf,
    clock: crate::model::Clock,
    pools: Mutex<HashMap<String, Pool>>,
    interpreters: Mutex<HashMap<&'static str, PathBuf>>,
    namespaces: OnceLock<Result<(), String>>,
}

impl Runtime {
    /// A runtime keeping unpacked code and the bootstraps under `root`.
    pub fn new(root: impl Into<PathBuf>, clock: crate::model::Clock) -> std::io::Result<Runtime> {
        let root = root.into();
        std::fs::create_dir_all(root.join("code"))?;
        std::fs::write(root.join("bootstrap.py"), BOOTSTRAP_PY)?;
        std::fs::write(root.join("bootstrap.js"), BOOTSTRAP_JS)?;
        Ok(Runtime {
            root,
            clock,
            pools: Mutex::new(HashMap::new()),
            interpreters: Mutex::new(HashMap::new()),
            namespaces: OnceLock::new(),
        })
    }

    fn now(&self) -> i64 {
        (self.clock)().0
    }

    /// Runs one invocation of `spec` with `payload` and waits for its end.
    pub async fn invoke(
        &self,
        spec: &Spec,
        payload: Bytes,
        request_id: &str,
    ) -> Result<Outcome, RunError> {
        let permits = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            let pool = pools.entry(spec.key.clone()).or_insert_with(|| Pool {
                revision: spec.revision.clone(),
                idle: Vec::new(),
                permits: Arc::new(Semaphore::new(MAX_ENVIRONMENTS)),
            });
            if pool.revision != spec.revision {
                pool.revision = spec.revision.clone();
                pool.idle.clear();
            }
            pool.permits.clone()
        };
        let _permit = permits
            .acquire_owned()
            .await
            .map_err(|_| RunError::Spawn("the runtime is shutting down".into()))?;
        let warm = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            pools.get_mut(&spec.key).and_then(|p| p.idle.pop())
        };
        let mut env = match warm {
            Some(e) => e,
            None => self.start(spec).await?,
        };
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let job = Job {
            request_id: request_id.to_string(),
            payload,
            deadline_ms: self.now() + i64::try_from(spec.timeout.as_millis()).unwrap_or(0),
            arn: spec.arn.clone(),
            reply: tx,
        };
        let sent = env.jobs.send(job).await.is_ok();
        let status = if !sent {
            Status::Exited("Runtime exited without providing a reason".into())
        } else {
            match tokio::time::timeout(spec.timeout, rx).await {
                Ok(Ok(s)) => s,
                Ok(Err(_)) => Status::Exited(exit_reason(&mut env.child).await),
                Err(_) => Status::TimedOut,
            }
        };
        // A new environment's import time is its Init Duration, not part of Duration.
        let ready = env.ready.get().copied().unwrap_or(started).max(started);
        let duration = ready.elapsed();
        let init = (!env.initialised).then(|| ready.duration_since(env.started));
        env.initialised = true;
        let mut logs = Vec::new();
        let healthy = matches!(status, Status::Ok(_) | Status::Error(_));
        if healthy {
            let marker = format!("\u{1e}{request_id}");
            let until = Instant::now() + LOG_GRACE;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, env.logs.recv()).await {
                    Ok(Some((_, l))) if l == marker => break,
                    Ok(Some(line)) => logs.push(line),
                    _ => break,
                }
            }
        } else {
            let _ = env.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_millis(500), env.child.wait()).await;
            while let Ok(line) = env.logs.try_recv() {
                if !line.1.starts_with('\u{1e}') {
                    logs.push(line);
                }
            }
        }
        let max_memory_mb = env.pid.map(peak_memory_mb).unwrap_or(0);
        let log_stream = env.stream.clone();
        if healthy {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pool) = pools.get_mut(&spec.key)
                && pool.revision == spec.revision
            {
                pool.idle.push(env);
            }
        }
        Ok(Outcome {
            status,
            logs,
            duration,
            init,
            max_memory_mb,
            log_stream,
        })
    }

    /// Discards every environment of a function (after DeleteFunction).
    pub fn forget(&self, key_prefix: &str) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|k, _| !k.starts_with(key_prefix));
    }

    fn interpreter(&self, runtime: &str) -> Result<PathBuf, RunError> {
        let (name, probe): (&'static str, &str) = if runtime.starts_with("python") {
            ("python3", "import sys; print(sys.executable)")
        } else {
            ("node", "console.log(process.execPath)")
        };
        let mut known = self.interpreters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = known.get(name) {
            return Ok(p.clone());
        }
        // Resolve the real executable once (version managers install shims that need
        // the daemon's environment, which a function does not get).
        let flag = if name == "node" { "-e" } else { "-c" };
        let out = std::process::Command::new(name)
            .args([flag, probe])
            .output()
            .map_err(|_| RunError::Interpreter(name.into()))?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !out.status.success() || !path.is_absolute() {
            return Err(RunError::Interpreter(name.into()));
        }
        known.insert(name, path.clone());
        Ok(path)
    }

    /// The unpacked code of a package, unpacking it on first use.
    fn code_dir(&self, spec: &Spec) -> Result<PathBuf, RunError> {
        let dir = self.root.join("code").join(&spec.code_id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let bytes = std::fs::read(&spec.zip).map_err(|e| RunError::Code(e.to_string()))?;
        let tmp =
            self.root
                .join("code")
                .join(format!(".tmp-{}-{}", spec.code_id, rand::random::<u32>()));
        std::fs::create_dir_all(&tmp).map_err(|e| RunError::Code(e.to_string()))?;
        if let Err(e) = zip::extract(&bytes, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(RunError::Code(e.to_string()));
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another invoke unpacked the same code first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }

    async fn start(&self, spec: &Spec) -> Result<Environment, RunError> {
        if let Err(e) = self.namespaces.get_or_init(probe_namespaces) {
            return Err(RunError::Namespaces(e.clone()));
        }
        let interpreter = self.interpreter(&spec.runtime)?;
        let code = self.code_dir(spec)?;
        let bootstrap = if spec.runtime.starts_with("python") {
            self.root.join("bootstrap.py")
        } else {
            self.root.join("bootstrap.js")
        };
        let stream = log_stream_name(self.now(), &spec.version);
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| RunError::Spawn(e.to_string()))?;
        let (log_r, log_w) = std::io::pipe().map_err(|e| RunError::Spawn(e.to_string()))?;
        let log_w2 = log_w
            .try_clone()
            .map_err(|e| RunError::Spawn(e.to_string()))?;
        let mut cmd = tokio::process::Command::new(&interpreter);
        cmd.arg(&bootstrap)
            .current_dir(&code)
            .env_clear()
            .envs(&spec.environment)
            .envs(reserved_env(spec, &code, &stream))
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                theirs,
            )))
            .stdout(log_w)
            .stderr(log_w2)
            .kill_on_drop(true)
            .process_group(0);
        sandbox::confine(&mut cmd, spec.memory_mb);
        let child = cmd.spawn().map_err(|e| RunError::Spawn(e.to_string()))?;
        drop(cmd);
        let pid = child.id();
        let (job_tx, job_rx) = mpsc::channel::<Job>(1);
        ours.set_nonblocking(true)
            .map_err(|e| RunError::Spawn(e.to_string()))?;
        let sock =
            tokio::net::UnixStream::from_std(ours).map_err(|e| RunError::Spawn(e.to_string()))?;
        let ready = Arc::new(OnceLock::new());
        tokio::spawn(serve_runtime_api(sock, job_rx, ready.clone()));
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let clock = self.clock.clone();
        let reader =
            tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(log_r))
                .map_err(|e| RunError::Spawn(e.to_string()))?;
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(reader).split(b'\n');
            while let Ok(Some(line)) = lines.next_segment().await {
                let text = String::from_utf8_lossy(&line).into_owned();
                if log_tx.send((clock().0, text)).is_err() {
                    break;
                }
            }
        });
        Ok(Environment {
            child,
            jobs: job_tx,
            logs: log_rx,
            stream,
            pid,
            started: Instant::now(),
            ready,
            initialised: false,
        })
    }
}

/// The variables AWS's runtimes define ("Defined runtime environment variables").
fn reserved_env(spec: &Spec, code: &Path, stream: &str) -> Vec<(String, String)> {
    let exec_env = if spec.runtime.starts_with("python") {
        format!("AWS_Lambda_{}", spec.runtime)
    } else {
        format!("AWS_Lambda_{}", spec.runtime.replace(".x", ""))
    };
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("PYTHONUNBUFFERED", "1".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ("HOME", "/tmp".into()),
        ("_HANDLER", spec.handler.clone()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("AWS_EXECUTION_ENV", exec_env),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_string()),
        ("AWS_LAMBDA_RUNTIME_API", "fd:0".into()),
        ("LAMBDA_TASK_ROOT", code.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `YYYY/MM/DD/[VERSION]` and 32 hex digits, AWS's log stream name for an environment.
pub fn log_stream_name(now_ms: i64, version: &str) -> String {
    let day = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}/{:02}/{:02}/[{version}]{:032x}",
        day.year(),
        u8::from(day.month()),
        day.day(),
        rand::random::<u128>()
    )
}

/// The peak resident memory of a process (`VmHWM`), in MB.
fn peak_memory_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb.div_ceil(1024))
        .unwrap_or(0)
}

async fn exit_reason(child: &mut tokio::process::Child) -> String {
    match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
        Ok(Ok(s)) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (s.code(), s.signal()) {
                (Some(c), _) => format!("Runtime exited with error: exit status {c}"),
                (_, Some(9)) => "Runtime exited with error: signal: killed".into(),
                (_, Some(sig)) => format!("Runtime exited with error: signal {sig}"),
                _ => "Runtime exited without providing a reason".into(),
            }
        }
        _ => "Runtime exited without providing a reason".into(),
    }
}

fn probe_namespaces() -> Result<(), String> {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"]);
    sandbox::confine_std(&mut cmd, 64);
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("the probe exited with {s}")),
        Err(e) => Err(e.to_string()),
    }
}

/// What the Runtime API answers on one environment's socket.
async fn serve_runtime_api(
    sock: tokio::net::UnixStream,
    jobs: mpsc::Receiver<Job>,
    ready: Arc<OnceLock<Instant>>,
) {
    struct Shared {
        jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
        current: Mutex<Option<(String, oneshot::Sender<Status>)>>,
    }
    let shared = Arc::new(Shared {
        jobs: tokio::sync::Mutex::new(jobs),
        current: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let shared = shared.clone();
        let ready = ready.clone();
        async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
            let resp = |status: u16, body: Bytes| {
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() =
                    hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
                r
            };
            let accepted = || resp(202, Bytes::from_static(br#"{"status":"OK"}"#));
            let r = match (method.as_str(), rest) {
                ("GET", "invocation/next") => {
                    let _ = ready.set(Instant::now());
                    let job = shared.jobs.lock().await.recv().await;
                    match job {
                        Some(job) => {
                            let mut r = resp(200, job.payload);
                            let h = r.headers_mut();
                            for (k, v) in [
                                ("Lambda-Runtime-Aws-Request-Id", job.request_id.clone()),
                                ("Lambda-Runtime-Deadline-Ms", job.deadline_ms.to_string()),
                                ("Lambda-Runtime-Invoked-Function-Arn", job.arn.clone()),
                                (
                                    "Lambda-Runtime-Trace-Id",
                                    format!(
                                        "Root=1-{:08x}-{:024x}",
                                        job.deadline_ms / 1000,
                                        rand::random::<u128>() >> 32
                                    ),
                                ),
                            ] {
                                if let (Ok(k), Ok(v)) = (
                                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                                    hyper::header::HeaderValue::from_str(&v),
                                ) {
                                    h.insert(k, v);
                                }
                            }
                            *shared.current.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some((job.request_id, job.reply));
                            r
                        }
                        None => resp(500, Bytes::new()),
                    }
                }
                ("POST", "init/error") => {
                    if let Some(job) = shared.jobs.lock().await.recv().await {
                        let _ = job.reply.send(Status::InitError(body));
                    }
                    accepted()
                }
                ("POST", other) => {
                    let (id, what) = other
                        .strip_prefix("invocation/")
                        .and_then(|r| r.split_once('/'))
                        .unwrap_or(("", ""));
                    let mut current = shared.current.lock().unwrap_or_else(|e| e.into_inner());
                    match current.take() {
                        Some((rid, reply))
                            if rid == id && (what == "response" || what == "error") =>
                        {
                            let _ = reply.send(if what == "response" {
                                Status::Ok(body)
                            } else {
                                Status::Error(body)
                            });
                            accepted()
                        }
                        other => {
                            *current = other;
                            resp(
                                400,
                                Bytes::from_static(
                                    br#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                                ),
                            )
                        }
                    }
                }
                _ => resp(404, Bytes::new()),
            };
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(sock), service)
        .await;
}

/// Confinement of a function process, set up between fork and exec.
#[allow(unsafe_code)]
mod sandbox {
    /// New user and network namespaces (the process sees only a loopback interface,
    /// down), and `RLIMIT_DATA` at the function's memory size: heap and anonymous
    /// mappings beyond it fail, as an out-of-memory function fails on Lambda.
    pub fn confine(cmd: &mut tokio::process::Command, memory_mb: u64) {
        let limit = memory_mb.saturating_mul(1 << 20);
        // SAFETY: the closure runs in the child between fork and exec; it calls only
        // unshare(2) and setrlimit(2), which are async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || setup(limit));
        }
    }

    pub fn confine_std(cmd: &mut std::process::Command, memory_mb: u64) {
        use std::os::unix::process::CommandExt as _;
        let limit = memory_mb.saturating_mul(1 << 20);
        // SAFETY: as in `confine`.
        unsafe {
            cmd.pre_exec(move || setup(limit));
        }
    }

    fn setup(limit: u64) -> std::io::Result<()> {
        // SAFETY: plain system calls on values owned by this frame.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let rl = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
