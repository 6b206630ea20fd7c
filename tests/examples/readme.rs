//! Prints (or, with `--write`, rewrites in README.md) the command table generated from a
//! server loading the debug module (`cargo build -p edge-module` first).

use edge_tests::readme::{command_table, COMMAND_MARKS};
use edge_tests::{Server, ServerOpts};

fn main() {
    let mut s = Server::start(ServerOpts::new());
    let table = command_table(&mut s);
    if !std::env::args().any(|a| a == "--write") {
        print!("{table}");
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let doc = std::fs::read_to_string(&path).expect("README.md");
    let Some(next) = COMMAND_MARKS.splice(&doc, &table) else {
        eprintln!(
            "readme: README.md lacks the lines '{}' and '{}'",
            COMMAND_MARKS.begin, COMMAND_MARKS.end
        );
        std::process::exit(1);
    };
    std::fs::write(&path, next).expect("write README.md");
}
