//! The result of one run: absolute figures, ratios, the machine, printed as a table and written
//! as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::broker::BrokerResult;
use crate::ceiling::{CeilingResult, WriteShape};
use crate::drain::{DrainResult, LatencyResult};
use crate::reference::ReferenceResult;
use crate::BenchOptions;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_mib: u64,
    /// 1-minute load average when the run finished (other work on the machine skews figures).
    pub load_average_1m: Option<f64>,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let load_average_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok());
        Self {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_mib,
            load_average_1m,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Connector drain msgs/s ÷ ceiling rows/s (same run).
    pub end_to_end_over_ceiling: f64,
    /// Connector drain msgs/s ÷ the best trial grouping rows only within 256-row windows (what
    /// a streaming writer can batch), measured on the tuning sample.
    pub end_to_end_over_windowed_ceiling: Option<f64>,
    /// Connector drain msgs/s ÷ Python reference msgs/s.
    pub busdrain_over_reference: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub rows: u64,
    pub finished_at: String,
    pub machine: Machine,
    pub ceiling: CeilingResult,
    pub emulator: BrokerResult,
    pub end_to_end: DrainResult,
    pub latency: LatencyResult,
    pub reference: Option<ReferenceResult>,
    pub ratios: Ratios,
}

impl BenchReport {
    pub fn new(
        options: &BenchOptions,
        ceiling: CeilingResult,
        emulator: BrokerResult,
        end_to_end: DrainResult,
        latency: LatencyResult,
        reference: Option<ReferenceResult>,
    ) -> Self {
        let ratios = Ratios {
            end_to_end_over_ceiling: end_to_end.messages_per_second
                / ceiling.best.rows_per_second.max(1e-9),
            end_to_end_over_windowed_ceiling: ceiling
                .best_of(WriteShape::WindowedPartitionBatch)
                .map(|w| end_to_end.messages_per_second / w.rows_per_second.max(1e-9)),
            busdrain_over_reference: reference
                .as_ref()
                .map(|r| end_to_end.messages_per_second / r.messages_per_second.max(1e-9)),
        };
        Self {
            rows: options.rows,
            finished_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            machine: Machine::probe(),
            ceiling,
            emulator,
            end_to_end,
            latency,
            reference,
            ratios,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let load = m
            .load_average_1m
            .map_or("?".to_string(), |l| format!("{l:.2}"));
        let _ = writeln!(
            out,
            "busdrain bench: {} rows; {} × {}, {} MiB; load average {load} at the end",
            self.rows, m.cpus, m.cpu_model, m.memory_mib
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| Figure | Value |");
        let _ = writeln!(out, "|---|---|");
        let best = &self.ceiling.best;
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "| {name} | {value} |");
        };
        row(
            "Ceiling: scylla driver → Cassandra",
            format!(
                "{:.0} rows/s ({:?}, concurrency {})",
                best.rows_per_second, best.settings.shape, best.settings.concurrency
            ),
        );
        if let Some(windowed) = self.ceiling.best_of(WriteShape::WindowedPartitionBatch) {
            row(
                "Ceiling, streaming-shaped (rows grouped per 256-row window)",
                format!(
                    "{:.0} rows/s (concurrency {}, on {} rows)",
                    windowed.rows_per_second, windowed.settings.concurrency, windowed.rows
                ),
            );
        }
        row(
            "Emulator: send (batched, durable)",
            format!("{:.0} msgs/s", self.emulator.send.messages_per_second),
        );
        row(
            "Emulator: receive + complete (peek-lock)",
            format!(
                "{:.0} msgs/s",
                self.emulator.receive_complete.messages_per_second
            ),
        );
        let e2e = &self.end_to_end;
        row(
            "End to end: busdrain run drain",
            format!(
                "{:.0} msgs/s ({:.1} rows per write request)",
                e2e.messages_per_second, e2e.rows_per_write_request
            ),
        );
        row(
            "End to end: connector CPU",
            format!(
                "{:.3} s per 1,000 msgs ({:.1} µs/msg)",
                e2e.connector_cpu_seconds_per_1000,
                e2e.connector_cpu_seconds_per_1000 * 1000.0
            ),
        );
        row(
            "End to end: connector peak RSS",
            format!(
                "{:.1} MiB ({} msgs queued at start)",
                e2e.connector_peak_rss_mib, e2e.messages
            ),
        );
        let lat = &self.latency;
        row(
            "End to end: latency send → row",
            format!(
                "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms at {:.0} msgs/s ({} msgs)",
                lat.p50_ms, lat.p99_ms, lat.max_ms, lat.rate, lat.messages
            ),
        );
        if lat.undelivered > 0 {
            row(
                "End to end: latency run, NOT DELIVERED",
                format!(
                    "{} of {} msgs not written 60 s after sending (percentiles exclude them)",
                    lat.undelivered, lat.messages
                ),
            );
        }
        match &self.reference {
            Some(r) => {
                row(
                    "Reference: Python azure-servicebus + cassandra-driver",
                    format!("{:.0} msgs/s", r.messages_per_second),
                );
                row(
                    "Reference: CPU, peak RSS",
                    format!(
                        "{:.3} s per 1,000 msgs, {:.1} MiB",
                        r.cpu_seconds_per_1000, r.peak_rss_mib
                    ),
                );
            }
            None => row("Reference", "skipped".to_string()),
        }
        row(
            "Ratio: end to end / ceiling",
            format!("{:.1} %", self.ratios.end_to_end_over_ceiling * 100.0),
        );
        if let Some(ratio) = self.ratios.end_to_end_over_windowed_ceiling {
            row(
                "Ratio: end to end / streaming-shaped ceiling",
                format!("{:.1} %", ratio * 100.0),
            );
        }
        if let Some(ratio) = self.ratios.busdrain_over_reference {
            row("Ratio: busdrain / reference", format!("{ratio:.2} ×"));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "CPU per 1,000 msgs during each phase (s):");
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "  ceiling: driver {:.3}, cassandra {}",
            best.driver_cpu_seconds_per_1000,
            fmt(best.cassandra_cpu_seconds_per_1000)
        );
        let _ = writeln!(
            out,
            "  emulator send: emulator {}; receive + complete: emulator {}",
            fmt(self.emulator.send.emulator_cpu_seconds_per_1000),
            fmt(self.emulator.receive_complete.emulator_cpu_seconds_per_1000)
        );
        let _ = writeln!(
            out,
            "  end to end: connector {:.3}, emulator {}, cassandra {}",
            e2e.connector_cpu_seconds_per_1000,
            fmt(e2e.emulator_cpu_seconds_per_1000),
            fmt(e2e.cassandra_cpu_seconds_per_1000)
        );
        if let Some(r) = &self.reference {
            let _ = writeln!(
                out,
                "  reference: python {:.3}, emulator {}",
                r.cpu_seconds_per_1000,
                fmt(r.emulator_cpu_seconds_per_1000)
            );
        }
        let _ = writeln!(
            out,
            "Ceiling trials on {} rows:",
            self.ceiling.trials.first().map_or(0, |t| t.rows)
        );
        for trial in &self.ceiling.trials {
            let _ = writeln!(
                out,
                "  {:?} concurrency {}: {:.0} rows/s",
                trial.settings.shape, trial.settings.concurrency, trial.rows_per_second
            );
        }
        out
    }
}

/// The table of `busdrain bench --drain-only`.
pub fn backlog_table(result: &crate::backlog::BacklogResult) -> String {
    let d = &result.drain;
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "busdrain bench --drain-only: {} messages queued at the connector's start; load average {load} at the end",
        result.preloaded
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| Figure | Value |");
    let _ = writeln!(out, "|---|---|");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "| {name} | {value} |");
    };
    row(
        "Pre-load (straight into the store)",
        format!("{:.1} s", result.preload_seconds),
    );
    row(
        "End to end: busdrain run drain",
        format!(
            "{:.0} msgs/s ({:.1} rows per write request)",
            d.messages_per_second, d.rows_per_write_request
        ),
    );
    row(
        "End to end: connector CPU",
        format!(
            "{:.1} µs/msg ({:.1} µs/msg including start-up)",
            d.connector_cpu_seconds_per_1000 * 1000.0,
            d.connector_cpu_seconds_per_1000_including_startup * 1000.0
        ),
    );
    row(
        "End to end: connector peak RSS",
        format!(
            "{:.1} MiB ({} msgs queued)",
            d.connector_peak_rss_mib, result.preloaded
        ),
    );
    if let Some(emulator) = d.emulator_cpu_seconds_per_1000 {
        row(
            "Emulator CPU during the drain",
            format!("{:.1} µs/msg", emulator * 1000.0),
        );
    }
    out
}
