//! The cost of the chain per line, against SHA-256 over the same bytes in
//! one stream (what the CPU's SHA extensions can do at best).
//!
//! ```sh
//! cargo bench -p auditcol-integrity --bench chain
//! ```

use auditcol_integrity::{ChainHasher, Head, Reason, TrailSigner, TrailState};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use std::hint::black_box;

/// 8 MiB of Flipt-like JSON lines of about 260 bytes.
fn lines() -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < 8 << 20 {
        out.extend_from_slice(
            format!(
                r#"{{"version":"0.2","type":"flag","action":"updated","metadata":{{"actor":{{"authentication":"token","email":"kyle@example.com"}}}},"payload":{{"key":"flag-{i}","enabled":true,"name":"Flag {i}"}},"timestamp":"2024-05-01T10:00:00.123456789Z","status":"success"}}"#
            )
            .as_bytes(),
        );
        out.push(b'\n');
        i += 1;
    }
    out
}

fn chain(c: &mut Criterion) {
    let data = lines();
    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("chain_hasher_per_line", |b| {
        b.iter(|| {
            let mut chain = ChainHasher::new(Head::default());
            chain.feed(black_box(&data));
            black_box(chain.head())
        })
    });
    group.bench_function("sha256_one_stream", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&data))))
    });
    group.finish();
}

/// A checkpoint of a second of lines at a million lines a second (the
/// interval checkpoint at full load): sign and serialise, `line_heads` of
/// 4 MB included.
fn checkpoint(c: &mut Criterion) {
    let signer = TrailSigner::from_pem(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBoqKXJTj7rNiaEy9PEkDkpYO1hLBlEGiI/o6HTPFk1h\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut state = TrailState::begin("file/bench", "00112233445566778899aabbccddeeff");
    let line = [b'x'; 259];
    let mut lines = Vec::new();
    for _ in 0..1_000_000 {
        lines.extend_from_slice(&line);
        lines.push(b'\n');
    }
    state.feed(&lines);
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(20);
    group.bench_function("sign_and_serialise_1m_lines", |b| {
        b.iter(|| {
            let c = state.checkpoint("audit.jsonl", Reason::Interval, false, &signer);
            black_box(c.to_line())
        })
    });
    group.finish();
}

criterion_group!(benches, chain, checkpoint);
criterion_main!(benches);
