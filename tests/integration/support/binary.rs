//! Runs the real `sentryk8s` binary as a child process and watches its output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A port that was free a moment ago (bind :0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

pub struct Binary {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

impl Binary {
    pub fn command() -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentryk8s"));
        // The test's environment must not leak configuration into the child.
        for (key, _) in std::env::vars() {
            if key.starts_with("SENTRYK8S_") && !key.starts_with("SENTRYK8S_TEST_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
        cmd
    }

    /// Starts `sentryk8s <args>` with extra environment.
    pub fn spawn(args: &[&str], env: &[(String, String)]) -> Binary {
        let mut cmd = Binary::command();
        cmd.args(args).envs(env.iter().cloned()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sentryk8s");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("SENTRYK8S_TEST_ECHO").is_some() {
                        eprintln!("[child] {line}");
                    }
                    if let Ok(mut lines) = sink.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        Binary { child, output, status: None }
    }

    /// Runs to completion (with a generous limit) and returns (status, all output).
    pub fn run(args: &[&str], env: &[(String, String)]) -> (ExitStatus, String) {
        let mut bin = Binary::spawn(args, env);
        let status = bin.wait_timeout(Duration::from_secs(120)).expect("sentryk8s did not finish in 120 s");
        // Reader threads finish shortly after the pipes close.
        std::thread::sleep(Duration::from_millis(50));
        (status, bin.output())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.output.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until a line containing `needle` appears (async: the test's
    /// own servers keep running meanwhile).
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output.lock().map(|l| l.iter().any(|x| x.contains(needle))).unwrap_or(false) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// Waits for the process to exit (async).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.wait_timeout(Duration::from_secs(10));
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
