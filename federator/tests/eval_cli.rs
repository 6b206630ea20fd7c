//! `federator eval` on logs it generates: any format, any split, and clear refusals.

use std::process::Command;

const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");

/// A CSV log of 60 viewers at two sites who watch the same series, the second site later.
fn write_log(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("viewer,title,when,site\n");
    for u in 0..60u32 {
        let site = if u % 2 == 0 { "paris" } else { "lyon" };
        let late = if u % 2 == 0 { 0 } else { 100_000 };
        for step in 0..8u32 {
            csv += &format!("v{u},S{}E{step},{},{site}\n", u % 5, late + u * 100 + step);
        }
    }
    let path = dir.join("views.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// Runs `federator eval LOG <the log's columns> EXTRA…`.
fn eval(log: &str, extra: &[&str]) -> (bool, String, String) {
    let cols = [
        "--format",
        "csv",
        "--user-col",
        "viewer",
        "--item-col",
        "title",
        "--time-col",
        "when",
    ];
    let out = Command::new(FEDERATOR)
        .arg("eval")
        .arg(log)
        .args(cols)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_csv_log_splits_by_its_own_column_and_by_hash() {
    let dir = std::env::temp_dir().join(format!("federator-eval-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = write_log(&dir);
    let log = log.to_str().unwrap();
    let (ok, out, err) = eval(log, &["--split-col", "site", "--round-every", "60"]);
    assert!(ok, "{err}");
    assert!(err.contains("paris: 240, lyon: 240"), "{err}");
    let hr = |setup: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(setup))
            .unwrap_or_else(|| panic!("{out}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields
            .iter()
            .position(|f| f.starts_with("N="))
            .map_or(1, |i| i + 1);
        fields[at].parse().unwrap()
    };
    // The late site's viewers can only learn the series' order from the early site.
    assert!(hr("federated") > hr("local-only"), "{out}");

    let (ok, _, err) = eval(log, &["--split", "hash:4", "--round-every", "60"]);
    assert!(ok, "{err}");
    assert!(err.contains("hash 3: "), "{err}");

    // No split named: refused with what to say.
    let (ok, _, err) = eval(log, &[]);
    assert!(!ok && err.contains("--split hash:N"), "{err}");
    // A column the header lacks.
    let (ok, _, err) = eval(log, &["--split-col", "zone"]);
    assert!(!ok && err.contains("zone"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
