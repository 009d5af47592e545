//! docs/security.md J7: the fuzz smoke. Every cargo-fuzz target's body (`fuzz/bodies.rs`,
//! shared by path with `fuzz/fuzz_targets/`) runs on the stable toolchain over its seed
//! corpus (`fuzz/seeds/<target>/`) and `FUZZ_SMOKE_CASES` (default 3,000) generated inputs
//! per target: random bytes, random printable text, and seeds mutated by byte edits and by
//! splicing in the parsers' metacharacters. A panic fails the test with the (shrunk) input.
//! `bash .ci/fuzz` stays the real, coverage-guided run (60 s per target).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[path = "../../fuzz/bodies.rs"]
mod bodies;

/// Fragments the parsers give meaning to, spliced into seeds.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%00",
    b"%2F",
    b"%zz",
    b"+",
    b"&",
    b"=",
    b"&&",
    b"==",
    b"\0",
    b"\n",
    b"\r\n",
    b"\xff",
    b"\xc3",
    b":",
    b"/",
    b"..",
    b"./",
    b"?",
    b"#",
    b"@",
    b"[",
    b"]",
    b".",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"null",
    b"[]",
    b"{}",
    b"-1",
    b"1e999",
    b"Basic ",
    b"basic ",
    b"Bearer ",
    b"=====",
    b"tsr_",
    b"http://127.0.0.1:",
    b"http://[::1]:",
    b"https://",
];

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{}: no seeds", dir.display());
    out
}

/// One edit of a seed: (position, byte, kind).
fn mutate(mut input: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, byte, kind) in edits {
        let len = input.len();
        let pos = if len == 0 { 0 } else { at % (len + 1) };
        match kind {
            0 if pos < len => input[pos] = byte,
            1 => input.insert(pos, byte),
            2 if pos < len => {
                input.remove(pos);
            }
            3 => {
                let token = TOKENS[usize::from(byte) % TOKENS.len()];
                input.splice(pos..pos, token.iter().copied());
            }
            4 if pos < len => {
                // Duplicate a tail: repeated parameters, nested structures.
                let tail = input[pos..].to_vec();
                input.extend(tail);
            }
            _ => input.push(byte),
        }
    }
    input
}

fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => prop::collection::vec(0x20u8..0x7f, 0..300),
        4 => (
            prop::sample::select(seeds),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..6), 1..10),
        )
            .prop_map(|(seed, edits)| mutate(seed, &edits)),
    ]
}

fn cases() -> u32 {
    std::env::var("FUZZ_SMOKE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

#[test]
fn j7_every_fuzz_target_survives_its_seeds_and_generated_inputs() {
    let started = std::time::Instant::now();
    let names: Vec<&str> = bodies::TARGETS.iter().map(|(n, _)| *n).collect();
    // Every cargo-fuzz target has a body here, and the other way round.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz targets")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk, names,
        "fuzz/fuzz_targets/ and fuzz/bodies.rs TARGETS"
    );
    for (name, body) in bodies::TARGETS {
        let seeds = seeds(name);
        for seed in &seeds {
            body(seed);
        }
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let t0 = std::time::Instant::now();
        runner
            .run(&inputs(seeds), |input| {
                std::panic::catch_unwind(|| body(&input)).map_err(|_| {
                    TestCaseError::fail(format!(
                        "{name} panicked on {:?}",
                        input.escape_ascii().to_string()
                    ))
                })
            })
            .unwrap_or_else(|e| panic!("J7: fuzz target {name}: {e}"));
        eprintln!(
            "fuzz smoke {name}: {} inputs in {:?}",
            cases(),
            t0.elapsed()
        );
    }
    eprintln!("fuzz smoke: {:?}", started.elapsed());
}
