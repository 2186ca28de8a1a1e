//! vpclab: a private, offline copy of AWS networking for learners.
//!
//! - [`model`]: the resources of every account's world, AWS validation rules, durable
//!   state (SQLite) and the change feed the fabric subscribes to.
//! - [`api`]: the AWS wire protocols (EC2 Query today), rendering what the model says.
//! - [`cli`]: the `vpclab` subcommands.
//! - [`keys`]: key-pair material with AWS's formats and fingerprints.
//! - [`catalog`]: the machine images and instance types every world offers.
//! - [`instance`]: inside an instance: SSH server, emulated shell, SFTP, IMDS, boot.
//! - [`http1`]: HTTP/1.1 for every host inside a world (hyper over fabric streams).
//! - [`function`]: Lambda functions as local processes on the Runtime API.
//! - [`world`]: the per-account runtime: the fabric, internet, instances and resolvers.
//! - [`lab`]: the lab engine: lab files, per-learner parameters, the grader, progress.
//! - [`console`]: the web console (HTML pages, the VPC picture, live updates) on the API port.

pub mod api;
pub mod catalog;
pub mod class;
pub mod cli;
pub mod console;
pub mod daemon;
pub mod dns;
pub mod function;
pub mod http1;
pub mod instance;
pub mod keys;
pub mod lab;
pub mod model;
pub mod tls;
pub mod world;

/// The dependency direction of ARCHITECTURE.md, checked against the source: a module
/// may use modules of lower layers only (`cli → daemon → class → {lab, console} → {api, world} → {instance, dns}
/// → model → {keys, catalog}`), never one of its own layer or above.
#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Each top-level module and its layer (higher uses lower).
    const LAYERS: &[(&str, u8)] = &[
        ("keys", 0),
        ("catalog", 0),
        ("http1", 0),
        ("tls", 0),
        ("model", 1),
        ("instance", 2),
        ("dns", 2),
        ("function", 2),
        ("api", 3),
        ("world", 3),
        ("lab", 4),
        ("console", 4),
        ("class", 5),
        ("daemon", 6),
        ("cli", 7),
    ];

    fn layer(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
    }

    fn visit(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                visit(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_uses_a_module_of_its_own_layer_or_above() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        visit(&src, &mut files);
        let mut violations = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .map(|s| s.trim_end_matches(".rs").to_string())
                .expect("a file name");
            let Some(own) = layer(&top) else {
                continue; // lib.rs, main.rs
            };
            let text = std::fs::read_to_string(&file).expect("read source");
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (i, _) in line.match_indices("crate::") {
                    let used: String = line[i + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    // Itself, or an exported macro (they live at the crate root).
                    if used == top || used.starts_with("__") {
                        continue;
                    }
                    match layer(&used) {
                        Some(l) if l < own => {}
                        _ => violations.push(format!(
                            "{}:{}: {top} uses {used}",
                            rel.display(),
                            n + 1
                        )),
                    }
                }
            }
        }
        assert!(
            violations.is_empty(),
            "upward or sideways dependencies:\n{}",
            violations.join("\n")
        );
    }
}
