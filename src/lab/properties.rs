//! Lab files never panic the engine (issue 10): every lab of the curriculum, cut, spliced
//! and sprinkled with TOML punctuation at random places, lints to a list of errors (each
//! naming the file) or to nothing, and never panics, in the parser or in the resolver.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

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

/// Copies `dir` (one level of subdirectories, as labs are laid out) into `to`.
fn copy_lab(dir: &Path, to: &Path) {
    for entry in std::fs::read_dir(dir).expect("read lab dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            for f in std::fs::read_dir(&path).expect("read subdir") {
                let f = f.expect("entry").path();
                std::fs::copy(&f, target.join(f.file_name().expect("name"))).expect("copy");
            }
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// One edit of the text: cut a range, or insert a fragment, at a place chosen by `at`.
#[derive(Debug, Clone)]
enum Edit {
    Cut { at: usize, len: usize },
    Insert { at: usize, text: String },
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragments = proptest::sample::select(
        &[
            "[",
            "]",
            "[[",
            "]]",
            "=",
            "\"",
            "'",
            "{",
            "}",
            ",",
            "\n",
            "#",
            ".",
            "{{",
            "}}",
            "\"\"\"",
            "kind = \"reach\"",
            "id = \"x\"",
            "points = -1",
            "port = 99999",
            "[[steps]]",
            "[[steps.checks]]",
            "[params]",
            "cidr = { within = \"10.0.0.0/8\", prefix = 33 }",
            "expect = \"maybe\"",
            "retry_seconds = 1e400",
            "\u{feff}",
            "é",
            "{{nope}}",
        ][..],
    );
    prop_oneof![
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Cut { at, len }),
        (any::<usize>(), fragments).prop_map(|(at, t)| Edit::Insert {
            at,
            text: t.to_string()
        }),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let boundary = |at: usize| {
        let mut i = at % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match e {
        Edit::Cut { at, len } => {
            let start = boundary(*at);
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert { at, text: t } => {
            let i = boundary(*at);
            format!("{}{t}{}", &text[..i], &text[i..])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn edited_lab_files_lint_without_panicking(
        which in any::<usize>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let dirs = lab_dirs();
        let dir = &dirs[which % dirs.len()];
        let scratch = tempfile::tempdir().expect("tempdir");
        copy_lab(dir, scratch.path());
        let original = std::fs::read_to_string(dir.join("lab.toml")).expect("read lab.toml");
        let text = edits.iter().fold(original, |t, e| apply(&t, e));
        std::fs::write(scratch.path().join("lab.toml"), &text).expect("write lab.toml");
        let known: BTreeSet<String> = BTreeSet::new();
        for error in super::resolve::lint(scratch.path(), &known) {
            prop_assert!(error.file.starts_with(scratch.path()), "{error:?}");
        }
        // Resolving for a learner (what `lab start` does) holds up too.
        let _ = super::resolve::load(scratch.path(), "learner-1", "secret");
    }
}
