//! Hands sqlx a connection the connector opened itself.
//!
//! sqlx connects only by host name or Unix socket path, and resolving the name again would
//! undo the SSRF vetting (DNS may answer differently the second time), while connecting to
//! the bare address would leave TLS nothing to verify the host name against. So the
//! connector opens and secures the connection ([`super::tls`]) and this relay offers it
//! to sqlx on a Unix socket, copying bytes both ways.
//!
//! Invariants: the socket lives in a new directory that only this process's user can
//! enter (mode 0700), it accepts exactly one connection, and the directory is removed and
//! the copying stopped when the [`Relay`] is dropped.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// sqlx finds the socket as `<dir>/.s.PGSQL.<port>`; the directory is ours alone, so any
/// port will do.
pub(super) const SOCKET_PORT: u16 = 5432;

pub(super) struct Relay {
    directory: PrivateDirectory,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts offering `upstream` on a fresh socket.
    pub(super) async fn start<S>(upstream: S) -> io::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let directory = PrivateDirectory::create().await?;
        let listener =
            UnixListener::bind(directory.path().join(format!(".s.PGSQL.{SOCKET_PORT}")))?;
        let task = tokio::spawn(async move {
            let Ok((mut local, _)) = listener.accept().await else {
                return;
            };
            drop(listener);
            let mut upstream = upstream;
            // Ends when either side closes; how it ended is sqlx's to report.
            let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
        });
        Ok(Self { directory, task })
    }

    /// The directory to give sqlx as its socket directory.
    pub(super) fn directory(&self) -> &Path {
        self.directory.path()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A new directory under the system's temporary directory, mode 0700, removed on drop.
struct PrivateDirectory {
    path: PathBuf,
}

impl PrivateDirectory {
    async fn create() -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("aos-pg-{}", uuid::Uuid::new_v4().simple()));
        // `create`, not `create_all`: a directory someone else made first is refused.
        tokio::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .await?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDirectory {
    fn drop(&mut self) {
        // Best effort: a leftover empty directory in the temporary directory is litter,
        // not a leak (the socket in it accepts nothing any more).
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
