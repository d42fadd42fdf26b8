package clamd_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/lazaret/lazaret/internal/engine/clamd"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
)

// An engine over two daemons, scanning one sample. The pipeline does the
// same through the scan.Engine interface and normalises the result.
func ExampleNew() {
	e, err := clamd.New(clamd.Config{
		Name:      "clamav",
		Addresses: []string{"tcp://127.0.0.1:3310", "unix:///run/clamav/clamd.ctl"},
	}, slog.Default())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	ctx := context.Background()
	body := spool.Bytes([]byte("hello"))
	res, err := e.Scan(ctx, body.Sample("hello.txt"))
	res = scan.Normalize(e.Name(), res, err) // never clean when err != nil
	version, _ := e.Version(ctx)             // part of the verdict cache key
	fmt.Println(res.Verdict, res.Reason, strings.HasPrefix(version, "ClamAV "))
}
