# Everyday recipes. CI (.ci/run) calls the same ones.

default:
    @just --list

# Install what the tests need (aws CLI, boto3, dig) and run every test.
test:
    bash scripts/test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: each prints a last line starting with BENCH.
bench:
    cargo bench -p vpclab-netstack
    cargo bench -p vpclab --bench api
    cargo bench --bench ssh
    cargo bench -p vpclab --bench console
    cargo bench -p vpclab --bench observe
    cargo bench -p vpclab --bench sandbox
    cargo bench --bench labs
    cargo bench --bench class
    cargo test --release --test dns_bench -- --ignored --nocapture

# The load run of issue 10 (500 SSH logins, 20 API clients for 30 s, slowloris), loopback only.
load:
    cargo bench --bench load

# Fuzz every parser SECONDS each with cargo-fuzz (needs `rustup toolchain install
# nightly` and `cargo install cargo-fuzz`; not part of CI, which runs the proptest
# properties instead). Crashes land in fuzz/artifacts/<target>/.
fuzz SECONDS="60":
    for t in query xml_read sigv4 dns_answer shell_parse lab_spec; do cargo +nightly fuzz run "$t" -- -max_total_time={{SECONDS}} || exit 1; done

# Run vpclab on its embedded defaults (SQLite state, loopback ports).
run *ARGS:
    cargo run --release -- up {{ARGS}}

# What CI runs.
ci: lint test
