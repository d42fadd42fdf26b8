package clamd

import "sync"

// fdPool keeps the in-memory files that samples are passed to clamd in
// (zFILDES) from one scan to the next: making a new one and faulting in
// its pages costs more than rewriting one that is kept. A file goes back
// to the pool only after clamd answered for it, so it is never rewritten
// while clamd may still read it; one clamd was not heard from is closed.
type fdPool struct {
	mu     sync.Mutex
	free   []int
	max    int // files kept at most: one per scan in flight
	closed bool
	made   int // files created, for tests
}

// get returns a file holding exactly data.
func (p *fdPool) get(data []byte) (int, error) {
	fd := -1
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		fd, p.free = p.free[n-1], p.free[:n-1]
	} else {
		p.made++
	}
	p.mu.Unlock()
	if fd < 0 {
		var err error
		if fd, err = newMemfd(); err != nil {
			return -1, err
		}
	}
	if err := fillFD(fd, data); err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// put keeps fd for a later scan, or closes it when the pool is full or
// closed.
func (p *fdPool) put(fd int) {
	p.mu.Lock()
	if p.closed || len(p.free) >= p.max {
		p.mu.Unlock()
		closeFD(fd)
		return
	}
	p.free = append(p.free, fd)
	p.mu.Unlock()
}

// close closes the kept files; later puts close theirs.
func (p *fdPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, fd := range free {
		closeFD(fd)
	}
}
