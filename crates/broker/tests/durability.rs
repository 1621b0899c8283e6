//! Crash durability with a real `kill -9`.
//!
//! The test binary re-executes itself as the child process: `durability_child_entry_point`
//! does the broker work only when `BUSDRAIN_BROKER_CHILD` is set, prints `ACK <body>` once
//! each operation has resolved (i.e. is durable) and `DONE` at the end, then waits to be
//! SIGKILLed. The parent reopens the store and checks exactly what survived.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use busdrain_broker::{Broker, BrokerLimits, EntityPath, NamespaceConfig, NewMessage, ReceiveMode};

const CHILD_MODE: &str = "BUSDRAIN_BROKER_CHILD";
const CHILD_DIR: &str = "BUSDRAIN_BROKER_CHILD_DIR";
const CHILD_COUNT: &str = "BUSDRAIN_BROKER_CHILD_COUNT";
const QUEUE: &str = "queue.1";

fn open_default(dir: &Path) -> Broker {
    match Broker::open(
        dir,
        NamespaceConfig::default_namespace(),
        BrokerLimits::default(),
    ) {
        Ok(broker) => broker,
        Err(error) => panic!("open: {error}"),
    }
}

/// Not a test of its own: the body of the child process (a no-op in a normal test run).
#[test]
fn durability_child_entry_point() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let dir = std::env::var(CHILD_DIR).unwrap();
    let count: usize = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let broker = open_default(Path::new(&dir));
        let queue = common::entity(&broker, QUEUE);
        match mode.as_str() {
            "send" => {
                // Eight concurrent senders of 25-message batches, as SDK clients would.
                let mut tasks = Vec::new();
                for sender in 0..8 {
                    let queue = queue.clone();
                    tasks.push(tokio::spawn(async move {
                        let mine: Vec<usize> = (sender..count).step_by(8).collect();
                        for chunk in mine.chunks(25) {
                            let batch: Vec<NewMessage> = chunk
                                .iter()
                                .map(|i| common::message(&format!("m-{i}")))
                                .collect();
                            queue.send(batch).await.unwrap();
                            let mut out = std::io::stdout().lock();
                            for i in chunk {
                                use std::io::Write;
                                writeln!(out, "ACK m-{i}").unwrap();
                            }
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            }
            "complete-even" => loop {
                let got = queue.receive(100, ReceiveMode::PeekLock).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for delivery in got {
                    let body = common::body(&delivery);
                    let index: usize = body.trim_start_matches("m-").parse().unwrap();
                    if index & 1 == 0 {
                        queue.complete(common::token(&delivery)).await.unwrap();
                        println!("ACK {body}");
                    }
                    // Odd messages stay locked until the kill; the lock lapses on restart.
                }
            },
            other => panic!("unknown child mode {other}"),
        }
        println!("DONE");
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

/// Runs the child, collects its ACKs until `DONE` or until `kill_after` ACKs, then SIGKILLs it.
fn run_child_and_kill(
    mode: &str,
    dir: &Path,
    count: usize,
    kill_after: Option<usize>,
) -> (BTreeSet<String>, bool) {
    let exe = std::env::current_exe().unwrap();
    let mut child: Child = Command::new(exe)
        .args([
            "--exact",
            "durability_child_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .env(CHILD_COUNT, count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = BTreeSet::new();
    let mut done = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test <name> ... " without a newline before the child's first line.
        if let Some((_, body)) = line.split_once("ACK ") {
            acked.insert(body.to_owned());
            if kill_after.is_some_and(|n| acked.len() >= n) {
                break;
            }
        } else if line.ends_with("DONE") {
            done = true;
            break;
        }
    }
    // Child::kill is SIGKILL on Unix: no destructor, no flush, no graceful close.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child must die by the signal");
    (acked, done)
}

/// Every message body in the queue after a restart (receive-locks everything, then closes).
fn bodies_after_restart(dir: &Path) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broker = open_default(dir);
        let queue = broker.entity(&EntityPath::entity(QUEUE)).unwrap();
        let mut bodies = Vec::new();
        loop {
            let got = queue.receive(500, ReceiveMode::PeekLock).await.unwrap();
            if got.is_empty() {
                break;
            }
            bodies.extend(got.iter().map(common::body));
        }
        broker.close();
        bodies
    })
}

#[test]
fn acknowledged_sends_and_completions_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let count = 10_000;

    let (acked, done) = run_child_and_kill("send", dir.path(), count, None);
    assert!(done);
    assert_eq!(acked.len(), count);
    let bodies = bodies_after_restart(dir.path());
    assert_eq!(bodies.len(), count, "exactly N messages after the kill");
    assert_eq!(bodies.iter().cloned().collect::<BTreeSet<_>>(), acked);

    let (completed, done) = run_child_and_kill("complete-even", dir.path(), count, None);
    assert!(done);
    assert_eq!(completed.len(), count / 2);
    let remaining: BTreeSet<String> = bodies_after_restart(dir.path()).into_iter().collect();
    let expected: BTreeSet<String> = (0..count)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("m-{i}"))
        .collect();
    assert_eq!(
        remaining, expected,
        "exactly the other half, no completed message back"
    );
}

#[test]
fn kill_during_sends_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (acked, done) = run_child_and_kill("send", dir.path(), 200_000, Some(3_000));
    assert!(!done, "killed mid-stream");
    let bodies = bodies_after_restart(dir.path());
    let unique: BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(unique.len(), bodies.len(), "no duplicates");
    let missing: Vec<&String> = acked.difference(&unique).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}
