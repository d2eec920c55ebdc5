//! What a container's process does last, just before its command is exec'd.
//!
//! execve keeps ignored signals ignored, and every berth process ignores
//! SIGPIPE (Rust's runtime does), plus whatever the daemon was started with
//! (a shell's background job ignores SIGINT and SIGQUIT). Without a reset a
//! container's command started with those ignored (`SigIgn: 180001004` in
//! /proc/self/status, where Docker shows 0), so `yes | head -1` made `yes`
//! fail with EPIPE instead of ending quietly on SIGPIPE.

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

/// Every signal back to its default action, and none blocked.
pub fn default_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        set_default(sig);
    }
    // SAFETY: an empty, initialised set, and no old mask asked for.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// The kernel's `struct sigaction` on x86_64 (glibc's differs, and glibc
/// refuses signals 32 and 33, which it keeps for itself).
#[cfg(target_arch = "x86_64")]
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

#[cfg(target_arch = "x86_64")]
fn set_default(sig: libc::c_int) {
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a valid kernel sigaction, no old action
    // asked for, and the kernel's sigset size (8 bytes).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &action as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        )
    };
}

#[cfg(not(target_arch = "x86_64"))]
fn set_default(sig: libc::c_int) {
    // SAFETY: SIG_DFL for a signal number; glibc refuses its own (32, 33).
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// libcontainer's default executor after [`default_signals`].
#[derive(Clone)]
pub struct DefaultSignals;

impl Executor for DefaultSignals {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        default_signals();
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}
