//! Prints (or, with `--write`, rewrites in place) the README's settings table and
//! redis.conf's settings block from the one declaration in `model/src/config/settings.rs`.

use std::path::Path;

use edge_model::config::settings::{conf_block, readme_table, Generated, CONF_MARKS, README_MARKS};

/// Splices `body` into the file at `path` between `marks`.
fn write(path: &Path, marks: &Generated, body: &str) -> Result<(), String> {
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let next = marks.splice(&doc, body).ok_or_else(|| {
        format!(
            "{}: the lines '{}' and '{}' that bound the generated part are missing",
            path.display(),
            marks.begin,
            marks.end
        )
    })?;
    std::fs::write(path, next).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if std::env::args().any(|a| a == "--write") {
        let done = write(&root.join("README.md"), &README_MARKS, &readme_table())
            .and_then(|()| write(&root.join("redis.conf"), &CONF_MARKS, &conf_block()));
        if let Err(e) = done {
            eprintln!("settings: {e}");
            std::process::exit(1);
        }
    } else {
        print!("{}\n{}", readme_table(), conf_block());
    }
}
