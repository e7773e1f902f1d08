//! Micro-benchmark of id_token verification (signature alone, and the whole
//! claim-by-claim check), with the test platform's 2048-bit RSA key.
//!
//! `cargo bench -p coursegate-lti --features test-helpers --bench verify`
//!
//! Prints nanoseconds per operation (median of 15 batches). Results and the
//! machine they were taken on are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Instant;

use coursegate_lti::testing::{self, TokenMinter};
use coursegate_lti::token::{verify_launch, verify_signature};

fn per_op(label: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    println!(
        "{label:<44} median {:>9.0} ns/op   (min {:.0}, max {:.0})",
        batches[7], batches[0], batches[14]
    );
}

fn main() {
    let now = testing::fixed_now();
    let token = TokenMinter::new(now).mint();
    let keys = testing::platform_keys();
    let shared = std::sync::Arc::new(testing::platform_keys());
    let expect = testing::expectations();
    // Timing a refusal would measure the wrong path.
    assert!(verify_signature(&token, &keys).is_ok());
    assert!(verify_launch(&token, &keys, &expect, now).is_ok());

    per_op("verify_signature (PlatformKeys)", 2_000, || {
        black_box(verify_signature(black_box(&token), &keys).is_ok());
    });
    per_op("verify_signature (Arc<PlatformKeys>)", 2_000, || {
        black_box(verify_signature(black_box(&token), &shared).is_ok());
    });
    per_op("verify_launch (every claim)", 2_000, || {
        black_box(verify_launch(black_box(&token), &keys, &expect, now).is_ok());
    });
}
