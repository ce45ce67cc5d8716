//! Everything one benchmark run measured, as types: `results.json` is their serialisation and
//! `BENCHMARKS.md` their rendering. Each section's result type lives in its section's module.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::latency::Latency;
use super::live_update::LiveUpdate;
use super::log_cost::LogCost;
use super::machine::Machine;
use super::models::ModelServing;
use super::per_instance::PerInstance;
use super::pi_compute::PiCompute;
use super::python::PythonPi;
use super::serving::Serving;
use super::startup::Startup;
use super::timeout_cost::TimeoutCost;
use super::Section;
use crate::fleet::FleetReport;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// When the last run started (UTC).
    pub generated: String,
    pub quick: bool,
    /// The command of the last run.
    pub command: String,
    pub machine: Machine,
    /// Machine load around each section, in section order.
    pub load_average: Vec<SectionLoad>,
    /// Duration of the last run, once it finished.
    pub total_seconds: Option<f64>,
    pub pi: Option<PiCompute>,
    pub serving: Option<Serving>,
    pub timeout_cost: Option<TimeoutCost>,
    /// Section 2c (absent in results written before it existed).
    #[serde(default)]
    pub log_cost: Option<LogCost>,
    /// Section 2d (absent in results written before it existed).
    #[serde(default)]
    pub latency: Option<Latency>,
    pub startup: Option<Startup>,
    pub live_update: Option<LiveUpdate>,
    pub per_instance: Option<PerInstance>,
    #[serde(default)]
    pub python: Option<PythonPi>,
    /// Section 7 (absent in results written before it existed).
    #[serde(default)]
    pub models: Option<ModelServing>,
    /// Absent from results written before the fleet section (8) existed.
    #[serde(default)]
    pub fleet: Option<FleetReport>,
    /// The targets line, as rendered from the sections above.
    pub targets: Vec<String>,
}

/// `/proc/loadavg` before and after a section, when and how long it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SectionLoad {
    pub section: Section,
    /// When the run that measured it started (its `generated`).
    pub run: String,
    pub before: String,
    pub after: String,
    pub seconds: f64,
}

impl Results {
    pub fn empty(quick: bool) -> Results {
        Results {
            generated: String::new(),
            quick,
            command: String::new(),
            machine: Machine::default(),
            load_average: Vec::new(),
            total_seconds: None,
            pi: None,
            serving: None,
            timeout_cost: None,
            log_cost: None,
            latency: None,
            startup: None,
            live_update: None,
            per_instance: None,
            python: None,
            models: None,
            fleet: None,
            targets: Vec::new(),
        }
    }

    /// The results a previous run saved at `path`, if there are any of this version's shape.
    pub fn load(path: &Path) -> Option<Results> {
        let text = std::fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                println!(
                    "bench: {} is not readable as results ({e}); starting afresh",
                    path.display()
                );
                None
            }
        }
    }

    pub fn start_run(&mut self, command: String, generated: String, machine: Machine) {
        self.command = command;
        self.generated = generated;
        self.machine = machine;
        self.total_seconds = None;
    }

    /// Records a section's load, replacing an earlier run's record of the same section.
    pub fn record_load(&mut self, load: SectionLoad) {
        self.load_average.retain(|l| l.section != load.section);
        self.load_average.push(load);
        self.load_average.sort_by_key(|l| l.section);
    }

    /// Sections whose numbers an earlier run measured (when this one ran only some).
    pub fn measured_earlier(&self) -> Vec<&SectionLoad> {
        self.load_average
            .iter()
            .filter(|l| l.run != self.generated)
            .collect()
    }
}
