package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

func TestSafeArg(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "report.pdf", "report.pdf"},
		{"empty", "", ""},
		{"option", "--remove", "_-remove"},
		{"dash inside", "a-b", "a-b"},
		{"NUL", "a\x00b", "a_b"},
		{"control characters", "a\nb\tc\x1b", "a_b_c_"},
		{"invalid UTF-8", "a\xff\xfeb", "a_b"},
		{"placeholder", "{path}", "{path}"},
		{"unicode", "état-été.txt", "état-été.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SafeArg(tc.in); got != tc.want {
				t.Errorf("SafeArg(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestArgv(t *testing.T) {
	t.Parallel()
	r := strings.NewReplacer("{path}", "/s/{name}", "{name}", "{path}")
	got := Argv([]string{"/bin/{path}", "-f", "{path}", "--name={name}"}, r)
	want := []string{"/bin/{path}", "-f", "/s/{name}", "--name={path}"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// startGroup starts argv as the leader of its own process group, with
// stdout as its standard output (nil: none).
func startGroup(t *testing.T, stdout *os.File, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // not waited for: the group may live
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	})
	return cmd
}

func TestKillGroup(t *testing.T) {
	t.Parallel()
	t.Run("live group", func(t *testing.T) {
		t.Parallel()
		// The shell's child is in its group and holds the pipe too: the
		// pipe ends only when both are dead.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd := startGroup(t, w, "/bin/sh", "-c", "sleep 60 & echo started; wait")
		w.Close()
		if _, err := r.Read(make([]byte, 16)); err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := KillGroup("test", cmd.Process.Pid); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		cmd.Wait()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("got wait status %v, want killed by SIGKILL", cmd.ProcessState)
		}
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := r.Read(make([]byte, 16)); err != io.EOF {
			t.Errorf("got %d bytes and %v, want io.EOF: a process of the group still holds the pipe", n, err)
		}
	})
	t.Run("gone group", func(t *testing.T) {
		t.Parallel()
		cmd := startGroup(t, nil, "/bin/true")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("wait: %v", err)
		}
		if err := KillGroup("test", cmd.Process.Pid); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("got %v, want os.ErrProcessDone", err)
		}
	})
	for _, pgid := range []int{-5, 0, 1} {
		t.Run(fmt.Sprintf("pgid %d", pgid), func(t *testing.T) {
			t.Parallel()
			err := KillGroup("test", pgid)
			want := fmt.Sprintf("test: kill process group %d: ", pgid)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %v, want an error starting %q", err, want)
			}
		})
	}
}

func TestContextError(t *testing.T) {
	t.Parallel()
	ended := func(ctx context.Context) context.Context {
		<-ctx.Done()
		return ctx
	}
	for _, tc := range []struct {
		name   string
		ctx    func(t *testing.T) context.Context
		reason scan.Reason
		is     error
		want   string
	}{{
		name: "own timeout",
		ctx: func(t *testing.T) context.Context {
			ctx, cancel := WithTimeout(t.Context(), time.Millisecond)
			t.Cleanup(cancel)
			return ended(ctx)
		},
		reason: scan.ReasonTimeout,
		is:     context.DeadlineExceeded,
		want:   "test: timed out after 1ms: context deadline exceeded",
	}, {
		name: "caller's deadline",
		ctx: func(t *testing.T) context.Context {
			parent, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			t.Cleanup(cancel)
			ctx, cancel := WithTimeout(parent, time.Hour)
			t.Cleanup(cancel)
			return ended(ctx)
		},
		reason: scan.ReasonTimeout,
		is:     context.DeadlineExceeded,
		want:   "test: context deadline exceeded",
	}, {
		name: "caller's deadline without WithTimeout",
		ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			t.Cleanup(cancel)
			return ended(ctx)
		},
		reason: scan.ReasonTimeout,
		is:     context.DeadlineExceeded,
		want:   "test: context deadline exceeded",
	}, {
		name: "cancelled",
		ctx: func(t *testing.T) context.Context {
			parent, cancel := context.WithCancel(t.Context())
			cancel()
			ctx, cancel := WithTimeout(parent, time.Hour)
			t.Cleanup(cancel)
			return ended(ctx)
		},
		reason: scan.ReasonEngineError,
		is:     context.Canceled,
		want:   "test: cancelled: context canceled",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ContextError(tc.ctx(t), "test", time.Millisecond)
			if got := err.Error(); got != tc.want {
				t.Errorf("got message %q, want %q", got, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("got %v, want it to wrap %v", err, tc.is)
			}
			if v, r := scan.Classify(err); v != scan.Error || r != tc.reason {
				t.Errorf("got %s/%s, want %s/%s", v, r, scan.Error, tc.reason)
			}
		})
	}
}

func TestExecutable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		is   error  // nil: no particular error
		want string // substring of the error; "" means no error
	}{
		{"executable", write("x", 0o755), nil, ""},
		{"execute bit for others only", write("o", 0o601), nil, ""},
		{"no execute bit", write("r", 0o644), nil, "not an executable file"},
		{"folder", dir, nil, "not an executable file"},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Executable(tc.path)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("got %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}

func TestFileStamp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yar")
	if err := os.WriteFile(file, []byte("rule x {}"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"file", file, fmt.Sprintf("%s 9 %d\n", file, mtime.UnixNano())},
		{"folder", dir, fmt.Sprintf("%s %d %d\n", dir, fi.Size(), fi.ModTime().UnixNano())},
		{"missing", filepath.Join(dir, "missing"), ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			FileStamp(&b, tc.path)
			if got := b.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
