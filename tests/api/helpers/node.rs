//! Third-party JS clients driven line by line (`tests/openid-client`, `tests/mcp-sdk`):
//! a script prints one JSON line (where to send the browser), may read one line on stdin
//! (the callback URL), then prints its final JSON line and exits 0. Its packages come from
//! the lockfile in its folder (`npm ci`; `.ci/run` does it).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

/// A test folder of this repository holding a node script and its lockfile.
pub fn script_dir(folder: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder)
}

/// The node binary, and `package` installed in `dir` (`npm ci`), or why not.
pub fn package_ready(dir: &Path, package: &str) -> Result<(), String> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not installed".into()),
    }
    if !dir.join("node_modules").join(package).is_dir() {
        return Err(format!(
            "run `npm ci` in {} (the committed package-lock.json)",
            dir.display()
        ));
    }
    Ok(())
}

/// A running script: `what` names it in failures.
pub struct NodeScript {
    what: &'static str,
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl NodeScript {
    /// Starts `node args…` in `dir` with `env` added, stdin, stdout and stderr piped.
    pub fn spawn(what: &'static str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().map(BufReader::new);
        Self {
            what,
            child,
            stdout,
        }
    }

    /// The next line of stdout, as JSON, read off the async workers; a script that ended
    /// instead fails the test with its stderr.
    pub async fn line(&mut self) -> Value {
        let mut stdout = self.stdout.take().expect("stdout");
        let (stdout, line) = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| (stdout, line))
        })
        .await
        .expect("join")
        .expect("read");
        self.stdout = Some(stdout);
        if line.is_empty() {
            let _ = self.child.kill();
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{} stopped: {err}", self.what);
        }
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}: {line}", self.what))
    }

    /// Writes `input` as one line to stdin (if given) and closes it, reads the final JSON
    /// line, and asserts the script exits 0.
    pub async fn finish(mut self, input: Option<&str>) -> Value {
        let stdin = self.child.stdin.take();
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            writeln!(stdin, "{input}").expect("write");
        }
        let done = self.line().await;
        let out = self.child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{} refused: {}",
            self.what,
            String::from_utf8_lossy(&out.stderr)
        );
        done
    }

    /// Kills a script that serves until stopped (a server), and returns its stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        err
    }
}
