//! Importing a large tabular file: parse + split of N CSV rows (default 1M,
//! 11 features and a label, 12 columns, like the wine data), against issue
//! 11's target of 1M rows in under 20 s with flat memory. The file is
//! generated into the temp directory first (not measured) and removed after.
//! Prints rows/s, elapsed time and the process's peak RSS before and after
//! the import: flat memory means the two stay close whatever N is.
//!
//!   cargo bench -p retrain-steps --bench import_rows                 # 1M rows
//!   cargo bench -p retrain-steps --bench import_rows -- --rows 100000

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use retrain_steps::data::{Format, Golden, GoldenShare, ImportSpec, InputColumns, Part, Splitter, read_rows};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// Options after `--`.
#[derive(Debug, Parser)]
struct Options {
    /// Data rows in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Feature columns (the label makes one more).
    #[arg(long, default_value_t = 11)]
    features: usize,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Writes a CSV of `rows` rows: features with 2-4 decimals, labels 3..8.
fn generate(path: &Path, rows: u64, features: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let header: Vec<String> = (0..features).map(|i| format!("feature_{i}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..rows {
        for _ in 0..features {
            write!(out, "{:.3},", rng.gen_range(0.0..100.0))?;
        }
        writeln!(out, "{}", rng.gen_range(3..9))?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The process's peak resident memory so far, in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let options = Options::parse();
    let path = std::env::temp_dir().join(format!("retrain-import-rows-{}.csv", std::process::id()));
    let bytes = generate(&path, options.rows, options.features).expect("generate the file");
    let before = peak_rss_mib();

    let started = Instant::now();
    let spec = ImportSpec::new(Format::Csv, InputColumns::Tabular { features: None });
    let file = std::fs::File::open(&path).expect("open the file");
    let mut splitter = Splitter::new(Golden::Share(GoldenShare::DEFAULT));
    let (mut rows, mut golden) = (0u64, 0u64);
    for row in read_rows(file, &spec).expect("header") {
        let row = row.expect("a valid row");
        rows += 1;
        golden += u64::from(splitter.assign(&row).0 == Part::Golden);
    }
    let summary = splitter.finish(&[]).expect("every class split");
    let elapsed = started.elapsed().as_secs_f64();
    let after = peak_rss_mib();
    std::fs::remove_file(&path).ok();

    println!(
        "{rows} rows x {} columns, {:.1} MB, {} classes, {golden} golden",
        options.features + 1,
        bytes as f64 / 1e6,
        summary.classes.len()
    );
    println!(
        "parse + split: {elapsed:.2} s, {:.0} rows/s, {:.1} MB/s",
        rows as f64 / elapsed,
        bytes as f64 / 1e6 / elapsed
    );
    println!("peak RSS: {before:.1} MiB before the import, {after:.1} MiB after");
}
