// Package progress draws a one-line progress report on a terminal for
// long CLI runs. It draws nothing until the work has lasted a moment, and
// nothing at all when disabled (output piped), so short runs and scripts
// see no extra output.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Bar is a progress line. Its methods are safe for concurrent use; a nil
// *Bar does nothing.
type Bar struct {
	w     io.Writer
	start time.Time

	mu                           sync.Mutex
	total, done, bytes, infected int64
	totalKnown                   bool
	drawn                        bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// Delay is how long the work runs before the bar first appears.
const Delay = time.Second

// New starts a bar drawing to w, or returns nil when enabled is false.
func New(w io.Writer, enabled bool) *Bar {
	if !enabled {
		return nil
	}
	b := &Bar{w: w, start: time.Now(), stop: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

// AddTotal counts n more items to do.
func (b *Bar) AddTotal(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.total += n
	b.mu.Unlock()
}

// TotalKnown says that no more items will be added.
func (b *Bar) TotalKnown() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.totalKnown = true
	b.mu.Unlock()
}

// Done records one finished item of size bytes.
func (b *Bar) Done(size int64, infected bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.done++
	b.bytes += size
	if infected {
		b.infected++
	}
	b.mu.Unlock()
}

// Stop stops drawing and clears the line.
func (b *Bar) Stop() {
	if b == nil {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}

func (b *Bar) loop() {
	defer b.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			if now.Sub(b.start) >= Delay {
				b.draw(now)
			}
		}
	}
}

func (b *Bar) draw(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	secs := now.Sub(b.start).Seconds()
	of := fmt.Sprintf("%d", b.total)
	if !b.totalKnown {
		of += "+"
	}
	fmt.Fprintf(b.w, "\r\033[K%d/%s files  %s  %s/s  %d infected",
		b.done, of, Bytes(b.bytes), Bytes(int64(float64(b.bytes)/secs)), b.infected)
	b.drawn = true
}

// Bytes formats a byte count for people: "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
