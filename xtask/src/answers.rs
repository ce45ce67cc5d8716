//! What a right answer of the two functions is, for every workflow that checks them (the
//! benchmark, the container test, the Kubernetes flows): the JSON bodies as types, pi's digits
//! against the repository's reference file, iris's species for the setosa example.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{ensure, Context, Result};
use devkit::http::Response;
use serde::Deserialize;

/// `GET /api/v0/pi?ndigits=N`.
#[derive(Deserialize)]
pub struct PiAnswer {
    pub ndigits: usize,
    pub pi: String,
}

/// `GET /api/v01/classify?…` (the fields checked here).
#[derive(Deserialize)]
pub struct IrisAnswer {
    pub species: String,
}

/// The query every workflow classifies: a setosa flower (sepal/petal length and width in cm).
pub const SETOSA_QUERY: &str = "sl=5.1&sw=3.5&pl=1.4&pw=0.2";
pub const SETOSA: &str = "Iris setosa";

/// The first million decimals of pi (`functions/pi/core/tests/data/pi-1m.txt`, which the pi
/// tests verify), read once.
pub fn pi_decimals(root: &Path) -> Result<&'static str> {
    static DIGITS: OnceLock<String> = OnceLock::new();
    if let Some(d) = DIGITS.get() {
        return Ok(d);
    }
    let file = root.join("functions/pi/core/tests/data/pi-1m.txt");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(DIGITS.get_or_init(|| text.trim().to_string()))
}

/// A 200 whose body is pi to exactly `n` decimals, truncated, every digit right; returns it.
pub fn check_pi(root: &Path, r: &Response, n: usize) -> Result<String> {
    ensure!(
        r.status == 200,
        "pi ndigits={n}: HTTP {} {:.300}",
        r.status,
        r.text()
    );
    let answer: PiAnswer = r.parse()?;
    ensure!(
        answer.ndigits == n,
        "pi: ndigits {} in an answer for {n}",
        answer.ndigits
    );
    let decimals = pi_decimals(root)?;
    ensure!(
        n <= decimals.len(),
        "pi-1m.txt has only {} decimals",
        decimals.len()
    );
    let want_ok = if n == 0 {
        answer.pi == "3"
    } else {
        answer.pi.strip_prefix("3.") == Some(&decimals[..n])
    };
    ensure!(
        want_ok,
        "pi ndigits={n}: wrong digits ({} chars: {:.40}…)",
        answer.pi.len(),
        answer.pi
    );
    Ok(answer.pi)
}

/// A 200 classifying the setosa example as Iris setosa.
pub fn check_setosa(r: &Response) -> Result<()> {
    ensure!(
        r.status == 200,
        "classify: HTTP {} {:.300}",
        r.status,
        r.text()
    );
    let answer: IrisAnswer = r.parse()?;
    ensure!(
        answer.species == SETOSA,
        "classify answered species {:?}, expected {SETOSA:?}: {}",
        answer.species,
        r.text()
    );
    Ok(())
}
