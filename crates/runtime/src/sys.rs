//! The few system calls that neither `rustix` nor `nix` wrap: `clone3` with namespace flags
//! and a pidfd, `mount_setattr`, `SIOCSIFFLAGS` for loopback, `close_range`, signal reset and
//! `execve` from pre-built pointers. Every `unsafe` block of whittle lives in this crate, most of
//! them here, each with its SAFETY argument.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `struct clone_args` of `clone3(2)` (the v0 layout, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// What the child of [`spawn_helper`] does between `clone3` and `execve`: only async-signal-safe
/// raw system calls on data prepared before the clone (no allocation, no locks), because the
/// caller may be multi-threaded and the child has only a copy of the calling thread.
pub struct ExecPlan {
    exe: CString,
    /// Owns the strings `argv` points into (a `CString`'s buffer does not move with the plan).
    _args: Vec<CString>,
    /// NULL-terminated `argv`, built before the clone.
    argv: Vec<*const libc::c_char>,
    /// `(source, target)` pairs for `dup2`; sources are all >= 10 (see [`high_fd`]).
    fds: Vec<(RawFd, RawFd)>,
    /// The first fd not kept open across the exec.
    keep_below: u32,
    /// Make the child the leader of a new process group (so that it and anything it forks can
    /// be killed together).
    new_group: bool,
}

impl ExecPlan {
    /// `exe` run with `argv[0] = argv0` and an empty environment; `fds` become the child's
    /// 0, 1, 2, 3 ... (in order).
    pub fn new(exe: &std::path::Path, argv0: &CStr, fds: &[BorrowedFd<'_>]) -> io::Result<Self> {
        Self::command(exe, &[argv0.to_owned()], fds)
    }

    /// `exe` run with `args` (`args[0]` is `argv[0]`) and an empty environment; `fds` become
    /// the child's 0, 1, 2, 3 ... (in order).
    pub fn command(
        exe: &std::path::Path,
        args: &[CString],
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let exe = CString::new(exe.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in program path"))?;
        if args.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no argv[0]"));
        }
        let args = args.to_vec();
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(ExecPlan {
            exe,
            _args: args,
            argv,
            fds: fds
                .iter()
                .enumerate()
                .map(|(i, fd)| (fd.as_raw_fd(), i as RawFd))
                .collect(),
            keep_below: fds.len() as u32,
            new_group: false,
        })
    }

    /// Starts the child in a process group of its own.
    pub fn new_process_group(mut self) -> Self {
        self.new_group = true;
        self
    }
}

/// Duplicates `fd` to a close-on-exec descriptor numbered 10 or more, so the `dup2` calls of the
/// child never overwrite a source they still need.
pub fn high_fd(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 10)?)
}

/// Creates a child with `clone3(CLONE_PIDFD | namespaces)` and has it exec `plan` at once: the
/// container's first process (the init helper, in new namespaces) or a network helper (no new
/// namespaces). Returns the child's pid (in our namespace) and its pidfd.
pub fn spawn_helper(plan: &ExecPlan, namespaces: u64) -> io::Result<(i32, OwnedFd)> {
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: namespaces | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM and with no stack behaves like fork(): the child gets a
    // copy-on-write copy of this thread's address space and returns 0 here. `args` and `pidfd`
    // are live locals of the right layout/size for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        // SAFETY: we are the freshly cloned child; `child_exec` only makes raw syscalls on
        // memory prepared before the clone and never returns.
        unsafe { child_exec(plan, &envp) }
    }
    // SAFETY: CLONE_PIDFD made the kernel store a new, owned pidfd in `pidfd`.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as i32, pidfd))
}

/// The child side: parent-death signal, fd layout, exec. Async-signal-safe only.
///
/// # Safety
/// Must only be called in the child of a fork-like clone, with `plan.argv` pointing into
/// `plan`'s own strings.
unsafe fn child_exec(plan: &ExecPlan, envp: &[*const libc::c_char; 1]) -> ! {
    // SAFETY (whole block): each call is a plain system call (or `sigemptyset`, which only
    // writes the set it is given) on integers, on a `sigset_t` local to this frame (all-zero is
    // a valid value), or on pointers into `plan`/`envp`, which were fully built before the clone
    // and are not touched by anyone else in this single-threaded child. All are
    // async-signal-safe.
    unsafe {
        // Die with the thread that spawned us (the caller blocks in `run` until we exit); the
        // setting survives the execve of the (non-setuid) helper.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if plan.new_group && libc::setpgid(0, 0) < 0 {
            libc::_exit(126);
        }
        // What the exec'd program would get from a shell: SIGPIPE at its default (the Rust
        // runtime ignores it, and an ignored signal stays ignored across exec; pasta refuses to
        // start that way) and no signal blocked (the calling thread's mask is inherited).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for &(src, dst) in &plan.fds {
            if libc::dup2(src, dst) < 0 {
                libc::_exit(126);
            }
        }
        // No fd of the (multi-threaded) caller leaks into the container.
        libc::syscall(
            libc::SYS_close_range,
            plan.keep_below,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        libc::execve(plan.exe.as_ptr(), plan.argv.as_ptr(), envp.as_ptr());
        libc::_exit(127)
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the detached or attached mount (tree, with `recursive`) at `fd` read-only.
pub fn mount_setattr_readonly(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is a valid empty C
    // string used with AT_EMPTY_PATH on a descriptor we borrow for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 }) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings up `lo` in the current network namespace (`SIOCGIFFLAGS`/`SIOCSIFFLAGS`).
pub fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags of the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just filled ifru_flags, the active union member for these ioctls.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resets every signal disposition to its default and unblocks all signals, so the container
/// process does not inherit the Rust runtime's ignored `SIGPIPE` or the caller's mask.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no memory-safety requirements; errors (for signals
        // reserved by libc) are ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Marks every descriptor from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces the process image; returns only on failure.
pub fn execve(path: &CStr, args: &[CString], env: &[CString]) -> io::Error {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to C strings that outlive
    // the call (borrowed from `args`/`env`).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Borrows a raw descriptor number this process owns for the rest of its life (the helper's
/// fd 3, set up by [`spawn_helper`]).
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // Validate first, so an accidental start of the helper does not adopt a random fd.
    // SAFETY: F_GETFD only queries flags of a number; an invalid fd yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and, by the helper protocol, nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the kernel runs the host's 32-bit compat programs: on x86_64 the IA-32 emulation
/// (`CONFIG_IA32_EMULATION`, which adds the `abi.vsyscall32` sysctl), on arm64 32-bit EL0
/// (asked by switching this thread to `PER_LINUX32`, which the kernel refuses without it, and
/// back). Other hosts: no.
pub fn kernel_runs_compat32() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::path::Path::new("/proc/sys/abi/vsyscall32").exists()
    }
    #[cfg(target_arch = "aarch64")]
    {
        const PER_LINUX32: libc::c_ulong = 0x0008;
        const QUERY: libc::c_ulong = 0xffff_ffff;
        // SAFETY: personality(2) only changes this thread's execution domain flags; the old
        // value is restored at once, and nothing in between depends on it.
        unsafe {
            let old = libc::personality(QUERY);
            if old < 0 {
                return false;
            }
            let ok = libc::personality(PER_LINUX32) >= 0
                && libc::personality(QUERY) as libc::c_ulong & 0xff == PER_LINUX32;
            libc::personality(old as libc::c_ulong);
            ok
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The number of threads of this process (entries of `/proc/self/task`).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Forks this process. `Ok(0)` in the child, `Ok(pid)` in the parent. Refused unless the process
/// has a single thread: the child of a multi-threaded fork may inherit locks held by threads
/// that do not exist in it (the allocator's, stdio's), and the rootless child allocates.
pub fn fork_single_threaded() -> io::Result<i32> {
    if thread_count()? != 1 {
        return Err(io::Error::other("fork needs a single-threaded process"));
    }
    // SAFETY: fork has no memory-safety preconditions of its own; the process has one thread
    // (checked above, and it cannot have started another since: only this thread runs), so the
    // child's copy of the address space holds no lock owned by a thread it lacks.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// Moves this process into a new user namespace (`unshare(CLONE_NEWUSER)`), where it has every
/// capability. The kernel refuses it (EINVAL) to a multi-threaded process.
pub fn unshare_user_namespace() -> io::Result<()> {
    // SAFETY: unshare takes a flag word and touches no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for the child `pid` to exit and returns its exit code (128 + signal when killed).
pub fn wait_child(pid: i32) -> io::Result<i32> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a live local the kernel writes the status into.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Ok(128 + libc::WTERMSIG(status))
    }
}

/// Ends this process at once, without running `atexit` handlers or flushing stdio buffers it
/// shares with its parent (the child of [`fork_single_threaded`] ends this way).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}
