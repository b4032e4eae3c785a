//! `captions`: a video upload hands a captioning job to the work-queue broker; three workers
//! take jobs; one dies mid-job. The broker deleted nothing it had not been told to (only an
//! ack deletes), so once the dead worker's lease — its visibility timeout — runs out, the job
//! is delivered again, to another worker: at-least-once delivery.

use std::fmt;
use std::time::{Duration, Instant};

use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, field, int, text};
use super::{Against, Endpoints, Lab, Trace, lab, show};

/// How long a received job stays invisible to other workers.
const VISIBILITY_MS: u64 = 600;

/// What the captions demo observed.
#[derive(Debug, Clone)]
pub struct CaptionsOutcome {
    /// The job the killed worker held: (message id, body).
    pub lost_job: (i64, String),
    pub killed_worker: String,
    /// Who got it the second time, and its delivery count then (2: redelivered once).
    pub redelivered_to: String,
    pub redelivered_id: i64,
    pub deliveries: i64,
    /// From the kill to the redelivery.
    pub redelivered_after_ms: f64,
    /// Jobs acknowledged in the end (all three).
    pub acked: usize,
}

impl fmt::Display for CaptionsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "captions: job {} ({}) held by the killed {} was redelivered to {} after {:.0} ms \
             (delivery #{}); {} of 3 jobs acknowledged",
            self.lost_job.0,
            self.lost_job.1,
            self.killed_worker,
            self.redelivered_to,
            self.redelivered_after_ms,
            self.deliveries,
            self.acked
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<CaptionsOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section("Starting a broker (--on-disconnect keep: a dead worker's job waits for its timeout, as in SQS)");
        Ok(Endpoints {
            broker: lab.broker(&["--on-disconnect", "keep"]).await?,
            ..Endpoints::from_env()
        })
    };
    lab::run_against(against, "captions", trace, setup, scenario).await
}

/// One received job: id, receipt, body, delivery count.
struct Job {
    id: i64,
    receipt: String,
    body: String,
    deliveries: i64,
}

fn parse_jobs(reply: &Frame) -> Result<Vec<Job>, BoxError> {
    let Frame::Array(items) = reply else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let get = |name: &str| field(item, name).ok_or_else(|| format!("QRECV: no {name}"));
            Ok(Job {
                id: int(get("id")?, "id")?,
                receipt: text(get("receipt")?).unwrap_or_default(),
                body: text(get("body")?).unwrap_or_default(),
                deliveries: int(get("deliveries")?, "deliveries")?,
            })
        })
        .collect()
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<CaptionsOutcome, BoxError> {
    let queue = format!("captions-{}", lab::run_id());
    let visibility = VISIBILITY_MS.to_string();

    trace.section("1. Uploads hand captioning jobs to the broker");
    let mut app = RespClient::connect(&ends.broker).await?;
    check(
        trace
            .call(
                &mut app,
                "upload",
                "broker",
                &["QCREATE", &queue, "VISIBILITY", &visibility],
            )
            .await?,
        "QCREATE",
    )?;
    for video in ["cat.mp4", "talk.mp4", "trailer.mp4"] {
        check(
            trace
                .call(&mut app, "upload", "broker", &["QSEND", &queue, video])
                .await?,
            "QSEND",
        )?;
    }

    trace.section("2. Three workers each take one job (each invisible to the others for 600 ms)");
    let mut workers = Vec::new();
    for n in 1..=3 {
        let name = format!("worker-{n}");
        let mut client = RespClient::connect(&ends.broker).await?;
        let reply = check(
            trace
                .call(
                    &mut client,
                    &name,
                    "broker",
                    &["QRECV", &queue, "VISIBILITY", &visibility, "BLOCK", "2000"],
                )
                .await?,
            "QRECV",
        )?;
        let job = parse_jobs(&reply)?
            .pop()
            .ok_or_else(|| format!("{name} received nothing"))?;
        workers.push((name, client, job));
    }

    trace.section("3. worker-1 dies mid-job (its connection drops, no ack)");
    let (killed, dead_client, lost) = workers.remove(0);
    drop(dead_client);
    let killed_at = Instant::now();
    trace.note(format!(
        "{killed} was captioning job {} ({}): nobody acknowledged it, so the broker still has it",
        lost.id, lost.body
    ));
    for (name, client, job) in &mut workers {
        check(
            trace
                .call(client, name, "broker", &["QACK", &queue, &job.receipt])
                .await?,
            "QACK",
        )?;
    }

    trace.section("4. The survivors ask for more work; the lost job comes back");
    // Both survivors wait for a job; the first to get one wins, the other stops waiting
    // (its connection closes, which gives back nothing: it holds nothing).
    let wait = |(name, mut client, _): (String, RespClient, Job)| {
        let words = [
            "QRECV",
            queue.as_str(),
            "VISIBILITY",
            visibility.as_str(),
            "BLOCK",
            "10000",
        ]
        .map(str::to_owned);
        async move {
            let reply = client.call(words).await;
            (name, client, reply)
        }
    };
    let second = workers.pop().ok_or("no second survivor")?;
    let first = workers.pop().ok_or("no first survivor")?;
    let (winner, mut client, reply) = tokio::select! {
        got = wait(first) => got,
        got = wait(second) => got,
    };
    let waited = killed_at.elapsed();
    let reply = check(reply?, "QRECV")?;
    trace.step(
        waited,
        &winner,
        "broker",
        &format!("QRECV {queue} VISIBILITY {visibility} BLOCK 10000"),
        &show(&reply),
    );
    let job = parse_jobs(&reply)?
        .pop()
        .ok_or("no job was redelivered within 10 s")?;
    if waited < Duration::from_millis(VISIBILITY_MS / 2) {
        trace.note("redelivered at once: this broker releases a closed connection's jobs (--on-disconnect release)");
    } else {
        trace.note(format!(
            "redelivered when {killed}'s {VISIBILITY_MS} ms visibility timeout ran out; deliveries = {}",
            job.deliveries
        ));
    }
    check(
        trace
            .call(
                &mut client,
                &winner,
                "broker",
                &["QACK", &queue, &job.receipt],
            )
            .await?,
        "QACK",
    )?;
    let stats = trace
        .call(&mut app, "upload", "broker", &["QSTATS", &queue])
        .await?;
    let acked = field(&stats, "acked")
        .and_then(|f| int(f, "acked").ok())
        .unwrap_or(0);
    trace
        .call(&mut app, "upload", "broker", &["QDEL", &queue])
        .await?;

    Ok(CaptionsOutcome {
        lost_job: (lost.id, lost.body),
        killed_worker: killed,
        redelivered_to: winner,
        redelivered_id: job.id,
        deliveries: job.deliveries,
        redelivered_after_ms: waited.as_secs_f64() * 1000.0,
        acked: acked.max(0) as usize,
    })
}
