//! How long French typography takes on a page: `cargo run --release -p guichet-core
//! --example typography_rate -- PAGE.html` (a page saved from guichet, `curl -o`).

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: typography_rate PAGE.html");
        std::process::exit(2);
    };
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rounds: u32 = 20_000;
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += guichet_core::typography::html(std::hint::black_box(&page)).len();
    }
    let each = start.elapsed() / rounds;
    println!("{} bytes: {each:?} per page ({bytes} bytes written in all)", page.len());
}
