package testenv

import (
	"bufio"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// instream is a deliberately naive INSTREAM, to check the test signatures
// against clamd itself without depending on lazaret's client.
func instream(t *testing.T, addr string, data []byte) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("zINSTREAM\x00"))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	conn.Write(n[:])
	conn.Write(data)
	conn.Write([]byte{0, 0, 0, 0})
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(reply, "\x00")
}

func TestClamdDetectsTestSignatures(t *testing.T) {
	c := StartClamd(t, ClamdOptions{})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"eicar", EICAR, "stream: " + Unofficial(EICARSignature) + " FOUND"},
		{"hsb", HSBSample(), "stream: " + Unofficial(HSBSignature) + " FOUND"},
		{"ndb", NDBSample(), "stream: " + Unofficial(NDBSignature) + " FOUND"},
		{"clean", Deterministic("clean", 10000), "stream: OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := instream(t, c.TCP, tc.data); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
