package sweep_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/progress"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/sweep"
)

// A bucket sweep wires the pipeline, its store and the object store; the
// listing uses the object store's connection settings.
func ExampleRun() {
	ctx := context.Background()
	var (
		p   *pipeline.Pipeline // pipeline.New(...) with Store: st
		st  store.Store        // the same store
		obj *objstore.Store    // build.Objects(ctx, cfg, log)
		log = slog.Default()
	)
	target, err := sweep.ParseTarget("s3://uploads/incoming/")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	lister := sweep.NewS3Lister(obj)
	bar := progress.New(os.Stderr, true)
	sum, err := sweep.Run(ctx, sweep.Config{
		Target:       target,
		Pipeline:     p,
		Jobs:         st,
		Lister:       lister, // also reads the tags for UntaggedOnly
		Objects:      obj,    // Apply's effects; its TagKey and quarantine area too
		UntaggedOnly: true,
		Progress:     bar,
		Logger:       log,
	})
	bar.Stop()
	fmt.Printf("%d scanned, %d infected, %d skipped\n", sum.Scanned, sum.Infected, sum.Skipped)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
