package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// systemFolders are bound read-only into every bwrap sandbox, those that
// exist: the programs and their libraries. On a merged-/usr system /bin,
// /sbin and /lib* are symlinks into /usr and are made symlinks inside too.
var systemFolders = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// systemEtc is what programs need of /etc to start: the dynamic linker's
// cache and configuration, and Debian's alternatives (/usr/bin/awk is a
// link through /etc/alternatives). Nothing else of /etc is shown: no
// users, no hosts, no credentials. ROBinds adds more.
var systemEtc = []string{"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives"}

func systemRoots() []string { return append(slices.Clone(systemFolders), systemEtc...) }

// systemBinds returns the bwrap arguments that show the system folders.
func systemBinds() []string {
	var args []string
	for _, p := range systemRoots() {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if target, err := os.Readlink(p); err == nil {
				args = append(args, "--symlink", target, p)
			}
			continue
		}
		args = append(args, "--ro-bind", p, p)
	}
	return args
}

// bwrapFeatures reads which optional flags this bwrap knows from its help:
// --disable-userns came with bubblewrap 0.8, and an older bwrap still
// isolates well enough to run without it.
func bwrapFeatures(ctx context.Context, bwrap string) (disableUserns bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bwrap, "--help").CombinedOutput()
	return bytes.Contains(out, []byte("--disable-userns"))
}

// sampleInside is the sample's path inside a bwrap sandbox.
func (e *Engine) sampleInside() string {
	return path.Join(e.cfg.Mountpoint, e.cfg.InputFilename)
}

// bwrapArgs returns bwrap's arguments for one run, up to the "--" before
// the analyzer's argv: sample and report are the host files to bind, env
// the analyzer's whole environment. bwrap reports on fd 3 (the first of
// the command's ExtraFiles) when the analyzer starts and how it exits.
func (e *Engine) bwrapArgs(sample, report string, env []string) []string {
	args := []string{
		// Every namespace: no network (a new network namespace has only
		// its own loopback), no view of the host's processes, no IPC.
		"--unshare-all", "--unshare-user",
		"--die-with-parent", "--new-session",
		"--uid", strconv.Itoa(NobodyID), "--gid", strconv.Itoa(NobodyID),
		"--hostname", "lazaret-sandbox",
		"--cap-drop", "ALL",
	}
	if e.disableUserns {
		// No nested user namespaces: they are the kernel's usual way
		// back to capabilities.
		args = append(args, "--disable-userns")
	}
	args = append(args, "--clearenv")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	// bwrap's /dev is a tmpfs the sandbox's user owns, of no bounded
	// size (half the host's memory): read-only, so that the analyzer
	// writes to /tmp and its report only. The device nodes in it are
	// mounts of their own and stay usable.
	args = append(args, "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev")
	args = append(args, e.system...)
	args = append(args, "--size", strconv.FormatInt(e.cfg.Limits.TmpSize, 10), "--tmpfs", "/tmp")
	// After the tmpfs, so that a path under /tmp (an analyzer kept
	// there, a checkout in /tmp) is shown over it rather than hidden.
	for _, b := range e.cfg.ROBinds {
		args = append(args, "--ro-bind", b, b)
	}
	args = append(args,
		"--ro-bind", sample, e.sampleInside(),
		"--bind", report, reportInside,
		// The root itself is read-only too: the analyzer writes to
		// /tmp and to its report, nowhere else.
		"--remount-ro", "/",
		"--chdir", "/tmp",
		"--json-status-fd", "3",
		"--",
	)
	return args
}

// startWrapper makes a run say on fd n, just before it executes the
// analyzer, that it got that far, and closes the fd so that the analyzer
// cannot say it. An exit code counts only after that mark: prlimit's and
// bwrap's own failures exit 1 too, which must never read as "infected".
func startWrapper(n int) []string {
	fd := strconv.Itoa(n)
	return []string{"/bin/sh", "-c", "printf x >&" + fd + " && exec " + fd + `>&- && exec "$@"`, "lazaret-sandbox"}
}
