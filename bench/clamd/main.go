// Command clamd-bench measures the clamd engine against a deliberately
// naive raw INSTREAM client (a new TCP connection per file, the whole file
// in one chunk) side by side, on the same clamd, at several
// concurrencies, on fresh random files (clamd caches clean results by
// content). It prints files/s for each and the ratio engine/naive.
//
// It uses the clamd at $LAZARET_BENCH_CLAMD (or -addr), else starts one
// with the project's test signatures and stops it at the end. It also
// prints the CPU time per file (this process's, plus clamd's when it
// started clamd), which varies less than throughput on a busy machine.
//
//	go run ./bench/clamd -n 2000 -conc 1,4,8
//
// Contenders run in rounds, each round in a rotated order, so that noise
// from other work on the machine falls on all of them alike; the median of
// the per-round ratios is printed beside the ratio of the totals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret/bench/internal/benchkit"
	"github.com/lazaret/lazaret/internal/engine/clamd"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clamd-bench:", err)
		os.Exit(1)
	}
}

type contender struct {
	name string
	scan func(ctx context.Context, data []byte) error
	time time.Duration
	cpu  time.Duration // this process's and clamd's CPU time
	// rates holds each round's files/s.
	rates []float64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("clamd-bench", flag.ContinueOnError)
	addr := fs.String("addr", os.Getenv("LAZARET_BENCH_CLAMD"), "clamd address (tcp://host:port or unix:///path); empty starts a clamd")
	network := fs.String("network", "tcp", "with a clamd started here: tcp, or unix (where the engine passes descriptors, zFILDES)")
	n := fs.Int("n", 2000, "files per contender and concurrency, split over the rounds")
	size := fs.Int("size", 16<<10, "file size in bytes")
	concList := fs.String("conc", "1,4,8", "concurrencies, comma-separated")
	rounds := fs.Int("rounds", 10, "rounds per concurrency")
	verbose := fs.Bool("v", false, "print every round's files/s on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *n < *rounds {
		return fmt.Errorf("-rounds: need 1 to -n (%d) rounds, got %d", *n, *rounds)
	}
	perRound := *n / *rounds
	var concs []int
	for _, s := range strings.Split(*concList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("-conc: bad concurrency %q", s)
		}
		concs = append(concs, c)
	}
	if *network != "tcp" && *network != "unix" {
		return fmt.Errorf("-network: tcp or unix, got %q", *network)
	}
	clamdPID := 0 // known when this program started clamd
	if *addr == "" {
		if testenv.ClamdBinary() == "" {
			return errors.New("no clamd binary (apt-get install clamav-daemon) and no $LAZARET_BENCH_CLAMD")
		}
		c, err := testenv.LaunchClamd(testenv.ClamdOptions{})
		if err != nil {
			return err
		}
		defer c.Stop()
		*addr, clamdPID = c.TCP, c.PID()
		if *network == "unix" {
			*addr = c.Unix
		}
	}

	engine, err := clamd.New(clamd.Config{Name: "clamav", Addresses: []string{*addr}}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer engine.Close()
	version, err := engine.Version(ctx)
	if err != nil {
		return err
	}
	fresh, err := clamd.New(clamd.Config{Name: "clamav", Addresses: []string{*addr}, IdleTimeout: -1}, nil)
	if err != nil {
		return err
	}
	defer fresh.Close()

	fmt.Fprintf(out, "clamd %s at %s; %d files of %d bytes per contender and concurrency, in %d rounds of %d\n\n",
		version, *addr, perRound**rounds, *size, *rounds, perRound)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	cpuWho := "client+clamd"
	if clamdPID == 0 {
		cpuWho = "client only"
	}
	fmt.Fprintf(tw, "concurrency\tnaive files/s\tengine files/s\tratio engine/naive\tmedian round ratio\tengine, no reuse files/s\tnaive CPU µs/file\tengine CPU µs/file (%s)\t\n", cpuWho)
	var pids []int
	if clamdPID != 0 {
		pids = append(pids, clamdPID)
	}
	for _, conc := range concs {
		cs := []*contender{
			{name: "naive", scan: func(ctx context.Context, data []byte) error { return benchkit.Naive(ctx, *addr, data) }},
			{name: "engine", scan: engineScan(engine)},
			{name: "engine-fresh", scan: engineScan(fresh)},
		}
		for r := range *rounds {
			for i := range cs {
				c := cs[(i+r)%len(cs)]
				cpu0 := benchkit.CPUTime(pids...)
				d, err := benchkit.Measure(ctx, c.scan, perRound, *size, conc)
				if err != nil {
					return fmt.Errorf("%s, concurrency %d: %w", c.name, conc, err)
				}
				c.time += d
				c.cpu += benchkit.CPUTime(pids...) - cpu0
				c.rates = append(c.rates, float64(perRound)/d.Seconds())
				if *verbose {
					fmt.Fprintf(os.Stderr, "concurrency %d round %d %-12s %6.0f files/s\n", conc, r+1, c.name, float64(perRound)/d.Seconds())
				}
			}
		}
		files := float64(perRound * *rounds)
		rate := func(c *contender) float64 { return files / c.time.Seconds() }
		perFile := func(c *contender) float64 { return float64(c.cpu.Microseconds()) / files }
		ratios := make([]float64, *rounds)
		for r := range ratios {
			ratios[r] = cs[1].rates[r] / cs[0].rates[r]
		}
		slices.Sort(ratios)
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", conc, rate(cs[0]), rate(cs[1]), rate(cs[1])/rate(cs[0]),
			ratios[len(ratios)/2], rate(cs[2]), perFile(cs[0]), perFile(cs[1]))
	}
	return tw.Flush()
}

func engineScan(e *clamd.Engine) func(context.Context, []byte) error {
	return func(ctx context.Context, data []byte) error {
		res, err := e.Scan(ctx, spool.Bytes(data).Sample("f"))
		if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Clean {
			return fmt.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
		}
		return nil
	}
}
