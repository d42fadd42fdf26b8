package clamd

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fdPassing reports whether this system can hand clamd a sample as a
// file descriptor.
const fdPassing = true

// sampleFD returns an anonymous in-memory file (memfd) holding data, for
// zFILDES. The caller closes it; clamd gets its own reference with the
// message, so it may be closed as soon as that is sent.
func sampleFD(data []byte) (int, error) {
	fd, err := unix.MemfdCreate("lazaret-sample", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	for off := 0; off < len(data); {
		n, err := unix.Pwrite(fd, data[off:], int64(off))
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("memfd write: %w", err)
		}
		off += n
	}
	return fd, nil
}

// closeFD closes a descriptor from sampleFD.
func closeFD(fd int) { unix.Close(fd) }

// rights is the control message that passes fd.
func rights(fd int) []byte { return unix.UnixRights(fd) }
