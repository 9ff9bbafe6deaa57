//! What the benchmarks ran on: CPU model, core count, kernel and memory,
//! read from /proc and `uname -r` (Linux; other systems get "unknown").

use std::process::Command;

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Machine {
    /// CPU model name, e.g. "AMD EPYC 7B13".
    pub(super) cpu: String,
    /// Logical CPUs the kernel schedules on.
    pub(super) cores: usize,
    /// `uname -r`.
    pub(super) kernel: String,
    /// Total memory in bytes (`MemTotal` in /proc/meminfo), if known.
    pub(super) memory_bytes: Option<u64>,
}

impl Machine {
    /// Describes this machine; whatever cannot be read is "unknown".
    pub(super) fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (cpu, counted) = parse_cpuinfo(&cpuinfo);
        let cores = if counted > 0 {
            counted
        } else {
            std::thread::available_parallelism().map_or(0, usize::from)
        };
        let kernel = Command::new("uname")
            .arg("-r")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpu: cpu.unwrap_or_else(|| "unknown CPU".to_owned()),
            cores,
            kernel,
            memory_bytes: parse_meminfo(&meminfo),
        }
    }

    /// One line for people: "AMD EPYC, 2 cores, Linux 6.18.4, 23.5 GiB RAM".
    pub(super) fn describe(&self) -> String {
        let memory = self
            .memory_bytes
            .map_or_else(|| "unknown".to_owned(), |b| format!("{:.1} GiB", gib(b)));
        let cores = if self.cores == 1 { "core" } else { "cores" };
        format!(
            "{}, {} {cores}, Linux {}, {memory} RAM",
            self.cpu, self.cores, self.kernel
        )
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu,
            "cores": self.cores,
            "kernel": self.kernel,
            "memory_bytes": self.memory_bytes,
            "description": self.describe(),
        })
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// The CPU model and the number of logical CPUs in /proc/cpuinfo text. The
/// model is `model name` on x86; other architectures name it differently.
fn parse_cpuinfo(text: &str) -> (Option<String>, usize) {
    let mut model = None;
    let mut processors = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => processors += 1,
            "model name" | "Model" | "cpu model" | "Hardware" | "uarch" | "cpu"
                if model.is_none() && !value.is_empty() =>
            {
                model = Some(value.to_owned());
            }
            _ => {}
        }
    }
    (model, processors)
}

/// `MemTotal` in /proc/meminfo text, in bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "\
processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
stepping\t: 1
flags\t\t: fpu vme de pse
power management:

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
power management:

";

    #[test]
    fn cpuinfo_gives_the_model_and_the_processor_count() {
        assert_eq!(
            parse_cpuinfo(CPUINFO),
            (Some("AMD EPYC 7B13 64-Core Processor".to_owned()), 2)
        );
    }

    #[test]
    fn cpuinfo_without_a_model_name() {
        // arm64 lists processors but no `model name`.
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nprocessor\t: 1\n";
        assert_eq!(parse_cpuinfo(arm), (None, 2));
        assert_eq!(parse_cpuinfo(""), (None, 0));
    }

    #[test]
    fn meminfo_total_in_bytes() {
        let meminfo = "MemTotal:       24684092 kB\nMemFree:        11127772 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(24_684_092 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots\n"), None);
    }

    #[test]
    fn description_is_one_line() {
        let machine = Machine {
            cpu: "AMD EPYC".to_owned(),
            cores: 2,
            kernel: "6.18.44".to_owned(),
            memory_bytes: Some(24_684_092 * 1024),
        };
        assert_eq!(
            machine.describe(),
            "AMD EPYC, 2 cores, Linux 6.18.44, 23.5 GiB RAM"
        );
        assert_eq!(machine.to_json()["cores"], 2);
    }
}
