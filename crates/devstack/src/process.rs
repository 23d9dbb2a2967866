//! Child processes that cannot outlive us.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The thread that forks our servers. PR_SET_PDEATHSIG fires when the *thread* that forked the child
/// exits, not the process, so forking from a test thread or a blocking-pool thread would kill the server
/// as soon as that thread ends. This one never ends.
static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> mpsc::Sender<SpawnRequest> {
    let sender = SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("devstack-spawner".into())
            .spawn(move || {
                for (mut command, reply) in requests {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawning the devstack spawner thread");
        Mutex::new(sender)
    });
    sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Starts `command` so that the kernel kills it when this process exits, however it exits.
pub fn spawn_tied(mut command: Command) -> anyhow::Result<Child> {
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
    let program = command.get_program().to_owned();
    let (reply, result) = mpsc::channel();
    spawner().send((command, reply)).context("devstack spawner thread is gone")?;
    result.recv().context("devstack spawner thread is gone")?.with_context(|| format!("starting {program:?}"))
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
