//! Unix signals as futures: [`ctrl_c`] and [`signal`] (a stream of one signal's deliveries).
//!
//! A signal is registered with the process once (through `signal-hook-registry`, which
//! chains with handlers other libraries installed), the first time anyone asks for it. The
//! handler does only async-signal-safe work: it bumps the signal's delivery counter and
//! writes one byte to a non-blocking self-pipe. The pipe's read end is registered with the
//! process-wide default core's event queue, where a small task drains it and wakes every
//! waiter of the signals that arrived. A [`Signal`] completes once per new delivery it has
//! not seen (deliveries between two awaits coalesce), so any number of tasks on any cores
//! may wait for the same signal and each sees it.

use crate::io::{Direction, RegisteredIo, Registration};
use crate::sync::{lock, TryOnce};
use crate::util::wait_list::{WaitKey, WaitList};
use futures::Stream;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

/// Signal numbers handled: 1 ..= `MAX_SIGNAL` (covers the real-time signals on Linux).
const MAX_SIGNAL: i32 = 64;

/// A Unix signal to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// `SIGINT` (Ctrl-C).
    pub fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }
    /// `SIGTERM` (the polite "please stop").
    pub fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }
    /// `SIGHUP` (often: reload the configuration).
    pub fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }
    /// `SIGUSR1`.
    pub fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }
    /// `SIGUSR2`.
    pub fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }
    /// Any signal by number (registering it fails for the signals that cannot be handled,
    /// see [`signal`], and numbers the system does not have).
    pub fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }
    /// The signal number.
    pub fn as_raw(self) -> i32 {
        self.0
    }
}

/// One signal's state, shared by its handler and its waiters.
struct Slot {
    /// Registered with the process.
    registered: AtomicBool,
    /// Deliveries so far (bumped by the handler).
    deliveries: AtomicU64,
    /// Tasks waiting for the next delivery (made on first use: a `static` cannot make one).
    waiters: OnceLock<WaitList>,
}

impl Slot {
    fn waiters(&self) -> &WaitList {
        self.waiters.get_or_init(WaitList::default)
    }
}

/// Every signal's slot, by number.
static SLOTS: [Slot; MAX_SIGNAL as usize + 1] = [const {
    Slot { registered: AtomicBool::new(false), deliveries: AtomicU64::new(0), waiters: OnceLock::new() }
}; MAX_SIGNAL as usize + 1];

/// The self-pipe's write end (the handler writes one byte per delivery), once set up.
/// A set-up that failed (the process out of file descriptors, say) is tried again by the
/// next call.
fn pipe_write() -> io::Result<RawFd> {
    static PIPE: TryOnce<RawFd> = TryOnce::new();
    PIPE.get_or_try_init(|| {
        let (read, write) = pipe()?;
        start_reader(read)?;
        // The write end lives as long as the process (a handler may run at any time).
        let fd = write.as_raw_fd();
        std::mem::forget(write);
        Ok(fd)
    })
    .copied()
    .map_err(|e: io::Error| io::Error::new(e.kind(), format!("signal: setting up the signal pipe: {e}")))
}

/// A non-blocking, close-on-exec pipe.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` just created both descriptors; nobody else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Spawns the task that drains the pipe and wakes the waiters, on the default core.
fn start_reader(read: OwnedFd) -> io::Result<()> {
    let core = crate::runtime::default_handle()?;
    let reg = Registration::new(core.clone(), read.as_raw_fd())?;
    core.spawn(async move {
        let mut waiter = pin!(reg.waiter(Direction::Read));
        let mut buf = [0u8; 64];
        loop {
            let n = poll_fn(|cx| {
                reg.poll_io(cx, Direction::Read, Some(waiter.as_mut()), || {
                    // SAFETY: reading into a buffer of that size from our own open fd.
                    let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                })
            })
            .await;
            if n.is_ok() {
                // Every slot, not only those named by the bytes read: a full pipe drops
                // bytes, never deliveries (the counters have them). A slot nobody waits on
                // costs one load.
                for slot in &SLOTS {
                    if let Some(waiters) = slot.waiters.get() {
                        waiters.wake_all();
                    }
                }
            }
        }
    });
    Ok(())
}

/// Registers `kind` with the process (once); returns its slot.
fn register(kind: SignalKind) -> io::Result<&'static Slot> {
    static REGISTERING: Mutex<()> = Mutex::new(());
    let signum = kind.0;
    let name = format!("signal {signum}");
    if !(1..=MAX_SIGNAL).contains(&signum) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: not a signal number")));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum) {
        // SIGKILL and SIGSTOP cannot be caught; catching SIGILL, SIGFPE or SIGSEGV would
        // return into the faulting instruction.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: this signal cannot be handled"),
        ));
    }
    let slot = &SLOTS[signum as usize];
    let _serial = lock(&REGISTERING);
    if !slot.registered.load(Acquire) {
        let pipe_write = pipe_write()?;
        let action = move || {
            // Async-signal-safe only: an atomic add and a write(2).
            SLOTS[signum as usize].deliveries.fetch_add(1, SeqCst);
            let byte = signum as u8;
            // SAFETY: writing one byte from a live local to the pipe we keep open forever;
            // a full pipe (EAGAIN) loses nothing: the counter has the delivery, and the
            // reader wakes every slot whenever it reads anything.
            unsafe { libc::write(pipe_write, (&byte as *const u8).cast(), 1) };
        };
        // SAFETY: the action is async-signal-safe (see above) and never panics.
        unsafe { signal_hook_registry::register(signum, action) }
            .map_err(|e| io::Error::new(e.kind(), format!("register {name}: {e}")))?;
        slot.registered.store(true, Release);
    }
    Ok(slot)
}

/// A stream of one signal's deliveries, from [`signal`]. Deliveries that arrive between
/// two awaits coalesce into one.
pub struct Signal {
    kind: SignalKind,
    slot: &'static Slot,
    /// Deliveries this stream has reported.
    seen: u64,
    /// This stream's entry among the signal's waiters (removed when it drops: a listener
    /// given up must not keep its task alive until the next delivery).
    key: WaitKey,
}

impl Drop for Signal {
    fn drop(&mut self) {
        self.slot.waiters().forget(&mut self.key);
    }
}

/// Starts listening for `kind`: the returned stream yields once per delivery from now on.
/// Safe to call any number of times, from any task or thread.
///
/// The registration is for the life of the process: from the first call on, the signal's
/// default action no longer happens, even after every stream was dropped (a `SIGINT`, say,
/// no longer ends the process; the program decides what it does).
///
/// Errors (naming the signal): `InvalidInput` for a number that is not a signal, and for
/// signals that cannot be handled (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`);
/// the OS error if registering fails.
///
/// ```no_run
/// use iocore::signal::{signal, SignalKind};
/// # async fn demo() -> std::io::Result<()> {
/// let mut hangups = signal(SignalKind::hangup())?;
/// while hangups.recv().await.is_some() {
///     println!("reloading the configuration");
/// }
/// # Ok(()) }
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let slot = register(kind)?;
    Ok(Signal { kind, slot, seen: slot.deliveries.load(SeqCst), key: WaitKey::default() })
}

/// Completes at the next `SIGINT` (Ctrl-C) from now on.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// iocore::signal::ctrl_c().await?;
/// println!("shutting down");
/// # Ok(()) }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    signal(SignalKind::interrupt())?.recv().await;
    Ok(())
}

impl Signal {
    /// Waits for the next delivery. Always `Some(())` (the stream never ends).
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let slot = self.slot;
        let (key, seen) = (&mut self.key, &mut self.seen);
        slot.waiters().poll_until(Some(key), cx.waker(), || take_delivery(slot, seen)).map(Some)
    }

    /// The signal this stream listens for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

/// Whether `slot` had a delivery since `seen` (which then moves up to it).
fn take_delivery(slot: &Slot, seen: &mut u64) -> bool {
    let now = slot.deliveries.load(SeqCst);
    if now > *seen {
        *seen = now;
        return true;
    }
    false
}

impl Stream for Signal {
    type Item = ();
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("signum", &self.kind.0).field("seen", &self.seen).finish()
    }
}
