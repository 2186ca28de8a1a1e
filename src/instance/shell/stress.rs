//! `stress` and `stress-ng`: load generators that burn real CPU time on the instance's
//! behalf, so that `CPUUtilization` rises the way it does on EC2 when a learner runs
//! them (and alarms on it fire).
//!
//! Only CPU hogs are emulated (`--cpu N`, and stress-ng's `--cpu-load P`); the I/O,
//! memory and disk hogs are refused with a message. Each hog is an OS thread that spins
//! and charges the CPU time it really got, measured per thread
//! (`CLOCK_THREAD_CPUTIME_ID`), to the instance ([`InstanceState::add_cpu_time`]). An
//! instance cannot use more than its vCPUs, so at most one thread per vCPU spins, however
//! many hogs are asked for (on EC2 the extra hogs share the same vCPUs).
//!
//! Bounds, because the threads are the host's: a run lasts at most [`RUN_CAP`]; Ctrl-C,
//! the end of the SSH session and the instance stopping end it at once (the hogs look at
//! a flag between slices of 10 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Io, Shell};
use crate::instance::InstanceState;

/// The longest one run burns CPU: long enough for two 5-minute basic-monitoring
/// periods, short enough that a forgotten `stress` does not hold a host core for good.
pub const RUN_CAP: Duration = Duration::from_secs(15 * 60);

/// How long a hog spins before it checks its flag and charges its CPU time.
const SLICE: Duration = Duration::from_millis(10);

/// What was asked for.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    hogs: u32,
    timeout: Option<Duration>,
    /// stress-ng's `--cpu-load`: the share of each slice a hog spins (1–100).
    load_pct: u32,
    quiet: bool,
}

fn parse(name: &str, args: &[String]) -> Result<Plan, String> {
    let ng = name == "stress-ng";
    let mut plan = Plan {
        hogs: 0,
        timeout: None,
        load_pct: 100,
        quiet: false,
    };
    let mut cpu_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // `--opt=value` and `--opt value` both work.
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name}: option '{what}' requires an argument"))
        };
        match flag {
            "-c" | "--cpu" => {
                let v = value(flag)?;
                plan.hogs = v
                    .parse()
                    .map_err(|_| format!("{name}: invalid number of cpu hogs '{v}'"))?;
                cpu_given = true;
            }
            "-t" | "--timeout" => {
                let v = value(flag)?;
                plan.timeout =
                    Some(duration(&v).ok_or_else(|| format!("{name}: invalid timeout '{v}'"))?);
            }
            "-l" | "--cpu-load" if ng => {
                let v = value(flag)?;
                plan.load_pct = v
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (0..=100).contains(p))
                    .ok_or_else(|| {
                        format!("{name}: --cpu-load must be in the range 0 to 100, got '{v}'")
                    })?;
            }
            "-q" | "--quiet" => plan.quiet = true,
            "-v" | "--verbose" | "--metrics-brief" | "--metrics" => {}
            "-i" | "--io" | "-m" | "--vm" | "-d" | "--hdd" | "--vm-bytes" | "--hdd-bytes" => {
                return Err(format!(
                    "{name}: only CPU hogs (--cpu) are emulated on vpclab instances ('{flag}' is not)"
                ));
            }
            _ => return Err(format!("{name}: unrecognized option '{a}'")),
        }
    }
    if !cpu_given {
        return Err(format!(
            "Usage: {name} --cpu N [--timeout T]{}",
            if ng { " [--cpu-load P]" } else { "" }
        ));
    }
    Ok(plan)
}

/// `60`, `60s`, `5m`, `1h`, `1d` (stress and stress-ng take the same suffixes).
fn duration(v: &str) -> Option<Duration> {
    let (n, mul) = match v.char_indices().last()? {
        (i, c) if i > 0 && c.is_ascii_alphabetic() => (
            &v[..i],
            match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return None,
            },
        ),
        _ => (v, 1),
    };
    let n: u64 = n.parse().ok()?;
    Some(Duration::from_secs(n.checked_mul(mul)?))
}

/// The calling thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel
    // knows. On failure the value stays zero and nothing is charged.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// One hog: spin `load_pct` of every slice until `stop`, charging the CPU time it got.
fn hog(inst: Arc<InstanceState>, stop: Arc<AtomicBool>, load_pct: u32) {
    let busy = SLICE.mul_f64(f64::from(load_pct) / 100.0);
    let mut charged = thread_cpu_time();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) && !inst.halted() {
        let start = Instant::now();
        while start.elapsed() < busy {
            for _ in 0..1024 {
                x = std::hint::black_box(x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d));
            }
        }
        let now = thread_cpu_time();
        inst.add_cpu_time(now.saturating_sub(charged));
        charged = now;
        if busy < SLICE {
            std::thread::sleep(SLICE - busy);
        }
    }
}

/// Ends the hogs when the command ends, whichever way (Ctrl-C drops the future).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `stress --cpu N [--timeout T]`, `stress-ng --cpu N [--cpu-load P] [--timeout T]`.
pub(super) async fn stress(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    let plan = match parse(name, args) {
        Ok(p) => p,
        Err(e) => {
            io.err.line(&e);
            return 1;
        }
    };
    let inst = sh.inst.clone();
    let profile = inst.profile();
    let vcpus = crate::catalog::instance_type(&profile.instance_type).map_or(1, |t| t.vcpus);
    // stress-ng's `--cpu 0` means one hog per CPU.
    let hogs = if plan.hogs == 0 { vcpus } else { plan.hogs };
    // A made-up but stable process id for the messages.
    let pid = 2000 + (inst.cpu_time().as_millis() % 7000) as u32;
    let tag = if name == "stress-ng" {
        format!("{name}: info:  [{pid}]")
    } else {
        format!("{name}: info: [{pid}]")
    };
    if !plan.quiet {
        if name == "stress-ng" {
            if let Some(t) = plan.timeout {
                io.out.line(&format!(
                    "{tag} setting to a {} secs run per stressor",
                    t.as_secs()
                ));
            }
            io.out.line(&format!("{tag} dispatching hogs: {hogs} cpu"));
        } else {
            io.out.line(&format!(
                "{tag} dispatching hogs: {hogs} cpu, 0 io, 0 vm, 0 hdd"
            ));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let threads = hogs.min(vcpus).max(1);
    for i in 0..threads {
        let (inst, stop) = (inst.clone(), stop.clone());
        let load = plan.load_pct;
        let spawned = std::thread::Builder::new()
            .name(format!("stress-{i}"))
            .spawn(move || hog(inst, stop, load));
        if let Err(e) = spawned {
            io.err
                .line(&format!("{name}: FAIL: [{pid}] cannot fork hog: {e}"));
            return 1;
        }
    }
    let began = Instant::now();
    let run = plan.timeout.unwrap_or(RUN_CAP).min(RUN_CAP);
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    if !plan.quiet {
        let took = began.elapsed().as_secs_f64();
        if name == "stress-ng" {
            io.out
                .line(&format!("{tag} successful run completed in {took:.2} secs"));
        } else {
            io.out.line(&format!(
                "{tag} successful run completed in {}s",
                took.round()
            ));
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_cpu_hog_options_of_both_tools() {
        let p = parse("stress", &args("--cpu 2 --timeout 30s")).unwrap();
        assert_eq!((p.hogs, p.timeout), (2, Some(Duration::from_secs(30))));
        let p = parse("stress-ng", &args("-c 0 -t 2m --cpu-load=40")).unwrap();
        assert_eq!(
            (p.hogs, p.timeout, p.load_pct),
            (0, Some(Duration::from_secs(120)), 40)
        );
    }

    #[test]
    fn refuses_what_is_not_emulated_or_malformed() {
        assert!(
            parse("stress", &args("--vm 1"))
                .unwrap_err()
                .contains("only CPU hogs")
        );
        assert!(
            parse("stress", &args("--cpu x"))
                .unwrap_err()
                .contains("invalid number")
        );
        assert!(
            parse("stress", &args("--cpu 1 --timeout 5x"))
                .unwrap_err()
                .contains("timeout")
        );
        assert!(
            parse("stress", &args("--cpu-load 5 --cpu 1")).is_err(),
            "stress-ng only"
        );
        assert!(parse("stress-ng", &args("--cpu 1 --cpu-load 101")).is_err());
        assert!(parse("stress", &args("")).unwrap_err().starts_with("Usage"));
    }

    #[test]
    fn a_hog_charges_real_cpu_time_and_stops_on_its_flag() {
        let p = crate::instance::InstanceProfile::example(
            crate::instance::Image::AmazonLinux2023,
            std::net::Ipv4Addr::new(10, 0, 1, 5),
        );
        let net = crate::instance::FakeNet::new(p.private_ip, 24, &p.mac);
        let inst = InstanceState::launch(p, net);
        let stop = Arc::new(AtomicBool::new(false));
        let t = {
            let (inst, stop) = (inst.clone(), stop.clone());
            std::thread::spawn(move || hog(inst, stop, 100))
        };
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        let used = inst.cpu_time();
        // Some CPU was really used (even on a loaded machine), never more than the wall time.
        assert!(used > Duration::from_millis(5), "{used:?}");
        assert!(used < Duration::from_millis(600), "{used:?}");
    }
}
