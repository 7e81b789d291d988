//! The report of `queue_ceiling`: one line per step on stdout, and
//! bench/results/queue_ceiling.md.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Knobs, StepResult};

fn step_name(r: &StepResult) -> String {
    match r.rate {
        None => "full speed".into(),
        Some(rate) => format!("paced {rate:.0}/s"),
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

pub(super) fn print_step(r: &StepResult) {
    println!(
        "{} B, {}: published+confirmed {:.0}/s, delivered+acked {:.0}/s, nacked {}, beam.smp {} cores \
         ({} ms CPU/message), confirm p50/p99 {}/{} ms, transit p50/p99 {}/{} ms{}",
        r.size,
        step_name(r),
        r.confirmed_per_s,
        r.acked_per_s,
        r.nacked,
        r.beam_cores.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into()),
        r.beam_ms_per_message().map(|m| format!("{m:.3}")).unwrap_or_else(|| "n/a".into()),
        ms(r.confirm_ms.0),
        ms(r.confirm_ms.1),
        ms(r.transit_ms.0),
        ms(r.transit_ms.1),
        if r.errors.is_empty() { String::new() } else { format!("; !! {}", r.errors.join("; ")) }
    );
}

/// The ceiling: the full-speed step of the first size, the messages/s
/// carried both ways.
pub(super) fn headline(results: &[StepResult]) -> String {
    let Some(full) = results.iter().find(|r| r.rate.is_none()) else {
        return "No step ran.".into();
    };
    format!(
        "One quorum queue on this machine carries **{:.0} messages/s** of {} B (published + \
         confirmed {:.0}/s, delivered + acked {:.0}/s), beam.smp using {} cores: {} ms of broker \
         CPU per message.",
        full.carried(),
        full.size,
        full.confirmed_per_s,
        full.acked_per_s,
        full.beam_cores.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into()),
        full.beam_ms_per_message().map(|m| format!("{m:.3}")).unwrap_or_else(|| "n/a".into()),
    )
}

pub(super) fn report(header: &str, knobs: &Knobs, results: &[StepResult], took: Duration) -> String {
    let mut md = String::from(header);
    let _ = write!(
        md,
        "\n## Setup\n\n\
         - RabbitMQ of this machine, one fresh quorum queue per step, declared as the binary declares \
         the job queue\n\
         - one publisher (the scheduler's `Publisher`): persistent mandatory messages, publisher \
         confirms, at most {} unconfirmed\n\
         - one consumer on its own connection: prefetch {}, manual acks, one `basic.ack(multiple)` per \
         batch of what arrived together (≤ {})\n\
         - each step: {} s warm-up, {} s measured; paced steps at {} % of the full-speed rate\n\
         - beam.smp CPU from /proc (utime + stime); CPU per message = beam.smp CPU ÷ the mean of the \
         two rates. The broker also serves other engineers' tests: its CPU includes theirs\n\
         - whole run took {:.0} s\n\n## Headline\n\n{}\n\n## Steps\n\n",
        knobs.window,
        knobs.prefetch,
        knobs.ack_every,
        knobs.warmup_s,
        knobs.seconds,
        knobs.load_pct,
        took.as_secs_f64(),
        headline(results)
    );
    md.push_str(
        "| body | publishing | published + confirmed/s | delivered + acked/s | nacked | \
         unacked at end | publish → confirm p50 / p99 (ms) | publish → delivery p50 / p99 (ms) | \
         beam.smp cores | beam.smp CPU ms / message | this process cores | machine busy cores |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(
            md,
            "| {} B | {} | {:.0} | {:.0} | {} | {} | {} / {} | {} / {} | {} | {} | {:.2} | {:.2} |",
            r.size,
            step_name(r),
            r.confirmed_per_s,
            r.acked_per_s,
            r.nacked,
            r.in_flight_end,
            ms(r.confirm_ms.0),
            ms(r.confirm_ms.1),
            ms(r.transit_ms.0),
            ms(r.transit_ms.1),
            r.beam_cores.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into()),
            r.beam_ms_per_message().map(|m| format!("{m:.3}")).unwrap_or_else(|| "n/a".into()),
            r.own_cores,
            r.machine_cores,
        );
    }
    let errors: Vec<String> = results
        .iter()
        .flat_map(|r| r.errors.iter().map(move |e| format!("- {} B, {}: {e}", r.size, step_name(r))))
        .collect();
    if !errors.is_empty() {
        let _ = write!(md, "\n## Errors\n\n{}\n", errors.join("\n"));
    }
    md.push_str(
        "\nOn a 2-core machine the publisher and consumer (this process) compete with beam.smp for \
         the cores: at full speed the ceiling is the machine's, with this process's share in its \
         column. \"unacked at end\" is what was published and not yet acknowledged when the window \
         closed (in the queue or in flight): growing with the rate means the consumer side is the \
         limit.\n",
    );
    md
}
