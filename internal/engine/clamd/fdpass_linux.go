package clamd

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fdPassing reports whether this system can hand clamd a sample as a
// file descriptor.
const fdPassing = true

// newMemfd returns a new anonymous in-memory file.
func newMemfd() (int, error) {
	fd, err := unix.MemfdCreate("lazaret-sample", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	return fd, nil
}

// fillFD makes the file fd, which holds size bytes, hold exactly data:
// cut to its length first when data is shorter (which also frees the
// pages a larger sample left), then written from the start. A file that
// is as long or longer needs no cut, and one system call less.
func fillFD(fd, size int, data []byte) error {
	if len(data) < size {
		if err := unix.Ftruncate(fd, int64(len(data))); err != nil {
			return fmt.Errorf("memfd truncate: %w", err)
		}
	}
	for off := 0; off < len(data); {
		n, err := unix.Pwrite(fd, data[off:], int64(off))
		if err != nil {
			return fmt.Errorf("memfd write: %w", err)
		}
		off += n
	}
	return nil
}

// closeFD closes a descriptor from newMemfd.
func closeFD(fd int) { unix.Close(fd) }

// rights is the control message that passes fd.
func rights(fd int) []byte { return unix.UnixRights(fd) }
