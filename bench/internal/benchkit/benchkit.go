// Package benchkit holds what lazaret's side-by-side benchmark programs
// share: the naive raw-clamd baseline, a concurrent driver over fresh
// random files, and CPU-time accounting.
package benchkit

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Measure calls scanFn on n fresh random files of size bytes with conc
// workers and returns the wall time. Fresh content matters: clamd caches
// clean results by content. Generating the bytes is inside the timing for
// every contender alike; it is far below a scan's cost.
func Measure(ctx context.Context, scanFn func(context.Context, []byte) error, n, size, conc int) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conc)
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			data := make([]byte, size)
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				rand.Read(data)
				if err := scanFn(ctx, data); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return time.Since(start), errors.Join(errs...)
}

// CPUTime returns the CPU time used so far by this process and, for each
// pid, by that process (read from /proc). CPU time is a steadier measure
// than wall time on a machine busy with other work.
func CPUTime(pids ...int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		t += ProcCPU(pid)
	}
	return t
}

// ProcCPU returns the CPU time process pid has used so far, 0 if it
// cannot be read.
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks (100 Hz).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// PeakRSS returns a process's peak resident memory (VmHWM) in bytes.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// Naive is the raw-clamd baseline: a new connection per file, zINSTREAM
// with the whole file as one chunk in a single write, then the reply.
func Naive(ctx context.Context, addr string, data []byte) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	network, address := "tcp", strings.TrimPrefix(addr, "tcp://")
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		network, address = "unix", p
	}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	msg := make([]byte, 0, 10+4+len(data)+4)
	msg = append(msg, "zINSTREAM\x00"...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)))
	msg = append(msg, data...)
	msg = append(msg, 0, 0, 0, 0)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		return err
	}
	if reply != "stream: OK\x00" {
		return fmt.Errorf("got %q, want stream: OK", reply)
	}
	return nil
}
