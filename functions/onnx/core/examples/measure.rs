//! Measures, natively, what loading a model directory and answering costs:
//! `cargo run --release -p onnx-core --example measure -- DIR...` (each DIR holds model.onnx
//! and model.json, as train.py writes them). Prints the median of repeated runs of: a full
//! load (digest, parse, optimise), one row, and a batch of 100 rows through the row protocol.

use std::path::Path;
use std::time::{Duration, Instant};

use onnx_core::{Model, ModelCache};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    println!("| model | load | 1 row | 100 rows |");
    println!("|---|---|---|---|");
    for dir in std::env::args().skip(1) {
        let dir = Path::new(&dir);
        let onnx = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
        let metadata = std::fs::read(dir.join("model.json")).ok();
        let load = time(20, || Model::load(&onnx, metadata.as_deref()).unwrap());
        let model = ModelCache::new()
            .lookup_on_unix(dir)
            .model
            .expect("model loads");
        let table = model.table.as_ref().expect("a [rows, columns] model");
        let row: Vec<f64> = (0..table.features.len()).map(|i| 0.5 + i as f64).collect();
        let one = time(200, || {
            model
                .predict_rows(table, std::slice::from_ref(&row))
                .unwrap()
        });
        let hundred_rows = vec![row.clone(); 100];
        let hundred = time(50, || model.predict_rows(table, &hundred_rows).unwrap());
        let mut cache = ModelCache::new();
        cache.lookup_on_unix(dir);
        let cached = time(200, || cache.lookup_on_unix(dir).model.is_ok());
        let body = format!(
            "{{\"inputs\":[{{\"data\":{:?},\"datatype\":\"FP32\",\"name\":\"{}\",\"shape\":[1,{}]}}]}}",
            row,
            model.inputs.first().map(|i| i.name.as_str()).unwrap_or("input"),
            row.len()
        );
        let path = format!("/v2/models/{}/infer", model.name);
        let request = onnx_core::Request {
            method: "POST",
            path: &path,
            query: None,
            content_type: Some("application/json"),
            body: body.as_bytes(),
        };
        let reply = onnx_core::respond(&request, Ok(&model));
        let v2 = time(200, || onnx_core::respond(&request, Ok(&model)));
        eprintln!(
            "{} cached lookup {:.1} µs, V2 infer 1 row {:.1} µs ({body} → {reply:?})",
            model.name,
            cached.as_secs_f64() * 1e6,
            v2.as_secs_f64() * 1e6
        );
        println!(
            "| {} | {:.3} ms | {:.1} µs | {:.1} µs |",
            model.name,
            load.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e6,
            hundred.as_secs_f64() * 1e6
        );
    }
}
