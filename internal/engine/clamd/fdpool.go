package clamd

import "sync"

// fdPool keeps the in-memory files that samples are passed to clamd in
// (zFILDES) from one scan to the next: making a new one and faulting in
// its pages costs more than rewriting one that is kept. A file goes back
// to the pool only after clamd's clean answer for it, so it is never
// rewritten while clamd may still read it; any other is closed.
type fdPool struct {
	mu     sync.Mutex
	free   []memfd
	max    int // files kept at most: one per scan in flight
	closed bool
	made   int // files created, for tests
}

// memfd is an in-memory file and the size of what it holds.
type memfd struct{ fd, size int }

// get returns a file holding exactly data, to give back with put or drop.
func (p *fdPool) get(data []byte) (memfd, error) {
	f := memfd{fd: -1}
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		f, p.free = p.free[n-1], p.free[:n-1]
	} else {
		p.made++
	}
	p.mu.Unlock()
	if f.fd < 0 {
		var err error
		if f.fd, err = newMemfd(); err != nil {
			return memfd{fd: -1}, err
		}
	}
	if err := fillFD(f.fd, f.size, data); err != nil {
		closeFD(f.fd)
		return memfd{fd: -1}, err
	}
	f.size = len(data)
	return f, nil
}

// put keeps f for a later scan, or closes it when the pool is full or
// closed.
func (p *fdPool) put(f memfd) {
	p.mu.Lock()
	if p.closed || len(p.free) >= p.max {
		p.mu.Unlock()
		closeFD(f.fd)
		return
	}
	p.free = append(p.free, f)
	p.mu.Unlock()
}

// drop closes f instead of keeping it.
func (p *fdPool) drop(f memfd) { closeFD(f.fd) }

// close closes the kept files; later puts close theirs.
func (p *fdPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, f := range free {
		closeFD(f.fd)
	}
}
