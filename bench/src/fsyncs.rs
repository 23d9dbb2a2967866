//! How often processes (nats-server; Postfix's master and its daemons) call fsync or fdatasync, counted
//! with strace attached to them: every call is written with its time stamp, so a run's calls can be told
//! apart from those after it (the relay's deliveries and acknowledgements). Attaching with `-p` cannot use seccomp-bpf, so every
//! system call of the traced process stops for strace: a traced run is slower, and its rate is not one
//! to compare.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest wait for strace to say it attached.
const ATTACH_LIMIT: Duration = Duration::from_secs(30);

/// strace attached to a process, writing its fsync and fdatasync calls to a file.
pub struct SyncTrace {
    strace: tokio::process::Child,
    _dir: tempfile::TempDir,
    out: PathBuf,
}

impl SyncTrace {
    /// Attaches to every thread of each of `pids`, and to the processes they fork from then on, and
    /// returns once strace said so for each; `None` when strace is not installed (Debian package strace).
    pub async fn attach(pids: &[u32]) -> anyhow::Result<Option<SyncTrace>> {
        ensure!(!pids.is_empty(), "no process to trace");
        let Some(strace) = crate::installed("strace") else { return Ok(None) };
        let dir = tempfile::Builder::new().prefix("bench-strace-").tempdir()?;
        let out = dir.path().join("fsyncs.txt");
        let mut child = tokio::process::Command::new(&strace)
            .args(["-f", "-ttt", "-e", "trace=fsync,fdatasync", "-e", "signal=none", "-o"])
            .arg(&out)
            .args(pids.iter().flat_map(|pid| ["-p".to_owned(), pid.to_string()]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", strace.display()))?;
        let mut stderr = BufReader::new(child.stderr.take().context("strace's stderr")?).lines();
        let attached = tokio::time::timeout(ATTACH_LIMIT, async {
            // strace says "Process N attached" for each, or "attach: ptrace(...): No such process" for
            // one that exited meanwhile (a Postfix daemon past its idle time): either settles that pid.
            let mut settled = 0;
            while let Some(line) = stderr.next_line().await? {
                if !line.contains("attached") {
                    eprintln!("{line}");
                }
                if line.contains("attached") || line.contains("attach:") {
                    settled += 1;
                    if settled == pids.len() {
                        return Ok(true);
                    }
                }
            }
            anyhow::Ok(false)
        })
        .await
        .context("strace did not attach within 30 s")??;
        ensure!(attached, "strace exited before attaching to processes {pids:?}");
        // What strace says later (detaching) must not fill the pipe and stop it.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Ok(Some(SyncTrace { strace: child, _dir: dir, out }))
    }

    /// Detaches (SIGINT, as Ctrl-C would) and returns the time of every call it saw.
    pub async fn stop(mut self) -> anyhow::Result<Vec<SystemTime>> {
        if let Some(pid) = self.strace.id() {
            // SAFETY: kill has no memory effects; the pid is our own child's, which has not been reaped.
            #[allow(unsafe_code)]
            let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
            ensure!(sent == 0, "signalling strace: {}", std::io::Error::last_os_error());
        }
        tokio::time::timeout(ATTACH_LIMIT, self.strace.wait()).await.context("strace did not detach")??;
        let text = std::fs::read_to_string(&self.out).with_context(|| format!("reading {}", self.out.display()))?;
        Ok(text.lines().filter_map(call_time).collect())
    }
}

/// The time of a line that records an fsync or fdatasync call (not its resumption).
/// `strace -f -ttt` writes `<pid> <seconds.micros> fsync(7) = 0`, or `... fsync(7 <unfinished ...>`.
fn call_time(line: &str) -> Option<SystemTime> {
    let mut words = line.split_whitespace();
    let mut stamp = words.next()?;
    if !stamp.contains('.') {
        // The thread id that -f puts first.
        stamp = words.next()?;
    }
    let seconds: f64 = stamp.parse().ok()?;
    let call = words.next()?;
    let synced = call.starts_with("fsync(") || call.starts_with("fdatasync(");
    synced.then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

/// The calls made from `from` up to and including `to`.
pub fn count_between(calls: &[SystemTime], from: SystemTime, to: SystemTime) -> usize {
    calls.iter().filter(|&&t| t >= from && t <= to).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_once_and_resumptions_and_signals_not_at_all() {
        let trace = "\
4242 1765100000.100000 fsync(12) = 0
4243 1765100000.200000 fdatasync(13 <unfinished ...>
4242 1765100000.300000 fsync(12 <unfinished ...>
4243 1765100000.400000 <... fdatasync resumed>) = 0
4242 1765100000.500000 <... fsync resumed>) = 0
4242 1765100000.600000 --- SIGURG {si_signo=SIGURG} ---
1765100001.000000 fsync(3) = 0
4242 1765100002.000000 +++ exited with 0 +++
";
        let calls: Vec<SystemTime> = trace.lines().filter_map(call_time).collect();
        assert_eq!(calls.len(), 4);
        let at = |s: f64| UNIX_EPOCH + Duration::from_secs_f64(s);
        assert_eq!(count_between(&calls, at(1765100000.15), at(1765100000.35)), 2);
        assert_eq!(count_between(&calls, at(1765100000.0), at(1765100001.0)), 4);
        assert_eq!(count_between(&calls, at(1765100001.5), at(1765100003.0)), 0);
    }
}
