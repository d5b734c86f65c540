//! The `keel` binary: the command line of `keel-cli`, with `keel serve`
//! wired to the HTTP server (`keel-server`) and the delivery worker
//! (`keel-delivery`). This crate is the only one that links both the
//! command line and the server; `keel-cli` itself never depends on the
//! HTTP crate.
//!
//! Exit codes: 0 success; 1 failure (for imports: nothing was stored);
//! 2 `--allow-partial` import that stored the good rows and rejected others.

mod serve;

use std::process::ExitCode;

/// Import and demo move millions of small strings between threads; mimalloc
/// handles that pattern far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keel_cli::main(|call| Box::pin(serve::serve(call)))
}
