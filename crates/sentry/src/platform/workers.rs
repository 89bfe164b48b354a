//! Worker threads for served calls that may block (today: reopening a FIFO
//! by name, which waits for its other end), so the notify loop keeps
//! serving every other stub meanwhile.
//!
//! A worker answers its notification itself. If the caller stops waiting
//! (a signal interrupted the call, or it died), the notification goes
//! stale: the loop notices on its next tick ([`Workers::tend`]) and
//! interrupts the worker with a signal, so the blocked call returns EINTR
//! and the worker ends without answering.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use libseccomp::{ScmpNotifResp, ScmpNotifRespFlags};
use nix::errno::Errno;

/// The signal that interrupts a worker's blocking call.
const INTERRUPT: libc::c_int = libc::SIGUSR2;

struct Worker {
    thread: JoinHandle<()>,
    notify: Arc<OwnedFd>,
    id: u64,
    done: Arc<AtomicBool>,
}

/// The workers of one notify loop.
#[derive(Default)]
pub struct Workers {
    list: std::cell::RefCell<Vec<Worker>>,
}

extern "C" fn interrupted(_: libc::c_int) {}

/// Installs a handler for [`INTERRUPT`] without SA_RESTART: a blocking
/// call it hits returns EINTR.
fn install_interrupt_handler() -> Result<(), Errno> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let sa = SigAction::new(SigHandler::Handler(interrupted), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR2, &sa) }.map(|_| ())
}

/// Sends [`INTERRUPT`] to a worker thread that has not been joined yet.
fn interrupt(thread: &JoinHandle<()>) {
    // SAFETY: the handle is not joined, so its pthread_t names a live (or
    // exited but unjoined) thread of ours; the signal's handler does nothing.
    unsafe {
        libc::pthread_kill(thread.as_pthread_t(), INTERRUPT);
    }
}

impl Workers {
    /// Workers for one loop (installs the interrupt handler once).
    pub fn new() -> Workers {
        if let Err(e) = install_interrupt_handler() {
            tracing::warn!("sentry: no interrupt handler for workers: {e}");
        }
        Workers::default()
    }

    /// Runs `job` on a new worker for notification `id` on `notify`. The
    /// job answers the call itself when it succeeds (an fd installed with
    /// ADDFD's FLAG_SEND); an error it returns is answered here, unless the
    /// caller no longer waits.
    pub fn spawn(
        &self,
        notify: BorrowedFd<'_>,
        id: u64,
        job: impl FnOnce(BorrowedFd<'_>) -> Result<(), Errno> + Send + 'static,
    ) -> Result<(), Errno> {
        let notify = Arc::new(notify.try_clone_to_owned().map_err(|_| Errno::EMFILE)?);
        let done = Arc::new(AtomicBool::new(false));
        let (n, d) = (notify.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .spawn(move || {
                if let Err(e) = job(n.as_fd()) {
                    // ENOENT from the answer: the caller is gone; nothing to do
                    let _ =
                        ScmpNotifResp::new_error(id, -(e as i32), ScmpNotifRespFlags::empty()).respond(n.as_raw_fd());
                }
                d.store(true, Ordering::Release);
            })
            .map_err(|_| Errno::EAGAIN)?;
        self.list.borrow_mut().push(Worker { thread, notify, id, done });
        Ok(())
    }

    /// Whether any worker is still running (the loop then ticks).
    pub fn busy(&self) -> bool {
        !self.list.borrow().is_empty()
    }

    /// Joins the workers that ended; interrupts those whose caller stopped
    /// waiting.
    pub fn tend(&self) {
        let mut list = self.list.borrow_mut();
        let mut i = 0;
        while i < list.len() {
            if list[i].done.load(Ordering::Acquire) {
                let w = list.swap_remove(i);
                let _ = w.thread.join();
                continue;
            }
            let w = &list[i];
            if libseccomp::notify_id_valid(w.notify.as_raw_fd(), w.id).is_err() {
                interrupt(&w.thread);
            }
            i += 1;
        }
    }
}
