//! Child processes that cannot outlive us.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Starts `command` so that the kernel kills it when the thread that started it exits. Callers start
/// servers from a thread that lives as long as the process.
pub fn spawn_tied(command: &mut Command) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours; it is the only call made between
    // fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().with_context(|| format!("starting {:?}", command.get_program()))
}

/// Waits until something accepts connections on `addr`, or the child exits, or `limit` passes.
pub fn wait_for_port(child: &mut Child, addr: SocketAddr, limit: Duration, what: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited during start-up ({status})");
        }
        if start.elapsed() > limit {
            bail!("{what} did not accept connections on {addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| std::path::Path::new(dir).join(name)).find(|p| p.is_file())
}
