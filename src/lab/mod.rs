//! The lab engine: step-by-step labs that grade themselves by observing the learner's
//! running world.
//!
//! - [`spec`]: a lab as written (`lab.toml`, unknown keys rejected with file, line and
//!   key path).
//! - [`params`] and [`template`]: per-learner parameters drawn from a seed, and the
//!   `{{param}}` placeholders of pages and checks.
//! - [`resolve`]: the resolved lab (typed checks, valid references) and `lint`.
//! - [`grade`]: the checks (`resource`, `route`, `reach`, `ssh`, `dns`, `http`, `exec`,
//!   `file`, `quiz`, `all`/`any`/`not`), each pass, fail or error.
//! - [`progress`]: the hash-chained event log of each learner, in the state database.
//! - [`timing`]: time per step, from the progress log.
//! - [`report`]: signed reports (ed25519) that an instructor re-grades.
//! - [`service`]: the `/_vpclab/lab/…` routes of the API port (the CLI is the client).
//!
//! What it leaves to others: the lab files (`labs/`), the command line (`cli::lab`),
//! packet decisions (the fabric, asked through `world`), DNS answers (`dns`).

pub mod grade;
pub mod params;
pub mod progress;
pub mod report;
pub mod resolve;
pub mod service;
pub mod spec;
pub mod template;
pub mod timing;

/// Every lab folder under `root`, in name order (`01-…`, `02-…`).
/// The learner id used when none is given: `$VPCLAB_LEARNER`, else `$USER`, else
/// `learner` (the CLI's default, and the console's outside a classroom).
pub fn default_learner() -> String {
    std::env::var("VPCLAB_LEARNER")
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "learner".to_string())
}

pub fn lab_dirs(root: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out: Vec<std::path::PathBuf> =
        anyhow::Context::with_context(std::fs::read_dir(root), || {
            format!("cannot read {}", root.display())
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("lab.toml").is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The folder of lab `id` (`<id>` or `<NN>-<id>`).
pub fn find_lab(root: &std::path::Path, id: &str) -> anyhow::Result<std::path::PathBuf> {
    for d in lab_dirs(root)? {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let bare = name
            .split_once('-')
            .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
            .map_or(name, |(_, r)| r);
        if name == id || bare == id {
            return Ok(d);
        }
    }
    anyhow::bail!("no lab {id:?} in {} (vpclab lab list)", root.display())
}

#[cfg(test)]
mod properties;

/// Every lab of the curriculum (`labs/` of the source tree) lints clean, and each of
/// them, given a key it does not know, is rejected with its file, line and key path
/// (hickory's "feed every example config an unknown key").
#[cfg(test)]
mod curriculum {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn lab_dirs() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .expect("labs/ exists")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.join("lab.toml").is_file())
            .collect();
        dirs.sort();
        dirs
    }

    #[test]
    fn every_lab_parses_resolves_and_lints_clean() {
        let dirs = lab_dirs();
        assert!(dirs.len() >= 2, "the curriculum has labs: {dirs:?}");
        let known: BTreeSet<String> = dirs
            .iter()
            .map(|d| super::spec::load(d).expect("parses").id)
            .collect();
        for d in &dirs {
            let problems = super::resolve::lint(d, &known);
            assert!(problems.is_empty(), "{}: {problems:#?}", d.display());
            let a = super::resolve::load(d, "ann", "").expect("resolves");
            let b = super::resolve::load(d, "bob", "").expect("resolves");
            let again = super::resolve::load(d, "ann", "").expect("resolves");
            assert_eq!(a.params, again.params, "same seed, same parameters");
            if !a.params.is_empty() {
                assert_ne!(a.params, b.params, "{}: two learners differ", d.display());
            }
        }
    }

    #[test]
    fn every_lab_rejects_an_unknown_key_with_file_line_and_key_path() {
        for d in lab_dirs() {
            let file = d.join("lab.toml");
            let text = std::fs::read_to_string(&file).expect("read");
            // Insert a misspelt key right after the first check's id.
            let at = text.find("[[steps.checks]]\n").expect("a check");
            let line_end = at + "[[steps.checks]]\n".len();
            let mut bad = text.clone();
            bad.insert_str(line_end, "protcol = \"tcp\"\n");
            let expected_line = bad[..line_end].matches('\n').count() + 1;
            let e = super::spec::parse(&file, &bad).expect_err("unknown key");
            assert_eq!(e.file, file);
            assert_eq!(e.line, expected_line, "{e}");
            assert_eq!(e.key, "steps[0].checks[0].protcol", "{e}");
            assert!(e.message.contains("unknown field `protcol`"), "{e}");
        }
    }
}
